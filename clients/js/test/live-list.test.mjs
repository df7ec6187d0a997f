// docs/howto/live-list.md's recipe (live-list.mjs) against daphne and uvicorn: a list kept live
// through creates, updates and deletes, and through a dropped connection with writes meanwhile.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import WebSocket from "ws";

import { connect, next, SERVERS } from "./helpers.mjs";
import { liveList } from "./live-list.mjs";

/** A `ws` WebSocket whose latest instance the test can cut off (no close frame: code 1006). */
function droppable() {
  const sockets = [];
  class Droppable extends WebSocket {
    constructor(url) {
      super(url);
      sockets.push(this);
    }
  }
  return { WebSocket: Droppable, drop: () => sockets.at(-1).terminate() };
}

/** The titles of `objects` that start with `prefix`, by id: what the test compares. */
function mine(objects, prefix) {
  return Object.fromEntries([...objects].filter((o) => o.title.startsWith(prefix)).map((o) => [o.id, o.title]));
}

for (const [name, base] of Object.entries(SERVERS)) {
  describe(`live list on ${name}`, () => {
    test("subscribe, list, apply pushes; after a dropped connection, resume (or list again)", async (t) => {
      const url = `${base}/ws/articles/`;
      const prefix = `live-${name}-${Date.now()}-`;
      const link = droppable();
      const reader = connect(t, url, { WebSocket: link.WebSocket, reconnect: { initialMs: 1000, jitter: 0 } });
      const writer = connect(t, url, { WebSocket });
      let lists = 0;
      const live = liveList(reader, { onChange: (route) => { if (route === "list") lists += 1; } });
      await live.ready;
      const database = async () => mine((await writer.request("list")).payload, prefix);
      const same = async () => JSON.stringify(mine(live.items.values(), prefix)) === JSON.stringify(await database());
      const settled = async (what) => {
        for (let i = 0; i < 200 && !(await same()); i++) await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(mine(live.items.values(), prefix), await database(), what);
      };

      const ids = [];
      for (const title of ["a", "b", "c"]) {
        const reply = await writer.request("create", { title: prefix + title, body: "" });
        assert.equal(reply.status, 201);
        ids.push(reply.payload.id);
      }
      assert.equal((await writer.request("patch", { title: `${prefix}b2` }, { id: ids[1] })).status, 200);
      assert.equal((await writer.request("delete", null, { id: ids[2] })).status, 204);
      await settled("after creates, an update and a delete");
      assert.equal(lists, 1, "the pushes were applied without listing again");

      // The reader's connection drops; the writer writes while it is away.
      const resubscribed = next(reader, "resubscribed");
      link.drop();
      assert.equal((await writer.request("patch", { title: `${prefix}a2` }, { id: ids[0] })).status, 200);
      assert.equal((await writer.request("delete", null, { id: ids[1] })).status, 204);
      const created = await writer.request("create", { title: `${prefix}d`, body: "" });
      assert.equal(created.status, 201);
      const { reply, resumed } = await resubscribed;
      assert.equal(reply.status, 201);
      await settled("after the reconnect");

      if (reply.headers?.position === undefined || live.subscription.position === undefined) {
        t.skip("resume: the server sends no position or the client keeps none yet; the list was read again");
        return;
      }
      assert.equal(resumed, true, "the subscription resumed from its position");
      assert.equal(reply.headers.resumed, true);
      assert.equal(lists, 1, "a resumed subscription is not listed again: the changes came as pushes");
    });
  });
}

test("the recipe's module is the one the how-to includes", async () => {
  const { readFile } = await import("node:fs/promises");
  const page = await readFile(new URL("../../../docs/howto/live-list.md", import.meta.url), "utf8");
  assert.match(page, /\{literalinclude\} \.\.\/\.\.\/clients\/js\/test\/live-list\.mjs/);
});

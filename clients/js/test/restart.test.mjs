// A server restart: the socket reconnects on its own, re-sends its subscriptions and pushes
// arrive again. The subscription is a group membership: `join` "news" (re-sent as a new
// request after the reconnect, since the restarted process has forgotten every group), and
// the group's broadcasts (route `announcement`, sent by `announce`) are matched by route.
// Then the server is killed (SIGKILL) with a keyed write in flight: after the restart the write
// is sent again with its idempotency-key, runs once and resolves once.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { connect, next, ownServer, record, sleep, until } from "./helpers.mjs";

describe("server restart", { concurrency: true }, () => {
  for (const kind of ["daphne", "uvicorn"]) {
    test(`${kind} restarts: reconnect, resubscribe, pushes again; killed: a keyed write resolves once`, async (t) => {
      const server = await ownServer(kind);
      t.after(() => server.stop());
      await server.start();

      const resubscribedReplies = [];
      const socket = connect(t, `${server.url}/ws/async/`, {
        heartbeatMs: 1000, pongTimeoutMs: 2000,
        reconnect: { initialMs: 100, maxMs: 800, factor: 2, jitter: 0.2, maxRefusals: 100 },
      });
      const events = record(socket);
      const news = [];
      socket.on("announcement", (push) => news.push(push.payload));
      const sub = socket.subscribe("join", {
        payload: "news", unsubscribeRoute: null, onResubscribed: (reply) => resubscribedReplies.push(reply),
      });
      const joined = await sub.ready;
      assert.deepEqual([joined.status, joined.payload], [200, ["news"]]);
      const firstUuid = sub.uuid;

      assert.equal((await socket.request("announce", { group: "news", text: "before" })).status, 202);
      await until(() => news.includes("before"), 5000, "the first push");

      // Stop the server (SIGTERM) with a request in flight: it finishes and is answered, then
      // the server closes with the restart code (4012 on daphne), and the socket reconnects within
      // the restart window.
      const inFlight = socket.request("slow", 0.5);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await server.stop();
      assert.equal((await inFlight).payload, 0.5);
      await until(() => events.reconnecting.length > 0, 5000, "reconnecting");
      const [closed] = events.close;
      assert.equal(closed.willReconnect, true);
      assert.equal(closed.code, kind === "uvicorn" ? 1012 : 4012);
      assert.ok(events.reconnecting[0].delayMs <= 2000); // within the restart window
      assert.equal(socket.state, "reconnecting");
      // Made while the server is down: queued, sent on open.
      const queued = socket.request("echo", "queued while down");

      const reopened = next(socket, "open", 30000);
      const resubscribed = next(socket, "resubscribed", 30000);
      await server.start();
      assert.deepEqual(await reopened, { reconnect: true });
      const { reply, subscription } = await resubscribed;
      assert.equal(subscription, sub);
      assert.deepEqual([reply.status, reply.payload], [200, ["news"]]);
      assert.deepEqual(resubscribedReplies, [reply]);
      assert.notEqual(sub.uuid, firstUuid);
      assert.equal(reply.uuid, sub.uuid);
      assert.equal((await queued).payload.payload, "queued while down");

      assert.equal((await socket.request("announce", { group: "news", text: "after" })).status, 202);
      await until(() => news.includes("after"), 5000, "the push after the restart");
      assert.deepEqual(news, ["before", "after"]);
      assert.equal(events.open.length, 2);
      assert.ok(events.reconnecting.length >= 1);
      assert.deepEqual(events["give-up"], []);
      assert.equal(socket.state, "open");

      const writer = connect(t, `${server.url}/ws/articles/idempotent/`, {
        headers: { Authorization: "User 7" }, // the key's identity, the same on every connection
        reconnect: { initialMs: 200, maxMs: 1000, maxRefusals: 100 },
      });
      const title = `killed on ${kind}`;
      let settled = 0;
      const created = writer.request("slowCreate", { title, sleep: 2 }).then((reply) => { settled += 1; return reply; });
      await sleep(500); // the server runs it, inside its transaction
      await server.kill(); // the transaction never commits, nothing is answered
      await sleep(300);
      await server.start();
      const written = await created;
      // Nothing was kept (the first run never committed), so the re-send ran it: no replay.
      assert.deepEqual([written.status, written.payload.title, written.headers?.["idempotent-replay"]], [201, title, undefined]);
      const listed = await writer.request("list");
      assert.equal(listed.payload.filter((article) => article.title === title).length, 1);
      await sleep(200);
      assert.equal(settled, 1);
    });
  }
});

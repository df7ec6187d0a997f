// Requests and subscriptions across a dropped connection, against real servers (protocol v1.2):
// a keyed request in flight is sent again after the reconnect with the same idempotency-key and
// resolves once, the server having written once; maxRetries bounds the re-sends; without keys
// nothing is sent again; a subscription resumes from its position. (A server killed with a keyed
// write in flight: restart.test.mjs.)
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import WebSocket from "ws";

import {
  ConnectionClosedError, SERVERS, VALIDATED_SERVERS, connect, next, record, sleep, trackedWebSocket, until,
} from "./helpers.mjs";

const QUICK = { initialMs: 100, maxMs: 500, jitter: 0 };
const USER = { Authorization: "User 7" }; // the key's identity: the same user on every connection

/** A `ws` WebSocket whose handshake sends `origin` (the validated servers check it), keeping its
 * instances so that a test can drop a connection (`sockets.at(-1).terminate()`: the client sees 1006). */
function droppable(origin) {
  const sockets = [];
  class Droppable extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols ?? [], { origin });
      sockets.push(this);
    }
  }
  return { WebSocket: Droppable, sockets };
}

// The validated servers serve a migrated database (SQLite: one write at a time, so one test at a time).
for (const [kind, base] of Object.entries(VALIDATED_SERVERS)) {
  describe(`${kind}: keyed requests and subscriptions across a dropped connection`, () => {
    const origin = base.replace(/^ws/, "http");

    test("a keyed create in flight when the connection drops resolves once, written once", async (t) => {
      const { WebSocket, sockets } = droppable(origin);
      const socket = connect(t, `${base}/ws/articles/idempotent/`, { WebSocket, headers: USER, reconnect: QUICK });
      const events = record(socket);
      await next(socket, "open");

      const title = `dropped on ${kind} ${Math.random()}`; // (a database may outlive a run)
      let settled = 0;
      const created = socket.request("slowCreate", { title, sleep: 1 }).then((reply) => { settled += 1; return reply; });
      await sleep(300); // the server runs it
      sockets.at(-1).terminate(); // no reply on this connection
      const reply = await created;
      // The re-send carried the first one's key: the server answered it with the first one's kept
      // reply instead of running it again.
      assert.deepEqual([reply.status, reply.payload.title, reply.headers?.["idempotent-replay"]], [201, title, true]);
      assert.equal(events.open.length, 2);
      assert.equal(events.close[0].code, 1006);
      const listed = await socket.request("list");
      assert.equal(listed.payload.filter((article) => article.title === title).length, 1);
      await sleep(200);
      assert.equal(settled, 1);
    });

    test("a subscription resumes from its position after a reconnect and gets what changed meanwhile", async (t) => {
      const { WebSocket, sockets } = droppable(origin);
      const url = `${base}/ws/articles/`;
      const socket = connect(t, url, { WebSocket, reconnect: { initialMs: 1500, jitter: 0 } });
      const writer = connect(t, url, { WebSocket: droppable(origin).WebSocket });
      const pushes = [];
      const sub = socket.subscribe("subscribe", {}, (push) => pushes.push(push));
      const subscribed = await sub.ready;
      assert.equal(subscribed.status, 201);
      if (typeof subscribed.headers?.position !== "string") {
        t.skip("the server sends no headers.position: it keeps no history of changes (drf_bridge/history.py)");
        return;
      }
      assert.equal(sub.position, subscribed.headers.position);
      const live = `live on ${kind}`;
      assert.equal((await writer.request("create", { title: live })).status, 201);
      await until(() => pushes.some((push) => push.payload?.title === live), 5000, "the live push");
      assert.equal(sub.position, pushes.at(-1).headers.position);

      const resubscribed = next(socket, "resubscribed", 10000);
      sockets.at(-1).terminate();
      const missed = `missed on ${kind}`;
      assert.equal((await writer.request("create", { title: missed })).status, 201); // while it is away
      const { reply, resumed } = await resubscribed;
      assert.deepEqual([reply.status, reply.headers.resumed, resumed], [201, true, true]);
      await until(() => pushes.some((push) => push.payload?.title === missed), 5000, "the replayed change");
      const replayed = pushes.find((push) => push.payload?.title === missed);
      assert.deepEqual([replayed.route, replayed.headers.subscription], ["created", sub.uuid]);
      assert.equal(pushes.filter((push) => push.route === "resync").length, 0);
    });
  });
}

describe("re-sends on the session servers", { concurrency: true }, () => {
  for (const [name, base] of Object.entries(SERVERS)) {
    test(`${name}: maxRetries re-sends, then ConnectionClosedError with the attempts`, async (t) => {
      const { WebSocket, sockets } = trackedWebSocket();
      const socket = connect(t, `${base}/ws/async/`, { WebSocket, reconnect: QUICK, maxRetries: 1 });
      await next(socket, "open");
      const slow = socket.request("slow", 3);
      const rejected = assert.rejects(slow, (error) => {
        assert.ok(error instanceof ConnectionClosedError, error);
        assert.deepEqual([error.willReconnect, error.attempts], [true, 2]);
        assert.match(error.message, /not sending the request again: sent 2 times \(maxRetries 1\)/);
        return true;
      });
      await sleep(200);
      sockets.at(-1).terminate();
      await until(() => sockets.length === 2 && socket.state === "open", 5000, "the reconnect");
      await sleep(200); // sent again, and running
      sockets.at(-1).terminate();
      await rejected;
      await until(() => socket.state === "open", 5000, "the second reconnect");
      assert.equal((await socket.request("echo", "still served")).payload.payload, "still served");
    });

    test(`${name}: idempotencyKeys false sends no key, and a request in flight rejects as in v1`, async (t) => {
      const { WebSocket, sockets } = trackedWebSocket();
      const socket = connect(t, `${base}/ws/async/`, { WebSocket, reconnect: QUICK, idempotencyKeys: false });
      assert.deepEqual((await socket.request("echo", 1)).payload.headers, {});
      const keyed = await socket.request("echo", 2, {}, { idempotencyKey: "mine-2" }); // a request's own key still goes
      assert.deepEqual(keyed.payload.headers, { "idempotency-key": "mine-2" });
      const slow = socket.request("slow", 2);
      await sleep(200);
      sockets.at(-1).terminate();
      await assert.rejects(slow, (error) => error instanceof ConnectionClosedError && error.willReconnect &&
        error.attempts === 1 && /no idempotency key/.test(error.message));
    });
  }
});

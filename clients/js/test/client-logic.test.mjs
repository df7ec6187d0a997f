// The client's decisions without a server: a scripted WebSocket stands in for it, so close
// codes, heartbeat timeouts and subscription bookkeeping are tested exactly and fast.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ConnectionClosedError, RequestTimeoutError, RouterSocket, record, sleep, until } from "./helpers.mjs";

function scripted() {
  const sockets = [];
  class Scripted {
    constructor(url) {
      Object.assign(this, { url, readyState: 0, sent: [], closedWith: null });
      sockets.push(this);
    }

    send(data) { this.sent.push(JSON.parse(data)); }

    close(code, reason) {
      this.closedWith = [code, reason];
      this.readyState = 3;
      setTimeout(() => this.onclose?.({ code, reason }));
    }

    // What the server does:
    accept() { this.readyState = 1; this.onopen?.({}); }
    refuse() { this.readyState = 3; this.onerror?.({}); this.onclose?.({ code: 1006, reason: "" }); }
    drop(code, reason = "") { this.readyState = 3; this.onclose?.({ code, reason }); }
    message(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
    answer(route = null, status = 200, payload = null) {
      const request = this.sent.at(-1);
      this.message({ uuid: request.uuid, route: route ?? request.route, status, headers: null, payload });
      return request;
    }
  }
  return { WebSocket: Scripted, sockets, last: () => sockets.at(-1) };
}

function make(t, options = {}) {
  const fake = scripted();
  const socket = new RouterSocket("ws://fake/", {
    WebSocket: fake.WebSocket, heartbeatMs: 0,
    reconnect: { initialMs: 40, maxMs: 1000, jitter: 0, restartWindowMs: 50, healthyAfterMs: 300 }, ...options,
  });
  t.after(() => socket.close());
  return { socket, fake, events: record(socket) };
}

for (const code of [1008, 1011]) {
  test(`close ${code} gives up for good`, async (t) => {
    const { socket, fake, events } = make(t);
    fake.last().accept();
    const pending = socket.request("echo");
    fake.last().drop(code, "no");
    await assert.rejects(pending, (e) => e instanceof ConnectionClosedError && e.code === code && !e.willReconnect);
    assert.deepEqual(events.all, ["open", "close", "give-up"]);
    assert.match(events["give-up"][0].reason, new RegExp(String(code)));
    await sleep(100);
    assert.equal(fake.sockets.length, 1);
    assert.equal(socket.state, "closed");
  });
}

for (const code of [1012, 4012]) {
  test(`close ${code} (restart) reconnects within restartWindowMs, then backs off`, async (t) => {
    const { socket, fake, events } = make(t);
    fake.last().accept();
    socket.request("echo");
    fake.last().answer(); // healthy: it answered
    fake.last().drop(code);
    const [{ attempt, delayMs }] = events.reconnecting;
    assert.ok(attempt === 1 && delayMs >= 0 && delayMs <= 50, delayMs);
    assert.equal(socket.state, "reconnecting");
    await until(() => fake.sockets.length === 2, 1000, "the reconnect");
    fake.last().accept(); // and restarts again at once: not healthy, so the backoff
    fake.last().drop(code);
    assert.deepEqual(events.reconnecting[1], { attempt: 2, delayMs: 80 });
  });
}

test("restart delays are spread over the window, not all in one millisecond", (t) => {
  const delays = [];
  for (let n = 0; n < 50; n += 1) {
    const { socket, fake, events } = make(t, { reconnect: { restartWindowMs: 1000 } });
    fake.last().accept();
    socket.request("echo");
    fake.last().answer();
    fake.last().drop(1012);
    delays.push(events.reconnecting[0].delayMs);
  }
  assert.ok(Math.min(...delays) >= 0 && Math.max(...delays) <= 1000, String(delays));
  assert.ok(new Set(delays).size > 25 && Math.max(...delays) - Math.min(...delays) > 500, String(delays));
});

test("close 1013 (try later) waits longer than a plain close; 1006 backs off doubling", async (t) => {
  const { fake, events } = make(t);
  fake.last().accept();
  fake.last().drop(4013);
  assert.deepEqual(events.reconnecting[0], { attempt: 1, delayMs: 160 });
  const other = make(t);
  other.fake.last().accept();
  other.fake.last().drop(1006);
  for (const expected of [80, 160, 320]) {
    await until(() => other.fake.sockets.length === other.events.reconnecting.length + 1, 2000, "a reconnect");
    other.fake.last().refuse();
    assert.equal(other.events.reconnecting.at(-1).delayMs, expected);
  }
  // An open alone does not reset the count (a server that accepts then closes); a reply does.
  await until(() => other.fake.sockets.length === other.events.reconnecting.length + 1, 2000, "a reconnect");
  other.fake.last().accept();
  other.fake.last().drop(1006);
  assert.deepEqual(other.events.reconnecting.at(-1), { attempt: 5, delayMs: 640 });
  await until(() => other.fake.sockets.length === other.events.reconnecting.length + 1, 2000, "a reconnect");
  other.fake.last().accept();
  other.socket.request("echo");
  other.fake.last().answer();
  other.fake.last().drop(1006);
  assert.deepEqual(other.events.reconnecting.at(-1), { attempt: 1, delayMs: 40 });
});

test("a connection open for healthyAfterMs resets the backoff, a shorter one does not", async (t) => {
  const { fake, events } = make(t);
  fake.last().accept();
  fake.last().drop(1006);
  await until(() => fake.sockets.length === 2, 1000, "a reconnect");
  fake.last().accept();
  await sleep(100);
  fake.last().drop(1006);
  assert.deepEqual(events.reconnecting.map((r) => r.delayMs), [40, 80]);
  await until(() => fake.sockets.length === 3, 1000, "a reconnect");
  fake.last().accept();
  await sleep(350); // healthyAfterMs is 300
  fake.last().drop(1006);
  assert.deepEqual(events.reconnecting.at(-1), { attempt: 1, delayMs: 40 });
});

test("a handshake that fails with no status known (a browser) is never counted as a refusal", async (t) => {
  const { socket, fake, events } = make(t, { reconnect: { initialMs: 5, maxMs: 10, maxRefusals: 2 } });
  for (let n = 1; n <= 6; n += 1) {
    await until(() => fake.sockets.length === n, 1000, "a reconnect");
    fake.last().refuse();
  }
  assert.deepEqual(events["give-up"], []);
  assert.equal(socket.state, "reconnecting");
});

test("frames that are not JSON objects are ignored; a reply after them is delivered", async (t) => {
  const { socket, fake, events } = make(t);
  const pushes = [];
  socket.onPush((push) => pushes.push(push));
  fake.last().accept();
  const pending = socket.request("echo", 1);
  const { uuid } = fake.last().sent[0];
  const warn = t.mock.method(console, "warn", () => {});
  for (const data of ["[1]", JSON.stringify([{ uuid, status: 200 }]), JSON.stringify(uuid), "nul", "1e400", "[".repeat(100000)]) {
    fake.last().onmessage({ data });
  }
  fake.last().onmessage({ data: new Uint8Array([123, 125]) }); // binary: "{}"
  fake.last().message({ uuid: [uuid], route: "x", headers: "subscription" });
  fake.last().message({ uuid: "p", route: "x", headers: [{ subscription: null }] });
  assert.equal(warn.mock.callCount(), 7);
  fake.last().answer(null, 200, "ok");
  assert.equal((await pending).payload, "ok");
  assert.deepEqual(pushes.map((p) => p.route), ["x", "x"]);
  assert.deepEqual(events.all, ["open"]);
});

test("no PONG within pongTimeoutMs closes with 4000 and reconnects; PONGs are swallowed", async (t) => {
  const { socket, fake, events } = make(t, { heartbeatMs: 30, pongTimeoutMs: 200 });
  const pushes = [];
  socket.onPush((p) => pushes.push(p));
  fake.last().accept();
  await until(() => fake.last().sent.some((m) => m.route === "PING"), 1000, "a PING");
  const ping = fake.last().sent.find((m) => m.route === "PING");
  assert.deepEqual(Object.keys(ping).sort(), ["headers", "payload", "route", "status", "uuid"]);
  fake.last().message({ uuid: ping.uuid, route: "PONG", status: 200, headers: null, payload: null });
  await sleep(50);
  assert.equal(socket.state, "open");
  const first = fake.last();
  await until(() => events.close.length === 1, 1000, "the heartbeat timeout"); // nobody answers now
  assert.deepEqual(first.closedWith, [4000, "heartbeat timeout"]);
  assert.deepEqual(events.close[0], { code: 4000, reason: "heartbeat timeout", willReconnect: true });
  await until(() => fake.sockets.length === 2, 1000, "the reconnect");
  assert.deepEqual(pushes, []);
});

test("subscriptions: pushes by headers.subscription, re-sent after a reconnect, unsubscribe", async (t) => {
  const { socket, fake, events } = make(t, { headers: { token: "x" } });
  const got = [];
  const other = [];
  const resubscribed = [];
  const sub = socket.subscribe("articles.subscribe", {
    payload: { search: "a" }, headers: { id: 3 }, unsubscribeRoute: "articles.unsubscribe",
    onResubscribed: (reply) => resubscribed.push(reply),
  }, (push) => got.push(push.payload));
  socket.on("updated", (push) => other.push(push.payload));
  fake.last().accept();
  const request = fake.last().answer(null, 201, { subscription: "ignored" });
  assert.deepEqual([request.route, request.payload, request.headers], ["articles.subscribe", { search: "a" }, { token: "x", id: 3 }]);
  assert.equal((await sub.ready).status, 201);
  assert.equal(sub.uuid, request.uuid);
  const push = (subscription, route = "updated", payload = 1) =>
    fake.last().message({ uuid: `push-${Math.random()}`, route, status: 200, headers: { subscription }, payload });
  push(sub.uuid, "updated", 1);
  push("someone-else", "updated", 2);
  assert.deepEqual(got, [1]);
  assert.deepEqual(other, [1, 2]); // on(route) sees every push of the route

  fake.last().drop(1006);
  await until(() => fake.sockets.length === 2, 1000, "the reconnect");
  fake.last().accept();
  const again = fake.last().sent[0];
  assert.equal(again.route, "articles.subscribe");
  assert.notEqual(again.uuid, request.uuid);
  fake.last().answer(null, 201);
  await until(() => resubscribed.length === 1, 1000, "onResubscribed");
  assert.deepEqual(events.resubscribed.map((d) => [d.subscription, d.reply.status]), [[sub, 201]]);
  push(request.uuid, "updated", 3); // the old uuid: no longer this subscription's
  push(sub.uuid, "updated", 4);
  assert.deepEqual(got, [1, 4]);

  const done = sub.unsubscribe();
  const bye = fake.last().answer(null, 204);
  assert.deepEqual([bye.route, bye.payload], ["articles.unsubscribe", { subscription: sub.uuid }]);
  assert.equal((await done).status, 204);
  push(sub.uuid, "updated", 5);
  assert.deepEqual(got, [1, 4]);
  assert.equal(sub.active, false);
});

test("a subscription the server ends or refuses is not re-sent", async (t) => {
  const { socket, fake } = make(t);
  const ended = socket.subscribe("subscribe", {}, () => {});
  fake.last().accept();
  fake.last().answer(null, 201);
  await ended.ready;
  fake.last().message({ uuid: "p", route: "unsubscribed", status: 200, headers: { subscription: ended.uuid }, payload: { status: 401 } });
  assert.equal(ended.active, false);
  const refused = socket.subscribe("subscribe", { headers: { id: 404 } });
  fake.last().answer(null, 404);
  assert.equal((await refused.ready).status, 404);
  assert.equal(refused.active, false);
  fake.last().drop(1006);
  await until(() => fake.sockets.length === 2, 1000, "the reconnect");
  fake.last().accept();
  assert.deepEqual(fake.last().sent, []);
});

test("a re-sent subscribe that times out ends the subscription, said by the resubscribed event", async (t) => {
  const { socket, fake, events } = make(t, { requestTimeoutMs: 100 });
  const sub = socket.subscribe("subscribe", {}, () => {});
  fake.last().accept();
  fake.last().answer(null, 201);
  await sub.ready;
  fake.last().drop(1006);
  await until(() => fake.sockets.length === 2, 1000, "the reconnect");
  fake.last().accept(); // and never answers
  await until(() => events.resubscribed.length === 1, 1000, "the resubscribed event");
  const [{ subscription, reply, error }] = events.resubscribed;
  assert.deepEqual([subscription, reply, error.name, sub.active], [sub, null, "RequestTimeoutError", false]);
});

test("close() is for good: queued and pending requests reject, nothing reconnects", async (t) => {
  const { socket, fake, events } = make(t);
  const queued = socket.request("echo");
  const sub = socket.subscribe(); // its ready is never awaited: no unhandled rejection either
  socket.close();
  await assert.rejects(queued, (e) => e instanceof ConnectionClosedError && !e.willReconnect);
  assert.equal(sub.active, false);
  assert.equal(await sub.unsubscribe(), null);
  assert.deepEqual(events.all, ["close"]);
  assert.equal(socket.state, "closed");
  await assert.rejects(socket.request("echo"), ConnectionClosedError);
  await sleep(100);
  assert.equal(fake.sockets.length, 1);
});

// -- v1.2: idempotency keys, re-sends after a lost connection, resumable subscriptions ------------

const reply = (ws, request, status = 200, payload = null, headers = null) =>
  ws.message({ uuid: request.uuid, route: request.route, status, headers, payload });

test("a keyed request in flight is sent again after the reconnect with the same key, and resolves once", async (t) => {
  const { socket, fake } = make(t, { headers: { token: "x" } });
  fake.last().accept();
  let settled = 0;
  const pending = socket.request("create", { title: "a" }).then((r) => { settled += 1; return r; });
  const queued = socket.request("echo", 1); // sent after the re-sent one, in the order they were made
  const [first, second] = fake.last().sent;
  assert.match(first.headers["idempotency-key"], /^[0-9a-f-]{36}$/);
  assert.notEqual(first.headers["idempotency-key"], second.headers["idempotency-key"]);
  fake.last().drop(1006);
  await until(() => fake.sockets.length === 2, 1000, "the reconnect");
  fake.last().accept();
  const again = fake.last().sent;
  assert.deepEqual(again.map((m) => m.route), ["create", "echo"]);
  assert.deepEqual([again[0].headers, again[0].payload], [first.headers, first.payload]); // the same request
  assert.notEqual(again[0].uuid, first.uuid); // a new request on the wire
  reply(fake.last(), again[0], 201, { id: 1 }, { "idempotent-replay": true });
  reply(fake.last(), again[1], 200, 1);
  assert.deepEqual([(await pending).status, (await pending).payload, (await queued).payload], [201, { id: 1 }, 1]);
  reply(fake.last(), again[0], 201, { id: 2 }); // a stray second reply is a push, not a second resolution
  await sleep(10);
  assert.equal(settled, 1);
});

test("maxRetries bounds the re-sends: then ConnectionClosedError says how many times it was sent", async (t) => {
  const { socket, fake } = make(t, { maxRetries: 1 });
  fake.last().accept();
  const pending = socket.request("create", { title: "a" });
  const once = socket.request("create", { title: "b" }, {}, { maxRetries: 0 });
  fake.last().drop(1006);
  await assert.rejects(once, (e) => e instanceof ConnectionClosedError && e.willReconnect && e.attempts === 1 &&
    /sent 1 times \(maxRetries 0\)/.test(e.message));
  await until(() => fake.sockets.length === 2, 1000, "the reconnect");
  fake.last().accept();
  assert.equal(fake.last().sent.length, 1);
  fake.last().drop(1006);
  await assert.rejects(pending, (e) => e instanceof ConnectionClosedError && e.willReconnect && e.attempts === 2 &&
    /not sending the request again: sent 2 times \(maxRetries 1\)/.test(e.message));
});

test("idempotencyKeys: false sends no key, and a request in flight rejects as in v1; a request's own key or null", async (t) => {
  const { socket, fake } = make(t, { idempotencyKeys: false });
  fake.last().accept();
  const pending = socket.request("create", { title: "a" });
  socket.request("create", { title: "b" }, {}, { idempotencyKey: "mine-1" }).catch(() => {});
  socket.request("PING").catch(() => {});
  const [unkeyed, own, ping] = fake.last().sent;
  assert.equal("idempotency-key" in unkeyed.headers, false);
  assert.equal(own.headers["idempotency-key"], "mine-1");
  assert.deepEqual(ping.headers, {}); // PING: no key
  fake.last().drop(1006);
  await assert.rejects(pending, (e) => e instanceof ConnectionClosedError && e.willReconnect && /no idempotency key/.test(e.message));
  await until(() => fake.sockets.length === 2, 1000, "the reconnect");
  fake.last().accept();
  assert.deepEqual(fake.last().sent.map((m) => m.headers["idempotency-key"]), ["mine-1"]);

  const keyed = make(t);
  keyed.fake.last().accept();
  keyed.socket.request("echo", 1, {}, { idempotencyKey: null }).catch(() => {});
  keyed.socket.request("PING").catch(() => {});
  keyed.socket.subscribe("subscribe", { unsubscribeRoute: "unsubscribe" });
  const [noKey, noPingKey, subscribe] = keyed.fake.last().sent;
  assert.deepEqual([noKey.headers, noPingKey.headers, subscribe.headers], [{}, {}, {}]);
});

test("409 request_in_progress for a keyed request is sent again after Retry-After, within the deadline", async (t) => {
  const { socket, fake } = make(t);
  fake.last().accept();
  const pending = socket.request("create", { title: "a" });
  const first = fake.last().sent[0];
  const started = Date.now();
  reply(fake.last(), first, 409, { detail: "running", code: "request_in_progress" }, { "Retry-After": "1" });
  await until(() => fake.last().sent.length === 2, 2000, "the retry");
  assert.ok(Date.now() - started >= 900);
  const second = fake.last().sent[1];
  assert.equal(second.headers["idempotency-key"], first.headers["idempotency-key"]);
  reply(fake.last(), second, 201, { id: 1 }, { "idempotent-replay": true });
  assert.equal((await pending).status, 201);
  // Without a key, a 409 is the caller's.
  const unkeyed = socket.request("create", {}, {}, { idempotencyKey: null });
  reply(fake.last(), fake.last().sent.at(-1), 409, { code: "request_in_progress" });
  assert.equal((await unkeyed).status, 409);
});

test("requestTimeoutMs is the deadline across re-sends; close() rejects a request waiting to be sent again", async (t) => {
  const { socket, fake } = make(t, { requestTimeoutMs: 300 });
  fake.last().accept();
  const pending = socket.request("create", {});
  fake.last().drop(1006);
  await until(() => fake.sockets.length === 2, 1000, "the reconnect");
  fake.last().accept(); // and never answers
  await assert.rejects(pending, (e) => e instanceof RequestTimeoutError && e.attempts === 2 && /sent 2 times/.test(e.message));

  const other = make(t);
  other.fake.last().accept();
  const waiting = other.socket.request("create", {});
  reply(other.fake.last(), other.fake.last().sent[0], 409, { code: "request_in_progress" });
  other.socket.close();
  await assert.rejects(waiting, (e) => e instanceof ConnectionClosedError && !e.willReconnect);
  await sleep(300);
  assert.equal(other.fake.last().sent.length, 1);
});

test("subscriptions keep their position and resume from it after a reconnect", async (t) => {
  const { socket, fake, events } = make(t);
  const got = [];
  const resubscribed = [];
  const sub = socket.subscribe("subscribe", { payload: { search: "a" }, onResubscribed: (r, resumed) => resubscribed.push(resumed) },
    (push) => got.push(push.route));
  fake.last().accept();
  const first = fake.last().sent[0];
  assert.equal("resume-from" in first.headers, false);
  reply(fake.last(), first, 201, null, { subscription: first.uuid, position: "p1" });
  await sub.ready;
  assert.equal(sub.position, "p1");
  const push = (route, headers) => fake.last().message({ uuid: `push-${Math.random()}`, route, status: 200, headers, payload: 1 });
  push("created", { subscription: sub.uuid, seq: 1, position: "p2" });
  push("created", { subscription: "another", seq: 1, position: "p9" });
  push("updated", { subscription: sub.uuid, seq: 2 }); // a push without one keeps the last
  assert.equal(sub.position, "p2");

  fake.last().drop(1006);
  await until(() => fake.sockets.length === 2, 1000, "the reconnect");
  fake.last().accept();
  const resumed = fake.last().sent[0];
  assert.deepEqual([resumed.headers["resume-from"], resumed.payload], ["p2", { search: "a" }]);
  reply(fake.last(), resumed, 201, null, { subscription: resumed.uuid, position: "p2", resumed: true });
  push("updated", { subscription: sub.uuid, seq: 1, position: "p3" }); // the replay
  await until(() => resubscribed.length === 1, 1000, "onResubscribed");
  assert.deepEqual([resubscribed, events.resubscribed.map((d) => d.resumed), sub.position], [[true], [true], "p3"]);

  fake.last().drop(1006); // the history no longer reaches back: resumed false, then resync
  await until(() => fake.sockets.length === 3, 1000, "the reconnect");
  fake.last().accept();
  const refused = fake.last().sent[0];
  assert.equal(refused.headers["resume-from"], "p3");
  reply(fake.last(), refused, 201, null, { subscription: refused.uuid, position: "p7", resumed: false });
  push("resync", { subscription: sub.uuid, seq: 1, position: "p7" });
  await until(() => resubscribed.length === 2, 1000, "onResubscribed");
  assert.deepEqual([resubscribed, events.resubscribed.map((d) => d.resumed)], [[true, false], [true, false]]);
  assert.deepEqual(got, ["created", "updated", "updated", "resync"]);
  assert.equal(sub.position, "p7");
});

test("a server that sends no position (v1, v1.1) gets no resume-from, and resumed is false", async (t) => {
  const { socket, fake, events } = make(t);
  const sub = socket.subscribe("subscribe");
  fake.last().accept();
  fake.last().answer(null, 201);
  await sub.ready;
  fake.last().message({ uuid: "p", route: "created", status: 200, headers: { subscription: sub.uuid, seq: 1 }, payload: 1 });
  assert.equal(sub.position, null);
  fake.last().drop(1006);
  await until(() => fake.sockets.length === 2, 1000, "the reconnect");
  fake.last().accept();
  assert.deepEqual(fake.last().sent[0].headers, {});
  fake.last().answer(null, 201);
  await until(() => events.resubscribed.length === 1, 1000, "resubscribed");
  assert.equal(events.resubscribed[0].resumed, false);
});

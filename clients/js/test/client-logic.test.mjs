// The client's decisions without a server: a scripted WebSocket stands in for it, so close
// codes, heartbeat timeouts and subscription bookkeeping are tested exactly and fast.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ConnectionClosedError, RouterSocket, record, sleep, until } from "./helpers.mjs";

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

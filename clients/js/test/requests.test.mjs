// Request/reply against the real servers: every status resolves, replies are matched by uuid,
// requests queue until open, timeouts reject and their late replies are dropped.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { QueueFullError, RequestTimeoutError, SERVERS, connect, next, record, sleep } from "./helpers.mjs";

for (const [server, base] of Object.entries(SERVERS)) {
  describe(`requests on ${server}`, { concurrency: true }, () => {
    for (const kind of ["sync", "async"]) {
      test(`every status resolves (${kind} consumer)`, async (t) => {
        const socket = connect(t, `${base}/ws/${kind}/`, { headers: { token: "t1" } });
        const pushes = [];
        socket.onPush((push) => pushes.push(push));
        // Sent before the socket opens: queued, then sent on open.
        const cases = await Promise.all([
          socket.request("echo", { n: 1 }, { extra: 2 }),
          socket.request("withStatus", { status: 201 }),
          socket.request("noSuchRoute", 1),
          socket.request("raise", "validation"),
          socket.request("fail"),
          socket.request("secret", "x"),
          socket.request("raise", "django_denied"),
          socket.request("raise", "socket_error"),
          socket.request("notImplemented"),
          socket.request("raise", "throttled"),
          socket.request("PONG"),
        ]);
        const [echo, created, missing, invalid, failed, secret, denied, conflict, notImpl, throttled, pong] = cases;
        assert.equal(echo.status, 200);
        assert.equal(echo.route, "echo");
        // Every request carries an idempotency-key of its own (a route that takes none ignores it).
        const { "idempotency-key": key, ...headers } = echo.payload.headers;
        assert.match(key, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.deepEqual({ ...echo.payload, headers }, { payload: { n: 1 }, headers: { token: "t1", extra: 2 } });
        assert.deepEqual(echo.headers, { echo: true });
        assert.equal(created.status, 201);
        assert.deepEqual([missing.status, missing.route, missing.payload.code], [404, "noSuchRoute", "route_not_found"]);
        assert.deepEqual([invalid.status, invalid.payload], [400, { title: ["This field is required."] }]);
        assert.deepEqual([failed.status, failed.payload.code], [500, "handler_error"]);
        assert.doesNotMatch(JSON.stringify(failed.payload), /secret exception text/);
        assert.deepEqual([secret.status, secret.payload.code], [401, "not_authenticated"]);
        // DRF-mapped errors carry DRF's own body: {detail} without a code.
        assert.deepEqual([denied.status, denied.payload], [403, { detail: "secret reason" }]);
        assert.deepEqual([conflict.status, conflict.payload.code], [409, "conflict"]);
        assert.deepEqual([notImpl.status, notImpl.payload.code], [501, "not_implemented"]);
        assert.equal(throttled.status, 429);
        // A request routed PONG is answered 404 with route null: a reply, not a swallowed heartbeat.
        assert.deepEqual([pong.status, pong.route], [404, null]);
        for (const reply of cases) {
          assert.deepEqual(Object.keys(reply).sort(), ["headers", "payload", "route", "status", "uuid"]);
        }
        assert.equal(new Set(cases.map((r) => r.uuid)).size, cases.length);
        assert.equal(pushes.length, 0);
        // A PING the caller sends is answered like a request (the heartbeat's PONGs never reach anyone).
        const pingReply = await socket.request("PING");
        assert.deepEqual({ ...pingReply, uuid: "u" }, { uuid: "u", route: "PONG", status: 200, headers: null, payload: null });
        // The socket-wide headers can change; the connection is still served after errors.
        socket.headers = { token: "t2" };
        const again = (await socket.request("echo")).payload.headers;
        assert.notEqual(again["idempotency-key"], key);
        assert.deepEqual({ ...again, "idempotency-key": key }, { token: "t2", "idempotency-key": key });
      });
    }

    test("200 concurrent requests each get their own reply once", async (t) => {
      // The default limits (16 running, 256 waiting): no 429 for 200 at once.
      const socket = connect(t, `${base}/ws/limits/async/`);
      const pushes = [];
      socket.onPush((push) => pushes.push(push));
      let settled = 0;
      const order = [];
      const keys = Array.from({ length: 200 }, (_, i) => `key-${i}`);
      const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => {
        // Different sleeps: the replies come back in another order than the requests.
        const request = i % 2 ? socket.request("echo", i, {}, { idempotencyKey: keys[i] })
          : socket.request("slow", ((200 - i) % 7) * 0.01);
        return request.then((reply) => {
          settled += 1;
          order.push(i);
          return reply;
        });
      }));
      assert.equal(settled, 200);
      replies.forEach((reply, i) => {
        assert.equal(reply.status, 200);
        assert.equal(reply.route, i % 2 ? "echo" : "slow");
        assert.deepEqual(reply.payload, i % 2 ? { payload: i, headers: { "idempotency-key": keys[i] } } : ((200 - i) % 7) * 0.01);
      });
      assert.equal(new Set(replies.map((r) => r.uuid)).size, 200);
      assert.notDeepEqual(order, [...order].sort((a, b) => a - b), "replies came in request order");
      await sleep(200);
      assert.equal(pushes.length, 0, "a reply arrived twice or unmatched");
    });

    test("a request past requestTimeoutMs rejects; its late reply is dropped", async (t) => {
      const socket = connect(t, `${base}/ws/async/`, { requestTimeoutMs: 400 });
      const events = record(socket);
      await next(socket, "open"); // (the 400 ms are the requests', not the handshake's on a busy machine)
      const pushes = [];
      socket.onPush((push) => pushes.push(push));
      socket.on("slow", (push) => pushes.push(push));
      const started = Date.now();
      await assert.rejects(socket.request("slow", 1.2), (error) => {
        assert.ok(error instanceof RequestTimeoutError);
        assert.equal(error.route, "slow");
        assert.equal(error.timeoutMs, 400);
        return true;
      });
      assert.ok(Date.now() - started < 1000);
      assert.equal((await socket.request("echo", "after")).payload.payload, "after");
      await sleep(1300); // the late reply has come by now
      assert.deepEqual(pushes, []);
      assert.equal(socket.state, "open");
      assert.deepEqual(events.all, ["open"]);
    });

    test("queueLimit refuses requests past it while connecting", async (t) => {
      const socket = connect(t, `${base}/ws/async/`, { queueLimit: 2 });
      const first = socket.request("echo", 1);
      const second = socket.request("echo", 2);
      await assert.rejects(socket.request("echo", 3), QueueFullError);
      assert.deepEqual([(await first).payload.payload, (await second).payload.payload], [1, 2]);
    });
  });
}

// 30 s of heartbeats every 500 ms on each server: every PING answered, no reconnect, and no
// PONG ever reaches a user handler.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { SERVERS, connect, countingWebSocket, next, record, sleep } from "./helpers.mjs";

const SECONDS = Number(process.env.JS_HEARTBEAT_SECONDS || 30);

describe("heartbeat", { concurrency: true }, () => {
  for (const [server, base] of Object.entries(SERVERS)) {
    test(`${SECONDS} s of PINGs on ${server} keep one connection`, async (t) => {
      const { WebSocket, counts } = countingWebSocket();
      const socket = connect(t, `${base}/ws/async/`, { WebSocket, heartbeatMs: 500, pongTimeoutMs: 1000 });
      const events = record(socket);
      const pushes = [];
      socket.onPush((push) => pushes.push(push));
      socket.on("PONG", (push) => pushes.push(push));
      await next(socket, "open");
      const started = Date.now();
      let requests = 0;
      while (Date.now() - started < SECONDS * 1000) {
        await sleep(1000);
        // Traffic alongside the heartbeat, including a slow request the PINGs overtake.
        const reply = await socket.request(requests % 5 ? "echo" : "slow", requests % 5 ? requests : 0.8);
        assert.equal(reply.status, 200);
        requests += 1;
      }
      const expected = Math.floor((Date.now() - started) / 500);
      assert.ok(counts.pings >= expected - 2, `only ${counts.pings} PINGs in ${SECONDS} s`);
      assert.ok(counts.pongs >= counts.pings - 1, `${counts.pings} PINGs, ${counts.pongs} PONGs`);
      assert.equal(counts.handshakes, 1);
      assert.equal(events.reconnecting.length, 0);
      assert.deepEqual(events.all, ["open"]);
      assert.equal(socket.state, "open");
      assert.deepEqual(pushes, []);
    });
  }
});

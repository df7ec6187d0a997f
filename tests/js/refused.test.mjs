// Handshakes refused before open (HTTP 403 at connect: ws/private/ for an anonymous user,
// ws/staff/ for a non-staff one): the socket gives up after maxRefusals tries in a row (where the
// WebSocket tells the status, as the `ws` package does; a browser's does not).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ConnectionClosedError, SERVERS, connect, countingWebSocket, next, record } from "./helpers.mjs";

describe("handshake refused", { concurrency: true }, () => {
  for (const [server, base] of Object.entries(SERVERS)) {
    for (const path of ["/ws/private/", "/ws/staff/"]) {
      test(`${path} on ${server}: gives up after maxRefusals`, async (t) => {
        const { WebSocket, counts } = countingWebSocket();
        const socket = connect(t, `${base}${path}`, {
          WebSocket, reconnect: { initialMs: 50, maxMs: 200, maxRefusals: 4 },
        });
        const events = record(socket);
        const gaveUp = next(socket, "give-up");
        const request = socket.request("echo", 1); // queued, never sent
        assert.equal((await gaveUp).reason, "the handshake was refused 4 times running (HTTP 403)");
        await assert.rejects(request, (error) => error instanceof ConnectionClosedError && !error.willReconnect);
        assert.equal(counts.handshakes, 4);
        assert.deepEqual(events.open, []);
        assert.deepEqual(events.close.map((c) => [c.code, c.willReconnect]),
          [[1006, true], [1006, true], [1006, true], [1006, false]]);
        assert.deepEqual(events.reconnecting.map((r) => r.attempt), [1, 2, 3]);
        assert.equal(socket.state, "closed");
        await assert.rejects(socket.request("echo"), ConnectionClosedError);
      });
    }
  }
});

// Handshakes refused before open (HTTP 403 at connect: ws/private/ for an anonymous user,
// ws/staff/ for a non-staff one): the socket gives up after maxRefusals tries in a row (where the
// WebSocket tells the status, as the `ws` package does; a browser's does not).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import WebSocket from "ws";

import {
  ConnectionClosedError, REFUSED_403_HINT, SERVERS, VALIDATED_SERVERS, connect, countingWebSocket, next, record,
} from "./helpers.mjs";

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
        const reason = `the handshake was refused 4 times running (HTTP 403): ${REFUSED_403_HINT}`;
        assert.deepEqual(await gaveUp, { reason, status: 403 });
        await assert.rejects(request, (error) => error instanceof ConnectionClosedError && !error.willReconnect &&
          error.message.includes(reason)); // what the caller awaits says why too
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

// Channels' AllowedHostsOriginValidator with ALLOWED_HOSTS = ["127.0.0.1"]: node sends no Origin
// unless told to; the `ws` package's origin option, through the WebSocket option, lets it in.
describe("Origin from node", { concurrency: true }, () => {
  for (const [server, base] of Object.entries(VALIDATED_SERVERS)) {
    test(`${server}: no Origin is refused and says why; the server's own origin is let in`, async (t) => {
      const refused = connect(t, `${base}/ws/async/`, { reconnect: { initialMs: 20, maxMs: 50, maxRefusals: 2 } });
      const gaveUp = await next(refused, "give-up");
      assert.equal(gaveUp.status, 403);
      assert.match(gaveUp.reason, /HTTP 403\): the server refused the connection: check the Origin header/);

      const origin = base.replace(/^ws/, "http"); // what a page served by that host sends
      class WithOrigin extends WebSocket {
        constructor(url, protocols) {
          super(url, protocols ?? [], { origin });
        }
      }
      const socket = connect(t, `${base}/ws/async/`, { WebSocket: WithOrigin });
      const reply = await socket.request("echo", "in");
      assert.equal(reply.payload.payload, "in");
    });
  }
});

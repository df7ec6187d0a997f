// The reconnect policy (CLOSE_CODES and the reconnect option) against real servers, the same
// scenarios as tests/test_client.py runs with the Python client: close codes sent by the test
// route closeWith and by ws/closing/ (accepts, then closes), and handshakes answered "come back
// soon" by ws/busy/. daphne sends only 1000 and 3000-4999, so it restarts with 4012.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { BrowserLikeWebSocket, SERVERS, connect, next, record, until } from "./helpers.mjs";

const RESTART = { daphne: 4012, uvicorn: 1012 };
const TRY_LATER = { daphne: 4013, uvicorn: 1013 };
const SLOW = { initialMs: 5000, maxMs: 5000, maxRefusals: 3, restartWindowMs: 1000 }; // a backoff would outlast the test

describe("close codes from the server", { concurrency: true }, () => {
  for (const [server, base] of Object.entries(SERVERS)) {
    test(`${RESTART[server]} on ${server}: reconnects within the restart window`, async (t) => {
      const socket = connect(t, `${base}/ws/async/`, { reconnect: SLOW });
      const events = record(socket);
      await next(socket, "open");
      const reopened = next(socket, "open", 3000);
      socket.request("closeWith", RESTART[server], {}, { maxRetries: 0 }).catch(() => {}); // the close may beat the reply; not sent again
      assert.deepEqual(await reopened, { reconnect: true });
      assert.ok(events.reconnecting.length === 1 && events.reconnecting[0].delayMs <= 1000, events.reconnecting);
      assert.equal(events.close[0].code, RESTART[server]);
      assert.equal((await socket.request("echo", "back")).payload.payload, "back");
    });

    test(`${RESTART[server]} on ${server}: twenty healthy sockets come back spread over the window`, async (t) => {
      const waits = await Promise.all(Array.from({ length: 20 }, async () => {
        const socket = connect(t, `${base}/ws/async/`, { reconnect: SLOW });
        assert.equal((await socket.request("echo", 1)).status, 200); // healthy: it answered
        const reconnecting = next(socket, "reconnecting", 3000);
        const reopened = next(socket, "open", 3000);
        socket.request("closeWith", RESTART[server], {}, { maxRetries: 0 }).catch(() => {}); // the close may beat the reply; not sent again
        const { delayMs } = await reconnecting;
        await reopened;
        return delayMs;
      }));
      assert.ok(Math.max(...waits) <= 1000 && Math.max(...waits) - Math.min(...waits) > 300, String(waits));
    });

    for (const close of ["normal", "restart"]) {
      test(`${server} accepts then closes (${close}): the backoff grows`, async (t) => {
        const code = close === "restart" ? RESTART[server] : 1000;
        const socket = connect(t, `${base}/ws/closing/?code=${code}`, {
          reconnect: { initialMs: 50, maxMs: 5000, jitter: 0, restartWindowMs: 50 },
        });
        const events = record(socket);
        await until(() => events.reconnecting.length >= 5, 10000, "five reconnects");
        const delays = events.reconnecting.slice(0, 5).map((r) => r.delayMs);
        assert.deepEqual(delays.slice(1), [100, 200, 400, 800]);
        assert.ok(delays[0] <= 50);
        assert.equal(events.open.length, 5);
      });
    }

    test(`${server}: a connection that stayed open healthyAfterMs resets the backoff`, async (t) => {
      const socket = connect(t, `${base}/ws/closing/?code=1000&after=0.3`, {
        reconnect: { initialMs: 100, factor: 4, maxMs: 5000, jitter: 0, healthyAfterMs: 200 },
      });
      const events = record(socket);
      await until(() => events.reconnecting.length >= 3, 10000, "three reconnects");
      assert.deepEqual(events.reconnecting.slice(0, 3).map((r) => r.delayMs), [100, 100, 100]);
    });

    test(`${TRY_LATER[server]} on ${server}: waits two steps longer than a plain close`, async (t) => {
      const reconnect = { initialMs: 150, maxMs: 5000, jitter: 0 };
      for (const [code, delayMs] of [[1000, 150], [TRY_LATER[server], 600]]) {
        const socket = connect(t, `${base}/ws/closing/?code=${code}`, { reconnect });
        assert.deepEqual(await next(socket, "reconnecting", 5000), { attempt: 1, delayMs });
        socket.close();
      }
    });

    for (const [kind, WebSocket] of [["ws", undefined], ["browser-like", BrowserLikeWebSocket]]) {
      test(`${server} drains (${kind}): "come back soon" is waited for, not counted as refusals`, async (t) => {
        // 3 handshakes answered 503 + Retry-After: 3600 (uvicorn) or accepted and closed with 4013
        // (daphne); maxRefusals is 2. Retry-After is capped at maxMs (the `ws` package shows it).
        const key = `${kind}-${Math.random()}`;
        const socket = connect(t, `${base}/ws/busy/?key=${key}&times=3&retry_after=3600`, {
          ...(WebSocket ? { WebSocket } : {}), reconnect: { initialMs: 10, maxMs: 500, maxRefusals: 2, jitter: 0 },
        });
        const events = record(socket);
        await until(() => events.open.length === (server === "daphne" ? 4 : 1), 10000, "the serving connection");
        assert.equal((await socket.request("echo", "served")).payload.payload, "served");
        assert.deepEqual(events["give-up"], []);
        const delays = events.reconnecting.map((r) => r.delayMs);
        if (server === "daphne") assert.deepEqual(delays, [40, 80, 160]); // 4013: two steps up
        else if (kind === "ws") assert.deepEqual(delays, [500, 500, 500]); // Retry-After, capped
        else assert.deepEqual(delays, [10, 20, 40]); // a browser sees no status: the backoff
      });
    }
  }
  for (const code of [1008, 1011]) { // only uvicorn can send these
    test(`${code} on uvicorn: gives up`, async (t) => {
      const socket = connect(t, `${SERVERS.uvicorn}/ws/async/`, { reconnect: SLOW });
      const events = record(socket);
      await next(socket, "open");
      const gaveUp = next(socket, "give-up", 2000);
      socket.request("closeWith", code, {}, { maxRetries: 0 }).catch(() => {}); // the close may beat the reply; not sent again
      assert.match((await gaveUp).reason, new RegExp(`code ${code}`));
      assert.deepEqual(events.reconnecting, []);
      assert.equal(socket.state, "closed");
    });
  }
});

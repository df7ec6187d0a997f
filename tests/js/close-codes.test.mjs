// Close codes sent by a real server (the test route closeWith): a restart code reconnects at
// once, 1008/1011 give up. daphne sends only 1000 and 3000-4999, so it restarts with 4012.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { SERVERS, connect, next, record } from "./helpers.mjs";

const RESTART = { daphne: 4012, uvicorn: 1012 };
const SLOW = { initialMs: 5000, maxMs: 5000, maxRefusals: 3 }; // a backoff would outlast the test

describe("close codes from the server", { concurrency: true }, () => {
  for (const [server, base] of Object.entries(SERVERS)) {
    test(`${RESTART[server]} on ${server}: reconnects at once`, async (t) => {
      const socket = connect(t, `${base}/ws/async/`, { reconnect: SLOW });
      const events = record(socket);
      await next(socket, "open");
      const reopened = next(socket, "open", 2000);
      socket.request("closeWith", RESTART[server]).catch(() => {}); // the close may beat the reply
      assert.deepEqual(await reopened, { reconnect: true });
      assert.deepEqual(events.reconnecting.map((r) => r.delayMs), [0]);
      assert.equal(events.close[0].code, RESTART[server]);
      assert.equal((await socket.request("echo", "back")).payload.payload, "back");
    });
  }
  for (const code of [1008, 1011]) { // only uvicorn can send these
    test(`${code} on uvicorn: gives up`, async (t) => {
      const socket = connect(t, `${SERVERS.uvicorn}/ws/async/`, { reconnect: SLOW });
      const events = record(socket);
      await next(socket, "open");
      const gaveUp = next(socket, "give-up", 2000);
      socket.request("closeWith", code).catch(() => {});
      assert.match((await gaveUp).reason, new RegExp(`code ${code}`));
      assert.deepEqual(events.reconnecting, []);
      assert.equal(socket.state, "closed");
    });
  }
});

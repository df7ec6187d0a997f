// The node half of tests/test_chaos.py: router-socket.js (with the `ws` package) doing keyed
// creates, updates and deletes while it follows the list with the live-list recipe
// (live-list.mjs, docs/howto/live-list.md), through a proxy that the test cuts, to servers the
// test kills. Not a *.test.mjs: the test runs it, and talks to it on stdin/stdout, one JSON line each:
//   stdin "stop": finish the writes (those in flight resolve first), then print {"done": figures};
//   stdin "dump": print {"items": [...]}, the live list's copy now; stdin "exit" (or EOF): close and exit.
// Arguments: the ws:// URL, the user id (header auth, so the keys' identity survives a reconnect),
// the title prefix, and how many writes are in flight at once.
import readline from "node:readline";

import WebSocket from "ws";

import { RouterSocket } from "../../../django_channels_router/static/django_channels_router/router-socket.js";
import { liveList } from "./live-list.mjs";

const [url, user, prefix, inFlight = "4"] = process.argv.slice(2);
setTimeout(() => process.exit(3), 170_000).unref(); // never outlives the test by long

const sends = new Map(); // idempotency-key -> times a frame with it was sent
let inProgress = 0; // 409 request_in_progress answers, asked again by the socket
class CountingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.status === 409 && message.payload?.code === "request_in_progress") inProgress += 1;
    });
  }

  send(data, ...rest) {
    const key = JSON.parse(data).headers?.["idempotency-key"];
    if (key !== undefined) sends.set(key, (sends.get(key) ?? 0) + 1);
    super.send(data, ...rest);
  }
}

const socket = new RouterSocket(url, {
  WebSocket: CountingWebSocket,
  headers: { Authorization: `User ${user}` },
  // A fault every second or two: reconnect soon, and let a request outlive several of them.
  reconnect: { initialMs: 100, maxMs: 1000 },
  requestTimeoutMs: 60_000,
  maxRetries: 50,
});

const figures = {
  requests: 0, resolved: 0, rejected: 0, errors: [], non2xx: [], replayed: 0,
  creates: 0, updates: 0, deletes: 0, resumes: 0, notResumed: 0, resyncs: 0, relists: 0, reconnects: 0,
};
const expected = {}; // id -> the title of its last acknowledged write, or null once deleted
let lists = 0;
socket.addEventListener("open", (event) => { if (event.detail.reconnect) figures.reconnects += 1; });
socket.addEventListener("resubscribed", (event) => {
  if (event.detail.resumed) figures.resumes += 1;
  else figures.notResumed += 1;
});
socket.onPush((push) => { if (push.route === "resync") figures.resyncs += 1; });
const live = liveList(socket, { onChange: (route) => { if (route === "list" && ++lists > 1) figures.relists += 1; } });

/** One request (with a fresh key, the socket's default), counting how it ended: exactly once. */
async function call(route, payload, headers = {}) {
  figures.requests += 1;
  try {
    const reply = await socket.request(route, payload, headers);
    figures.resolved += 1;
    if (reply.headers?.["idempotent-replay"]) figures.replayed += 1;
    if (reply.status >= 300) figures.non2xx.push(`${route} ${reply.status} ${JSON.stringify(reply.payload)}`);
    return reply;
  } catch (error) {
    figures.rejected += 1;
    figures.errors.push(`${route}: ${error}`);
    return null;
  }
}

let stopping = false;
let made = 0;
const pause = () => new Promise((resolve) => setTimeout(resolve, 30 + Math.random() * 120));

async function writer() {
  while (!stopping) {
    const title = `${prefix}-${(made += 1)}`;
    const created = await call("create", { title });
    if (created?.status !== 201) continue;
    figures.creates += 1;
    const id = created.payload.id;
    expected[id] = title;
    const updates = 1 + Math.floor(Math.random() * 4);
    for (let n = 1; n <= updates && !stopping; n += 1) {
      await pause();
      const reply = await call("update", { title: `${title} v${n}` }, { id });
      if (reply?.status === 200) {
        figures.updates += 1;
        expected[id] = `${title} v${n}`;
      }
    }
    if (Math.random() < 0.2) {
      await pause();
      if ((await call("delete", null, { id }))?.status === 204) {
        figures.deletes += 1;
        expected[id] = null;
      }
    }
    await pause();
  }
}

await live.ready;
const writers = Array.from({ length: Number(inFlight) }, writer);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
print({ ready: true });

for await (const line of readline.createInterface({ input: process.stdin })) {
  if (line === "stop") {
    stopping = true;
    await Promise.all(writers);
    const resends = [...sends.values()].reduce((sum, times) => sum + times - 1, 0);
    print({ done: { ...figures, resends, inProgress, expected } });
  } else if (line === "dump") {
    print({ items: [...live.items.values()] });
  } else if (line === "exit") break;
}
socket.close();
process.exit(0);

// Shared by the *.test.mjs files; tests/test_js_client.py (in the repository root) sets the environment.
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";

import { RouterSocket } from "../../../django_channels_router/static/django_channels_router/router-socket.js";

export { RouterSocket };
export * from "../../../django_channels_router/static/django_channels_router/router-socket.js";

/** `{daphne: "ws://127.0.0.1:PORT", uvicorn: ...}`: the session servers of tests/conftest.py. */
export const SERVERS = Object.fromEntries(["daphne", "uvicorn"].map((name) => {
  const url = process.env[`JS_${name.toUpperCase()}_URL`];
  if (!url) throw new Error(`JS_${name.toUpperCase()}_URL is not set: run these tests through tests/test_js_client.py`);
  return [name, url];
}));

/** The same servers serving tests.asgi:validated_application (Channels' AllowedHostsOriginValidator). */
export const VALIDATED_SERVERS = JSON.parse(process.env.JS_VALIDATED_URLS ?? "null") ?? (() => {
  throw new Error("JS_VALIDATED_URLS is not set: run these tests through tests/test_js_client.py");
})();

/** A `ws` WebSocket class that counts handshakes, PINGs sent and PONGs received. */
export function countingWebSocket() {
  const counts = { handshakes: 0, pings: 0, pongs: 0 };
  class Counting extends WebSocket {
    constructor(url) {
      super(url);
      counts.handshakes += 1;
      this.addEventListener("message", (event) => {
        if (JSON.parse(event.data).route === "PONG") counts.pongs += 1;
      });
    }

    send(data) {
      if (JSON.parse(data).route === "PING") counts.pings += 1;
      super.send(data);
    }
  }
  return { WebSocket: Counting, counts };
}

/** A `ws` WebSocket class that keeps its instances, so that a test can drop a connection
 * (`sockets.at(-1).terminate()`: no close handshake, the client sees 1006). */
export function trackedWebSocket() {
  const sockets = [];
  class Tracked extends WebSocket {
    constructor(url) {
      super(url);
      sockets.push(this);
    }
  }
  return { WebSocket: Tracked, sockets };
}

/** A `ws` WebSocket that tells no more than a browser's: not the HTTP status of a refused handshake. */
export class BrowserLikeWebSocket extends WebSocket {}
BrowserLikeWebSocket.prototype.once = undefined;

/** A RouterSocket on Node 20 (the `ws` package), closed by `t.after`. */
export function connect(t, url, options = {}) {
  const socket = new RouterSocket(url, { WebSocket, ...options });
  t.after(() => socket.close());
  return socket;
}

/** Every event of the socket's connection, by type, in order: `{open: [detail...], ...}`. */
export function record(socket) {
  const seen = { open: [], close: [], reconnecting: [], "give-up": [], resubscribed: [], all: [] };
  for (const type of Object.keys(seen).filter((k) => k !== "all")) {
    socket.addEventListener(type, (event) => {
      seen[type].push(event.detail);
      seen.all.push(type);
    });
  }
  return seen;
}

/** Resolves the detail of the next `type` event (rejects after `ms`). */
export function next(socket, type, ms = 15000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} event within ${ms} ms`)), ms);
    socket.addEventListener(type, (event) => {
      clearTimeout(timer);
      resolve(event.detail);
    }, { once: true });
  });
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check()` until it is truthy; rejects after `ms`. */
export async function until(check, ms = 10000, what = "condition") {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function reachable(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.once("connect", () => { sock.destroy(); resolve(true); });
    sock.once("error", () => resolve(false));
  });
}

/**
 * A daphne or uvicorn of our own (JS_SERVER_ARGV from the pytest side: argv with `{port}`),
 * on a fixed port so it can be stopped and started again. `stop()` and `kill()` wait for it to exit.
 * Its database: a copy of the migrated SQLite file JS_DATABASE of its own, kept across restarts.
 */
export async function ownServer(kind) {
  const argv = JSON.parse(process.env.JS_SERVER_ARGV)[kind];
  const port = await freePort();
  const env = { ...process.env };
  if (process.env.JS_DATABASE) {
    const folder = mkdtempSync(path.join(os.tmpdir(), "router-socket-db-"));
    process.once("exit", () => rmSync(folder, { recursive: true, force: true }));
    env.DATABASE_URL = `sqlite:///${path.join(folder, "db.sqlite3")}`;
    copyFileSync(process.env.JS_DATABASE, path.join(folder, "db.sqlite3"));
  }
  let proc = null;
  let log = "";
  const server = {
    url: `ws://127.0.0.1:${port}`,
    async start() {
      proc = spawn(argv[0], argv.slice(1).map((a) => a.replaceAll("{port}", String(port))),
        { stdio: ["ignore", "pipe", "pipe"], env, detached: true }); // a process group of its own: kill()
      proc.stdout.on("data", (d) => { log += d; });
      proc.stderr.on("data", (d) => { log += d; });
      const deadline = Date.now() + 30000;
      while (!(await reachable(port))) {
        if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`${kind} did not start:\n${log.slice(-2000)}`);
        await sleep(100);
      }
    },
    async stop() {
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10000);
      await exited;
      clearTimeout(timer);
    },
    /** SIGKILL to its process group (timeout(1) and the server): no graceful shutdown, no replies. */
    async kill() {
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once("exit", resolve));
      process.kill(-proc.pid, "SIGKILL");
      await exited;
    },
    get log() { return log; },
  };
  return server;
}

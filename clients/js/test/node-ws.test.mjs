// Node with the `ws` package, as the package's README shows it: the handshake carries an Origin
// (Channels' AllowedHostsOriginValidator, ALLOWED_HOSTS = ["127.0.0.1"]) and the session Cookie of
// a logged-in user (JS_SESSION_KEY, made by tests/test_js_client.py), given through the WebSocket
// option. ws/private/ lets in only logged-in users; ws/headers/'s whoami answers the handshake
// headers the server saw.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import WebSocket from "ws";

import { VALIDATED_SERVERS, connect } from "./helpers.mjs";

const SESSION_KEY = process.env.JS_SESSION_KEY ?? (() => {
  throw new Error("JS_SESSION_KEY is not set: run these tests through tests/test_js_client.py");
})();

/** A `ws` WebSocket whose handshake sends `origin` and `cookie`. */
function siteWebSocket(origin, cookie) {
  return class SiteWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols ?? [], { origin, headers: { Cookie: cookie } });
    }
  };
}

describe("node with ws: Origin and Cookie through the WebSocket option", { concurrency: true }, () => {
  for (const [server, base] of Object.entries(VALIDATED_SERVERS)) {
    const origin = base.replace(/^ws/, "http"); // what a page of that site sends
    const cookie = `csrftoken=abc; sessionid=${SESSION_KEY}`;

    test(`${server}: a logged-in session's cookie opens a login-only socket, which answers`, async (t) => {
      const socket = connect(t, `${base}/ws/private/`, { WebSocket: siteWebSocket(origin, cookie) });
      const reply = await socket.request("echo", "from node");
      assert.equal(reply.status, 200, JSON.stringify(reply));
      assert.equal(reply.payload.payload, "from node");
    });

    test(`${server}: the server sees both headers`, async (t) => {
      const socket = connect(t, `${base}/ws/headers/`, { WebSocket: siteWebSocket(origin, cookie) });
      const reply = await socket.request("whoami", {});
      assert.equal(reply.status, 200, JSON.stringify(reply));
      assert.equal(reply.payload.meta.HTTP_ORIGIN, origin);
      assert.equal(reply.payload.meta.HTTP_COOKIE, cookie);
    });

    test(`${server}: without the cookie, the login-only socket refuses the handshake`, async (t) => {
      const socket = connect(t, `${base}/ws/private/`, {
        WebSocket: siteWebSocket(origin, "csrftoken=abc"), reconnect: { initialMs: 20, maxMs: 50, maxRefusals: 1 },
      });
      const request = socket.request("echo", "from node");
      await assert.rejects(request, /HTTP 403/);
    });
  }
});

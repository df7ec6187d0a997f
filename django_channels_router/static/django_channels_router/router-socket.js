/**
 * router-socket.js: a dependency-free client for django-channels-router's wire protocol (v1.2).
 *
 * Requests are answered exactly once and correlated by uuid; messages with a uuid the client
 * never sent are pushes. The socket sends heartbeats, reconnects as CLOSE_CODES and the
 * `reconnect` option say (the policy of the Python RouterClient too), queues requests while it is
 * not open and re-sends live subscriptions after a reconnect, resuming them from their last
 * `position` where the server keeps a history. Every request carries an `idempotency-key`, so one
 * in flight when the connection drops is sent again after the reconnect, and the server runs it
 * once. Frames that are not JSON objects are logged and ignored.
 *
 *   import { RouterSocket } from "/static/django_channels_router/router-socket.js";
 *   const socket = new RouterSocket("wss://example.com/ws/", { headers: { token } });
 *   const reply = await socket.request("articles.list", { search: "django" });
 *
 * Browsers and Node >= 22 have a global WebSocket; on Node 20 pass one, e.g. the `ws` package's:
 * `new RouterSocket(url, { WebSocket })`.
 *
 * @module router-socket
 */

const OPEN = 1; // WebSocket.OPEN, whichever implementation

/**
 * What a close code makes the socket do; the same table as CLOSE_CODES in the Python client.
 * Any other code (1000, 1001, 1006, 4000 after a heartbeat timeout, ...) reconnects with the backoff.
 * @type {Readonly<Record<number, "restart" | "try-later" | "give-up">>}
 */
export const CLOSE_CODES = Object.freeze({
  1012: "restart", 4012: "restart", // the server restarts: reconnect within restartWindowMs
  1013: "try-later", 4013: "try-later", // overloaded, or we read too slowly: the backoff, two steps up
  1008: "give-up", 1011: "give-up", // policy violation, server error: reconnecting would not help
});
const EXPIRED_KEPT = 1000; // uuids of timed-out requests remembered, so late replies are dropped

/** The reply a request timed out waiting for. */
export class RequestTimeoutError extends Error {
  /** @param {string} route @param {string} uuid @param {number} ms @param {number} [attempts=1] times it was sent */
  constructor(route, uuid, ms, attempts = 1) {
    super(`No reply to ${route} (uuid ${uuid}) within ${ms} ms${attempts > 1 ? `, sent ${attempts} times` : ""}.`);
    this.name = "RequestTimeoutError";
    this.route = route;
    this.uuid = uuid;
    this.timeoutMs = ms;
    this.attempts = attempts;
  }
}

/**
 * The connection closed before the reply came and the request is not sent again (the socket is
 * closed for good, the request has no idempotency key, or it was sent `maxRetries` times more).
 */
export class ConnectionClosedError extends Error {
  /**
   * @param {number} code @param {string} reason @param {boolean} willReconnect
   * @param {number} [attempts=1] times the request was sent @param {string} [detail] why it is not sent again
   */
  constructor(code, reason, willReconnect, attempts = 1, detail = "") {
    super(`Connection closed (code ${code}${reason ? `, ${reason}` : ""}) before the reply; ` +
      (willReconnect ? "reconnecting" : "not reconnecting") + (detail ? `, ${detail}.` : "."));
    this.name = "ConnectionClosedError";
    this.code = code;
    this.reason = reason;
    this.willReconnect = willReconnect;
    this.attempts = attempts;
  }
}

/** More than `queueLimit` requests are waiting for the socket to open. */
export class QueueFullError extends Error {
  /** @param {number} limit */
  constructor(limit) {
    super(`${limit} requests are already queued waiting for the connection; request refused.`);
    this.name = "QueueFullError";
    this.limit = limit;
  }
}

/** A reply's or a push's `headers.position` (v1.2), or null (a server without a history of changes). */
function positionOf(message) {
  const position = message.headers?.position;
  return typeof position === "string" ? position : null;
}

function newUuid() {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID(); // secure contexts (https, localhost) and Node
  const b = c.getRandomValues(new Uint8Array(16)); // plain http pages have no randomUUID
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * What an HTTP status answering the handshake means: 5xx and 429 "try-later" (a draining or
 * overloaded server: come back soon), any other "refused" (counted toward `maxRefusals`).
 * @param {number} status @returns {"try-later" | "refused"}
 */
function handshakeAnswer(status) {
  return status >= 500 || status === 429 ? "try-later" : "refused";
}

/** Why a server refuses a handshake with 403; the Python client says the same (a test checks it). */
export const REFUSED_403_HINT = "the server refused the connection: check the Origin header (Channels' origin validators " +
  "allow only the hosts in ALLOWED_HOSTS; RouterClient's origin option, the `ws` package's origin option), the " +
  "authentication of the handshake (session cookie, token) and the consumer's login_required and check_connect(); " +
  "the server logs which (logger django_channels_router.security)";

/** Why the socket gave up on refused handshakes: the status and, for 403, its likely causes. */
export function refusal(times, status) {
  const said = `the handshake was refused ${times} times running (HTTP ${status})`;
  return status === 403 ? `${said}: ${REFUSED_403_HINT}` : said;
}

/** A `Retry-After` header in ms (the HTTP-date form is ignored: the backoff applies). */
function retryAfter(value) {
  const text = String(value ?? "").trim();
  return /^[0-9]+$/.test(text) ? Number(text) * 1000 : null;
}

/**
 * Milliseconds before reconnect number `attempt` (0: the first since a healthy connection), as
 * the Python client's `Reconnect.delay`: `how` is a CLOSE_CODES value or "backoff";
 * `retryAfterMs` the server's Retry-After (a lower bound, capped at `maxMs`).
 */
function reconnectDelay({ initialMs, maxMs, factor, jitter, restartWindowMs }, attempt, how, retryAfterMs) {
  if (how === "restart" && attempt === 0) return Math.round(Math.random() * restartWindowMs);
  const steps = how === "try-later" ? attempt + 2 : attempt;
  let delay = Math.min(maxMs, initialMs * factor ** steps) * (1 + jitter * (2 * Math.random() - 1));
  if (retryAfterMs !== null) delay = Math.max(delay, Math.min(retryAfterMs, maxMs) * (1 + jitter * Math.random()));
  return Math.round(delay);
}

/**
 * A subscription made by {@link RouterSocket#subscribe}. Its `uuid` is the uuid of the current
 * subscribe request (a new one after every reconnect); pushes whose `headers.subscription`
 * equals it go to `onEvent`. Its `position` is the latest `headers.position` of its reply and
 * pushes: sent again as `resume-from` after a reconnect, the server replays what changed since.
 */
export class Subscription {
  /** @internal */
  constructor(socket, route, { headers = {}, payload = null, onResubscribed = null, unsubscribeRoute = "unsubscribe" },
    onEvent) {
    Object.assign(this, { socket, route, headers, payload, onEvent, onResubscribed, unsubscribeRoute });
    /** @type {string|null} */ this.uuid = null;
    /** @type {string|null} The latest `headers.position` received (null from a server that keeps no history). */
    this.position = null;
    /** False once unsubscribed, ended by the server (`unsubscribed` push) or refused (non-2xx reply). */
    this.active = true;
    this._sending = false;
    this._settled = false;
    /** The first subscribe reply, whatever its status (a refused subscribe is not re-sent). */
    this.ready = new Promise((resolve, reject) => { this._resolve = resolve; this._reject = reject; });
    this.ready.catch(() => {}); // not awaiting it is no unhandled rejection
  }

  /**
   * Stop delivery and tell the server (`unsubscribeRoute` with `{subscription: uuid}`, unless
   * that option is null). Resolves the server's reply, or null when nothing was sent or no
   * reply came (it never rejects).
   * @returns {Promise<object|null>}
   */
  unsubscribe() {
    const wasActive = this.active;
    this._end();
    if (!wasActive || !this.unsubscribeRoute || this.uuid === null || this.socket.state !== "open") {
      return Promise.resolve(null);
    }
    return this.socket.request(this.unsubscribeRoute, { subscription: this.uuid }, {}, { idempotencyKey: null })
      .catch(() => null);
  }

  _end() {
    this.active = false;
    this.socket._subscriptions.delete(this);
  }

  _send() {
    this._sending = true;
    this.uuid = newUuid();
    this._pushed = false; // a push of this uuid came: its position is newer than the reply's
    const from = this.position;
    const headers = from === null ? this.headers : { ...this.headers, "resume-from": from };
    this.socket._call(this.route, this.payload, headers, this.uuid).then((reply) => {
      this._sending = false;
      if (reply.status >= 300) this._end();
      else if (!this._pushed) this.position = positionOf(reply); // (pushes can come before the reply's turn)
      if (!this._settled) {
        this._settled = true;
        this._resolve(reply);
      } else { // resumed: the changes since `from` follow; else re-read (a `resync` push follows a refused resume)
        const resumed = from !== null && reply.headers?.resumed === true;
        this.onResubscribed?.(reply, resumed);
        this.socket.dispatchEvent(new CustomEvent("resubscribed", { detail: { subscription: this, reply, resumed } }));
      }
    }, (error) => {
      this._sending = false;
      if (error instanceof ConnectionClosedError && error.willReconnect) return; // sent again on open
      this._end();
      if (!this._settled) {
        this._settled = true;
        this._reject(error);
      } else if (this.socket.state !== "closed") { // a re-sent subscribe timed out: it has ended
        this.socket.dispatchEvent(new CustomEvent("resubscribed", {
          detail: { subscription: this, reply: null, resumed: false, error },
        }));
      }
    });
  }
}

/**
 * A WebSocket to a django-channels-router consumer.
 *
 * Events (`addEventListener`): `open` (detail `{reconnect}`), `close` (detail
 * `{code, reason, willReconnect}`, also after a failed handshake), `reconnecting` (detail
 * `{attempt, delayMs}`), `give-up` (detail `{reason, status}`), `resubscribed` (detail
 * `{subscription, reply, resumed}` after each subscription re-sent on a reconnect; `{subscription,
 * reply: null, resumed: false, error}` when that request failed, which ends the subscription).
 */
export class RouterSocket extends EventTarget {
  /**
   * @param {string} url ws:// or wss:// URL of the consumer.
   * @param {object} [options]
   * @param {Record<string, unknown>} [options.headers] merged into every request's headers (mutable later as `socket.headers`).
   * @param {number} [options.heartbeatMs=30000] interval between PINGs (0 turns the heartbeat off).
   * @param {number} [options.pongTimeoutMs=10000] close (4000) and reconnect when no PONG comes within this.
   * @param {number} [options.requestTimeoutMs=30000] reject a request with RequestTimeoutError after this
   *   (counted from the call, across its re-sends).
   * @param {boolean} [options.idempotencyKeys=true] give every request (but PING) a new `idempotency-key`.
   * @param {number} [options.maxRetries=5] times a request with a key is sent again after losing its connection.
   * @param {number} [options.queueLimit=1000] requests kept while not open; past it, QueueFullError.
   * @param {{initialMs?: number, maxMs?: number, factor?: number, jitter?: number, maxRefusals?: number,
   *   restartWindowMs?: number, healthyAfterMs?: number}} [options.reconnect] the backoff (README, "Clients"):
   *   `maxRefusals` handshakes refused in a row (an HTTP status other than 5xx and 429, where the
   *   WebSocket tells it) make it give up.
   * @param {typeof WebSocket} [options.WebSocket] constructor to use (default `globalThis.WebSocket`).
   */
  constructor(url, { headers = {}, heartbeatMs = 30000, pongTimeoutMs = 10000, requestTimeoutMs = 30000,
    queueLimit = 1000, idempotencyKeys = true, maxRetries = 5, reconnect = {}, WebSocket = globalThis.WebSocket } = {}) {
    super();
    if (!WebSocket) throw new TypeError("No WebSocket: pass one as options.WebSocket (e.g. the `ws` package).");
    this.url = url;
    this.headers = headers;
    Object.assign(this, {
      heartbeatMs, pongTimeoutMs, requestTimeoutMs, queueLimit, idempotencyKeys, maxRetries, _WebSocket: WebSocket,
    });
    this.reconnect = {
      initialMs: 500, maxMs: 30000, factor: 2, jitter: 0.2, maxRefusals: 5, restartWindowMs: 2000, healthyAfterMs: 5000,
      ...reconnect,
    };
    /** @type {"connecting"|"open"|"reconnecting"|"closed"} */
    this.state = "connecting";
    this._pending = new Map(); // uuid -> entry, sent and waiting for the reply
    this._queue = []; // entries waiting for the socket to open
    this._waiting = new Set(); // entries waiting to be sent again after a 409 request_in_progress
    this._expired = new Set(); // uuids whose reply is no longer awaited
    this._subscriptions = new Set();
    this._routeHandlers = new Map();
    this._pushHandlers = new Set();
    this._attempt = 0; // reconnects since the last healthy connection
    this._refusals = 0; // handshakes in a row refused
    this._openedAt = 0;
    this._replied = false; // the current connection answered a request: it is healthy
    this._everOpened = false;
    this._connect(true);
  }

  /**
   * Send a request; resolves the reply for every status (the caller decides what a 4xx means).
   * A request with an `idempotency-key` (every one, by default) that loses its connection before
   * the reply is sent again after the reconnect with the same key, so the server runs it once and
   * the promise resolves once; a 409 `request_in_progress` is retried shortly.
   * Rejects with RequestTimeoutError, ConnectionClosedError or QueueFullError.
   * @param {string} route
   * @param {unknown} [payload=null]
   * @param {Record<string, unknown>} [headers] merged over the socket's headers.
   * @param {{idempotencyKey?: string|null, maxRetries?: number}} [options] `idempotencyKey`: this
   *   request's key (null: none, and no re-send); `maxRetries`: overrides the socket's.
   * @returns {Promise<{uuid: string, route: string|null, status: number, headers: object|null, payload: unknown}>}
   */
  request(route, payload = null, headers = {}, { idempotencyKey, maxRetries = this.maxRetries } = {}) {
    const key = idempotencyKey !== undefined ? idempotencyKey : this.idempotencyKeys && route !== "PING" ? newUuid() : null;
    return this._call(route, payload, key === null ? headers : { "idempotency-key": key, ...headers }, newUuid(), maxRetries);
  }

  _call(route, payload, headers, uuid, maxRetries = 0) {
    if (this.state === "closed") return Promise.reject(new ConnectionClosedError(1000, "socket closed", false, 0));
    return new Promise((resolve, reject) => {
      headers = { ...this.headers, ...headers };
      // Serialised once: a re-send is the same request (the server compares it with the key's first).
      const body = JSON.stringify({ route, headers, payload, status: 200 }).slice(1);
      const entry = {
        uuid, route, resolve, reject, frame: () => `{"uuid":${JSON.stringify(entry.uuid)},${body}`,
        keyed: typeof headers["idempotency-key"] === "string", maxRetries, attempts: 0, lost: 0, busy: 0,
      };
      entry.timer = setTimeout(() => {
        this._forget(entry);
        reject(new RequestTimeoutError(route, entry.uuid, this.requestTimeoutMs, entry.attempts));
      }, this.requestTimeoutMs);
      if (this.state === "open") this._transmit(entry);
      else if (this._queue.length >= this.queueLimit) {
        clearTimeout(entry.timer);
        reject(new QueueFullError(this.queueLimit));
      } else this._queue.push(entry);
    });
  }

  /**
   * Subscribe: send `route` now and again (with a new uuid) after every reconnect, and hand
   * `onEvent` the pushes whose `headers.subscription` is the current subscribe uuid.
   * @param {string} [route="subscribe"]
   * @param {{headers?: Record<string, unknown>, payload?: unknown, onResubscribed?: (reply: object, resumed: boolean) => void, unsubscribeRoute?: string|null}} [options]
   *   `onResubscribed` gets the reply of each re-sent subscribe: re-read what was missed then.
   * @param {(push: object) => void} [onEvent]
   * @returns {Subscription}
   */
  subscribe(route = "subscribe", options = {}, onEvent = () => {}) {
    const sub = new Subscription(this, route, options, onEvent);
    this._subscriptions.add(sub);
    sub._send();
    return sub;
  }

  /**
   * Call `fn(push)` for each push of `route`. Returns a function that removes it.
   * @param {string} route @param {(push: object) => void} fn @returns {() => void}
   */
  on(route, fn) {
    if (!this._routeHandlers.has(route)) this._routeHandlers.set(route, new Set());
    const handlers = this._routeHandlers.get(route);
    handlers.add(fn);
    return () => handlers.delete(fn);
  }

  /**
   * Call `fn(push)` for every push (subscriptions' included). Returns a function that removes it.
   * @param {(push: object) => void} fn @returns {() => void}
   */
  onPush(fn) {
    this._pushHandlers.add(fn);
    return () => this._pushHandlers.delete(fn);
  }

  /**
   * Close for good: no reconnect; pending and queued requests reject with ConnectionClosedError.
   * @param {number} [code=1000] @param {string} [reason=""]
   */
  close(code = 1000, reason = "") {
    if (this.state === "closed") return;
    clearTimeout(this._reconnectTimer);
    if (this._ws) this._drop(code, reason, false);
    else this._closed(code, reason, false);
  }

  _connect(first = false) {
    let ws;
    try {
      ws = new this._WebSocket(this.url);
    } catch (error) {
      if (first) throw error;
      return this._lost(1006, String(error?.message ?? error), false);
    }
    this._ws = ws;
    let opened = false;
    let answer = null; // the handshake's HTTP answer, where the WebSocket tells it (not in browsers)
    ws.once?.("unexpected-response", (request, response) => { // the `ws` package
      answer = { status: response.statusCode, retryAfter: response.headers["retry-after"] };
      ws.terminate(); // then error and close (1006), as without this listener
    });
    ws.onopen = () => {
      opened = true;
      const reconnect = this._everOpened;
      Object.assign(this, { state: "open", _refusals: 0, _everOpened: true, _openedAt: Date.now(), _replied: false });
      this._startHeartbeat();
      for (const sub of this._subscriptions) if (!sub._sending) sub._send();
      for (const entry of this._queue.splice(0)) this._transmit(entry);
      this.dispatchEvent(new CustomEvent("open", { detail: { reconnect } }));
    };
    ws.onmessage = (event) => this._receive(event.data);
    ws.onerror = () => {}; // a close event follows
    ws.onclose = (event) => {
      if (this._ws === ws) this._lost(event.code, event.reason, opened, answer);
    };
  }

  /** Detach the socket and handle its close now (the close handshake may never finish). */
  _drop(code, reason, reconnect) {
    const ws = this._ws;
    const opened = this.state === "open";
    this._ws = null;
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      ws.close(code, reason);
    } catch {
      ws.close();
    }
    if (reconnect) this._lost(code, reason, opened);
    else this._closed(code, reason, false);
  }

  /** The connection closed (or never opened): reconnect as CLOSE_CODES and the handshake's answer say. */
  _lost(code, reason, opened, answer = null) {
    this._ws = null;
    let how = "backoff";
    let giveUp = null;
    if (opened) {
      if (this._replied || Date.now() - this._openedAt >= this.reconnect.healthyAfterMs) this._attempt = 0;
      how = CLOSE_CODES[code] ?? "backoff";
      if (how === "give-up") giveUp = `the server closed the connection with code ${code}`;
    } else if (answer) { // no answer (a browser cannot see it, or no server): the backoff, forever
      how = handshakeAnswer(answer.status);
      if (how === "refused" && (this._refusals += 1) >= this.reconnect.maxRefusals) {
        giveUp = refusal(this._refusals, answer.status);
      }
    }
    if (giveUp) {
      this._closed(code, reason || giveUp, false); // what pending requests reject with says why
      this.dispatchEvent(new CustomEvent("give-up", { detail: { reason: giveUp, status: answer?.status ?? null } }));
      return;
    }
    this._closed(code, reason, true);
    const delayMs = reconnectDelay(this.reconnect, this._attempt, how, how === "try-later" ? retryAfter(answer?.retryAfter) : null);
    const attempt = (this._attempt += 1);
    this.dispatchEvent(new CustomEvent("reconnecting", { detail: { attempt, delayMs } }));
    this._reconnectTimer = setTimeout(() => this.state === "reconnecting" && this._connect(), delayMs);
  }

  _closed(code, reason, willReconnect) {
    this._stopHeartbeat();
    this.state = willReconnect ? "reconnecting" : "closed";
    let failed = [...this._pending.values()];
    this._pending.clear();
    this._expired.clear();
    if (willReconnect) { // keyed requests go first in the queue, sent again on open (the server runs a key once)
      const again = failed.filter((entry) => entry.keyed && entry.lost < entry.maxRetries);
      for (const entry of again) entry.lost += 1;
      this._queue.unshift(...again);
      failed = failed.filter((entry) => !again.includes(entry));
    } else {
      failed.push(...this._queue.splice(0), ...this._waiting);
      this._waiting.clear();
      for (const sub of this._subscriptions) sub._end();
    }
    for (const entry of failed) {
      clearTimeout(entry.timer);
      clearTimeout(entry.backoff);
      const why = !willReconnect ? "" : `not sending the request again: ${entry.keyed
        ? `sent ${entry.attempts} times (maxRetries ${entry.maxRetries})` : "it has no idempotency key, and it may have run"}`;
      entry.reject(new ConnectionClosedError(code, reason, willReconnect, entry.attempts, why));
    }
    this.dispatchEvent(new CustomEvent("close", { detail: { code, reason, willReconnect } }));
  }

  _transmit(entry) {
    if (entry.attempts++ > 0) entry.uuid = newUuid(); // a new request on the wire; the same key
    this._pending.set(entry.uuid, entry);
    this._send(entry.frame());
  }

  /** Send `entry` again after a 409 `request_in_progress`: its first send still runs on the server. */
  _retryLater(entry, reply) {
    this._waiting.add(entry);
    const delayMs = Math.min(retryAfter(reply.headers?.["Retry-After"]) ?? 250 * 2 ** entry.busy, 5000);
    entry.busy += 1;
    entry.backoff = setTimeout(() => {
      this._waiting.delete(entry);
      if (this.state === "open") this._transmit(entry);
      else this._queue.push(entry);
    }, delayMs);
  }

  /** Stop waiting for `entry` (it timed out), wherever it is. */
  _forget(entry) {
    clearTimeout(entry.backoff);
    this._waiting.delete(entry);
    if (this._pending.get(entry.uuid) === entry) {
      this._pending.delete(entry.uuid);
      this._expire(entry.uuid);
    }
    const queued = this._queue.indexOf(entry);
    if (queued >= 0) this._queue.splice(queued, 1);
  }

  _send(text) {
    try {
      if (this._ws?.readyState === OPEN) this._ws.send(text);
    } catch { /* closing: the close event rejects what is pending */ }
  }

  _expire(uuid) {
    this._expired.add(uuid);
    if (this._expired.size > EXPIRED_KEPT) this._expired.delete(this._expired.values().next().value);
  }

  _receive(data) {
    let message = null;
    try {
      if (typeof data === "string") message = JSON.parse(data); // binary frames are not the protocol
    } catch { /* not JSON */ }
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      console.warn("router-socket: ignored a frame that is not a JSON object:", String(data).slice(0, 200));
      return;
    }
    const pong = message.route === "PONG";
    if (pong) {
      clearTimeout(this._pongTimer);
      this._pongTimer = null;
    }
    const entry = typeof message.uuid === "string" ? this._pending.get(message.uuid) : undefined;
    if (pong || entry) this._replied = true;
    if (entry) { // a reply (a PONG too, when the caller sent the PING: a latency probe)
      this._pending.delete(message.uuid);
      if (entry.keyed && message.status === 409 && message.payload?.code === "request_in_progress") {
        this._retryLater(entry, message);
        return;
      }
      clearTimeout(entry.timer);
      entry.resolve(message);
      return;
    }
    if (pong || this._expired.delete(message.uuid)) return; // heartbeats; late replies of timed-out requests
    const headers = message.headers;
    const id = headers !== null && typeof headers === "object" && !Array.isArray(headers) ? headers.subscription : undefined;
    if (id !== undefined) {
      for (const sub of this._subscriptions) {
        if (sub.uuid !== id) continue;
        const position = positionOf(message);
        if (position !== null) Object.assign(sub, { position, _pushed: true });
        if (message.route === "unsubscribed") sub._end(); // the server ended it
        this._safely(sub.onEvent, message);
      }
    }
    for (const fn of this._routeHandlers.get(message.route) ?? []) this._safely(fn, message);
    for (const fn of this._pushHandlers) this._safely(fn, message);
  }

  _safely(fn, message) {
    try {
      fn(message);
    } catch (error) {
      setTimeout(() => { throw error; }); // report it without breaking the other handlers
    }
  }

  _startHeartbeat() {
    if (!this.heartbeatMs) return;
    this._heartbeat = setInterval(() => {
      this._send(JSON.stringify({ uuid: newUuid(), route: "PING", headers: null, payload: null, status: 200 }));
      this._pongTimer ??= setTimeout(() => this._drop(4000, "heartbeat timeout", true), this.pongTimeoutMs);
    }, this.heartbeatMs);
  }

  _stopHeartbeat() {
    clearInterval(this._heartbeat);
    clearTimeout(this._pongTimer);
    this._pongTimer = null;
  }
}

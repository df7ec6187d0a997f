// Type declarations of router-socket.js (hand-written; keep in step with it).

/** A reply (or a push): always these five keys. `S` narrows the status: the types that
 * `manage.py socketschema --format typescript` writes are unions discriminated by it. */
export interface Reply<T = unknown, S extends number = number> {
  uuid: string | number | null;
  /** The request's route echoed (null when it could not be read); a push's event name. */
  route: string | null;
  status: S;
  headers: Record<string, unknown> | null;
  payload: T;
}

/** A message the server sent without a request (broadcast, subscription event). */
export type Push<T = unknown> = Reply<T>;

/** The `{detail, code}` payload of router-level errors. */
export interface ErrorPayload {
  detail: string;
  code: string;
}

/** What a close code makes the socket do (any other code: reconnect with the backoff); the
 * Python client's table is the same. */
export declare const CLOSE_CODES: Readonly<Record<number, "restart" | "try-later" | "give-up">>;

/** Why a server refuses a handshake with 403 (Origin, authentication, check_connect); the Python
 * client's `REFUSED_403_HINT` is the same. */
export declare const REFUSED_403_HINT: string;
/** The reason given when the socket gives up on refused handshakes: the status and, for 403, the hint. */
export declare function refusal(times: number, status: number): string;

/** The reconnect policy, the Python client's `Reconnect` in ms (README, "Clients"). */
export interface ReconnectOptions {
  /** First delay (default 500 ms). */
  initialMs?: number;
  /** Longest delay (default 30000 ms). */
  maxMs?: number;
  /** Each attempt since the last healthy connection waits `factor` times longer (default 2). */
  factor?: number;
  /** Each delay is scaled by a random factor in 1 +- jitter (default 0.2). */
  jitter?: number;
  /** Give up after this many handshakes in a row refused: an HTTP status other than 5xx and 429,
   * where the WebSocket tells it (the `ws` package does; browsers do not, so they never give up on
   * a failed handshake) (default 5). */
  maxRefusals?: number;
  /** After a restart close (1012/4012) of a healthy connection, reconnect at a random moment
   * within this (default 2000 ms). */
  restartWindowMs?: number;
  /** A connection that got a reply or stayed open this long is healthy: the backoff starts
   * again from `initialMs` (default 5000 ms). */
  healthyAfterMs?: number;
}

/** What `new WebSocket(url)` gives: the browser's, Node 22's or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  // `any` events: the browser's handlers take MessageEvent and CloseEvent, the `ws` package's its own.
  onmessage: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface RouterSocketOptions {
  /** Merged into every request's headers. */
  headers?: Record<string, unknown>;
  /** Interval between PINGs (default 30000; 0 turns the heartbeat off). */
  heartbeatMs?: number;
  /** Close with 4000 and reconnect when no PONG comes within this (default 10000). */
  pongTimeoutMs?: number;
  /** Reject with RequestTimeoutError after this, counted from the call across re-sends (default 30000). */
  requestTimeoutMs?: number;
  /** Requests kept while not open (default 1000); past it, QueueFullError. */
  queueLimit?: number;
  /** Give every request (but PING) a new `idempotency-key` header, so that one in flight when the
   * connection drops is sent again after the reconnect and run once (default true). */
  idempotencyKeys?: boolean;
  /** Times a request with a key is sent again after losing its connection (default 5); past it,
   * ConnectionClosedError. */
  maxRetries?: number;
  reconnect?: ReconnectOptions;
  /** Default `globalThis.WebSocket`; on Node 20 pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
}

export type SocketState = "connecting" | "open" | "reconnecting" | "closed";

export interface OpenDetail { reconnect: boolean }
export interface CloseDetail { code: number; reason: string; willReconnect: boolean }
export interface ReconnectingDetail { attempt: number; delayMs: number }
/** Why the socket stopped reconnecting; `status`: the HTTP status of the refused handshakes, where the
 * WebSocket tells it (the `ws` package), else null. */
export interface GiveUpDetail { reason: string; status: number | null }
/** After a reconnect, per subscription: its new reply, or null and the error (it has then ended).
 * `resumed`: the server continues from the subscription's `position` (the changes since follow);
 * false: re-read what was missed (a `resync` push follows when the server refused to resume). */
export interface ResubscribedDetail { subscription: Subscription; reply: Reply | null; resumed: boolean; error?: Error }

/** Per-request options of `request()`. */
export interface RequestOptions {
  /** This request's `idempotency-key` (default: a new one, unless the socket's `idempotencyKeys` is
   * false); null sends none, and the request is then not sent again after a lost connection. */
  idempotencyKey?: string | null;
  /** Overrides the socket's `maxRetries` for this request. */
  maxRetries?: number;
}

/** A listener of any event: a function or an object with `handleEvent` (the DOM's
 * `EventListenerOrEventListenerObject`, declared here so that a project without the `"dom"` lib,
 * Node with `@types/node`, type-checks). */
export type EventListenerLike = ((event: Event) => void) | { handleEvent(event: Event): void };
/** The options of `removeEventListener` (the DOM's `EventListenerOptions`). */
export interface ListenerOptions {
  capture?: boolean;
}
/** The options of `addEventListener` (the DOM's `AddEventListenerOptions`). */
export interface AddListenerOptions extends ListenerOptions {
  once?: boolean;
  passive?: boolean;
  signal?: AbortSignal;
}

export interface RouterSocketEventMap {
  open: CustomEvent<OpenDetail>;
  close: CustomEvent<CloseDetail>;
  reconnecting: CustomEvent<ReconnectingDetail>;
  "give-up": CustomEvent<GiveUpDetail>;
  resubscribed: CustomEvent<ResubscribedDetail>;
}

export class RequestTimeoutError extends Error {
  name: "RequestTimeoutError";
  route: string;
  /** The uuid of the last send. */
  uuid: string;
  timeoutMs: number;
  /** Times the request was sent (0: it was still queued). */
  attempts: number;
  constructor(route: string, uuid: string, ms: number, attempts?: number);
}

/** The connection closed before the reply and the request is not sent again: the socket is
 * closed for good, the request has no idempotency key, or it was sent `maxRetries` times more. */
export class ConnectionClosedError extends Error {
  name: "ConnectionClosedError";
  code: number;
  reason: string;
  /** Whether the socket reconnects (queued requests then wait for it). */
  willReconnect: boolean;
  /** Times the request was sent. */
  attempts: number;
  constructor(code: number, reason: string, willReconnect: boolean, attempts?: number, detail?: string);
}

export class QueueFullError extends Error {
  name: "QueueFullError";
  limit: number;
  constructor(limit: number);
}

export interface SubscribeOptions<P = unknown, T = unknown> {
  headers?: Record<string, unknown>;
  payload?: P;
  /** The reply of each subscribe re-sent after a reconnect, and whether it resumed from the
   * subscription's `position`: when not, re-read what was missed. */
  onResubscribed?: (reply: Reply<T>, resumed: boolean) => void;
  /** Route sent by `unsubscribe()` with `{subscription: uuid}` (default "unsubscribe"; null sends nothing). */
  unsubscribeRoute?: string | null;
}

export class Subscription<E = unknown, T = unknown> {
  readonly socket: RouterSocket;
  readonly route: string;
  /** The uuid of the current subscribe request (new after every reconnect). */
  readonly uuid: string | null;
  /** The latest `headers.position` of its reply and pushes, sent as `resume-from` after a
   * reconnect; null from a server that keeps no history of changes. */
  readonly position: string | null;
  /** False once unsubscribed, ended by the server or refused (non-2xx reply). */
  readonly active: boolean;
  /** The first subscribe reply, whatever its status. */
  readonly ready: Promise<Reply<T>>;
  private constructor();
  /** Stop delivery and tell the server; resolves its reply, or null when nothing was sent or no reply came (never rejects). */
  unsubscribe(): Promise<Reply | null>;
}

export class RouterSocket extends EventTarget {
  constructor(url: string, options?: RouterSocketOptions);
  readonly url: string;
  /** Merged into every request's headers; may be replaced (a new token). */
  headers: Record<string, unknown>;
  readonly state: SocketState;

  /** Every request's `idempotency-key` (but PING's), unless `idempotencyKeys` is false. */
  idempotencyKeys: boolean;
  /** Times a request with a key is sent again after losing its connection. */
  maxRetries: number;

  /** Resolves the reply for every status; a request with a key that loses its connection is sent
   * again after the reconnect (and after a 409 `request_in_progress`), resolving once. Rejects with
   * RequestTimeoutError, ConnectionClosedError or QueueFullError. */
  request<P = unknown, R = unknown>(route: string, payload?: P, headers?: Record<string, unknown>,
    options?: RequestOptions): Promise<Reply<R>>;

  subscribe<P = unknown, E = unknown, T = unknown>(route?: string, options?: SubscribeOptions<P, T>,
    onEvent?: (push: Push<E>) => void): Subscription<E, T>;

  /** Pushes of one route; returns the function that removes `fn`. */
  on<T = unknown>(route: string, fn: (push: Push<T>) => void): () => void;
  /** Every push; returns the function that removes `fn`. */
  onPush(fn: (push: Push) => void): () => void;

  /** Close for good: no reconnect; pending and queued requests reject with ConnectionClosedError. */
  close(code?: number, reason?: string): void;

  addEventListener<K extends keyof RouterSocketEventMap>(type: K,
    listener: (this: RouterSocket, event: RouterSocketEventMap[K]) => void,
    options?: boolean | AddListenerOptions): void;
  addEventListener(type: string, listener: EventListenerLike | null,
    options?: boolean | AddListenerOptions): void;
  removeEventListener<K extends keyof RouterSocketEventMap>(type: K,
    listener: (this: RouterSocket, event: RouterSocketEventMap[K]) => void,
    options?: boolean | ListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerLike | null,
    options?: boolean | ListenerOptions): void;
}

// Compiled by tests/test_js_client.py with `tsc --strict --noEmit`: router-socket.d.ts must type this.
import {
  CLOSE_CODES, ConnectionClosedError, QueueFullError, RequestTimeoutError, RouterSocket,
  type Reply, type RequestOptions, type RouterSocketOptions, type Subscription,
} from "../../../django_channels_router/static/django_channels_router/router-socket.js";

interface Article { id: number; title: string }

const options: RouterSocketOptions = {
  headers: { token: "t" }, heartbeatMs: 500, pongTimeoutMs: 1000, requestTimeoutMs: 2000, queueLimit: 10,
  idempotencyKeys: true, maxRetries: 3,
  reconnect: { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.1, maxRefusals: 3, restartWindowMs: 500, healthyAfterMs: 2000 },
  WebSocket: globalThis.WebSocket,
};
const socket = new RouterSocket("ws://127.0.0.1:8000/ws/", options);
socket.headers = { ...socket.headers, token: "new" };
const state: "connecting" | "open" | "reconnecting" | "closed" = socket.state;

async function main(): Promise<void> {
  const reply: Reply<Article[]> = await socket.request<{ search: string }, Article[]>("articles.list", { search: "x" });
  const titles: string[] = reply.payload.map((article) => article.title);
  const status: number = reply.status;
  const untyped: Reply = await socket.request("echo");
  const payload: unknown = untyped.payload;
  try {
    await socket.request("slow", 5, { extra: 1 });
    const once: RequestOptions = { idempotencyKey: "order-7", maxRetries: 2 };
    await socket.request("create", { title: "x" }, {}, once);
    await socket.request("get", null, { id: 7 }, { idempotencyKey: null });
  } catch (error) {
    if (error instanceof RequestTimeoutError) console.log(error.route, error.uuid, error.timeoutMs, error.attempts);
    else if (error instanceof ConnectionClosedError) console.log(error.code, error.reason, error.willReconnect, error.attempts);
    else if (error instanceof QueueFullError) console.log(error.limit);
  }
  const sub: Subscription<Article> = socket.subscribe<{ search: string }, Article>("subscribe", {
    payload: { search: "django" },
    onResubscribed: (again: Reply, resumed: boolean) => console.log(again.status, resumed),
    unsubscribeRoute: "unsubscribe",
  }, (push) => console.log(push.route, push.payload.title, push.headers?.subscription));
  const first: Reply = await sub.ready;
  const id: string | null = sub.uuid;
  const position: string | null = sub.position;
  const active: boolean = sub.active;
  const done: Reply | null = await sub.unsubscribe();
  const off: () => void = socket.on<string>("announcement", (push) => console.log(push.payload.toUpperCase()));
  const offAll = socket.onPush((push) => console.log(push.route));
  off();
  offAll();
  console.log(titles, status, payload, first, id, position, active, done, state);
}

socket.addEventListener("open", (event) => console.log(event.detail.reconnect));
socket.addEventListener("close", (event) => console.log(event.detail.code, event.detail.reason, event.detail.willReconnect));
socket.addEventListener("reconnecting", (event) => console.log(event.detail.attempt + event.detail.delayMs));
socket.addEventListener("give-up", (event) => console.log(event.detail.reason.length));
socket.addEventListener("resubscribed", (event) => console.log(event.detail.subscription.route, event.detail.reply?.status, event.detail.resumed, event.detail.error?.message));
void main().finally(() => socket.close(1000, "bye"));
const restart: "restart" | "try-later" | "give-up" | undefined = CLOSE_CODES[1012];
console.log(restart, socket.maxRetries, socket.idempotencyKeys);

// A browser program, type-checked against the installed package (moduleResolution: bundler).
import {
  CLOSE_CODES, ConnectionClosedError, RequestTimeoutError, RouterSocket,
  type Push, type Reply, type RouterSocketOptions, type Subscription,
} from "django-channels-router";

interface Article { id: number; title: string }

const options: RouterSocketOptions = { headers: { token: "t" }, reconnect: { maxMs: 5000 } };
const socket = new RouterSocket(`wss://${location.host}/ws/articles/`, options);

export async function titles(): Promise<string[]> {
  try {
    const reply: Reply<Article[]> = await socket.request<{ search: string }, Article[]>("list", { search: "x" });
    return reply.status === 200 ? reply.payload.map((article) => article.title) : [];
  } catch (error) {
    if (error instanceof RequestTimeoutError) return [error.route];
    if (error instanceof ConnectionClosedError) return [String(error.willReconnect)];
    throw error;
  }
}

export const subscription: Subscription<Article> = socket.subscribe<{ id: number }, Article>(
  "subscribe", { payload: { id: 1 } }, (push: Push<Article>) => console.log(push.payload.title));
socket.addEventListener("give-up", (event) => console.log(event.detail.reason, event.detail.status));
export const action: "restart" | "try-later" | "give-up" | undefined = CLOSE_CODES[1012];

// @ts-expect-error heartbeatMs is a number: the declarations are found, not `any`.
new RouterSocket("ws://127.0.0.1/", { heartbeatMs: "soon" });

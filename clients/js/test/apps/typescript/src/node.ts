// A node program (scripts, SSR), type-checked against the installed package (moduleResolution: nodenext),
// with @types/node and without the "dom" lib.
import WebSocket from "ws";
import { RouterSocket, type Reply } from "django-channels-router";

class SiteWebSocket extends WebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols ?? [], { origin: "https://example.com", headers: { Cookie: "sessionid=abc" } });
  }
}

const socket = new RouterSocket("wss://example.com/ws/app/", { WebSocket: SiteWebSocket });
const reply: Reply<{ greeting: string }> = await socket.request<{ name: string }, { greeting: string }>(
  "sayHello", { name: "Ada" });
const greeting: string = reply.payload.greeting;
console.log(greeting, reply.status);
// Listeners and their options, typed without the "dom" lib (tsconfig.nodenext.json has none).
const done = new AbortController();
socket.addEventListener("give-up", (event) => console.log(event.detail.reason), { once: true, signal: done.signal });
socket.addEventListener("open", { handleEvent: (event: Event) => console.log(event.type) }, true);
socket.removeEventListener("open", null, { capture: true });
// @ts-expect-error once is a boolean
socket.addEventListener("open", () => undefined, { once: "yes" });
socket.close();

// @ts-expect-error a WebSocket option must construct a WebSocket
new RouterSocket("ws://127.0.0.1/", { WebSocket: class NotASocket {} });

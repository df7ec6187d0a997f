// The demo page: the package's own client module (router-socket.js, served from its static
// files beside this one) talking to the demo's sockets. No build step, no dependencies.

import { RouterSocket } from "../django_channels_router/router-socket.js";

// ---------------------------------------------------------------------------------------
// The page

const $ = (id) => document.getElementById(id);
const logList = $("log");
const pushList = $("pushes");

function addEntry(list, { title, status = null, body }) {
  const item = document.createElement("li");
  item.className = status === null ? "error" : `s${String(status)[0]}`;
  const heading = document.createElement("div");
  heading.className = "title";
  heading.textContent = title;
  if (status !== null) {
    const badge = document.createElement("span");
    badge.className = "status";
    badge.textContent = ` ${status}`;
    heading.append(badge);
  }
  const pre = document.createElement("pre");
  pre.textContent = typeof body === "string" ? body : JSON.stringify(body, null, 2);
  item.append(heading, pre);
  list.prepend(item); // newest first
}

function onMessageReceived(label) {
  return (message) => {
    if (message.uuid === null) {
      // The server could not read a request's uuid (e.g. a frame that is not JSON), so the
      // error reply matches no pending request: show it with the replies.
      addEntry(logList, { title: `${label}: reply with uuid null`, status: message.status, body: message });
    } else {
      addEntry(pushList, { title: `${label}: ${message.route}`, status: message.status, body: message });
    }
  };
}

// onState gets each state change ("connecting", "open", "closed"); onPush gets the pushes
// after they are logged.
function open(path, stateId, { onState = () => {}, onPush = () => {} } = {}) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const state = $(stateId);
  const logUnmatched = onMessageReceived(path);
  const show = (kind, text) => {
    state.dataset.state = kind;
    state.textContent = `${path}: ${text}`;
    onState(kind);
  };
  const socket = new RouterSocket(`${scheme}//${location.host}/${path}`, { heartbeatMs: 10_000, pongTimeoutMs: 5_000 });
  socket.onPush((message) => {
    logUnmatched(message);
    if (message.uuid !== null) onPush(message);
  });
  socket.addEventListener("open", () => show("open", "open"));
  socket.addEventListener("reconnecting", ({ detail }) =>
    show("connecting", `reconnecting (try ${detail.attempt}) in ${(detail.delayMs / 1000).toFixed(1)} s`));
  socket.addEventListener("give-up", ({ detail }) => show("closed", `closed: ${detail.reason}`));
  show("connecting", "connecting");
  return socket;
}

const sockets = {
  app: open("ws/app/", "state-app"),
  async: open("ws/app-async/", "state-async"),
  articles: open("ws/articles/", "state-articles"),
  // model: opened at the end of this file, once the live list it feeds is set up.
};

async function call(socketName, route, payload = null, headers = {}) {
  const started = performance.now();
  const title = `${socketName} ${route}`;
  try {
    const reply = await sockets[socketName].request(route, payload, headers);
    const ms = Math.round(performance.now() - started);
    addEntry(logList, { title: `${title} (${ms} ms)`, status: reply.status, body: reply });
    return reply;
  } catch (error) {
    addEntry(logList, { title, body: String(error) });
    return null;
  }
}

const idFrom = (input) => (input.value === "" ? null : Number(input.value));

$("hello-sync").addEventListener("click", () => call("app", "sayHello", { name: $("name").value }));
$("hello-async").addEventListener("click", () => call("async", "sayHello", { name: $("name").value }));
$("get-article").addEventListener("click", () => call("app", "getArticle", { id: idFrom($("article-id")) }));

$("slow-echo").addEventListener("click", async () => {
  const started = performance.now();
  try {
    const replies = await Promise.all(Array.from({ length: 10 },
      (_, n) => sockets.async.request("slowEcho", { seconds: 0.5, n })));
    const ms = Math.round(performance.now() - started);
    addEntry(logList, {
      title: `async 10 × slowEcho 0.5 s: all replies in ${ms} ms`,
      status: Math.max(...replies.map((r) => r.status)),
      body: replies.map(({ status, payload }) => ({ status, payload })),
    });
  } catch (error) {
    addEntry(logList, { title: "async slowEcho", body: String(error) });
  }
});

// The client module only sends protocol messages, so "send garbage" uses a bare WebSocket: the
// server answers a frame that is not JSON with a 400 (uuid null) and keeps the connection open.
$("garbage").addEventListener("click", () => {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const raw = new WebSocket(`${scheme}//${location.host}/ws/app/`);
  raw.addEventListener("open", () => raw.send("not json"));
  raw.addEventListener("message", ({ data }) => {
    const reply = JSON.parse(data);
    addEntry(logList, { title: "app send garbage: reply with uuid null", status: reply.status, body: reply });
    raw.close(1000);
  });
  raw.addEventListener("error", () => addEntry(logList, { title: "app send garbage", body: "The socket failed." }));
});

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  // form.elements, not form.title: a form's own `title` property is its title attribute.
  const { title, body } = form.elements;
  const payload = { title: title.value };
  if (body.value) payload.body = body.value;
  const reply = await call("articles", "create", payload);
  if (reply?.status === 201) {
    form.reset();
    $("get-id").value = reply.payload.id;
  }
});

$("get").addEventListener("click", () => call("articles", "get", null, { id: idFrom($("get-id")) }));
$("list").addEventListener("click", () => call("articles", "list"));
$("clear-log").addEventListener("click", () => logList.replaceChildren());

// --- ModelSocketRouter (ws/model/articles/) ----------------------------------------------

// The socket's user is the session's, read by AuthMiddlewareStack at the handshake; /whoami/
// reads the same cookie over HTTP. (Logging in elsewhere takes effect on the next page load.)
async function showWhoami() {
  const line = $("whoami");
  try {
    const response = await fetch("/whoami/", { credentials: "same-origin" });
    const { username, authenticated } = await response.json();
    if (authenticated) {
      line.textContent = `Logged in as ${username}`;
    } else {
      const link = document.createElement("a");
      link.href = "/admin/login/?next=/";
      link.textContent = "/admin/";
      line.replaceChildren("Browsing as anonymous — log in at ", link, " to write");
    }
  } catch (error) {
    line.textContent = `Could not tell who you are: ${error}`;
  }
}
showWhoami();

const modelId = () => ({ id: idFrom($("model-id")) });
const modelFields = (onlyFilled) => {
  const fields = { title: $("model-title").value, body: $("model-body").value };
  if (onlyFilled) for (const key of Object.keys(fields)) if (fields[key] === "") delete fields[key];
  return fields;
};

$("model-get").addEventListener("click", () => call("model", "get", null, modelId()));
$("model-list").addEventListener("click", () => {
  const search = $("model-search").value;
  call("model", "list", search ? { search, ordering: "-id" } : null);
});
$("model-create").addEventListener("click", async () => {
  const reply = await call("model", "create", modelFields(true));
  if (reply?.status === 201) $("model-id").value = reply.payload.id;
});
$("model-update").addEventListener("click", () => call("model", "update", modelFields(false), modelId()));
$("model-patch").addEventListener("click", () => call("model", "patch", modelFields(true), modelId()));
$("model-delete").addEventListener("click", () => call("model", "delete", null, modelId()));

// --- The live "Articles" list: subscribe, list, then follow the pushes --------------------

const liveList = $("live-articles");
const liveStatus = $("live-status");
const FLASH_MS = 1500;
let subscription = null; // this connection's subscription id: the subscribe request's uuid
let early = null; // pushes that arrive while the list loads, replayed once it is drawn

// On every (re)connect: a new connection has no subscription. Subscribing before listing
// means a change made while the list loads is pushed rather than lost; pushes carry the whole
// article, so replaying the early ones over the list is harmless.
async function followArticles() {
  subscription = null;
  early = [];
  liveStatus.textContent = "Loading…";
  const subscribed = await call("model", "subscribe");
  const listed = subscribed?.status === 201 ? await call("model", "list") : null;
  if (listed?.status !== 200) {
    early = null;
    liveStatus.textContent = "Could not load the articles: see Replies.";
    return;
  }
  subscription = subscribed.payload.subscription;
  liveList.replaceChildren(...listed.payload.map(articleItem));
  const replay = early;
  early = null;
  replay.forEach(applyPush);
  liveStatus.textContent = `Live: ${listed.payload.length} article(s), following every change.`;
}

function showOffline(kind) {
  subscription = null;
  early = null;
  liveStatus.textContent = kind === "connecting"
    ? "Connecting… (the list reloads when the socket opens)"
    : "Disconnected: the list may be out of date. Reload the page to reconnect.";
}

function articleItem({ id, title }) {
  const item = document.createElement("li");
  item.dataset.id = id;
  const idCell = document.createElement("span");
  idCell.className = "id";
  idCell.textContent = `#${id}`;
  const titleCell = document.createElement("span");
  titleCell.textContent = title;
  item.append(idCell, titleCell);
  return item;
}

function applyPush(message) {
  const { route, payload, headers } = message;
  if (headers?.model !== "demo.article" || !headers.subscription) return;
  if (early) { early.push(message); return; }
  if (subscription !== null && headers.subscription !== subscription) return; // not ours
  const id = payload?.id;
  const item = liveList.querySelector(`li[data-id="${id}"]`);
  if (route === "deleted") {
    if (!item) return;
    flash(item, route, () => item.remove());
  } else if (route === "created" || route === "updated") {
    const fresh = articleItem(payload);
    if (item) {
      item.replaceWith(fresh);
    } else { // keep the list in id order, as `list` returns it
      const next = [...liveList.children].find((li) => Number(li.dataset.id) > id);
      liveList.insertBefore(fresh, next ?? null);
    }
    flash(fresh, route);
  } else {
    return;
  }
  liveStatus.textContent = `Live: #${id} ${route}${route === "deleted" ? "" : ` (${payload.title})`}.`;
}

// Shows the change's name on the item for a moment; its background then fades out.
function flash(item, change, then = () => {}) {
  item.dataset.change = change;
  setTimeout(() => {
    delete item.dataset.change;
    then();
  }, FLASH_MS);
}

sockets.model = open("ws/model/articles/", "state-model", {
  onState: (kind) => (kind === "open" ? followArticles() : showOffline(kind)),
  onPush: applyPush,
});

// The socket docs page's live console: a real WebSocket from the browser, examples from the page.
// An ES module with no dependency and no inline code, so the page works under a strict CSP.
// The server computes each route's example request (console-data): this file only sends them.

const data = JSON.parse(document.getElementById("console-data").textContent);
let asyncapi = null; // the AsyncAPI document, fetched the first time a "JSON Schema" toggle opens
const $ = (id) => document.getElementById(id);
const sockets = new Map(data.sockets.map((socket) => [socket.id, socket]));
const pending = new Map(); // uuid -> route, of requests not answered yet
let socket = null;
let socketId = null;
let sent = 0;

function currentSocket() {
  return sockets.get(socketId);
}

function currentRoute() {
  return currentSocket().routes.find((route) => route.name === $("console-route").value);
}

function fillRoutes() {
  const select = $("console-route");
  select.replaceChildren(...currentSocket().routes.map((route) => new Option(route.name, route.name)));
  fillExample();
}

function fillParameters() {
  const holder = $("console-parameters");
  holder.replaceChildren();
  for (const name of currentSocket().parameters) {
    const label = document.createElement("label");
    label.textContent = `URL parameter ${name}`;
    const input = document.createElement("input");
    input.name = name;
    input.required = true;
    label.append(input);
    holder.append(label);
  }
}

// The example of the chosen route; a detail route's object id goes in its own field, filled with
// an object that exists when the page found one, else empty and required.
function fillExample() {
  const route = currentRoute();
  const lookup = $("console-lookup");
  $("console-lookup-label").hidden = !route.lookup;
  lookup.required = Boolean(route.lookup);
  if (route.lookup) {
    $("console-lookup-text").textContent = `${route.lookup} of the ${route.model} (sent in headers.${route.lookup})`;
    lookup.value = route.id ?? "";
    lookup.placeholder = route.id == null ? `the ${route.lookup} of an existing ${route.model}` : "";
  } else {
    lookup.value = "";
  }
  $("console-headers").value = JSON.stringify(route.headers ?? {}, null, 2);
  $("console-payload").value = JSON.stringify(route.payload, null, 2);
}

function showUser() {
  const user = currentSocket().user;
  $("console-user").textContent = user || "anonymous";
  $("console-user").title = user ? "The session's user, whom AuthMiddlewareStack finds in the handshake's cookie."
    : "No logged-in session, or this socket's route is not wrapped in AuthMiddlewareStack.";
}

function chooseSocket(id) {
  if (id === socketId) return;
  socketId = id;
  $("console-socket").value = id;
  disconnect();
  fillParameters();
  fillRoutes();
  showUser();
}

function url() {
  let address = currentSocket().address;
  for (const input of document.querySelectorAll("#console-parameters input")) {
    address = address.replace(`{${input.name}}`, encodeURIComponent(input.value));
  }
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${address}`;
}

function setState(text) {
  $("console-state").textContent = text;
  $("console-state").className = text === "open" ? "open" : "";
  $("console-connect").textContent = socket ? "Disconnect" : "Connect";
}

function connect() {
  return new Promise((resolveOpen, rejectOpen) => {
    socket = new WebSocket(url());
    setState("connecting");
    socket.addEventListener("open", () => { setState("open"); resolveOpen(); });
    socket.addEventListener("message", (event) => record(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => {
      socket = null;
      pending.clear();
      setState(`closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`);
      rejectOpen(new Error(`The socket closed (${event.code}).`));
    });
  });
}

function disconnect() {
  if (socket) socket.close(1000);
  socket = null;
  setState("closed");
}

function newUuid() {
  return (crypto.randomUUID ? crypto.randomUUID() : `console-${Date.now()}-${++sent}`);
}

// One entry of the log: what was sent, a reply (to a uuid this console sent) or a push.
function record(message, direction = "received") {
  let kind = "sent";
  if (direction !== "sent") {
    kind = message.uuid != null && pending.has(message.uuid) ? "reply" : "push";
    pending.delete(message.uuid);
  }
  const item = document.createElement("li");
  item.className = `entry kind-${kind}`;
  item.dataset.route = message.route;
  item.dataset.kind = kind;
  const line = document.createElement("div");
  line.className = "entry-head";
  const badge = document.createElement("span");
  badge.className = `kind kind-${kind}`;
  badge.textContent = kind;
  const route = document.createElement("code");
  route.textContent = message.route ?? "";
  line.append(badge, " ", route);
  if (kind !== "sent") {
    const status = document.createElement("span");
    const code = message.status ?? "";
    status.className = `status ${code >= 200 && code < 300 ? "status-ok" : "status-error"}`;
    status.textContent = String(code);
    line.append(" ", status);
    item.dataset.status = String(code);
  }
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  line.append(" ", time);
  const body = document.createElement("pre");
  body.textContent = JSON.stringify(message, null, 2);
  item.append(line, body);
  $("console-log").prepend(item);
}

function lookupValue(text) {
  return /^-?\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : text;
}

async function send(event) {
  event.preventDefault();
  $("console-error").textContent = "";
  let headers;
  let payload;
  try {
    headers = JSON.parse($("console-headers").value || "{}") ?? {};
    payload = JSON.parse($("console-payload").value || "null");
  } catch (error) {
    $("console-error").textContent = `Not valid JSON: ${error.message}`;
    return;
  }
  const route = currentRoute();
  if (route.lookup) {
    const value = $("console-lookup").value.trim();
    if (!value) {
      $("console-error").textContent = `Fill in the ${route.lookup} of a ${route.model}.`;
      $("console-lookup").focus();
      return;
    }
    headers = { ...headers, [route.lookup]: lookupValue(value) };
  }
  try {
    if (!socket) await connect();
  } catch (error) {
    $("console-error").textContent = error.message;
    return;
  }
  const message = { uuid: newUuid(), route: route.name, headers, payload };
  pending.set(message.uuid, route.name);
  socket.send(JSON.stringify(message));
  record(message, "sent");
}

// A "JSON Schema" toggle: the route's messages as the document has them, written out when opened.
async function showSchemas(details) {
  if (!details.open || details.dataset.filled) return;
  details.dataset.filled = "true";
  asyncapi ??= fetch(document.body.dataset.schema, { credentials: "same-origin" }).then((response) => {
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    return response.json();
  });
  let messages;
  try {
    messages = (await asyncapi).channels[details.dataset.socket].messages;
  } catch (error) {
    asyncapi = null;
    delete details.dataset.filled;
    details.append(`The AsyncAPI document did not load: ${error.message}`);
    return;
  }
  for (const key of details.dataset.messages.split(" ")) {
    const title = document.createElement("h5");
    title.textContent = key.slice(key.lastIndexOf(".") + 1);
    const body = document.createElement("pre");
    body.textContent = JSON.stringify(messages[key].payload, null, 2);
    details.append(title, body);
  }
}

function start() {
  const select = $("console-socket");
  select.replaceChildren(...data.sockets.map((each) => new Option(each.address, each.id)));
  select.addEventListener("change", () => chooseSocket(select.value));
  $("console-route").addEventListener("change", fillExample);
  $("console-connect").addEventListener("click", () => (socket ? disconnect() : connect().catch((error) => {
    $("console-error").textContent = error.message;
  })));
  $("console-clear").addEventListener("click", () => $("console-log").replaceChildren());
  $("console-form").addEventListener("submit", send);
  $("console-form").noValidate = true; // send() says what is missing, in the page
  for (const button of document.querySelectorAll("button.try")) {
    button.addEventListener("click", () => {
      chooseSocket(button.dataset.socket);
      $("console-route").value = button.dataset.route;
      fillExample();
      const lookup = $("console-lookup");
      (lookup.required && !lookup.value ? lookup : $("console-payload")).focus();
    });
  }
  for (const details of document.querySelectorAll("details.raw")) {
    details.addEventListener("toggle", () => showSchemas(details));
  }
  if (select.options.length) chooseSocket(select.value);
  document.body.dataset.ready = "true";
}

start();

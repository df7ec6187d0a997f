// The socket docs page's live console: examples from the AsyncAPI document, a real WebSocket.
// An ES module with no dependency and no inline code, so the page works under a strict CSP.

const doc = JSON.parse(document.getElementById("asyncapi").textContent);
const $ = (id) => document.getElementById(id);
const channels = doc.channels;
let socket = null;
let socketId = null;
let sent = 0;

function pointer(path) {
  return path.replace(/^#\//, "").split("/")
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((node, part) => (node === undefined ? undefined : node[part]), doc);
}

function resolve(schema) {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 32) schema = pointer(schema.$ref);
  return schema || {};
}

// A value that matches a schema well enough to start editing from.
function example(schema, direction, depth = 0) {
  schema = resolve(schema);
  if (depth > 8) return null;
  if ("const" in schema) return schema.const;
  if (schema.examples && schema.examples.length) return schema.examples[0];
  if ("example" in schema) return schema.example;
  if ("default" in schema) return schema.default;
  if (schema.enum && schema.enum.length) return schema.enum[0];
  const options = schema.oneOf || schema.anyOf;
  if (options) {
    const chosen = options.map(resolve).find((option) => option.type !== "null") || options[0];
    return example(chosen, direction, depth + 1);
  }
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  const type = types.find((t) => t && t !== "null") || types[0];
  switch (type) {
    case "object": {
      const value = {};
      for (const [name, property] of Object.entries(schema.properties || {})) {
        const resolved = resolve(property);
        if (direction === "request" && resolved.readOnly) continue;
        value[name] = example(resolved, direction, depth + 1);
      }
      return value;
    }
    case "array": return schema.items ? [example(schema.items, direction, depth + 1)] : [];
    case "string": return schema.format === "date-time" ? new Date(0).toISOString() : "text";
    case "integer": return schema.minimum ?? 1;
    case "number": return schema.minimum ?? 1.5;
    case "boolean": return true;
    default: return null;
  }
}

function requestSchema(channelId, route) {
  const message = channels[channelId].messages[`${route}.request`];  // keyed by the route's own name
  return message ? resolve(message.payload) : {};
}

function routesOf(channelId) {
  return Object.keys(channels[channelId].messages)
    .filter((key) => key.endsWith(".request"))
    .map((key) => requestSchema(channelId, key.slice(0, -".request".length)).properties.route.const);
}

function fillRoutes() {
  const select = $("console-route");
  select.replaceChildren(...routesOf(socketId).map((route) => new Option(route, route)));
  fillExample();
}

function fillParameters() {
  const holder = $("console-parameters");
  holder.replaceChildren();
  for (const name of Object.keys(channels[socketId].parameters || {})) {
    const label = document.createElement("label");
    label.textContent = `URL parameter ${name}`;
    const input = document.createElement("input");
    input.name = name;
    input.className = "parameter";
    label.append(input);
    holder.append(label);
  }
}

function fillExample() {
  const properties = requestSchema(socketId, $("console-route").value).properties || {};
  $("console-headers").value = JSON.stringify(example(properties.headers || {}, "request") || {}, null, 2);
  $("console-payload").value = JSON.stringify(example(properties.payload || {}, "request"), null, 2);
}

function chooseSocket(id) {
  if (id === socketId) return;
  socketId = id;
  $("console-socket").value = id;
  disconnect();
  fillParameters();
  fillRoutes();
}

function url() {
  let address = channels[socketId].address;
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

function record(message, direction = "received") {
  const item = document.createElement("li");
  const kind = direction === "sent" ? "sent" : message.uuid && pending.delete(message.uuid) ? "reply" : "push";
  item.className = kind;
  item.dataset.route = message.route;
  item.dataset.kind = kind;
  const line = document.createElement("span");
  const status = message.status ?? "";
  line.textContent = `${kind === "sent" ? "→" : "←"} ${kind} ${message.route ?? ""} ${kind === "sent" ? "" : status}`;
  if (kind !== "sent") line.classList.add(status >= 200 && status < 300 ? "status-ok" : "status-error");
  if (kind !== "sent") item.dataset.status = String(status);
  const body = document.createElement("pre");
  body.textContent = JSON.stringify(message, null, 2);
  item.append(line, body);
  $("console-log").prepend(item);
}

const pending = new Set();

async function send(event) {
  event.preventDefault();
  $("console-error").textContent = "";
  let headers;
  let payload;
  try {
    headers = JSON.parse($("console-headers").value || "{}");
    payload = JSON.parse($("console-payload").value || "null");
  } catch (error) {
    $("console-error").textContent = `Not valid JSON: ${error.message}`;
    return;
  }
  try {
    if (!socket) await connect();
  } catch (error) {
    $("console-error").textContent = error.message;
    return;
  }
  const message = { uuid: newUuid(), route: $("console-route").value, headers, payload, status: 200 };
  pending.add(message.uuid);
  socket.send(JSON.stringify(message));
  record(message, "sent");
}

function start() {
  const select = $("console-socket");
  select.replaceChildren(...Object.entries(channels).map(([id, channel]) => new Option(channel.address, id)));
  select.addEventListener("change", () => chooseSocket(select.value));
  $("console-route").addEventListener("change", fillExample);
  $("console-connect").addEventListener("click", () => (socket ? disconnect() : connect().catch((error) => {
    $("console-error").textContent = error.message;
  })));
  $("console-clear").addEventListener("click", () => $("console-log").replaceChildren());
  $("console-form").addEventListener("submit", send);
  for (const button of document.querySelectorAll("button.try")) {
    button.addEventListener("click", () => {
      chooseSocket(button.dataset.socket);
      $("console-route").value = button.dataset.route;
      fillExample();
      $("console-payload").focus();
    });
  }
  for (const pre of document.querySelectorAll("pre.example")) {
    const properties = requestSchema(pre.dataset.socket, pre.dataset.route).properties || {};
    pre.textContent = JSON.stringify({
      uuid: "1", route: pre.dataset.route,
      headers: example(properties.headers || {}, "request") || {},
      payload: example(properties.payload || {}, "request"),
    }, null, 2);
  }
  if (select.options.length) chooseSocket(select.value);
  document.body.dataset.ready = "true";
}

start();

// The socket's URL comes in the page's query (?socket=ws://...); the reply goes into #reply.
import { RouterSocket } from "django-channels-router";

const url = new URLSearchParams(location.search).get("socket");
const socket = new RouterSocket(url, { heartbeatMs: 0 });
socket.request("echo", { from: "vite" }).then((reply) => {
  document.querySelector("#reply").textContent = JSON.stringify(reply);
  document.body.dataset.done = "true";
}, (error) => {
  document.querySelector("#reply").textContent = String(error);
  document.body.dataset.done = "error";
});

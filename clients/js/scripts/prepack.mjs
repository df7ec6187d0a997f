// `npm pack` and `npm publish` run this first: it copies the client and its types from the
// Python package's static folder (the one source, which Django serves to the docs page and the
// demo) and the project's LICENSE into this folder. The copies are ignored by git.
import { copyFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = new URL("../", import.meta.url);
const root = new URL("../../", here);
const sources = {
  "router-socket.js": new URL("django_channels_router/static/django_channels_router/router-socket.js", root),
  "router-socket.d.ts": new URL("django_channels_router/static/django_channels_router/router-socket.d.ts", root),
  LICENSE: new URL("LICENSE", root),
};
for (const [name, source] of Object.entries(sources)) {
  copyFileSync(fileURLToPath(source), fileURLToPath(new URL(name, here)));
}

// The demo's types from `manage.py socketschema --format typescript` (written to src/sockets.ts by
// tests/test_npm_package.py), which import the client from the installed package by default.
import { RouterSocket } from "django-channels-router";
import { wsModelArticles } from "./sockets.js";

const articles = wsModelArticles(new RouterSocket("ws://127.0.0.1:8000/ws/model/articles/"));

export async function title(id: number): Promise<string> {
  const reply = await articles.get(null, { id });
  if (reply.status === 304) return "unchanged"; // sent if-none-match: payload null
  return reply.status === 200 ? reply.payload.title : reply.payload.detail;
}

// @ts-expect-error a misspelt payload field
articles.create({ titel: "New" });

// django-channels 1.1.8's WebSocketBridge, unmodified, through its public API:
// stream(name).send(...) for every action and demultiplex(...) for replies and events.
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const WebSocket = require("ws");
const { WebSocketBridge } = require("django-channels");
const { startStack, waitUntil, Inbox } = require("../harness");

let stack;
let wsb;
const inbox = new Inbox();
let seq = 0;

before(async () => {
  stack = await startStack();
  // WebSocketBridge is a browser library: connect() reads window.location even when given a
  // full URL, and reconnecting-websocket 3 takes the WebSocket class as its documented
  // `constructor` option (node 20 has no global WebSocket).
  globalThis.window = { location: { protocol: "http:", host: stack.host } };
  wsb = new WebSocketBridge();
  wsb.connect(stack.url, undefined, { constructor: WebSocket });
  wsb.listen();
  wsb.demultiplex("questions", (payload, stream) => inbox.push({ stream, payload }));
  wsb.demultiplex("choices", (payload, stream) => inbox.push({ stream, payload }));
  await waitUntil("the WebSocket to open", () => wsb.socket.readyState === WebSocket.OPEN);
});

after(async () => {
  if (wsb) wsb.socket.close(1000, "", { keepClosed: true });
  if (stack) await stack.stop();
});

/** Sends a request and resolves with its reply's payload. */
async function call(stream, payload) {
  const request_id = `dc${++seq}`;
  wsb.stream(stream).send({ ...payload, request_id });
  const reply = await inbox.take(`the reply to ${request_id}`, (m) => m.payload.request_id === request_id && "response_status" in m.payload);
  assert.equal(reply.stream, stream);
  assert.equal(reply.payload.action, payload.action);
  return reply.payload;
}

/** Resolves with the next event of the subscription request_id. */
function event(request_id, action) {
  return inbox
    .take(`a ${action} event of ${request_id}`, (m) => m.payload.request_id === request_id && !("response_status" in m.payload) && m.payload.action === action)
    .then((m) => m.payload);
}

test("every action of questions and choices", async () => {
  let r = await call("questions", { action: "create", data: { question_text: "Compatible?" } });
  assert.equal(r.response_status, 201, JSON.stringify(r));
  const id = r.data.id;
  assert.equal(typeof id, "number");
  assert.deepEqual(r.errors, []);

  r = await call("questions", { action: "retrieve", pk: id });
  assert.equal(r.response_status, 200);
  assert.equal(r.data.question_text, "Compatible?");

  r = await call("questions", { action: "update", pk: id, data: { question_text: "Still compatible?", published: false } });
  assert.equal(r.response_status, 200);
  assert.equal(r.data.question_text, "Still compatible?");

  r = await call("questions", { action: "patch", pk: id, data: { question_text: "Patched" } });
  assert.equal(r.response_status, 200);
  assert.equal(r.data.question_text, "Patched");

  r = await call("questions", { action: "list", data: { page_size: 10 } });
  assert.equal(r.response_status, 200);
  assert.ok(r.data.some((q) => q.id === id));
  assert.equal(r.meta.page, 1);

  // The original channels-api README's form of a detail action: the key inside data.
  r = await call("questions", { action: "publish", data: { pk: id } });
  assert.equal(r.response_status, 200);
  assert.equal(r.data.published, true);

  r = await call("questions", { action: "report" });
  assert.equal(r.response_status, 200);
  assert.equal(typeof r.data.total, "number");

  r = await call("choices", { action: "create", data: { question_id: id, choice_text: "Yes" } });
  assert.equal(r.response_status, 201);
  r = await call("choices", { action: "vote", pk: r.data.id });
  assert.equal(r.response_status, 200);
  assert.equal(r.data.votes, 1);

  r = await call("questions", { action: "delete", pk: id });
  assert.equal(r.response_status, 200);
  r = await call("questions", { action: "retrieve", pk: id });
  assert.equal(r.response_status, 404);
  assert.deepEqual(r.errors, ["Not found."]);
  assert.equal(r.data, null);
});

test("events through demultiplex", async () => {
  wsb.stream("questions").send({ action: "subscribe", data: { action: ["create", "update", "delete"] }, request_id: "all" });
  const sub = await inbox.take("the subscribe reply", (m) => m.payload.request_id === "all" && "response_status" in m.payload);
  assert.equal(sub.payload.response_status, 200);
  assert.equal(sub.payload.action, "subscribe");

  let r = await call("questions", { action: "create", data: { question_text: "Evented" } });
  const id = r.data.id;
  let ev = await event("all", "create");
  assert.equal(ev.pk, id);
  assert.equal(ev.data.question_text, "Evented");
  assert.equal(ev.model, "polls.v1.Question");

  // The original README's subscribe, with the key in data, watches this question only.
  wsb.stream("questions").send({ action: "subscribe", data: { action: "update", pk: id }, request_id: "one" });
  const one = await inbox.take("the keyed subscribe reply", (m) => m.payload.request_id === "one");
  assert.equal(one.payload.response_status, 200);
  // The bridge adds the position delivery starts after (docs/protocol.md, "Offsets and resume").
  const { offset, ...echo } = one.payload.data;
  assert.equal(typeof offset, "string");
  assert.deepEqual(echo, { action: "update", pk: id });

  await call("questions", { action: "patch", pk: id, data: { question_text: "Changed" } });
  ev = await event("all", "update");
  assert.equal(ev.data.question_text, "Changed");
  ev = await event("one", "update");
  assert.equal(ev.pk, id);

  await call("questions", { action: "delete", pk: id });
  ev = await event("all", "delete");
  assert.equal(ev.pk, id);

  r = await call("questions", { action: "unsubscribe", data: { request_id: "all" } });
  assert.equal(r.response_status, 200);
  assert.deepEqual(r.data, { request_ids: ["all"] });
});

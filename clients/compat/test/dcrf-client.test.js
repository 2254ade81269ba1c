// dcrf-client 0.3.0 (the client of djangochannelsrestframework), unmodified, with its
// documented pkField: 'id' option: every request method, and subscribe(stream, pk, cb), which
// sends DCRF's subscribe_instance and matches update events on data.id and delete events on
// data.pk.
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const WebSocket = require("ws");
// The package's CommonJS build exports connect() as its default export.
const dcrf = require("dcrf-client").default;
const { startStack, Inbox } = require("../harness");

let stack;
let client;

before(async () => {
  stack = await startStack();
  // Node 20 has no global WebSocket: the documented websocket.WebSocket option passes ws.
  client = dcrf.connect(stack.url, { pkField: "id", websocket: { WebSocket } });
});

after(async () => {
  if (client) client.close();
  if (stack) await stack.stop();
});

test("create, retrieve, list, update, patch, delete", async () => {
  const created = await client.create("questions", { question_text: "DCRF?" });
  assert.equal(typeof created.id, "number");
  assert.equal(created.question_text, "DCRF?");

  const got = await client.retrieve("questions", created.id);
  assert.deepEqual(got, created);

  const list = await client.list("questions");
  assert.ok(list.some((q) => q.id === created.id));

  const updated = await client.update("questions", created.id, { question_text: "Updated", published: true });
  assert.equal(updated.question_text, "Updated");
  assert.equal(updated.published, true);

  const patched = await client.patch("questions", created.id, { question_text: "Patched" });
  assert.equal(patched.question_text, "Patched");
  assert.equal(patched.published, true);

  assert.deepEqual(await client.delete("questions", created.id), {});
  // A failed request rejects with the reply's payload.
  await assert.rejects(client.retrieve("questions", created.id), (payload) => {
    assert.equal(payload.response_status, 404);
    assert.deepEqual(payload.errors, ["Not found."]);
    return true;
  });
});

test("subscribe to one instance: update and delete events", async () => {
  const watched = await client.create("questions", { question_text: "Watched" });
  const other = await client.create("questions", { question_text: "Not watched" });
  const events = new Inbox();
  const subscription = client.subscribe("questions", watched.id, (data, action) => events.push({ data, action }));
  await subscription; // resolves on the bridge's 2xx reply to subscribe_instance

  // The other question changes first: had its event been delivered, it would come first.
  await client.patch("questions", other.id, { question_text: "Changed" });
  await client.patch("questions", watched.id, { question_text: "Changed too" });
  let ev = await events.take("the update event", () => true);
  assert.equal(ev.action, "update");
  assert.equal(ev.data.id, watched.id);
  assert.equal(ev.data.question_text, "Changed too");

  await client.delete("questions", watched.id);
  ev = await events.take("the delete event", () => true);
  assert.equal(ev.action, "delete");
  assert.equal(ev.data.id, watched.id);

  assert.equal(subscription.cancel(), true);
  assert.equal(events.items.length, 0, JSON.stringify(events.items));
});

// The debugger page at /debug/, driven in chromium against a live bridge and example backend.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Stack, screenshot } from "./harness.mjs";

let stack;
let base;

before(async () => {
  stack = new Stack();
  await stack.startBackend();
  base = await stack.startBridge("-debug");
});

after(async () => {
  await stack?.close();
});

// editFrame replaces the request editor's frame with the result of fn(frame).
async function editFrame(page, fn) {
  const editor = page.getByTestId("request-editor");
  const frame = JSON.parse(await editor.inputValue());
  await editor.fill(JSON.stringify(fn(frame), null, 2));
  return frame;
}

// sendAndWait clicks Send and returns the reply element of the request just sent.
async function sendAndWait(page) {
  const frame = JSON.parse(await page.getByTestId("request-editor").inputValue());
  await page.getByTestId("send").click();
  const entry = page.locator(`[data-testid="log-request"][data-request-id="${frame.payload.request_id}"]`);
  const reply = entry.getByTestId("log-reply");
  await reply.waitFor({ timeout: 30000 });
  return { frame, reply, status: Number(await reply.getAttribute("data-status")) };
}

async function replyData(reply) {
  return JSON.parse(await reply.getByTestId("reply-data").textContent());
}

test("the debugger creates, retrieves, subscribes, sees another client's update and unsubscribes", async (t) => {
  const page = await stack.page();
  t.after(() => page.close());
  await page.goto(base + "/debug/");
  await page.locator('[data-testid="conn-status"]:text-is("connected")').waitFor();

  // The streams and their actions come from /schema.
  await page.getByTestId("stream-questions").waitFor();
  await page.getByTestId("stream-choices").waitFor();
  for (const a of ["create", "retrieve", "update", "patch", "list", "delete", "publish", "report", "subscribe", "unsubscribe"]) {
    assert.equal(await page.getByTestId(`action-questions-${a}`).count(), 1, `action ${a} listed`);
  }
  assert.equal(await page.getByTestId("action-choices-vote").count(), 1);

  // create: the template has the data shape (no id, no pk); send it with our text.
  await page.getByTestId("action-questions-create").click();
  const tmpl = await editFrame(page, (f) => {
    f.payload.data.question_text = "Asked from the debugger";
    return f;
  });
  assert.equal(tmpl.stream, "questions");
  assert.equal(tmpl.payload.action, "create");
  assert.ok("question_text" in tmpl.payload.data && "published" in tmpl.payload.data, JSON.stringify(tmpl));
  assert.ok(!("id" in tmpl.payload.data) && !("pk" in tmpl.payload), JSON.stringify(tmpl));
  assert.equal(await page.getByTestId("permission").textContent(), "permission: allow_any");
  const created = await sendAndWait(page);
  assert.equal(created.status, 201);
  const question = await replyData(created.reply);
  assert.equal(question.question_text, "Asked from the debugger");
  assert.equal(typeof question.id, "string", "int64 ids are JSON strings");

  // retrieve: a detail action, pre-filled with the pk just created.
  await page.getByTestId("action-questions-retrieve").click();
  const rt = JSON.parse(await page.getByTestId("request-editor").inputValue());
  assert.equal(String(rt.payload.pk), question.id, "retrieve's template uses the last pk seen");
  assert.match(await page.getByTestId("request-info").textContent(), /needs pk/);
  const retrieved = await sendAndWait(page);
  assert.equal(retrieved.status, 200);
  assert.equal((await replyData(retrieved.reply)).question_text, "Asked from the debugger");

  // A request that fails shows its status and messages plainly.
  await editFrame(page, (f) => ({ ...f, payload: { ...f.payload, pk: "987654321" } }));
  const missing = await sendAndWait(page);
  assert.equal(missing.status, 404);
  assert.match(await missing.reply.getByTestId("reply-status").textContent(), /404 Not Found/);
  assert.ok((await missing.reply.getByTestId("reply-errors").textContent()).length > 0);

  // subscribe to updates of this question.
  await page.getByTestId("action-questions-subscribe").click();
  await editFrame(page, (f) => ({ ...f, payload: { ...f.payload, pk: question.id, data: { action: "update" } } }));
  const subscribed = await sendAndWait(page);
  assert.equal(subscribed.status, 200);
  const sub = page.locator(`[data-testid="subscription"][data-request-id="${subscribed.frame.payload.request_id}"]`);
  await sub.waitFor();
  assert.equal(await sub.getAttribute("data-state"), "active");

  // Another client updates the question: the event shows in the subscription's group.
  const other = await stack.client(base);
  const patched = await other.request("questions", { action: "patch", pk: question.id, data: { question_text: "Changed by another client" } });
  assert.equal(patched.payload.response_status, 200);
  const event = sub.locator('[data-testid="event"][data-action="update"]');
  await event.waitFor();
  assert.equal(await event.getAttribute("data-pk"), question.id);
  assert.match(await event.textContent(), /Changed by another client/);
  assert.equal(await sub.getByTestId("event-count").textContent(), "1 event");
  await page.locator(`[data-testid="log-event"][data-request-id="${subscribed.frame.payload.request_id}"]`).waitFor();

  await page.getByTestId("shape").locator("summary").first().click();
  await page.getByTestId("request-editor").evaluate((e) => { e.scrollTop = 0; });
  await screenshot(page, "debugger.png");

  // A control subscription with the same filter: it shares the upstream, so its events come in
  // the same order on the same connection, and it is the barrier for "nothing after unsubscribe".
  await page.getByTestId("action-questions-subscribe").click();
  await editFrame(page, (f) => ({ ...f, payload: { ...f.payload, pk: question.id, data: { action: "update" } } }));
  const controlled = await sendAndWait(page);
  assert.equal(controlled.status, 200);
  const controlID = controlled.frame.payload.request_id;
  assert.notEqual(controlID, subscribed.frame.payload.request_id);
  const control = page.locator(`[data-testid="subscription"][data-request-id="${controlID}"]`);
  await control.waitFor();

  // One click ends it; the bridge's 200 marks the group ended, later updates do not arrive.
  await sub.getByTestId("unsubscribe").click();
  await page.locator(`[data-testid="subscription"][data-request-id="${subscribed.frame.payload.request_id}"][data-state="ended"]`).waitFor();
  const unsub = page.locator('[data-testid="log-request"][data-action="unsubscribe"] [data-testid="log-reply"]');
  assert.equal(await unsub.getAttribute("data-status"), "200");
  await other.request("questions", { action: "patch", pk: question.id, data: { question_text: "Nobody is watching" } });
  await other.request("questions", { action: "patch", pk: question.id, data: { question_text: "Marker" } });
  // Once the control has the marker, a copy of "Nobody is watching" for the ended one would be in.
  await control.locator('[data-testid="event"]', { hasText: "Marker" }).waitFor({ timeout: 30000 });
  assert.equal(await control.locator('[data-testid="event"]').count(), 2);
  assert.equal(await sub.locator('[data-testid="event"]').count(), 1);
  assert.equal(await page.locator(`[data-testid="log-event"][data-request-id="${subscribed.frame.payload.request_id}"]`).count(), 1);
  await screenshot(page, "debugger-unsubscribed.png");

  // list shows its meta.
  await page.getByTestId("action-questions-list").click();
  const listed = await sendAndWait(page);
  assert.equal(listed.status, 200);
  assert.equal((await listed.reply.getByTestId("reply-meta").textContent()).includes('"page"'), true);

  assert.deepEqual(page.errors || [], [], "no script errors");
});

test("the token field adds ?token= to the WebSocket URL", async (t) => {
  const page = await stack.page();
  t.after(() => page.close());
  const urls = [];
  page.on("websocket", (ws) => urls.push(ws.url()));
  await page.goto(base + "/debug/?connect=0");
  await page.getByTestId("stream-questions").waitFor();
  assert.equal(await page.getByTestId("conn-status").textContent(), "disconnected");
  await page.getByTestId("token").fill("s3cret token");
  await page.getByTestId("connect").click();
  await page.waitForFunction(() => document.querySelector('[data-testid="conn-status"]').textContent !== "connecting");
  assert.equal(urls.length, 1);
  const u = new URL(urls[0]);
  assert.equal(u.pathname, "/ws");
  assert.equal(u.searchParams.get("token"), "s3cret token");
  // The token is not echoed in the log.
  assert.doesNotMatch(await page.getByTestId("log").textContent(), /s3cret/);
});

test("without /schema the page says so and still sends frames typed by hand", async (t) => {
  const noSchema = await stack.startBridge("-debug", "-schema=false");
  const page = await stack.page();
  t.after(() => page.close());
  await page.goto(noSchema + "/debug/");
  await page.locator('[data-testid="schema-status"]:text("switched off")').waitFor();
  await page.locator('[data-testid="conn-status"]:text-is("connected")').waitFor();
  await page.getByTestId("request-editor").fill(JSON.stringify({ stream: "questions", payload: { action: "list", request_id: "hand1" } }));
  await page.getByTestId("send").click();
  const reply = page.locator('[data-testid="log-request"][data-request-id="hand1"] [data-testid="log-reply"]');
  await reply.waitFor();
  assert.equal(await reply.getAttribute("data-status"), "200");
});

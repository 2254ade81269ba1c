// The TypeScript client (clients/typescript/dist, built by `npm run build`) running in a page
// of chromium against a live bridge: create, retrieve, subscribe, an update by another
// client, unsubscribe. The client's ES modules are served on the bridge's own origin by
// intercepting /__tsclient/ requests, and imported into a page the bridge itself served (its
// debugger page, not connected): chromium's local network access checks refuse WebSockets
// to 127.0.0.1 from a document that did not come from a local address, such as one made up
// by the test, and a page of another origin would need the bridge to allow that origin.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join, normalize } from "node:path";
import { Stack, repoRoot } from "./harness.mjs";

const dist = join(repoRoot, "clients/typescript/dist");
const hasDist = existsSync(join(dist, "index.js"));

let stack;
let base;

before(async () => {
  if (!hasDist) return;
  stack = new Stack();
  await stack.startBackend();
  base = await stack.startBridge("-debug");
});

after(async () => {
  await stack?.close();
});

// serveClient answers /__tsclient/ with the client's dist files.
async function serveClient(page) {
  await page.route(`${base}/__tsclient/**`, async (route) => {
    const path = new URL(route.request().url()).pathname.replace(/^\/__tsclient\//, "");
    const file = normalize(join(dist, path));
    if (!file.startsWith(dist) || !existsSync(file)) return route.fulfill({ status: 404, body: "not found" });
    const type = file.endsWith(".js") ? "text/javascript" : file.endsWith(".map") ? "application/json" : "text/plain";
    return route.fulfill({ status: 200, contentType: type, body: await readFile(file) });
  });
}

test("the TypeScript client works in a browser page", { skip: !hasDist && "clients/typescript/dist is missing: run npm ci && npm run build in clients/typescript" }, async (t) => {
  const page = await stack.page();
  t.after(() => page.close());
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  await serveClient(page);
  await page.goto(`${base}/debug/?connect=0`);
  await page.evaluate(async () => {
    window.wsbridge = await import("/__tsclient/index.js");
  });
  assert.equal(await page.evaluate(() => typeof window.wsbridge.connect), "function");

  // create, retrieve and subscribe in the page.
  const created = await page.evaluate(async (wsURL) => {
    const client = window.wsbridge.connect(wsURL, { token: "tok-123" });
    window.client = client;
    window.events = [];
    const questions = client.stream("questions");
    const q = await questions.create({ question_text: "Asked from the TS client" });
    const again = await questions.retrieve(q.id);
    window.sub = questions.subscribe({ action: "update", pk: q.id }, (ev) => window.events.push(ev));
    // The control: the same stream and filter share one upstream, so its events come in the same
    // order on the same connection; it is the barrier for "nothing after unsubscribe".
    window.controlEvents = [];
    window.control = questions.subscribe({ action: "update", pk: q.id }, (ev) => window.controlEvents.push(ev));
    const ready = await window.sub.ready;
    await window.control.ready;
    let missing;
    try {
      await questions.retrieve("987654321");
    } catch (err) {
      missing = { name: err.name, status: err.status ?? err.response_status, message: String(err.message) };
    }
    return { q, again, ready, missing };
  }, base.replace(/^http/, "ws") + "/ws");

  assert.equal(created.q.question_text, "Asked from the TS client");
  assert.equal(typeof created.q.id, "string");
  assert.deepEqual(created.again, created.q);
  assert.equal(created.ready.action, "update");
  assert.ok(created.missing, "retrieving a missing question rejects");
  assert.equal(created.missing.status, 404, JSON.stringify(created.missing));
  assert.equal(sockets.length, 1);
  assert.equal(new URL(sockets[0]).searchParams.get("token"), "tok-123", "the token goes as ?token=");

  // Another client updates the question: the page's subscription gets the event.
  const other = await stack.client(base);
  const patched = await other.request("questions", { action: "patch", pk: created.q.id, data: { question_text: "Changed elsewhere" } });
  assert.equal(patched.payload.response_status, 200);
  await page.waitForFunction(() => window.events.length === 1, null, { timeout: 30000 });
  const ev = await page.evaluate(() => window.events[0]);
  assert.equal(ev.stream, "questions");
  assert.equal(ev.action, "update");
  assert.equal(String(ev.pk), created.q.id);
  assert.equal(ev.data.question_text, "Changed elsewhere");
  assert.equal(ev.model, "polls.v1.Question");

  // Unsubscribe: no more events. The barrier: after "Unseen", a marker update that the control
  // must see; a copy of "Unseen" for the ended subscription would have arrived before it.
  const active = await page.evaluate(async () => {
    await window.sub.unsubscribe();
    return window.sub.active;
  });
  assert.equal(active, false);
  await other.request("questions", { action: "patch", pk: created.q.id, data: { question_text: "Unseen" } });
  await other.request("questions", { action: "patch", pk: created.q.id, data: { question_text: "Marker" } });
  await page.waitForFunction(() => window.controlEvents.some((e) => e.data.question_text === "Marker"), null, { timeout: 30000 });
  assert.deepEqual(
    await page.evaluate(() => window.controlEvents.map((e) => e.data.question_text)),
    ["Changed elsewhere", "Unseen", "Marker"],
  );
  assert.deepEqual(await page.evaluate(() => window.events.map((e) => e.data.question_text)), ["Changed elsewhere"]);

  await page.evaluate(() => window.client.close());
  assert.deepEqual(page.errors || [], [], "no script errors");
});

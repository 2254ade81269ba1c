// The client against the real bridge and example backend, started as child processes.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { WebSocket } from "ws";
import { BridgeError, connect } from "@wsbridge/client";
import type { Client, ConnectOptions, SubscriptionEvent, SubscriptionStatus } from "@wsbridge/client";
import { pollsDemo, type Question } from "../examples/polls.js";
import { Stack } from "./harness.js";

let stack: Stack;
const clients: Client[] = [];

before(async () => {
  stack = await Stack.start();
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await stack?.stop();
});

function client(options: ConnectOptions = {}): Client {
  const c = connect(stack.url, { WebSocket, reconnectDelay: 50, maxReconnectDelay: 500, ...options });
  clients.push(c);
  return c;
}

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A subscribe reply's data without its offset (a string, checked here), which varies. */
function withoutOffset(data: object): object {
  const { offset, ...rest } = data as { offset?: unknown };
  assert.equal(typeof offset, "string");
  return rest;
}

/** Collects a subscription's events. */
function collector() {
  const events: SubscriptionEvent<Question>[] = [];
  return { events, push: (e: SubscriptionEvent<Question>) => void events.push(e) };
}

describe("live bridge", () => {
  test("the typed example", async () => {
    const demo = await pollsDemo(stack.url, { WebSocket });
    assert.equal(demo.created.question_text, "What's new?");
    assert.equal(typeof demo.created.id, "string");
    assert.equal(demo.published.published, true);
    assert(demo.page.some((q) => q.id === demo.created.id));
    assert(demo.count !== undefined && demo.count >= 1);
    assert.equal(typeof demo.report.total, "string");
    assert.equal(demo.update.action, "update");
    assert.equal(demo.update.pk, demo.created.id);
    assert.equal(demo.update.data.published, true);
  });

  test("every method", async () => {
    const questions = client().stream<Question>("questions");
    const created = await questions.create({ question_text: "First?" });
    assert.equal(created.question_text, "First?");
    assert.match(created.id ?? "", /^\d+$/);
    const pk = created.id!;

    assert.deepEqual(await questions.retrieve(pk), created);
    assert.deepEqual(await questions.retrieve(Number(pk)), created, "a number pk works too");

    const patched = await questions.patch(pk, { published: true });
    assert.deepEqual(patched, { ...created, published: true }, "patch keeps the fields it was not given");
    const updated = await questions.update(pk, { question_text: "Second?" });
    assert.equal(updated.question_text, "Second?");
    assert.notEqual(updated.published, true, "update replaces the whole resource");

    const published = await questions.action<Question>("publish", { pk });
    assert.equal(published.published, true);
    const report = await questions.action<{ total?: string; published?: string }>("report");
    assert(Number(report.total) >= 1 && Number(report.published) >= 1);

    for (let i = 0; i < 3; i++) await questions.create({ question_text: `Extra ${i}?` });
    const { items, meta } = await questions.list({ page: 2, page_size: 2 });
    assert.equal(meta.page, 2);
    assert.equal(meta.page_size, 2);
    assert.equal(typeof meta.count, "number");
    assert(meta.count! >= 4);
    assert.equal(items.length, 2);
    const all = await questions.list({ page: 1, page_size: 1000 });
    assert.equal(all.items.length, all.meta.count);
    assert(all.items.some((q) => q.id === pk));
    const defaults = await questions.list();
    assert.equal(defaults.meta.page, 1);

    assert.equal(await questions.delete(pk), undefined);
    await assert.rejects(questions.retrieve(pk), { name: "BridgeError", response_status: 404, errors: ["Not found."] });
  });

  test("errors", async () => {
    const c = client();
    const questions = c.stream<Question>("questions");
    await assert.rejects(questions.retrieve("999999999"), { name: "BridgeError", response_status: 404, errors: ["Not found."] });

    const invalid = await questions.create({ question_text: "" }).then(
      () => assert.fail("created"),
      (e: unknown) => e,
    );
    assert(invalid instanceof BridgeError);
    assert.equal(invalid.response_status, 400);
    assert.deepEqual(invalid.errors, [{ question_text: ["This field is required."] }]);
    assert.deepEqual(invalid.fieldErrors, { question_text: ["This field is required."] });

    await assert.rejects(c.stream("nope").retrieve("1"), { name: "BridgeError", response_status: 404, errors: ["Unknown stream."] });
    await assert.rejects(questions.action("frobnicate"), { name: "BridgeError", response_status: 400 });
    const refused = c.stream("nope").subscribe({ action: "create" }, () => assert.fail("event"));
    await assert.rejects(refused.ready, { name: "BridgeError", response_status: 404, errors: ["Unknown stream."] });
    assert.equal(refused.active, false);
  });

  test("subscriptions: create, update and delete events", async () => {
    const questions = client().stream<Question>("questions");
    const all = collector();
    const sub = questions.subscribe({}, all.push);
    assert.deepEqual(withoutOffset(await sub.ready), { action: ["create", "update", "delete"] });

    const created = await questions.create({ question_text: "Watched?" });
    const pk = created.id!;
    await questions.patch(pk, { question_text: "Still watched?" });
    await questions.delete(pk);
    await until(() => all.events.filter((e) => e.pk === pk).length === 3, "three events");
    const mine = all.events.filter((e) => e.pk === pk);
    assert.deepEqual(
      mine.map((e) => [e.action, e.data.question_text]),
      [
        ["create", "Watched?"],
        ["update", "Still watched?"],
        ["delete", "Still watched?"],
      ],
    );
    for (const e of mine) {
      assert.equal(e.stream, "questions");
      assert.equal(e.model, "polls.v1.Question");
      assert.equal(e.data.id, pk);
    }
    await sub.unsubscribe();
  });

  test("subscriptions: the pk and action filter", async () => {
    const questions = client().stream<Question>("questions");
    const a = (await questions.create({ question_text: "A?" })).id!;
    const b = (await questions.create({ question_text: "B?" })).id!;
    const onlyA = collector();
    const updates = collector();
    const subA = questions.subscribe({ action: "update", pk: a }, onlyA.push);
    const subU = questions.subscribe({ action: "update" }, updates.push);
    assert.deepEqual(withoutOffset(await subA.ready), { action: "update", pk: a });
    assert.deepEqual(withoutOffset(await subU.ready), { action: "update" });

    await questions.patch(b, { question_text: "B2?" }); // an update of another pk: not for subA
    await questions.delete(b); // a delete: for neither
    await questions.create({ question_text: "C?" }); // a create: for neither
    // The marker, for both: each subscription's events come in order on one upstream stream, so
    // anything the filters let through by mistake would have arrived before it.
    await questions.patch(a, { question_text: "A2?" });
    await until(() => onlyA.events.length >= 1, "the update of A");
    await until(() => updates.events.some((e) => e.pk === a), "the update of A (action filter)");
    assert.deepEqual(
      onlyA.events.map((e) => [e.action, e.pk, e.data.question_text]),
      [["update", a, "A2?"]],
    );
    assert.deepEqual(
      updates.events.filter((e) => e.pk === a || e.pk === b).map((e) => [e.action, e.pk, e.data.question_text]),
      [
        ["update", b, "B2?"],
        ["update", a, "A2?"],
      ],
    );
    assert(updates.events.every((e) => e.action === "update"));
    await subA.unsubscribe();
    await subU.unsubscribe();
  });

  test("subscriptions: no events after unsubscribe", async () => {
    const questions = client().stream<Question>("questions");
    const ended = collector();
    const control = collector();
    const sub = questions.subscribe({ action: "create" }, ended.push);
    const controlSub = questions.subscribe({ action: "create" }, control.push);
    await Promise.all([sub.ready, controlSub.ready]);

    await questions.create({ question_text: "Before?" });
    await until(() => ended.events.length === 1 && control.events.length === 1, "both events");
    await sub.unsubscribe();
    assert.equal(sub.active, false);
    await questions.create({ question_text: "After?" });
    // The marker: both subscriptions share one upstream stream (same stream and filter) and one
    // connection, so a copy of "After?" for the ended one would have arrived before it.
    await questions.create({ question_text: "Marker?" });
    await until(() => control.events.length === 3, "the control's marker");
    assert.deepEqual(
      control.events.map((e) => e.data.question_text),
      ["Before?", "After?", "Marker?"],
    );
    assert.deepEqual(
      ended.events.map((e) => e.data.question_text),
      ["Before?"],
    );
    await controlSub.unsubscribe();
    await sub.unsubscribe(); // a second time is a no-op
  });

  test("a backend restart interrupts and resumes subscriptions", async () => {
    const questions = client().stream<Question>("questions");
    const created = collector();
    const statuses: SubscriptionStatus[] = [];
    const sub = questions.subscribe({ action: "create" }, created.push, { onStatus: (s) => statuses.push(s) });
    await sub.ready;

    await stack.restartBackend();
    await until(() => statuses.some((s) => s.kind === "resumed"), "the subscription to resume");
    assert.deepEqual(
      statuses.map((s) => s.kind),
      ["interrupted", "resumed"],
    );
    const [interrupted] = statuses;
    assert(interrupted?.kind === "interrupted");
    assert.equal(interrupted.response_status, 503);
    assert.equal(typeof interrupted.errors[0], "string");

    const after = await questions.create({ question_text: "After the backend restart?" });
    await until(() => created.events.some((e) => e.pk === after.id), "the event after the backend restart");
    await sub.unsubscribe();
  });

  test("reconnects after the bridge restarts and renews subscriptions", async () => {
    const closes: number[] = [];
    let opens = 0;
    const c = client({ onOpen: () => opens++, onClose: (info) => closes.push(info.code) });
    const questions = c.stream<Question>("questions");
    const created = collector();
    const statuses: SubscriptionStatus["kind"][] = [];
    const sub = questions.subscribe({ action: "create" }, created.push, { onStatus: (s) => statuses.push(s.kind) });
    await sub.ready;
    assert.equal(opens, 1);

    await stack.restartBridge();
    // The contract, whatever the old bridge does while it stops (refuses TCP connections or answers
    // handshakes 503) and however long the new one takes to discover its backends (subscribe 503):
    // one disconnected for the lost connection, then only disconnected or interrupted, then one
    // resubscribed.
    await until(() => statuses.includes("resubscribed"), "the subscription to be renewed");
    assert.equal(statuses[0], "disconnected", statuses.join());
    assert.equal(statuses.at(-1), "resubscribed", statuses.join());
    assert.equal(statuses.filter((s) => s === "resubscribed").length, 1, statuses.join());
    assert(statuses.slice(1, -1).every((s) => s === "disconnected" || s === "interrupted"), statuses.join());
    assert.deepEqual(closes, [1001], "one close, 1001 from the bridge shutting down; failed attempts are not closes");
    assert.equal(opens, 2);
    assert.equal(c.state, "open");
    assert.equal(sub.active, true);
    const renewed = statuses.length;

    const after = await questions.create({ question_text: "After the restart?" });
    await until(() => created.events.some((e) => e.pk === after.id), "the event after the restart");
    assert.equal(statuses.length, renewed, `nothing after resubscribed: ${statuses.join()}`);
    assert.deepEqual(closes, [1001]);
    await sub.unsubscribe();
  });

  test("a rolling deploy: the bridge restarts during a steady stream of changes, each subscription resumes with none lost or twice", async () => {
    const c = client();
    const questions = c.stream<Question>("questions");
    const creates = collector();
    const changes = collector();
    const statuses: Record<string, SubscriptionStatus[]> = { creates: [], changes: [] };
    const subCreates = questions.subscribe({ action: "create" }, creates.push, { onStatus: (s) => statuses.creates!.push(s) });
    const subChanges = questions.subscribe({ action: ["create", "update"] }, changes.push, {
      onStatus: (s) => statuses.changes!.push(s),
    });
    await Promise.all([subCreates.ready, subChanges.ready]);

    // The writer changes questions through the backend's REST API, which the deploy leaves
    // alone: one at a time, so the events' order is the writes' order.
    const rest = async (method: string, path: string, body: unknown): Promise<Question> => {
      const response = await fetch(stack.backendHTTP + path, { method, body: JSON.stringify(body) });
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
      return (await response.json()) as Question;
    };
    const made: string[] = [];
    const write = async (text: string): Promise<void> => {
      const q = await rest("POST", "/v1/questions", { question_text: text });
      made.push(String(q.id));
      await rest("PATCH", `/v1/questions/${q.id}`, { published: true });
    };
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) await write(`steady ${i}`);
    })();

    await until(() => creates.events.length >= 5, "events before the deploy");
    // SIGTERM: the bridge drains and closes the connection with 1001. While no bridge runs,
    // the writer goes on: those events must come on the next connection.
    await stack.bridge.stop();
    const down = made.length;
    await until(() => made.length >= down + 5, "changes while no bridge runs");
    await stack.startBridge();
    const renewed = (kind: string) => statuses[kind]!.some((s) => s.kind === "resubscribed");
    await until(() => renewed("creates") && renewed("changes"), "both subscriptions to be renewed");
    const up = made.length;
    await until(() => creates.events.length >= up + 5, "events after the deploy");
    stop = true;
    await writer;
    await write("final");
    const last = made.at(-1)!;
    await until(
      () => changes.events.some((e) => e.pk === last && e.action === "update") && creates.events.some((e) => e.pk === last),
      "the final events",
    );

    for (const kind of ["creates", "changes"]) {
      const renewals = statuses[kind]!.filter((s) => s.kind === "resubscribed");
      assert.equal(renewals.length, 1, `${kind}: ${JSON.stringify(statuses[kind])}`);
      assert.deepEqual(renewals[0], { kind: "resubscribed", recovered: true }, kind);
    }
    // None lost, none twice, in order: every create once; every create then its update once.
    assert.deepEqual(
      creates.events.map((e) => e.pk),
      made,
    );
    assert.deepEqual(
      changes.events.map((e) => `${e.action} ${e.pk}`),
      made.flatMap((pk) => [`create ${pk}`, `update ${pk}`]),
    );
    assert(creates.events.every((e) => typeof e.offset === "string" && e.offset !== ""));
    await subCreates.unsubscribe();
    await subChanges.unsubscribe();
  });
});

// The client against a scripted WebSocket server: request matching, timeouts, the queue,
// authentication, status notifications and reconnects, without the Go side.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { after, describe, test } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import { BridgeError, ClientError, connect } from "@wsbridge/client";
import type { ConnectOptions, SubscriptionEvent, SubscriptionStatus } from "@wsbridge/client";

interface Incoming {
  stream: string;
  payload: { action: string; pk?: unknown; data?: unknown; request_id: string };
}

/** A server that records frames and lets each test answer them. */
class Script {
  readonly server: WebSocketServer;
  readonly frames: Incoming[] = [];
  readonly requests: IncomingMessage[] = [];
  socket: WebSocket | undefined;
  #waiters: (() => void)[] = [];

  constructor(port = 0) {
    this.server = new WebSocketServer({ host: "127.0.0.1", port, handleProtocols: (protocols) => [...protocols].find((p) => !p.startsWith("bearer.")) ?? false });
    this.server.on("connection", (socket, request) => {
      this.socket = socket;
      this.requests.push(request);
      socket.on("message", (data) => {
        this.frames.push(JSON.parse(String(data)) as Incoming);
        this.#wake();
      });
      this.#wake();
    });
  }

  get url(): string {
    const address = this.server.address();
    assert(address && typeof address === "object");
    return `ws://127.0.0.1:${address.port}/ws`;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Waits until cond holds, re-checked on every frame and connection. */
  async until(cond: () => boolean, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The nth frame (0-based), once it has come. */
  async frame(n: number): Promise<Incoming> {
    await this.until(() => this.frames.length > n);
    return this.frames[n]!;
  }

  send(stream: string, payload: Record<string, unknown>): void {
    this.socket!.send(JSON.stringify({ stream, payload }));
  }

  reply(to: Incoming, status: number, data: unknown, errors: unknown[] = [], extra: Record<string, unknown> = {}): void {
    this.send(to.stream, {
      action: to.payload.action,
      data,
      errors,
      response_status: status,
      request_id: to.payload.request_id,
      ...extra,
    });
  }

  async close(): Promise<void> {
    for (const c of this.server.clients) c.terminate();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** Waits until cond holds, polling, with a deadline. */
async function waitFor(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const scripts: Script[] = [];
async function script(port?: number): Promise<Script> {
  const s = new Script(port);
  scripts.push(s);
  await new Promise((resolve) => s.server.once("listening", resolve));
  return s;
}
after(async () => {
  await Promise.all(scripts.map((s) => s.close()));
});

function client(s: Script, options: ConnectOptions = {}) {
  return connect(s.url, { WebSocket, reconnectDelay: 20, maxReconnectDelay: 100, ...options });
}

describe("requests", () => {
  test("every method sends its frame and resolves with data", async () => {
    const s = await script();
    const c = client(s, { token: "secret" });
    const q = c.stream<{ id?: string; question_text?: string }>("questions");

    const created = q.create({ question_text: "Why?" });
    const f0 = await s.frame(0);
    assert.equal(f0.stream, "questions");
    assert.equal(f0.payload.action, "create");
    assert.deepEqual(f0.payload.data, { question_text: "Why?" });
    assert.equal(typeof f0.payload.request_id, "string");
    assert.equal("pk" in f0.payload, false);
    s.reply(f0, 201, { id: "1", question_text: "Why?" });
    assert.deepEqual(await created, { id: "1", question_text: "Why?" });
    assert.equal(new URL(s.requests[0]!.url!, "http://x").searchParams.get("token"), "secret");

    const calls: [Promise<unknown>, string, unknown, unknown][] = [
      [q.retrieve("1"), "retrieve", "1", undefined],
      [q.update(1, { question_text: "A" }), "update", 1, { question_text: "A" }],
      [q.patch("1", { question_text: "B" }), "patch", "1", { question_text: "B" }],
      [q.delete("1"), "delete", "1", {}],
      [q.action("publish", { pk: "1" }), "publish", "1", undefined],
      [q.action("report"), "report", undefined, undefined],
    ];
    for (const [i, [promise, action, pk, data]] of calls.entries()) {
      const f = await s.frame(i + 1);
      assert.equal(f.payload.action, action);
      assert.deepEqual(f.payload.pk, pk);
      assert.deepEqual(f.payload.data, data);
      s.reply(f, 200, action === "delete" ? {} : { action });
      const result = await promise;
      if (action === "delete") assert.equal(result, undefined);
      else assert.deepEqual(result, { action });
    }

    const listed = q.list({ page: 2, page_size: 5 });
    const fl = await s.frame(calls.length + 1);
    assert.deepEqual(fl.payload.data, { page: 2, page_size: 5 });
    s.reply(fl, 200, [{ id: "6" }], [], { meta: { page: 2, page_size: 5, count: 6 } });
    assert.deepEqual(await listed, { items: [{ id: "6" }], meta: { page: 2, page_size: 5, count: 6 } });
    await c.close();
  });

  test("replies are matched by request_id, in any order", async () => {
    const s = await script();
    const c = client(s);
    const q = c.stream<string>("questions");
    const a = q.retrieve("a");
    const b = q.retrieve("b");
    const [fa, fb] = [await s.frame(0), await s.frame(1)];
    assert.notEqual(fa.payload.request_id, fb.payload.request_id);
    s.reply(fb, 200, "B");
    s.reply(fa, 200, "A");
    assert.deepEqual(await Promise.all([a, b]), ["A", "B"]);
    await c.close();
  });

  test("errors reject with BridgeError", async () => {
    const s = await script();
    const c = client(s);
    const q = c.stream("questions");
    const created = q.create({});
    s.reply(await s.frame(0), 400, null, [{ question_text: ["This field is required."] }]);
    const error = await created.then(
      () => assert.fail("resolved"),
      (e: unknown) => e,
    );
    assert(error instanceof BridgeError);
    assert.equal(error.response_status, 400);
    assert.equal(error.stream, "questions");
    assert.equal(error.action, "create");
    assert.deepEqual(error.errors, [{ question_text: ["This field is required."] }]);
    assert.deepEqual(error.fieldErrors, { question_text: ["This field is required."] });
    assert.match(error.message, /400 question_text: This field is required\./);

    const missing = q.retrieve("9");
    s.reply(await s.frame(1), 404, null, ["Not found."]);
    await assert.rejects(missing, { name: "BridgeError", response_status: 404, errors: ["Not found."] });
    await c.close();
  });

  test("a request without a reply times out", async () => {
    const s = await script();
    const c = client(s, { requestTimeout: 100 });
    await assert.rejects(c.stream("questions").retrieve("1"), (e) => e instanceof ClientError && e.reason === "timeout");
    await c.close();
  });

  test("requests wait for the connection, and the queue is bounded", async () => {
    const s = await script();
    let release!: (token: string) => void;
    const c = client(s, { maxQueue: 2, token: () => new Promise<string>((r) => (release = r)) });
    const q = c.stream<string>("questions");
    const first = q.retrieve("1");
    const second = q.retrieve("2");
    await assert.rejects(q.retrieve("3"), (e) => e instanceof ClientError && e.reason === "queue_full");
    assert.equal(c.state, "connecting");
    release("late");
    const [f0, f1] = [await s.frame(0), await s.frame(1)];
    assert.deepEqual([f0.payload.pk, f1.payload.pk], ["1", "2"]);
    s.reply(f0, 200, "one");
    s.reply(f1, 200, "two");
    assert.deepEqual(await Promise.all([first, second]), ["one", "two"]);
    assert.equal(c.state, "open");
    await c.close();
  });

  test("a queued request that times out is not sent later", async () => {
    const s = await script();
    let release!: (token: string) => void;
    const c = client(s, { requestTimeout: 50, token: () => new Promise<string>((r) => (release = r)) });
    const q = c.stream("questions");
    await assert.rejects(q.retrieve("old"), { name: "ClientError", reason: "timeout" });
    release("t");
    const fresh = q.retrieve("new");
    const f = await s.frame(0);
    assert.equal(f.payload.pk, "new");
    s.reply(f, 200, null);
    await fresh;
    // Barrier: frames go out in order on one socket, so a late send of "old" would come before this one.
    const barrier = q.retrieve("barrier");
    const fb = await s.frame(1);
    assert.equal(fb.payload.pk, "barrier");
    s.reply(fb, 200, null);
    await barrier;
    assert.equal(s.frames.length, 2);
    await c.close();
  });

  test("close() rejects pending requests and later ones", async () => {
    const s = await script();
    const c = client(s);
    const q = c.stream("questions");
    const pending = assert.rejects(q.retrieve("1"), { name: "ClientError", reason: "closed" });
    await s.frame(0);
    await c.close();
    await pending;
    await assert.rejects(q.retrieve("2"), { name: "ClientError", reason: "closed" });
    assert.equal(c.state, "closed");
  });

  test("the token can go as a subprotocol", async () => {
    const s = await script();
    const c = client(s, { token: "abc", tokenTransport: "subprotocol" });
    await s.until(() => s.requests.length === 1);
    assert.equal(s.requests[0]!.headers["sec-websocket-protocol"], "wsbridge.v1,bearer.abc");
    assert.equal(new URL(s.requests[0]!.url!, "http://x").search, "");
    await c.close();
  });
});

describe("subscriptions", () => {
  test("events go to the subscription, status notifications to onStatus", async () => {
    const s = await script();
    const c = client(s);
    const events: SubscriptionEvent<{ id: string }>[] = [];
    const statuses: SubscriptionStatus[] = [];
    const sub = c
      .stream<{ id: string }>("questions")
      .subscribe({ action: "update", pk: "1" }, (e) => events.push(e), { onStatus: (st) => statuses.push(st) });
    const f = await s.frame(0);
    assert.deepEqual(f.payload, { action: "subscribe", pk: "1", data: { action: "update" }, request_id: f.payload.request_id });
    s.reply(f, 200, { action: "update", pk: "1" });
    assert.deepEqual(await sub.ready, { action: "update", pk: "1" });

    const id = f.payload.request_id;
    s.send("questions", { action: "update", pk: "1", data: { id: "1" }, model: "polls.v1.Question", request_id: id });
    s.send("choices", { action: "update", pk: "1", data: { id: "x" }, request_id: id }); // other stream: dropped
    s.send("questions", { action: "update", pk: "1", data: { id: "y" }, request_id: "nobody" }); // unknown: dropped
    s.send("questions", { action: "subscribe", data: null, errors: ["Backend unavailable."], response_status: 503, request_id: id });
    s.send("questions", { action: "subscribe", data: { action: "update", resumed: true }, errors: [], response_status: 200, request_id: id });
    await s.until(() => statuses.length === 2);
    assert.deepEqual(events, [{ stream: "questions", action: "update", pk: "1", data: { id: "1" }, model: "polls.v1.Question" }]);
    assert.deepEqual(statuses, [
      { kind: "interrupted", response_status: 503, errors: ["Backend unavailable."] },
      { kind: "resumed", data: { action: "update", resumed: true }, recovered: false },
    ]);

    const done = sub.unsubscribe();
    const u = await s.frame(1);
    assert.deepEqual(u.payload.data, { request_id: id });
    // Events after unsubscribe() are not delivered, even before its reply.
    s.send("questions", { action: "update", pk: "1", data: { id: "late" }, request_id: id });
    s.reply(u, 200, { request_ids: [id] });
    await done;
    assert.equal(sub.active, false);
    assert.equal(events.length, 1);
    await c.close();
  });

  test("no filter subscribes to every action", async () => {
    const s = await script();
    const c = client(s);
    c.stream("questions").subscribe({}, () => {});
    const f = await s.frame(0);
    assert.deepEqual(f.payload.data, { action: ["create", "update", "delete"] });
    assert.equal("pk" in f.payload, false);
    await c.close();
  });

  test("a refused subscription rejects ready and ends", async () => {
    const s = await script();
    const c = client(s);
    const sub = c.stream("nope").subscribe({ action: "create" }, () => assert.fail("event"));
    s.reply(await s.frame(0), 404, null, ["Unknown stream."]);
    await assert.rejects(sub.ready, { name: "BridgeError", response_status: 404 });
    assert.equal(sub.active, false);
    await sub.unsubscribe(); // nothing to do
    // Barrier: an unsubscribe frame would have gone out before this request.
    const barrier = c.stream("questions").retrieve("barrier");
    const fb = await s.frame(1);
    assert.equal(fb.payload.action, "retrieve");
    s.reply(fb, 200, null);
    await barrier;
    assert.equal(s.frames.length, 2);
    await c.close();
  });

  test("unsubscribe tolerates 404", async () => {
    const s = await script();
    const c = client(s);
    const sub = c.stream("questions").subscribe({ action: "create" }, () => {});
    s.reply(await s.frame(0), 200, { action: "create" });
    await sub.ready;
    const done = sub.unsubscribe();
    s.reply(await s.frame(1), 404, null, ["Not found."]);
    await done;
    await c.close();
  });

  test("after a reconnect, subscriptions are renewed with a new request_id and stale events are dropped", async () => {
    let s = await script();
    const port = (s.server.address() as { port: number }).port;
    const tokens: number[] = [];
    const closes: number[] = [];
    const c = client(s, { token: () => String(tokens.push(tokens.length + 1)), onClose: (i) => closes.push(i.code) });
    const events: unknown[] = [];
    const statuses: string[] = [];
    const sub = c.stream("questions").subscribe({ action: ["create", "delete"] }, (e) => events.push(e.data), {
      onStatus: (st) => statuses.push(st.kind),
    });
    const first = await s.frame(0);
    s.reply(first, 200, { action: ["create", "delete"] });
    await sub.ready;

    // A request in flight when the connection drops fails; one made afterwards waits for the next connection.
    const inFlight = c.stream("questions").retrieve("1");
    await s.frame(1);
    await s.close();
    await assert.rejects(inFlight, { name: "ClientError", reason: "disconnected" });
    const queued = c.stream<string>("questions").retrieve("2");

    s = await script(port);
    const renewed = await s.frame(0);
    assert.equal(renewed.payload.action, "subscribe");
    assert.deepEqual(renewed.payload.data, { action: ["create", "delete"] });
    assert.notEqual(renewed.payload.request_id, first.payload.request_id);
    const retried = await s.frame(1);
    assert.equal(retried.payload.pk, "2");
    s.reply(retried, 200, "two");
    assert.equal(await queued, "two");
    s.reply(renewed, 200, { action: ["create", "delete"] });
    await s.until(() => statuses.length === 2);
    assert.deepEqual(statuses, ["disconnected", "resubscribed"]);
    assert.deepEqual(tokens, [1, 2]);
    assert.equal(new URL(s.requests[0]!.url!, "http://x").searchParams.get("token"), "2");
    assert.equal(closes.length, 1);

    s.send("questions", { action: "create", pk: "1", data: "stale", request_id: first.payload.request_id });
    s.send("questions", { action: "create", pk: "1", data: "fresh", request_id: renewed.payload.request_id });
    await s.until(() => events.length === 1);
    assert.deepEqual(events, ["fresh"]);
    await c.close();
  });

  test("failed reconnect attempts report one disconnected per lost connection, and go to onError", async (t) => {
    let s = await script();
    const port = (s.server.address() as { port: number }).port;
    let attempts = 0;
    class Counting extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        attempts++;
      }
    }
    const statuses: string[] = [];
    const closes: number[] = [];
    const errors: string[] = [];
    let opens = 0;
    const c = client(s, {
      WebSocket: Counting,
      onOpen: () => opens++,
      onClose: (i) => closes.push(i.code),
      onError: (e) => errors.push(String((e as Error).message)),
    });
    t.after(() => c.close());
    const sub = c.stream("questions").subscribe({ action: "create" }, () => {}, { onStatus: (st) => statuses.push(st.kind) });
    s.reply(await s.frame(0), 200, { action: "create" });
    await sub.ready;
    assert.equal(attempts, 1);

    // The server goes away: attempts find nothing listening (ECONNREFUSED)...
    await s.close();
    await waitFor(() => attempts >= 3, "two refused attempts");
    // ...then a server that refuses the handshake with 503, as a bridge that is shutting down does.
    const refusing = createServer();
    let refused = 0;
    refusing.on("upgrade", (_request: IncomingMessage, socket: Duplex) => {
      refused++;
      socket.end("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    });
    await new Promise<void>((resolve) => refusing.listen(port, "127.0.0.1", resolve));
    await waitFor(() => refused >= 2, "two refused handshakes");
    await new Promise((resolve) => refusing.close(resolve));

    s = await script(port);
    const renewed = await s.frame(0);
    s.reply(renewed, 200, { action: "create" });
    await s.until(() => statuses.includes("resubscribed"));
    assert.deepEqual(statuses, ["disconnected", "resubscribed"]);
    assert.deepEqual(closes, [1006], "onClose: the connection that opened, not the failed attempts");
    assert.equal(opens, 2);
    assert.equal(c.state, "open");
    // Every failed attempt went to onError, saying why, without the token.
    assert.equal(errors.length, attempts - 2);
    assert.match(errors[0]!, /^Could not connect to ws:\/\/127\.0\.0\.1:\d+\/ws: .*ECONNREFUSED.* \(close 1006\)\.$/);
    assert(errors.some((e) => /Unexpected server response: 503/.test(e)), errors.join("\n"));
  });

  test("a renewal refused with 503 is retried", async () => {
    let s = await script();
    const port = (s.server.address() as { port: number }).port;
    const statuses: string[] = [];
    const events: unknown[] = [];
    const c = client(s);
    const sub = c.stream("questions").subscribe({ action: "create" }, (e) => events.push(e.data), {
      onStatus: (st) => statuses.push(st.kind),
    });
    s.reply(await s.frame(0), 200, { action: "create" });
    await sub.ready;
    await s.close();
    s = await script(port);
    s.reply(await s.frame(0), 503, null, ["The bridge has not discovered its backends yet."]);
    const renewed = await s.frame(1);
    assert.equal(renewed.payload.action, "subscribe");
    s.reply(renewed, 200, { action: "create" });
    await s.until(() => statuses.length === 3);
    assert.deepEqual(statuses, ["disconnected", "interrupted", "resubscribed"]);
    assert.equal(sub.active, true);
    s.send("questions", { action: "create", pk: "1", data: "new", request_id: renewed.payload.request_id });
    await s.until(() => events.length === 1);
    await c.close();
  });

  test("a subscription made while disconnected is sent once on connect", async () => {
    const s = await script();
    let release!: (token: string) => void;
    const c = client(s, { token: () => new Promise<string>((r) => (release = r)) });
    const sub = c.stream("questions").subscribe({ action: "create" }, () => {});
    release("t");
    const f = await s.frame(0);
    assert.equal(f.payload.action, "subscribe");
    s.reply(f, 200, { action: "create" });
    await sub.ready;
    // Barrier: a second subscribe frame would have gone out before this request.
    const barrier = c.stream("questions").retrieve("barrier");
    const fb = await s.frame(1);
    assert.equal(fb.payload.action, "retrieve");
    s.reply(fb, 200, null);
    await barrier;
    assert.equal(s.frames.length, 2);
    await c.close();
  });

  test("close() ends subscriptions", async () => {
    const s = await script();
    const c = client(s);
    const sub = c.stream("questions").subscribe({ action: "create" }, () => {});
    await s.frame(0);
    await c.close();
    await assert.rejects(sub.ready, { name: "ClientError", reason: "closed" });
    assert.equal(sub.active, false);
  });
});

describe("offsets and resume", () => {
  test("a renewal resumes after the last offset delivered, and says whether it recovered", async () => {
    let s = await script();
    const port = (s.server.address() as { port: number }).port;
    const c = client(s);
    const events: SubscriptionEvent<string>[] = [];
    const statuses: SubscriptionStatus[] = [];
    const sub = c.stream<string>("questions").subscribe({ action: "update" }, (e) => events.push(e), {
      onStatus: (st) => statuses.push(st),
    });
    const first = await s.frame(0);
    assert.deepEqual(first.payload.data, { action: "update" }, "no since before any offset");
    s.reply(first, 200, { action: "update", offset: "e:10" });
    assert.deepEqual(await sub.ready, { action: "update", offset: "e:10" });
    assert.equal(sub.offset, "e:10");
    s.send("questions", { action: "update", pk: "1", data: "a", model: "m", offset: "e:11", request_id: first.payload.request_id });
    await s.until(() => events.length === 1);
    assert.deepEqual(events[0], { stream: "questions", action: "update", pk: "1", data: "a", model: "m", offset: "e:11" });
    assert.equal(sub.offset, "e:11");

    // Reconnected: the renewal asks for what came after e:11; the replay follows the reply.
    await s.close();
    s = await script(port);
    const renewed = await s.frame(0);
    assert.deepEqual(renewed.payload.data, { action: "update", since: "e:11" });
    s.reply(renewed, 200, { action: "update", offset: "e:11", recovered: true });
    s.send("questions", { action: "update", pk: "1", data: "missed", offset: "e:12", request_id: renewed.payload.request_id });
    await s.until(() => events.length === 2);
    assert.deepEqual(statuses, [{ kind: "disconnected" }, { kind: "resubscribed", recovered: true }]);
    assert.equal(events[1]!.data, "missed");
    assert.equal(sub.offset, "e:12");

    // Again, and this time the history no longer reaches back: recovered false, and the next
    // renewal resumes from the new position the reply gave.
    await s.close();
    s = await script(port);
    const lost = await s.frame(0);
    assert.deepEqual(lost.payload.data, { action: "update", since: "e:12" });
    s.reply(lost, 200, { action: "update", offset: "e:90", recovered: false });
    await s.until(() => statuses.length === 4);
    assert.deepEqual(statuses.slice(2), [{ kind: "disconnected" }, { kind: "resubscribed", recovered: false }]);
    assert.equal(sub.offset, "e:90");
    await s.close();
    s = await script(port);
    assert.deepEqual((await s.frame(0)).payload.data, { action: "update", since: "e:90" });
    await c.close();
  });

  test("since in the filter goes with the first subscribe, and ready tells whether it recovered", async () => {
    const s = await script();
    const c = client(s);
    const sub = c.stream("questions").subscribe({ action: "create", pk: "3", since: "e:5" }, () => {});
    const f = await s.frame(0);
    assert.deepEqual(f.payload, { action: "subscribe", pk: "3", data: { action: "create", since: "e:5" }, request_id: f.payload.request_id });
    assert.equal(sub.offset, "e:5");
    s.reply(f, 200, { action: "create", pk: "3", offset: "e:7", recovered: false });
    assert.deepEqual(await sub.ready, { action: "create", pk: "3", offset: "e:7", recovered: false });
    assert.equal(sub.offset, "e:7");
    await c.close();
  });

  test("a resumed notice carries recovered and moves the offset; a renewal after it resumes from there", async () => {
    let s = await script();
    const port = (s.server.address() as { port: number }).port;
    const c = client(s);
    const statuses: SubscriptionStatus[] = [];
    const sub = c.stream("questions").subscribe({ action: "delete" }, () => {}, { onStatus: (st) => statuses.push(st) });
    const f = await s.frame(0);
    s.reply(f, 200, { action: "delete", offset: "e:1" });
    await sub.ready;
    const id = f.payload.request_id;
    s.send("questions", { action: "subscribe", data: null, errors: ["Subscription interrupted: x"], response_status: 503, request_id: id });
    s.send("questions", { action: "subscribe", data: { action: "delete", offset: "e:1", recovered: true, resumed: true }, errors: [], response_status: 200, request_id: id });
    s.send("questions", { action: "subscribe", data: null, errors: ["Subscription interrupted: y"], response_status: 503, request_id: id });
    s.send("questions", { action: "subscribe", data: { action: "delete", offset: "e:40", recovered: false, resumed: true }, errors: [], response_status: 200, request_id: id });
    await s.until(() => statuses.length === 4);
    assert.deepEqual(
      statuses.filter((st) => st.kind === "resumed").map((st) => st.kind === "resumed" && st.recovered),
      [true, false],
    );
    assert.equal(sub.offset, "e:40");
    await s.close();
    s = await script(port);
    assert.deepEqual((await s.frame(0)).payload.data, { action: "delete", since: "e:40" });
    await c.close();
  });

  test("events of a stream without offsets leave the offset alone and renewals without since", async () => {
    let s = await script();
    const port = (s.server.address() as { port: number }).port;
    const c = client(s);
    const events: SubscriptionEvent<string>[] = [];
    const statuses: SubscriptionStatus[] = [];
    const sub = c.stream<string>("old").subscribe({ action: "create" }, (e) => events.push(e), { onStatus: (st) => statuses.push(st) });
    const f = await s.frame(0);
    s.reply(f, 200, { action: "create" });
    await sub.ready;
    s.send("old", { action: "create", pk: "1", data: "x", request_id: f.payload.request_id });
    await s.until(() => events.length === 1);
    assert.equal("offset" in events[0]!, false);
    assert.equal(sub.offset, undefined);
    await s.close();
    s = await script(port);
    const renewed = await s.frame(0);
    assert.deepEqual(renewed.payload.data, { action: "create" });
    s.reply(renewed, 200, { action: "create" });
    await s.until(() => statuses.length === 2);
    assert.deepEqual(statuses[1], { kind: "resubscribed", recovered: false });
    await c.close();
  });
});

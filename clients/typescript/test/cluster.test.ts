// The client against the cluster of docs/deploy.md (the program scripts/cluster runs): NATS,
// two backend replicas, two bridges behind a TCP balancer. A bridge dies: the clients it served
// reconnect through the balancer to the other bridge and renew their subscriptions.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { WebSocket } from "ws";
import { connect } from "@wsbridge/client";
import type { Client, SubscriptionEvent, SubscriptionStatus } from "@wsbridge/client";
import type { Question } from "../examples/polls.js";
import { Service, repoRoot } from "./harness.js";

/** What the cluster program's -json line says. */
interface Proc {
  name: string;
  pid: number;
  addr: string;
  url: string;
}
interface Description {
  url: string;
  /** The cluster program's: SIGHUP restarts the processes that have exited. */
  pid: number;
  bridges: Proc[];
  backends: Proc[];
}

let dir = "";
let cluster: Service | undefined;
let desc: Description;
const clients: Client[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wsbridge-cluster-"));
  await promisify(execFile)(
    "go",
    ["build", "-o", dir + "/", "./cmd/bridge", "./examples/backend", "./internal/cluster/cmd/cluster"],
    { cwd: repoRoot(), maxBuffer: 1 << 24 },
  );
  [cluster, desc] = await startCluster("data");
});

/** Starts the cluster program on any free ports, its data in dir/data, and reads its -json line. */
async function startCluster(data: string): Promise<[Service, Description]> {
  const service = new Service("cluster", join(dir, "cluster"), [
    "-bridge-bin", join(dir, "bridge"),
    "-backend-bin", join(dir, "backend"),
    "-dir", join(dir, data),
    "-port", "0", "-bridge-ports", "0,0", "-backend-ports", "0,0", "-nats-port", "-1",
    "-json",
  ]);
  service.start();
  const [line] = await service.waitOutput(/^\{"url".*\}$/m);
  return [service, JSON.parse(line) as Description];
}

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await cluster?.stop(); // SIGTERM: the program stops every process it started
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Changes a question's text through a backend replica's REST API. */
async function setText(backend: Proc, pk: string, text: string): Promise<void> {
  const response = await fetch(`${backend.url}/${pk}`, {
    method: "PATCH",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ question_text: text }),
  });
  assert.equal(response.status, 200, await response.text());
}

describe("cluster", () => {
  test("a bridge dies: its clients reconnect to the other bridge and resubscribe", async () => {
    const response = await fetch(desc.backends[0]!.url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question_text: "Which bridge?" }),
    });
    const { id: pk } = (await response.json()) as Question;
    assert(typeof pk === "string");

    // Four clients through the balancer, which alternates: two on each bridge.
    const watchers: { c: Client; texts: string[]; statuses: SubscriptionStatus["kind"][] }[] = [];
    for (let i = 0; i < 4; i++) {
      const c = connect(desc.url, { WebSocket, reconnectDelay: 50, maxReconnectDelay: 500 });
      clients.push(c);
      const texts: string[] = [];
      const statuses: SubscriptionStatus["kind"][] = [];
      const sub = c.stream<Question>("questions").subscribe(
        { action: "update", pk },
        (e: SubscriptionEvent<Question>) => void texts.push(e.data.question_text ?? ""),
        { onStatus: (s) => statuses.push(s.kind) },
      );
      await sub.ready;
      watchers.push({ c, texts, statuses });
    }

    process.kill(desc.bridges[0]!.pid, "SIGKILL");
    await until(() => watchers.filter((w) => w.statuses.includes("resubscribed")).length === 2, "two clients to resubscribe");
    for (const w of watchers) {
      if (w.statuses.length === 0) continue; // on the bridge that lives
      assert.equal(w.statuses[0], "disconnected", w.statuses.join());
      assert.equal(w.statuses.at(-1), "resubscribed", w.statuses.join());
      assert(w.statuses.slice(1, -1).every((s) => s === "disconnected"), w.statuses.join());
    }

    // Each client gets each change once, made through either replica.
    await setText(desc.backends[0]!, pk, "through backend-1");
    await setText(desc.backends[1]!, pk, "through backend-2");
    await until(() => watchers.every((w) => w.texts.length >= 2), "every client to get both changes");
    await setText(desc.backends[1]!, pk, "fence");
    await until(() => watchers.every((w) => w.texts.includes("fence")), "every client to get the fence");
    for (const w of watchers) {
      assert.deepEqual([...w.texts].sort(), ["fence", "through backend-1", "through backend-2"], w.texts.join());
      assert.equal(w.c.state, "open");
    }
  });
});

// A rolling deploy during a steady stream of changes written through both backend replicas:
// bridge-1 gets SIGTERM, drains and closes its connections with 1001; its clients reconnect
// through the balancer to bridge-2 and renew their subscriptions from the last offset they
// saw. bridge-1 is restarted, then bridge-2 goes the same way. Every subscription gets every
// change once, in order.
describe("cluster: rolling deploy", () => {
  let rolling: Service | undefined;
  let d: Description;
  const mine: Client[] = [];

  before(async () => {
    // A cluster of its own: the test above has killed a bridge of the first one.
    [rolling, d] = await startCluster("data-rolling");
  });

  after(async () => {
    await Promise.all(mine.map((c) => c.close()));
    await rolling?.stop();
  });

  test("SIGTERM one bridge, restart it, SIGTERM the other, during a steady stream of changes: per subscription none lost, none twice, in order", async (t) => {
    // Every (re)connect awaits the gate (through the token function): closed while the bridge
    // goes away, it holds its clients off so that changes certainly happen while they have no
    // connection, whatever the machine's speed.
    let gate: Promise<void> = Promise.resolve();
    let openGate = (): void => {};

    type Kind = "creates" | "changes";
    interface Watcher {
      c: Client;
      closes: number[];
      events: Record<Kind, SubscriptionEvent<Question>[]>;
      statuses: Record<Kind, SubscriptionStatus[]>;
    }
    const kinds: Kind[] = ["creates", "changes"];
    const watchers: Watcher[] = [];
    // Four clients through the balancer, one after the other: it alternates, two on each bridge.
    for (let i = 0; i < 4; i++) {
      const closes: number[] = [];
      const c = connect(d.url, {
        WebSocket,
        reconnectDelay: 50,
        maxReconnectDelay: 500,
        token: () => gate.then(() => undefined),
        onClose: (info) => void closes.push(info.code),
      });
      mine.push(c);
      const w: Watcher = { c, closes, events: { creates: [], changes: [] }, statuses: { creates: [], changes: [] } };
      const questions = c.stream<Question>("questions");
      const subs = [
        questions.subscribe({ action: "create" }, (e) => void w.events.creates.push(e), {
          onStatus: (s) => void w.statuses.creates.push(s),
        }),
        questions.subscribe({ action: ["create", "update"] }, (e) => void w.events.changes.push(e), {
          onStatus: (s) => void w.statuses.changes.push(s),
        }),
      ];
      await Promise.all(subs.map((s) => s.ready));
      watchers.push(w);
    }

    // The writer: one change at a time, so the events' order is the writes' order; each
    // question is created through one replica and updated through the other.
    const rest = async (backend: Proc, method: string, path: string, body: unknown): Promise<Question> => {
      const response = await fetch(backend.url + path, {
        method,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`${backend.name} ${method} ${path}: ${response.status} ${await response.text()}`);
      return (await response.json()) as Question;
    };
    const made: string[] = [];
    const write = async (text: string): Promise<void> => {
      const [first, second] = made.length % 2 === 0 ? [d.backends[0]!, d.backends[1]!] : [d.backends[1]!, d.backends[0]!];
      const q = await rest(first, "POST", "", { question_text: text });
      made.push(String(q.id));
      await rest(second, "PATCH", `/${q.id}`, { published: true });
    };
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) await write(`steady ${i}`);
    })();
    // One bridge's deploy: SIGTERM, and the clients it served (moving of them) reconnect to
    // the other bridge. The gate holds them off until five changes have been made meanwhile.
    const renewals = (w: Watcher, k: Kind) => w.statuses[k].filter((s) => s.kind === "resubscribed").length;
    const deploy = async (bridge: Proc, moving: number): Promise<void> => {
      const closes = watchers.map((w) => w.closes.length);
      const renewed = watchers.map((w) => Math.min(...kinds.map((k) => renewals(w, k))));
      gate = new Promise((resolve) => (openGate = resolve));
      process.kill(bridge.pid, "SIGTERM");
      const gone = () => watchers.filter((w, i) => w.closes.length > closes[i]!);
      await until(() => gone().length >= moving, `the clients of ${bridge.name} to lose their connection`);
      const down = made.length;
      await until(() => made.length >= down + 5, "changes while those clients have no connection");
      openGate();
      await until(
        () => watchers.filter((w, i) => kinds.every((k) => renewals(w, k) > renewed[i]!)).length >= moving,
        `the clients of ${bridge.name} to resubscribe`,
      );
      assert.equal(gone().length, moving, `clients that ${bridge.name} served`);
      const up = made.length;
      await until(() => watchers.every((w) => w.events.creates.length >= up + 5), `events after ${bridge.name}'s deploy`);
    };
    try {
      await until(() => watchers.every((w) => w.events.creates.length >= 5), "events before the deploy");
      // bridge-1 goes: its two clients move to bridge-2.
      await deploy(d.bridges[0]!, 2);
      // bridge-1 comes back (the cluster program restarts it on SIGHUP, on the same address),
      // then bridge-2 goes: all four clients move to the new bridge-1.
      const old = d.bridges[0]!.pid;
      process.kill(d.pid, "SIGHUP");
      const [line] = await rolling!.waitOutput(new RegExp(`^\\{"url".*"name":"bridge-1","pid":(?!${old}\\b)\\d+.*\\}$`, "m"));
      d = JSON.parse(line) as Description;
      await deploy(d.bridges[1]!, 4);
    } finally {
      openGate();
      stop = true;
      await writer;
    }
    // The barrier: once each subscription has the last change, it has had every earlier one.
    await write("final");
    const last = made.at(-1)!;
    await until(
      () =>
        watchers.every(
          (w) => w.events.creates.some((e) => e.pk === last) && w.events.changes.some((e) => e.pk === last && e.action === "update"),
        ),
      "every subscription to get the final change",
    );

    const want: Record<Kind, string[]> = {
      creates: made.map((pk) => `create ${pk}`),
      changes: made.flatMap((pk) => [`create ${pk}`, `update ${pk}`]),
    };
    let twice = 0;
    for (const [i, w] of watchers.entries()) {
      // Clients first on bridge-1 moved twice, the others once; each move a 1001 close.
      twice += w.closes.length === 2 ? 1 : 0;
      assert(w.closes.length === 1 || w.closes.length === 2, `client ${i}: closes ${w.closes.join()}`);
      assert(w.closes.every((code) => code === 1001), `client ${i}: close codes ${w.closes.join()}`);
      for (const k of kinds) {
        const got = w.events[k].map((e) => `${e.action} ${e.pk}`);
        const seen = new Set(got);
        const lost = want[k].filter((x) => !seen.has(x));
        const dups = got.length - seen.size;
        assert.equal(lost.length, 0, `client ${i} ${k}: ${lost.length} of ${want[k].length} lost: ${lost.join()}`);
        assert.equal(dups, 0, `client ${i} ${k}: ${dups} duplicated`);
        assert.deepEqual(got, want[k], `client ${i} ${k}: out of order`);
        // An offset is the event's, whichever bridge sent it.
        assert.deepEqual(
          w.events[k].map((e) => e.offset),
          watchers[0]!.events[k].map((e) => e.offset),
          `client ${i} ${k}: offsets differ from client 0's`,
        );
        assert(w.events[k].every((e) => typeof e.offset === "string" && e.offset !== ""), `client ${i} ${k}: an event without offset`);
        // Per move: disconnected, then one renewal that recovered the changes made meanwhile.
        const statuses = w.statuses[k].map((s) => JSON.stringify(s));
        const move = [JSON.stringify({ kind: "disconnected" }), JSON.stringify({ kind: "resubscribed", recovered: true })];
        assert.deepEqual(statuses, w.closes.flatMap(() => move), `client ${i} ${k}`);
      }
      assert.equal(w.c.state, "open", `client ${i}`);
    }
    assert.equal(twice, 2, "clients that moved twice (first on bridge-1)");
    t.diagnostic(`${made.length} questions created and updated, through both replicas alternately`);
  });
});

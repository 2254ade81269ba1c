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
  cluster = new Service("cluster", join(dir, "cluster"), [
    "-bridge-bin", join(dir, "bridge"),
    "-backend-bin", join(dir, "backend"),
    "-dir", join(dir, "data"),
    "-port", "0", "-bridge-ports", "0,0", "-backend-ports", "0,0", "-nats-port", "-1",
    "-json",
  ]);
  cluster.start();
  const [line] = await cluster.waitOutput(/^\{"url".*\}$/m);
  desc = JSON.parse(line) as Description;
});

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

// Builds the bridge and the example polls backend, and runs them as child processes on
// port 0 (each says its address in its log). The bridge writes 64-bit ids as numbers
// (-int64-as-number), as these clients expect from Django REST framework.
"use strict";
const { execFile, spawn } = require("node:child_process");
const { existsSync, mkdtempSync, rmSync } = require("node:fs");
const { tmpdir } = require("node:os");
const { dirname, join } = require("node:path");
const { promisify } = require("node:util");

/** How long any awaited condition may take before the test fails; generous for loaded CI. */
const DEADLINE_MS = 30_000;

function repoRoot() {
  let dir = process.cwd();
  while (!existsSync(join(dir, "go.mod"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("no go.mod above the working directory");
    dir = parent;
  }
  return dir;
}

/** A child process whose output is kept for waits and error messages. */
class Service {
  constructor(name, binary, args) {
    this.name = name;
    this.log = "";
    this.watchers = new Set();
    this.child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (chunk) => {
      this.log = (this.log + chunk.toString()).slice(-65536);
      for (const w of this.watchers) w();
    };
    this.child.stdout.on("data", keep);
    this.child.stderr.on("data", keep);
    this.exited = new Promise((resolve) =>
      this.child.once("exit", () => {
        resolve();
        for (const w of this.watchers) w();
      }),
    );
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first match of re in the output; rejects if the process exits first. */
  waitOutput(re) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(() => reject(new Error(`${this.name} did not write ${re}; it said:\n${this.log}`))), DEADLINE_MS);
      const done = (settle) => {
        clearTimeout(timer);
        this.watchers.delete(check);
        settle();
      };
      const check = () => {
        const m = this.log.match(re);
        if (m) done(() => resolve(m));
        else if (!this.running) done(() => reject(new Error(`${this.name} exited; it said:\n${this.log}`)));
      };
      this.watchers.add(check);
      check();
    });
  }

  async stop() {
    if (!this.running) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The example backend and a bridge in front of it. */
async function startStack() {
  const dir = mkdtempSync(join(tmpdir(), "wsbridge-compat-"));
  const services = [];
  const stop = async () => {
    await Promise.all(services.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await promisify(execFile)("go", ["build", "-o", dir + "/", "./cmd/bridge", "./examples/backend"], {
      cwd: repoRoot(),
      maxBuffer: 1 << 24,
    });
    const backend = new Service("backend", join(dir, "backend"), [
      "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-db", join(dir, "polls.db"),
    ]);
    services.push(backend);
    const [, grpcAddr] = await backend.waitOutput(/msg=serving grpc=(\S+)/);
    const bridge = new Service("bridge", join(dir, "bridge"), ["-listen", "127.0.0.1:0", "-backend", grpcAddr, "-int64-as-number"]);
    services.push(bridge);
    const [, port] = await bridge.waitOutput(/msg="bridge listening" ws=ws:\/\/127\.0\.0\.1:(\d+)\/ws/);
    await waitUntil(`the bridge's /readyz\n${bridge.log}`, async () => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
      } catch {
        return false; // not listening yet
      }
    });
    return { host: `127.0.0.1:${port}`, url: `ws://127.0.0.1:${port}/ws`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Polls cond until it holds, failing after DEADLINE_MS. */
async function waitUntil(what, cond) {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Collects messages; take(pred) resolves with the first (past or future) one matching, and removes it. */
class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    this.items.push(item);
    for (const w of [...this.waiters]) w();
  }

  take(what, pred) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.items)}`));
      }, DEADLINE_MS);
      const check = () => {
        const i = this.items.findIndex(pred);
        if (i < 0) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve(this.items.splice(i, 1)[0]);
      };
      this.waiters.push(check);
      check();
    });
  }
}

module.exports = { startStack, waitUntil, Inbox };

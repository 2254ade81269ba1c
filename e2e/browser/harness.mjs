// Test harness: builds and starts the example backend and the bridge as processes on
// loopback (on port 0: each says its address in its log), launches Debian's chromium
// through playwright-core, and gives a plain WebSocket client (the `ws` package) to play
// "another client".
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import WebSocket from "ws";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../..");
export const screenshotDir = join(here, "screenshots");
export const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

// binaries builds the backend and the bridge once per test file into dir, unless
// BACKEND_BIN and BRIDGE_BIN name prebuilt ones (scripts/test-browser builds them once).
function binaries(dir) {
  let backend = process.env.BACKEND_BIN;
  let bridge = process.env.BRIDGE_BIN;
  if (!backend) {
    backend = join(dir, "backend");
    execFileSync("go", ["build", "-o", backend, "./examples/backend"], { cwd: repoRoot, stdio: "inherit" });
  }
  if (!bridge) {
    bridge = join(dir, "bridge");
    execFileSync("go", ["build", "-o", bridge, "./cmd/bridge"], { cwd: repoRoot, stdio: "inherit" });
  }
  return { backend, bridge };
}

// A started process whose output is kept for failure messages.
class Proc {
  constructor(name, bin, args) {
    this.name = name;
    this.output = "";
    this.child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.exited = new Promise((done) => this.child.on("exit", (code, signal) => done({ code, signal })));
    for (const s of [this.child.stdout, this.child.stderr]) s.on("data", (d) => { this.output += d; });
  }
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

// waitOutput waits until proc writes something matching re, and returns the match. Services
// listen on port 0 and log their address: a port picked ahead could be taken by another
// process before the service binds it.
async function waitOutput(re, proc, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = proc.output.match(re);
    if (m) return m;
    if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited: ${proc.output}`);
    if (Date.now() > deadline) throw new Error(`${proc.name} did not write ${re} within ${timeoutMs} ms: ${proc.output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitReady(url, proc, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited: ${proc.output}`);
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms: ${proc.output}`);
}

// Stack is a backend, bridges in front of it, and a browser.
export class Stack {
  constructor() {
    this.tmp = mkdtempSync(join(tmpdir(), "wsbridge-browser-"));
    this.procs = [];
    this.sockets = [];
    this.context = null;
  }

  async startBackend() {
    this.bins = binaries(this.tmp);
    const proc = new Proc("backend", this.bins.backend, [
      "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-db", join(this.tmp, "polls.db"),
    ]);
    this.procs.push(proc);
    [, this.backendAddr] = await waitOutput(/msg=serving grpc=(\S+)/, proc);
    return this;
  }

  // startBridge starts a bridge with extra flags and returns its http base URL.
  async startBridge(...flags) {
    const proc = new Proc("bridge", this.bins.bridge, [
      "-listen", "127.0.0.1:0", "-backend", this.backendAddr, ...flags,
    ]);
    this.procs.push(proc);
    const [, port] = await waitOutput(/msg="bridge listening" ws=ws:\/\/127\.0\.0\.1:(\d+)\/ws/, proc);
    const base = `http://127.0.0.1:${port}`;
    await waitReady(base + "/readyz", proc);
    return base;
  }

  async browser() {
    if (!this.context) {
      if (!existsSync(chromiumPath)) throw new Error(`no chromium at ${chromiumPath}`);
      this.context = await chromium.launchPersistentContext(join(this.tmp, "profile"), {
        executablePath: chromiumPath,
        headless: true,
        viewport: { width: 1366, height: 768 },
        args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync"],
      });
    }
    return this.context;
  }

  async page() {
    const ctx = await this.browser();
    const page = await ctx.newPage();
    page.on("pageerror", (err) => { (page.errors ||= []).push(err); });
    return page;
  }

  // client opens a plain WebSocket to a bridge: "another client" for the page to watch.
  async client(base) {
    const c = await WsClient.open(base.replace(/^http/, "ws") + "/ws");
    this.sockets.push(c);
    return c;
  }

  async close() {
    for (const s of this.sockets) s.close();
    if (this.context) await this.context.close().catch(() => {});
    for (const p of this.procs.reverse()) await p.stop();
    rmSync(this.tmp, { recursive: true, force: true });
  }

  logs() {
    return this.procs.map((p) => `--- ${p.name}\n${p.output}`).join("\n");
  }
}

// WsClient sends request frames and waits for the reply with the same request_id.
export class WsClient {
  static open(url) {
    return new Promise((done, fail) => {
      const ws = new WebSocket(url);
      ws.once("open", () => done(new WsClient(ws)));
      ws.once("error", fail);
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.seq = 0;
    this.waiting = new Map();
    ws.on("message", (raw) => {
      const frame = JSON.parse(String(raw));
      const id = frame.payload?.request_id;
      const w = this.waiting.get(id);
      if (w && "response_status" in frame.payload) {
        this.waiting.delete(id);
        w(frame);
      }
    });
  }

  request(stream, payload) {
    const id = `node${++this.seq}`;
    return new Promise((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`no reply to ${JSON.stringify(payload)}`)), 10000);
      this.waiting.set(id, (f) => { clearTimeout(timer); done(f); });
      this.ws.send(JSON.stringify({ stream, payload: { ...payload, request_id: id } }));
    });
  }

  close() {
    this.ws.close();
  }
}

export async function screenshot(page, name) {
  mkdirSync(screenshotDir, { recursive: true });
  const file = join(screenshotDir, name);
  await page.screenshot({ path: file });
  return file;
}

// Builds the bridge and the example backend once, and runs them as child processes on free ports.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

/** The repository root: the nearest directory above the working directory with a go.mod. */
export function repoRoot(): string {
  let dir = process.cwd();
  while (!existsSync(join(dir, "go.mod"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("no go.mod above the working directory");
    dir = parent;
  }
  return dir;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address !== "object") throw new Error("no port");
  return address.port;
}

/** A child process whose output is kept (the last 64 KiB) for error messages. */
export class Service {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  log = "";

  constructor(
    readonly name: string,
    readonly binary: string,
    readonly args: string[],
  ) {}

  start(): void {
    const child = spawn(this.binary, this.args, { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-65536);
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    this.#child = child;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** SIGTERM (the services shut down cleanly on it), then SIGKILL after 10 s. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

export async function waitReady(url: string, service: Service, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const response = await fetch(url);
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    if (!service.running) throw new Error(`${service.name} exited before ${url} was ready; it said:\n${service.log}`);
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${ms} ms; ${service.name} said:\n${service.log}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The example backend and a bridge in front of it. */
export class Stack {
  readonly backend: Service;
  readonly bridge: Service;

  private constructor(
    readonly dir: string,
    readonly bridgePort: number,
    backendPort: number,
    restPort: number,
  ) {
    this.backend = new Service("backend", join(dir, "backend"), [
      "-grpc-addr", `127.0.0.1:${backendPort}`,
      "-http-addr", `127.0.0.1:${restPort}`,
      "-db", join(dir, "polls.db"),
    ]);
    this.bridge = new Service("bridge", join(dir, "bridge"), [
      "-listen", `127.0.0.1:${bridgePort}`,
      "-backend", `127.0.0.1:${backendPort}`,
    ]);
  }

  get url(): string {
    return `ws://127.0.0.1:${this.bridgePort}/ws`;
  }

  /** Builds both binaries into a temporary directory and starts them. */
  static async start(): Promise<Stack> {
    const dir = await mkdtemp(join(tmpdir(), "wsbridge-ts-"));
    const stack = new Stack(dir, await freePort(), await freePort(), await freePort());
    try {
      await promisify(execFile)("go", ["build", "-o", dir + "/", "./cmd/bridge", "./examples/backend"], {
        cwd: repoRoot(),
        maxBuffer: 1 << 24,
      });
      stack.backend.start();
      await stack.startBridge();
    } catch (error) {
      await stack.stop();
      throw error;
    }
    return stack;
  }

  async startBridge(): Promise<void> {
    this.bridge.start();
    await waitReady(`http://127.0.0.1:${this.bridgePort}/readyz`, this.bridge);
  }

  async restartBridge(): Promise<void> {
    await this.bridge.stop();
    await this.startBridge();
  }

  async restartBackend(): Promise<void> {
    await this.backend.stop();
    this.backend.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.bridge.stop(), this.backend.stop()]);
    await rm(this.dir, { recursive: true, force: true });
  }
}

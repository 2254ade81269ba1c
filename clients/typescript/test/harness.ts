// Builds the bridge and the example backend once, and runs them as child processes on free ports.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
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

/** A child process whose output is kept (the last 64 KiB) for error messages. */
export class Service {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  /** The output of the current process, for waitOutput. */
  #current = "";
  #watchers = new Set<() => void>();
  log = "";

  constructor(
    readonly name: string,
    readonly binary: string,
    public args: string[],
  ) {}

  start(): void {
    const child = spawn(this.binary, this.args, { stdio: ["ignore", "pipe", "pipe"] });
    this.#current = "";
    const keep = (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-65536);
      this.#current = (this.#current + chunk.toString()).slice(-65536);
      for (const w of this.#watchers) w();
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    this.#exited = new Promise((resolve) =>
      child.once("exit", () => {
        resolve();
        for (const w of this.#watchers) w();
      }),
    );
    this.#child = child;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Waits until the current process writes a line matching re; fails if it exits first. */
  waitOutput(re: RegExp, ms = 60_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this.#current.match(re);
        if (match) done(() => resolve(match));
        else if (!this.running) done(() => reject(new Error(`${this.name} exited before it wrote ${re}; it said:\n${this.log}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`${this.name} did not write ${re} within ${ms} ms; it said:\n${this.log}`))), ms);
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.#watchers.delete(check);
        settle();
      };
      this.#watchers.add(check);
      check();
    });
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

/**
 * The example backend and a bridge in front of it. Both first listen on port 0 (a port picked
 * ahead by the test could be taken by another process before the child binds it) and say their
 * address in their log; restarts reuse the address, as a redeployed service would.
 */
export class Stack {
  readonly backend: Service;
  readonly bridge: Service;
  #backendAddr = "";
  #backendHTTP = "";
  #bridgePort = 0;

  private constructor(readonly dir: string) {
    this.backend = new Service("backend", join(dir, "backend"), []);
    this.bridge = new Service("bridge", join(dir, "bridge"), []);
  }

  get bridgePort(): number {
    return this.#bridgePort;
  }

  /** The backend's REST API, e.g. http://127.0.0.1:9091: changes made behind the bridge's back. */
  get backendHTTP(): string {
    return `http://${this.#backendHTTP}`;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.#bridgePort}/ws`;
  }

  /** Builds both binaries into a temporary directory and starts them. */
  static async start(): Promise<Stack> {
    const dir = await mkdtemp(join(tmpdir(), "wsbridge-ts-"));
    const stack = new Stack(dir);
    try {
      await promisify(execFile)("go", ["build", "-o", dir + "/", "./cmd/bridge", "./examples/backend"], {
        cwd: repoRoot(),
        maxBuffer: 1 << 24,
      });
      await stack.#startBackend("127.0.0.1:0");
      await stack.startBridge();
    } catch (error) {
      await stack.stop();
      throw error;
    }
    return stack;
  }

  async #startBackend(grpcAddr: string): Promise<void> {
    this.backend.args = ["-grpc-addr", grpcAddr, "-http-addr", "127.0.0.1:0", "-db", join(this.dir, "polls.db")];
    this.backend.start();
    const [, addr, http] = await this.backend.waitOutput(/msg=serving grpc=(\S+) http=(\S+)/);
    this.#backendAddr = addr!;
    this.#backendHTTP = http!;
  }

  /** Starts the bridge: on a free port the first time, then on the same one. */
  async startBridge(): Promise<void> {
    const listen = `127.0.0.1:${this.#bridgePort}`;
    this.bridge.args = ["-listen", listen, "-backend", this.#backendAddr];
    this.bridge.start();
    const [, port] = await this.bridge.waitOutput(/msg="bridge listening" ws=ws:\/\/127\.0\.0\.1:(\d+)\/ws/);
    this.#bridgePort = Number(port);
    try {
      await waitReady(`http://127.0.0.1:${this.#bridgePort}/readyz`, this.bridge);
    } catch (error) {
      throw new Error(`${(error as Error).message}\nbackend said:\n${this.backend.log}`);
    }
  }

  async restartBridge(): Promise<void> {
    await this.bridge.stop();
    await this.startBridge();
  }

  /** Stops the backend and starts it again on the same address, waiting until it serves. */
  async restartBackend(): Promise<void> {
    await this.backend.stop();
    await this.#startBackend(this.#backendAddr);
  }

  async stop(): Promise<void> {
    await Promise.all([this.bridge.stop(), this.backend.stop()]);
    await rm(this.dir, { recursive: true, force: true });
  }
}

import { BridgeError, ClientError } from "./errors.js";
import type { ErrorItem, EventAction, EventPayload, ListMeta, Pk, ReplyPayload, RequestPayload } from "./protocol.js";

/** The subprotocol offered beside a bearer token. */
export const WIRE_PROTOCOL = "wsbridge.v1";

/**
 * The part of the WebSocket API the client uses: the browser's, Node 22's global, or the `ws` package's.
 * The handlers take `never` so that every implementation's own event types fit; the client only
 * assigns them, with handlers that read `data`, `code` and `reason`.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** A token, or a function called on every (re)connect that returns one (null/undefined for none). */
export type TokenSource = string | (() => string | null | undefined | Promise<string | null | undefined>);

export interface ConnectOptions {
  /** Authenticates every connection. */
  token?: TokenSource;
  /**
   * How the token is sent: as a query parameter (default; browsers cannot set headers)
   * or as the subprotocol `bearer.<token>`.
   */
  tokenTransport?: "query" | "subprotocol";
  /** The query parameter's name. Default "token". */
  tokenParam?: string;
  /** The WebSocket class; default the global one. Node 20 has none: pass `WebSocket` of the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Milliseconds a request waits for its reply, queueing included. Default 10000. */
  requestTimeout?: number;
  /** How many requests may wait for the connection to open. Default 1000. */
  maxQueue?: number;
  /** Reconnect after a dropped connection. Default true. */
  reconnect?: boolean;
  /** The first reconnect delay in ms, doubled after each failed attempt. Default 500. */
  reconnectDelay?: number;
  /** The cap of the reconnect delay in ms. Default 30000. */
  maxReconnectDelay?: number;
  /** Called when a connection opens. */
  onOpen?: () => void;
  /**
   * Called when an open connection closes, by the server or the network (not by client.close()).
   * Not called for a connect attempt that never opened: that goes to onError.
   */
  onClose?: (info: { code: number; reason: string; willReconnect: boolean }) => void;
  /**
   * Called when a connect attempt fails before the connection opens: the token function threw, the
   * TCP connection was refused, or the bridge refused the handshake (401, 403, 503). The client
   * retries with backoff (unless reconnect is false).
   */
  onError?: (error: unknown) => void;
}

export type ConnectionState = "connecting" | "open" | "closed";

export interface ListParams {
  page?: number;
  page_size?: number;
}

export interface ListResult<T> {
  items: T[];
  meta: ListMeta;
}

export interface SubscribeFilter {
  /** The changes to receive; default all three. */
  action?: EventAction | EventAction[];
  /** Only changes of this resource. */
  pk?: Pk;
  /**
   * Start after this offset, e.g. a Subscription.offset saved by an earlier session: the changes
   * since then that the backend still has come first. The reply's recovered says whether it reached
   * back that far; if not, reload what you show.
   */
  since?: string;
}

/** The data of a successful subscribe reply: the filter as sent. */
export interface SubscribeReplyData {
  action: EventAction | EventAction[];
  pk?: Pk;
  /** On a stream with offsets: every event after this position is delivered. */
  offset?: string;
  /** With since: true when every event after it follows, false when some are lost (reload). */
  recovered?: boolean;
}

export interface SubscriptionEvent<T> {
  stream: string;
  action: EventAction;
  pk?: Pk;
  /** The resource after the change; for a delete, as it was. */
  data: T;
  /** The message type, e.g. "polls.v1.Question". */
  model?: string;
  /** The event's position, on a stream with offsets; opaque. */
  offset?: string;
}

/** What happened to a live subscription, besides its events. */
export type SubscriptionStatus =
  /** The bridge lost the upstream of this subscription; events may be missed until "resumed". */
  | { kind: "interrupted"; response_status: number; errors: ErrorItem[] }
  /**
   * The bridge has the upstream again. recovered: the events of the interruption follow, none lost;
   * false: some may be lost (or the stream has no offsets), reload what you show.
   */
  | { kind: "resumed"; data: unknown; recovered: boolean }
  /**
   * The open connection dropped; the subscription is renewed when the client reconnects. Once per
   * lost connection: failed reconnect attempts in between report nothing here.
   */
  | { kind: "disconnected" }
  /**
   * Renewed on a new connection, resuming after the last offset seen. recovered: the events missed in
   * between follow, none lost; false: they were missed (the stream has no offsets, or the backend's
   * history no longer reaches back): reload what you show.
   */
  | { kind: "resubscribed"; recovered: boolean }
  /** Ended for good: renewing it failed. */
  | { kind: "failed"; error: Error };

export interface SubscribeOptions {
  onStatus?: (status: SubscriptionStatus) => void;
}

export interface Subscription {
  /** Resolves with the subscribe reply's data; rejects if the subscription was refused or ended first. */
  readonly ready: Promise<SubscribeReplyData>;
  /** True until unsubscribed, closed or failed. */
  readonly active: boolean;
  /**
   * On a stream with offsets, the position after which every event has been delivered: the last
   * event's offset, or the last reply's. A renewal resumes from it; save it to pass as since later.
   */
  readonly offset: string | undefined;
  /** Ends the subscription. No event is delivered after it is called. */
  unsubscribe(): Promise<void>;
}

/** A resource: the typed actions of one stream. T is what the bridge returns, W what create/update/patch take. */
export interface Stream<T, W = Partial<T>> {
  readonly name: string;
  create(data: W): Promise<T>;
  retrieve(pk: Pk): Promise<T>;
  /** Replaces the whole resource. */
  update(pk: Pk, data: W): Promise<T>;
  /** Changes the fields present in data. */
  patch(pk: Pk, data: W): Promise<T>;
  delete(pk: Pk): Promise<void>;
  list(params?: ListParams): Promise<ListResult<T>>;
  /** A custom action, e.g. action("publish", {pk}); resolves with the reply's data. */
  action<R = unknown>(name: string, params?: { pk?: Pk; data?: unknown }): Promise<R>;
  subscribe(filter: SubscribeFilter, onEvent: (event: SubscriptionEvent<T>) => void, options?: SubscribeOptions): Subscription;
}

const OPEN = 1;
const ALL_ACTIONS: EventAction[] = ["create", "update", "delete"];

interface Pending {
  stream: string;
  action: string;
  resolve: (reply: ReplyPayload) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  sent: boolean;
}

class LiveSubscription implements Subscription {
  /** The request_id of the current subscribe request; events carry it. */
  requestId = "";
  confirmed = false;
  active = true;
  /** A renewal the bridge refused with 503 is retried with backoff. */
  retries = 0;
  /** The last position delivered, sent as since by every (re)subscribe. */
  offset: string | undefined;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  readonly ready: Promise<SubscribeReplyData>;
  resolveReady!: (data: SubscribeReplyData) => void;
  rejectReady!: (error: Error) => void;

  constructor(
    readonly stream: string,
    readonly filter: SubscribeFilter,
    readonly onEvent: (event: SubscriptionEvent<never>) => void,
    readonly onStatus: (status: SubscriptionStatus) => void,
    readonly unsubscribe: () => Promise<void>,
  ) {
    this.offset = filter.since;
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // Nobody has to await ready: its rejection is also reported through onStatus or the caller's action.
    this.ready.catch(() => {});
  }
}

/** A client of one bridge: one WebSocket, reconnected as needed, shared by all streams. */
export class Client {
  readonly url: string;
  readonly #opts: ConnectOptions;
  readonly #requestTimeout: number;
  readonly #maxQueue: number;
  readonly #reconnectDelay: number;
  readonly #maxReconnectDelay: number;
  readonly #WebSocket: WebSocketConstructor;
  #ws: WebSocketLike | null = null;
  #state: ConnectionState = "connecting";
  #nextId = 0;
  #attempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** Requests waiting for their reply, by request_id, sent or queued. */
  readonly #pending = new Map<string, Pending>();
  /** Frames waiting for the connection to open. */
  #queue: { id: string; text: string }[] = [];
  /** Live subscriptions by the request_id of their current subscribe request. */
  readonly #subscriptions = new Map<string, LiveSubscription>();
  #closed: Promise<void> | undefined;

  constructor(url: string, options: ConnectOptions = {}) {
    this.url = url;
    this.#opts = options;
    this.#requestTimeout = options.requestTimeout ?? 10_000;
    this.#maxQueue = options.maxQueue ?? 1000;
    this.#reconnectDelay = options.reconnectDelay ?? 500;
    this.#maxReconnectDelay = options.maxReconnectDelay ?? 30_000;
    const ws = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!ws) throw new TypeError("No global WebSocket: pass one as the WebSocket option (e.g. from the ws package).");
    this.#WebSocket = ws;
    void this.#connect();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The typed actions of one stream, e.g. client.stream<Question>("questions"). */
  stream<T, W = Partial<T>>(name: string): Stream<T, W> {
    const call = async (action: string, pk?: Pk, data?: unknown) => (await this.#request(name, { action, pk, data })).data;
    return {
      name,
      create: async (data) => (await call("create", undefined, data)) as T,
      retrieve: async (pk) => (await call("retrieve", pk)) as T,
      update: async (pk, data) => (await call("update", pk, data)) as T,
      patch: async (pk, data) => (await call("patch", pk, data)) as T,
      delete: async (pk) => {
        await call("delete", pk, {});
      },
      list: async (params = {}) => {
        const reply = await this.#request(name, { action: "list", data: params });
        return { items: (reply.data ?? []) as T[], meta: reply.meta ?? { page: 0, page_size: 0 } };
      },
      action: async <R>(action: string, params: { pk?: Pk; data?: unknown } = {}) =>
        (await call(action, params.pk, params.data)) as R,
      subscribe: (filter, onEvent, options = {}) => this.#subscribe(name, filter, onEvent, options),
    };
  }

  /** Closes the connection for good: pending requests reject with ClientError "closed", subscriptions end. */
  close(): Promise<void> {
    if (this.#closed) return this.#closed;
    this.#state = "closed";
    clearTimeout(this.#reconnectTimer);
    const error = () => new ClientError("closed", "The client was closed.");
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(error());
    this.#queue = [];
    for (const sub of [...this.#subscriptions.values()]) this.#end(sub, error());
    const ws = this.#ws;
    this.#ws = null;
    this.#closed = new Promise((resolve) => {
      if (!ws || ws.readyState > OPEN) return resolve();
      ws.onmessage = null;
      ws.onclose = () => resolve();
      ws.close(1000);
    });
    return this.#closed;
  }

  async #connect(): Promise<void> {
    this.#state = "connecting";
    let ws: WebSocketLike;
    try {
      const token = await this.#token();
      if (this.#closed) return; // closed while the token was fetched
      const url = new URL(this.url);
      let protocols: string[] | undefined;
      // The bridge answers with the other offered protocol and never echoes the token, and a
      // handshake whose offered protocols get no answer fails, so offer one more.
      if (token && this.#opts.tokenTransport === "subprotocol") protocols = [WIRE_PROTOCOL, `bearer.${token}`];
      else if (token) url.searchParams.set(this.#opts.tokenParam ?? "token", token);
      ws = new this.#WebSocket(url.toString(), protocols);
    } catch (error) {
      this.#opts.onError?.(error);
      this.#reconnectLater();
      return;
    }
    this.#ws = ws;
    // Whether this socket opened: one that never did (TCP refused, handshake answered 401, 403 or
    // 503) is a failed attempt, not a lost connection.
    let opened = false;
    let failure: unknown;
    // An error is always followed by a close event, which is handled there; ws needs a listener anyway.
    ws.onerror = (event: unknown) => {
      failure = event;
    };
    ws.onopen = () => {
      if (ws !== this.#ws) return;
      opened = true;
      this.#state = "open";
      this.#attempt = 0;
      // Renew the subscriptions of earlier connections first; queued subscribe requests go with the queue.
      const queued = new Set(this.#queue.map((q) => q.id));
      for (const sub of [...this.#subscriptions.values()]) {
        if (!queued.has(sub.requestId)) this.#sendSubscribe(sub);
      }
      const queue = this.#queue;
      this.#queue = [];
      for (const { id, text } of queue) {
        const pending = this.#pending.get(id);
        if (pending) pending.sent = true;
        ws.send(text);
      }
      this.#opts.onOpen?.();
    };
    ws.onmessage = (event: { data: unknown }) => {
      if (ws === this.#ws && typeof event.data === "string") this.#receive(event.data);
    };
    ws.onclose = (event: { code: number; reason: string }) => {
      if (ws !== this.#ws) return;
      this.#ws = null;
      this.#state = "connecting";
      const willReconnect = this.#opts.reconnect ?? true;
      if (!opened) {
        // Nothing was sent on it and no subscription lived on it: report the attempt, not a disconnect.
        this.#opts.onError?.(connectError(this.url, event.code, failure));
        if (willReconnect) this.#reconnectLater();
        else this.close();
        return;
      }
      for (const [id, pending] of [...this.#pending]) {
        if (pending.sent) {
          this.#settle(id);
          pending.reject(new ClientError("disconnected", `The connection closed (${event.code}) before the reply came.`));
        }
      }
      for (const sub of this.#subscriptions.values()) if (sub.confirmed) sub.onStatus({ kind: "disconnected" });
      this.#opts.onClose?.({ code: event.code, reason: event.reason, willReconnect });
      if (willReconnect) this.#reconnectLater();
      else this.close();
    };
  }

  async #token(): Promise<string | null | undefined> {
    const token = this.#opts.token;
    return typeof token === "function" ? await token() : token;
  }

  #reconnectLater(): void {
    if (this.#state === "closed") return;
    this.#reconnectTimer = setTimeout(() => void this.#connect(), this.#backoff(this.#attempt++));
  }

  /** Exponential backoff with jitter: half the delay fixed, half random, capped. */
  #backoff(attempt: number): number {
    const delay = Math.min(this.#maxReconnectDelay, this.#reconnectDelay * 2 ** attempt);
    return delay / 2 + (Math.random() * delay) / 2;
  }

  #request(stream: string, payload: Omit<RequestPayload, "request_id">, id = String(++this.#nextId)): Promise<ReplyPayload> {
    return new Promise((resolve, reject) => {
      if (this.#state === "closed") return reject(new ClientError("closed", "The client is closed."));
      const open = this.#ws !== null && this.#state === "open";
      if (!open && this.#queue.length >= this.#maxQueue) {
        return reject(new ClientError("queue_full", `${this.#queue.length} requests are already waiting for the connection.`));
      }
      const timer = setTimeout(() => {
        this.#settle(id);
        reject(new ClientError("timeout", `${stream} ${payload.action}: no reply within ${this.#requestTimeout} ms.`));
      }, this.#requestTimeout);
      this.#pending.set(id, { stream, action: payload.action, resolve, reject, timer, sent: open });
      const text = JSON.stringify({ stream, payload: { ...payload, request_id: id } });
      if (open) this.#ws!.send(text);
      else this.#queue.push({ id, text });
    });
  }

  /** Forgets a pending request (and its queued frame) and returns it. */
  #settle(id: string): Pending | undefined {
    const pending = this.#pending.get(id);
    if (!pending) return undefined;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (!pending.sent) this.#queue = this.#queue.filter((q) => q.id !== id);
    return pending;
  }

  #receive(text: string): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!isObject(frame) || typeof frame.stream !== "string" || !isObject(frame.payload)) return;
    const stream = frame.stream;
    const payload = frame.payload;
    if (payload.request_id === null || payload.request_id === undefined) return;
    const id = String(payload.request_id);
    const isReply = "response_status" in payload;
    if (isReply) {
      const pending = this.#settle(id);
      if (pending) {
        const reply = payload as unknown as ReplyPayload;
        if (reply.response_status >= 200 && reply.response_status < 300) {
          // A subscribe reply's offset is taken now, not when the promise settles: the events
          // that follow it may arrive in the same read, before then.
          const sub = this.#subscriptions.get(id);
          if (sub && sub.stream === stream) sub.offset = offsetOf(reply.data) ?? sub.offset;
          pending.resolve(reply);
        }
        else pending.reject(new BridgeError(stream, pending.action, reply.response_status, reply.errors ?? []));
        return;
      }
    }
    // Not a reply to a request: an event or a status notification of a subscription, or stale.
    const sub = this.#subscriptions.get(id);
    if (!sub || sub.stream !== stream) return;
    if (isReply) {
      const note = payload as unknown as ReplyPayload;
      if (note.response_status >= 200 && note.response_status < 300) {
        sub.offset = offsetOf(note.data) ?? sub.offset;
        sub.onStatus({ kind: "resumed", data: note.data, recovered: recoveredOf(note.data) });
      } else sub.onStatus({ kind: "interrupted", response_status: note.response_status, errors: note.errors ?? [] });
    } else {
      const event = payload as unknown as EventPayload;
      const delivered: SubscriptionEvent<never> = { stream, action: event.action, data: event.data as never };
      if (event.pk !== undefined) delivered.pk = event.pk;
      if (event.model !== undefined) delivered.model = event.model;
      if (typeof event.offset === "string") delivered.offset = sub.offset = event.offset;
      sub.onEvent(delivered);
    }
  }

  #subscribe<T>(
    stream: string,
    filter: SubscribeFilter,
    onEvent: (event: SubscriptionEvent<T>) => void,
    options: SubscribeOptions,
  ): Subscription {
    const sub: LiveSubscription = new LiveSubscription(stream, filter, onEvent, options.onStatus ?? (() => {}), () =>
      this.#unsubscribe(sub),
    );
    if (this.#state === "closed") this.#end(sub, new ClientError("closed", "The client is closed."));
    else this.#sendSubscribe(sub);
    return sub;
  }

  /** Sends (or queues) a subscribe request for sub under a new request_id. */
  #sendSubscribe(sub: LiveSubscription): void {
    clearTimeout(sub.retryTimer);
    const id = String(++this.#nextId);
    this.#subscriptions.delete(sub.requestId);
    sub.requestId = id;
    this.#subscriptions.set(id, sub);
    const data: { action: EventAction | EventAction[]; since?: string } = { action: sub.filter.action ?? ALL_ACTIONS };
    // Resume after the last event delivered: the bridge replays what this connection missed.
    if (sub.offset !== undefined) data.since = sub.offset;
    const payload = sub.filter.pk === undefined ? { action: "subscribe", data } : { action: "subscribe", pk: sub.filter.pk, data };
    this.#request(sub.stream, payload, id).then(
      (reply) => {
        if (sub.requestId !== id || !sub.active) return;
        sub.retries = 0;
        if (sub.confirmed) return sub.onStatus({ kind: "resubscribed", recovered: recoveredOf(reply.data) });
        sub.confirmed = true;
        sub.resolveReady(reply.data as SubscribeReplyData);
      },
      (error: Error) => {
        // A dropped connection is no failure: the subscription is renewed on the next one.
        if (sub.requestId !== id || !sub.active || (error instanceof ClientError && error.reason === "disconnected")) return;
        if (sub.confirmed && error instanceof BridgeError && error.response_status === 503) {
          // A bridge that has just (re)started and not found its backends yet, or a backend that is down.
          sub.onStatus({ kind: "interrupted", response_status: error.response_status, errors: error.errors });
          sub.retryTimer = setTimeout(() => {
            if (this.#state === "open") this.#sendSubscribe(sub); // else the next connection renews it
          }, this.#backoff(sub.retries++));
          return;
        }
        const wasConfirmed = sub.confirmed;
        this.#end(sub, error);
        if (wasConfirmed) sub.onStatus({ kind: "failed", error });
      },
    );
  }

  async #unsubscribe(sub: LiveSubscription): Promise<void> {
    if (!sub.active) return;
    const id = sub.requestId;
    const queued = this.#pending.get(id)?.sent === false;
    this.#end(sub, new ClientError("closed", "Unsubscribed before the subscription was confirmed."));
    // The bridge knows the subscription only if its subscribe request went out on the current connection.
    if (queued || this.#state !== "open") return;
    try {
      await this.#request(sub.stream, { action: "unsubscribe", data: { request_id: id } });
    } catch (error) {
      // The bridge has no such subscription (any more), or the connection ended, and with it the
      // subscription: it is gone either way.
      const gone =
        (error instanceof BridgeError && error.response_status === 404) ||
        (error instanceof ClientError && (error.reason === "disconnected" || error.reason === "closed"));
      if (!gone) throw error;
    }
  }

  /** Ends sub locally: no event is delivered to it from now on. */
  #end(sub: LiveSubscription, error: Error): void {
    sub.active = false;
    clearTimeout(sub.retryTimer);
    this.#subscriptions.delete(sub.requestId);
    this.#settle(sub.requestId)?.reject(error);
    if (!sub.confirmed) sub.rejectReady(error);
  }
}

/** The error of a connect attempt whose socket never opened. url carries no token: it is added later. */
function connectError(url: string, code: number, failure: unknown): Error {
  // The ws package's error event says why (ECONNREFUSED, "Unexpected server response: 503"); a browser's says nothing.
  const detail = isObject(failure) && typeof failure.message === "string" && failure.message ? `: ${failure.message}` : "";
  const cause = isObject(failure) && failure.error instanceof Error ? failure.error : undefined;
  return new Error(`Could not connect to ${url}${detail} (close ${code}).`, cause ? { cause } : undefined);
}

/** The offset of a subscribe reply's or notice's data, if it has one. */
function offsetOf(data: unknown): string | undefined {
  return isObject(data) && typeof data.offset === "string" ? data.offset : undefined;
}

/** Whether a subscribe reply or notice says nothing was lost; absent (no offsets) is false. */
function recoveredOf(data: unknown): boolean {
  return isObject(data) && data.recovered === true;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Connects to a bridge's WebSocket endpoint, e.g. connect("wss://example.com/ws", {token}). */
export function connect(url: string, options?: ConnectOptions): Client {
  return new Client(url, options);
}

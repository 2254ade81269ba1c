import type { ErrorItem, FieldErrors } from "./protocol.js";

/** A reply whose response_status is not 2xx. */
export class BridgeError extends Error {
  override readonly name = "BridgeError";
  readonly stream: string;
  readonly action: string;
  readonly response_status: number;
  readonly errors: ErrorItem[];

  constructor(stream: string, action: string, responseStatus: number, errors: ErrorItem[]) {
    super(`${stream} ${action}: ${responseStatus} ${describe(errors)}`);
    this.stream = stream;
    this.action = action;
    this.response_status = responseStatus;
    this.errors = errors;
  }

  /** The field errors of all entries merged: {question_text: ["This field is required."]}. */
  get fieldErrors(): FieldErrors {
    const fields: FieldErrors = {};
    for (const e of this.errors) {
      if (typeof e === "string") continue;
      for (const [field, messages] of Object.entries(e)) {
        (fields[field] ??= []).push(...messages);
      }
    }
    return fields;
  }
}

function describe(errors: ErrorItem[]): string {
  const parts = errors.map((e) =>
    typeof e === "string"
      ? e
      : Object.entries(e)
          .map(([field, messages]) => `${field}: ${[messages].flat().join(" ")}`)
          .join("; "),
  );
  return parts.join("; ") || "(no details)";
}

/** Why a request failed without a reply. */
export type ClientErrorReason =
  /** No reply within the request timeout. */
  | "timeout"
  /** Too many requests waiting for the connection. */
  | "queue_full"
  /** The connection dropped after the request was sent; it may or may not have been carried out. */
  | "disconnected"
  /** client.close() was called (or, for a subscription's ready, it was unsubscribed first). */
  | "closed";

/** A request that failed on the client's side: no reply came. */
export class ClientError extends Error {
  override readonly name = "ClientError";
  readonly reason: ClientErrorReason;

  constructor(reason: ClientErrorReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

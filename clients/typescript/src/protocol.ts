// The frames of the wire protocol (Django channels-api's), as the bridge sends and receives them.

/** A primary key: int64 keys travel as JSON strings ("3"), other keys as they are. */
export type Pk = string | number;

/** The changes a subscription can ask for. */
export type EventAction = "create" | "update" | "delete";

/** Field validation errors: field name to messages, e.g. {question_text: ["This field is required."]}. */
export type FieldErrors = Record<string, string[]>;

/** One entry of a reply's errors: a message, or the field errors of a validation failure. */
export type ErrorItem = string | FieldErrors;

/** The scalars of a list reply's meta, e.g. {page: 1, page_size: 10, count: 42}. */
export interface ListMeta {
  page: number;
  page_size: number;
  count?: number;
  [key: string]: string | number | boolean | null | undefined;
}

/** The payload of a frame the client sends. */
export interface RequestPayload {
  action: string;
  pk?: Pk;
  data?: unknown;
  request_id: string;
}

/** The payload of a reply: one per request, and the subscription status notifications. */
export interface ReplyPayload {
  action: string;
  data: unknown;
  errors: ErrorItem[];
  response_status: number;
  request_id: string | number | null;
  meta?: ListMeta;
}

/** The payload of a subscription event (it has no response_status). */
export interface EventPayload {
  action: EventAction;
  pk?: Pk;
  data: unknown;
  model?: string;
  /** The event's position, on a stream with offsets: opaque, the since of a later subscribe. */
  offset?: string;
  request_id: string | number;
}

/** A frame: every message in both directions is {stream, payload} as JSON text. */
export interface Frame<P> {
  stream: string;
  payload: P;
}

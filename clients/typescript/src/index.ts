export { Client, connect } from "./client.js";
export type {
  ConnectOptions,
  ConnectionState,
  ListParams,
  ListResult,
  Stream,
  SubscribeFilter,
  SubscribeOptions,
  SubscribeReplyData,
  Subscription,
  SubscriptionEvent,
  SubscriptionStatus,
  TokenSource,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { BridgeError, ClientError } from "./errors.js";
export type { ClientErrorReason } from "./errors.js";
export type { ErrorItem, EventAction, FieldErrors, ListMeta, Pk } from "./protocol.js";
export type { ProtoNames, SnakeCase } from "./names.js";

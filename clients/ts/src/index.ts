/**
 * The Tavern client for browsers and Node: `TavernClient` (one connection)
 * and `ReconnectingClient` (one that comes back by itself), over WebSocket
 * with the subprotocol `tavern.v1`, and the protocol's types, generated
 * from `proto/tavern/v1/tavern.proto` (messages, their schemas, `ErrorCode`).
 */

export {
  type ConnectOptions,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type JoinOptions,
  type ListRoomsOptions,
  MAX_PENDING_REQUESTS,
  PROTOCOL_VERSION,
  TavernClient,
} from "./client.js";
export {
  type Closed,
  MAX_BUFFERED_EVENTS,
  type Reconnected,
  ReconnectingClient,
  type ReconnectingEvents,
  type ReconnectingOptions,
} from "./reconnect.js";
export { type Backoff, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
export {
  ConnectError,
  ConnectionClosedError,
  NotConnectedError,
  ProtocolError,
  RequestTimeoutError,
  TavernError,
  TooManyRequestsError,
} from "./errors.js";
export { type CloseInfo, SUBPROTOCOL, type WebSocketConstructor, type WebSocketLike } from "./socket.js";
export * from "./gen/tavern/v1/tavern_pb.js";
/** The schemas of the example room plugins' messages (`tavern.examples.v1`). */
export * as examples from "./gen/tavern/examples/v1/examples_pb.js";

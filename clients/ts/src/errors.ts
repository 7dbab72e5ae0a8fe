/**
 * What can go wrong talking to a Tavern server. Every error the client
 * raises is one of these classes, so callers can tell them apart with
 * `instanceof`.
 */

import { ErrorCode } from "./gen/tavern/v1/tavern_pb.js";

/** The server answered a request with `Error { code, message }`. */
export class TavernError extends Error {
  /** The server's error code. */
  readonly code: ErrorCode;
  /** The server's explanation, for humans (not for parsing). */
  readonly serverMessage: string;
  /** The request it answers; 0n for an error that answers none (usually fatal). */
  readonly requestId: bigint;

  constructor(code: ErrorCode, serverMessage: string, requestId: bigint) {
    super(`server error ${ErrorCode[code] ?? code} (request ${requestId}): ${serverMessage}`);
    this.name = "TavernError";
    this.code = code;
    this.serverMessage = serverMessage;
    this.requestId = requestId;
  }
}

/** No reply came within the request timeout (`ConnectOptions.requestTimeoutMs`). */
export class RequestTimeoutError extends Error {
  constructor(what: string, timeoutMs: number) {
    super(`no reply to ${what} within ${timeoutMs} ms (raise requestTimeoutMs if the server is slow)`);
    this.name = "RequestTimeoutError";
  }
}

/** The WebSocket could not be opened (refused, wrong URL, or the server did not select `tavern.v1`). */
export class ConnectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectError";
  }
}

/** The connection is closed (or closed while the request waited for its reply). */
export class ConnectionClosedError extends Error {
  /** The WebSocket close code (1006: dropped without a close frame). */
  readonly code: number;
  /** The close frame's reason, if any. */
  readonly reason: string;
  /** The server's fatal error that came before the close (OVERLOADED, IDLE_TIMEOUT, …), if one did. */
  readonly serverError: TavernError | undefined;

  constructor(code: number, reason: string, serverError?: TavernError) {
    const after = serverError === undefined ? "" : ` after ${serverError.message}`;
    super(`connection closed (code ${code}${reason ? `: ${reason}` : ""})${after}; connect again to go on`);
    this.name = "ConnectionClosedError";
    this.code = code;
    this.reason = reason;
    this.serverError = serverError;
  }
}

/** A `ReconnectingClient` request made while it is reconnecting: nothing was sent. */
export class NotConnectedError extends Error {
  constructor() {
    super("not connected (reconnecting): nothing was sent; send again after the `reconnected` event");
    this.name = "NotConnectedError";
  }
}

/** More requests wait for their reply than the client allows (`MAX_PENDING_REQUESTS`). */
export class TooManyRequestsError extends Error {
  constructor(limit: number) {
    super(`${limit} requests already wait for their reply: wait for some before sending more`);
    this.name = "TooManyRequestsError";
  }
}

/** The server sent something the protocol does not allow here (a text message, an undecodable frame, a wrong reply). */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

/**
 * The part of the WebSocket API the client uses: the browsers' native
 * `WebSocket` and the `ws` package's both have it.
 */

import { ConnectError } from "./errors.js";

/** The WebSocket subprotocol of Tavern protocol version 1. */
export const SUBPROTOCOL = "tavern.v1";

/** `WebSocket.OPEN`. */
const OPEN = 1;

/** A close event's fields. */
export interface CloseInfo {
  /** The WebSocket close code (1000 normal, 1006 dropped without a close frame, …). */
  code: number;
  /** The close frame's reason (the server says why it closed). */
  reason: string;
}

/** A WebSocket as the client uses it. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "error", listener: () => void): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close", listener: (event: CloseInfo) => void): void;
}

/** A WebSocket constructor, as `new WebSocket(url, protocols)`. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/**
 * The constructor to use: `given`, or else the global `WebSocket`.
 *
 * @throws ConnectError when there is neither (Node 20 has no global `WebSocket`).
 */
export function webSocketConstructor(given: unknown): WebSocketConstructor {
  const chosen = given ?? (globalThis as { WebSocket?: unknown }).WebSocket;
  if (typeof chosen !== "function") {
    throw new ConnectError(
      "no WebSocket implementation: pass one as options.WebSocket " +
        '(under Node before 22: `import { WebSocket } from "ws"`)',
    );
  }
  return chosen as WebSocketConstructor;
}

/** Whether `socket` can send. */
export function isOpen(socket: WebSocketLike): boolean {
  return socket.readyState === OPEN;
}

/**
 * Resolves once `socket` is open with the `tavern.v1` subprotocol.
 *
 * @throws ConnectError if it fails or closes first, or the server chose another subprotocol.
 */
export function opened(socket: WebSocketLike, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why: string): void => {
      if (!settled) {
        settled = true;
        reject(new ConnectError(`could not open ${url}: ${why}`));
      }
    };
    socket.addEventListener("open", () => {
      if (socket.protocol !== SUBPROTOCOL) {
        socket.close(1002, "subprotocol tavern.v1 required");
        fail(`the server chose subprotocol "${socket.protocol}", not ${SUBPROTOCOL}: is it a Tavern WebSocket port?`);
        return;
      }
      settled = true;
      resolve();
    });
    socket.addEventListener("error", () => fail("the WebSocket failed (is the server up, and the URL its --ws-addr?)"));
    socket.addEventListener("close", (event) =>
      fail(`closed during the handshake (code ${event.code}${event.reason ? `: ${event.reason}` : ""})`),
    );
  });
}

/** Raw bytes of a binary message's data (an ArrayBuffer, or a view of one); undefined for a text message. */
export function binaryData(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) {
    return new Uint8Array(data);
  }
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  return undefined;
}

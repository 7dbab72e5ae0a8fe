/** A WebSocket stand-in for unit tests: the test plays the server. */

import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";

import { type ClientMessage, ClientMessageSchema, ServerMessageSchema } from "../src/index.js";

type Listener = (event: { data?: unknown; code?: number; reason?: string }) => void;

/** See the module documentation; the latest one made is `FakeWebSocket.last`. */
export class FakeWebSocket {
  static last: FakeWebSocket | undefined;

  binaryType = "blob";
  readyState = 0;
  protocol = "";
  /** What the client sent, decoded. */
  readonly sent: ClientMessage[] = [];
  closedWith: { code?: number; reason?: string } | undefined;
  private readonly listeners = new Map<string, Listener[]>();

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeWebSocket.last = this;
  }

  addEventListener(type: string, listener: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  send(data: Uint8Array): void {
    this.sent.push(fromBinary(ClientMessageSchema, data));
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  /** The handshake succeeds with `protocol`. */
  open(protocol = "tavern.v1"): void {
    this.protocol = protocol;
    this.readyState = 1;
    this.fire("open", {});
  }

  /** The server sends `message`. */
  receive(message: MessageInitShape<typeof ServerMessageSchema>): void {
    const bytes = toBinary(ServerMessageSchema, create(ServerMessageSchema, message));
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    this.fire("message", { data: buffer });
  }

  /** The server sends a text message. */
  receiveText(text: string): void {
    this.fire("message", { data: text });
  }

  /** The connection closes. */
  serverClose(code: number, reason: string): void {
    this.readyState = 3;
    this.fire("close", { code, reason });
  }

  private fire(type: string, event: { data?: unknown; code?: number; reason?: string }): void {
    for (const listener of this.listeners.get(type) ?? []) {
      listener(event);
    }
  }
}

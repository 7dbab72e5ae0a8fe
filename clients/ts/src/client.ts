/**
 * `TavernClient`: one WebSocket connection to a Tavern server, speaking
 * protocol `tavern.v1` (one protobuf `ClientMessage` or `ServerMessage` per
 * binary WebSocket message).
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";

import {
  ClientMessageSchema,
  EnterWorldSchema,
  GoodbyeSchema,
  HelloSchema,
  JoinRoomSchema,
  LeaveRoomSchema,
  LeaveWorldSchema,
  ListRoomsSchema,
  MoveSchema,
  PingSchema,
  PositionSchema,
  QuickJoinSchema,
  RoomSendSchema,
  SendChatSchema,
  ServerMessageSchema,
} from "./gen/tavern/v1/tavern_pb.js";
import type {
  ClientMessage,
  Pong,
  RoomInfo,
  RoomJoined,
  RoomLeft,
  ServerMessage,
  Welcome,
  WorldEntered,
  WorldLeft,
} from "./gen/tavern/v1/tavern_pb.js";
import { ConnectionClosedError, ProtocolError, RequestTimeoutError, TavernError, TooManyRequestsError } from "./errors.js";
import { Listeners } from "./listeners.js";
import { type Collector, PendingRequests, single } from "./pending.js";
import { binaryData, type CloseInfo, isOpen, opened, SUBPROTOCOL, type WebSocketLike, webSocketConstructor } from "./socket.js";

/** The protocol version this client speaks (`Hello.protocol_version`). */
export const PROTOCOL_VERSION = 1;
/** How long a request waits for its reply unless `ConnectOptions.requestTimeoutMs` says otherwise. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/**
 * Most requests that may wait for their reply at once; a request beyond it
 * is rejected with `TooManyRequestsError` and not sent.
 */
export const MAX_PENDING_REQUESTS = 1024;

/** How to connect. */
export interface ConnectOptions {
  /**
   * The WebSocket constructor; default `globalThis.WebSocket` (browsers,
   * Node 22+). Under Node 20 pass the `ws` package's `WebSocket`. Loosely
   * typed: the browsers' and the `ws` package's typings differ.
   */
  WebSocket?: any;
  /** How long a request waits for its reply, ms (default `DEFAULT_REQUEST_TIMEOUT_MS`). */
  requestTimeoutMs?: number;
}

/** `TavernClient.join`'s options (see `JoinRoom` in the proto). */
export interface JoinOptions {
  /** The room's kind (a plugin registered on the server); empty or absent: "chat". */
  kind?: string;
  /** Given to the plugin when this join creates the room. */
  params?: Uint8Array;
  /** Given to the plugin's join attempt. */
  metadata?: Uint8Array;
  /** Recovery: the last seq seen of the room (with `epoch`). */
  sinceSeq?: bigint;
  /** Recovery: the room's epoch `sinceSeq` was seen in. */
  epoch?: bigint;
}

/** `TavernClient.listRooms`'s options (see `ListRooms` in the proto). */
export interface ListRoomsOptions {
  /** Only rooms of this kind. */
  kind?: string;
  /** Only rooms whose label has every `key=value` pair of this filter. */
  filter?: string;
  /** At most this many rooms (0 or absent: the server's limit). */
  limit?: number;
  /** Only rooms that take joiners now. */
  onlyOpen?: boolean;
}

type ClientBody = ClientMessage["body"];

/**
 * A connection to a Tavern server.
 *
 * Requests with a reply (`hello`, `join`, …) resolve with it, or reject with
 * a `TavernError` (the server's `Error`), a `RequestTimeoutError`, or a
 * `ConnectionClosedError` when the connection ends first; at most
 * `MAX_PENDING_REQUESTS` may wait at once. Every other server message
 * (chat, presence, plugin events, world updates, errors about requests
 * without a reply…) goes to the `onMessage` handlers. The client answers
 * the server's `Heartbeat` with a `Ping` by itself.
 */
export class TavernClient {
  private readonly pending: PendingRequests;
  private readonly messages = new Listeners<ServerMessage>();
  private readonly closes = new Listeners<CloseInfo>();
  private nextRequestId = 1n;
  private closeInfo: CloseInfo | undefined;
  /** The server's last error that answered no request: the reason it is closing the connection. */
  private fatal: TavernError | undefined;

  private constructor(
    private readonly socket: WebSocketLike,
    requestTimeoutMs: number,
  ) {
    this.pending = new PendingRequests(MAX_PENDING_REQUESTS, requestTimeoutMs);
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => this.closed({ code: event.code, reason: event.reason }));
  }

  /**
   * Opens a WebSocket to `url` (e.g. `ws://127.0.0.1:4002/`) offering the
   * subprotocol `tavern.v1`. Say `hello` next.
   *
   * @throws ConnectError if the socket cannot be opened.
   */
  static async connect(url: string, options: ConnectOptions = {}): Promise<TavernClient> {
    const WebSocketImpl = webSocketConstructor(options.WebSocket);
    const socket = new WebSocketImpl(url, SUBPROTOCOL);
    const client = new TavernClient(socket, options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
    await opened(socket, url);
    return client;
  }

  /** Whether the connection is open. */
  get isOpen(): boolean {
    return this.closeInfo === undefined && isOpen(this.socket);
  }

  /**
   * Says Hello as `name` (1-32 characters, unique on the server); with
   * `resumeToken` (a previous `Welcome.resumeToken`) it takes that session
   * back if the server still holds it (`Welcome.resumed`).
   *
   * @throws TavernError NAME_TAKEN, INVALID_NAME, UNAUTHENTICATED, …
   */
  hello(name: string, options: { token?: string; resumeToken?: string } = {}): Promise<Welcome> {
    const hello = create(HelloSchema, {
      protocolVersion: PROTOCOL_VERSION,
      name,
      token: options.token ?? "",
      resumeToken: options.resumeToken ?? "",
    });
    return this.request({ case: "hello", value: hello }, "Hello", single("welcome"));
  }

  /** Measures a round trip: resolves with the server's `Pong`. */
  ping(): Promise<Pong> {
    const ping = create(PingSchema, { clientTimeUs: nowUs() });
    return this.request({ case: "ping", value: ping }, "Ping", single("pong"));
  }

  /**
   * Joins `room` (creating it if nobody is in it). The result holds every
   * member, gathered from the `RoomMembers` frames that follow `RoomJoined`
   * in a big room. With `sinceSeq` and `epoch`, `RoomJoined.recovered` says
   * whether the missed events follow (as `onMessage` events).
   *
   * @throws TavernError INVALID_ROOM, ALREADY_IN_ROOM, ROOM_FULL, ROOM_KIND_MISMATCH, …
   */
  join(room: string, options: JoinOptions = {}): Promise<RoomJoined> {
    const join = create(JoinRoomSchema, {
      room,
      kind: options.kind ?? "",
      params: options.params ?? new Uint8Array(),
      metadata: options.metadata ?? new Uint8Array(),
      epoch: options.epoch ?? 0n,
    });
    if (options.sinceSeq !== undefined) {
      join.sinceSeq = options.sinceSeq;
    }
    return this.request({ case: "joinRoom", value: join }, `JoinRoom ${room}`, roomJoined());
  }

  /**
   * Leaves `room`.
   *
   * @throws TavernError NOT_IN_ROOM, …
   */
  leave(room: string): Promise<RoomLeft> {
    const leave = create(LeaveRoomSchema, { room });
    return this.request({ case: "leaveRoom", value: leave }, `LeaveRoom ${room}`, single("roomLeft"));
  }

  /**
   * Sends chat `text` to `room` without waiting. Returns the request id:
   * the sender's copy of the `ChatMessage` (or an `Error`) echoes it, as an
   * `onMessage` event.
   *
   * @throws ConnectionClosedError if the connection is closed.
   */
  chat(room: string, text: string): bigint {
    return this.send({ case: "sendChat", value: create(SendChatSchema, { room, text }) });
  }

  /**
   * Sends `op` and `data` to `room`'s plugin without waiting; returns the
   * request id (an `Error` about it echoes it, as an `onMessage` event).
   *
   * @throws ConnectionClosedError if the connection is closed.
   */
  roomSend(room: string, op: number, data: Uint8Array): bigint {
    return this.send({ case: "roomSend", value: create(RoomSendSchema, { room, op, data }) });
  }

  /**
   * Joins the fullest open room of `kind` whose label matches `filter`, or
   * a new one made with `params`; resolves as `join` does.
   *
   * @throws TavernError UNKNOWN_ROOM_KIND, INVALID_FILTER, JOIN_REJECTED, …
   */
  quickJoin(kind: string, filter = "", params: Uint8Array = new Uint8Array()): Promise<RoomJoined> {
    const quick = create(QuickJoinSchema, { kind, filter, params });
    return this.request({ case: "quickJoin", value: quick }, `QuickJoin ${kind}`, roomJoined());
  }

  /**
   * The public rooms, fullest first.
   *
   * @throws TavernError INVALID_FILTER, …
   */
  async listRooms(options: ListRoomsOptions = {}): Promise<RoomInfo[]> {
    const list = create(ListRoomsSchema, {
      kind: options.kind ?? "",
      filter: options.filter ?? "",
      limit: options.limit ?? 0,
      onlyOpen: options.onlyOpen ?? false,
    });
    const reply = await this.request({ case: "listRooms", value: list }, "ListRooms", single("roomList"));
    return reply.rooms;
  }

  /**
   * Enters `world` at `spawn` (or where the server picks); `WorldUpdate`s
   * follow as `onMessage` events, from the next tick.
   *
   * @throws TavernError INVALID_WORLD, ALREADY_IN_WORLD, WORLD_FULL, INVALID_POSITION, …
   */
  enterWorld(world: string, spawn?: { x: number; y: number }): Promise<WorldEntered> {
    const enter = create(EnterWorldSchema, { world });
    if (spawn !== undefined) {
      enter.spawn = create(PositionSchema, spawn);
    }
    return this.request({ case: "enterWorld", value: enter }, `EnterWorld ${world}`, single("worldEntered"));
  }

  /**
   * Asks the world to move this player's entity toward (`x`, `y`), facing
   * `heading` (radians), without waiting; `clientTick` must grow from Move
   * to Move (`WorldUpdate.ackClientTick` tells which one the world took).
   *
   * @throws ConnectionClosedError if the connection is closed.
   */
  move(x: number, y: number, heading: number, clientTick: number): bigint {
    return this.send({ case: "move", value: create(MoveSchema, { x, y, heading, clientTick }) });
  }

  /**
   * Leaves `world`.
   *
   * @throws TavernError NOT_IN_WORLD, …
   */
  leaveWorld(world: string): Promise<WorldLeft> {
    const leave = create(LeaveWorldSchema, { world });
    return this.request({ case: "leaveWorld", value: leave }, `LeaveWorld ${world}`, single("worldLeft"));
  }

  /**
   * Leaves for good: says Goodbye (the session ends at once, nothing is held
   * for a resume) and resolves when the server has closed the connection.
   *
   * @throws RequestTimeoutError if the server did not close within the request timeout (the client then closes).
   */
  goodbye(): Promise<void> {
    if (!this.isOpen) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        this.close();
        reject(new RequestTimeoutError("Goodbye (the server's close)", this.pending.timeoutMs));
      }, this.pending.timeoutMs);
      const stop = this.closes.add(() => {
        clearTimeout(timer);
        stop();
        resolve();
      });
      this.send({ case: "goodbye", value: create(GoodbyeSchema) });
    });
  }

  /**
   * Closes the connection (without Goodbye: the server holds the session
   * for a resume). Waiting requests are rejected with `ConnectionClosedError`.
   */
  close(): void {
    this.socket.close(1000, "closed by the client");
    this.closed({ code: 1000, reason: "closed by the client" });
  }

  /**
   * Drops the connection without Goodbye, as a page that goes away does: a
   * close frame with code 4000, and no waiting for the server's. The server
   * holds the session for a resume (`Welcome.resumeToken`).
   */
  drop(): void {
    this.socket.close(4000, "dropped without Goodbye");
    this.closed({ code: 4000, reason: "dropped without Goodbye" });
  }

  /**
   * Calls `handler` with every server message that is not the reply to a
   * waiting request: events, the echoes of `chat`, errors about requests
   * without a reply, `Heartbeat`s (already answered). Returns a function
   * that removes the handler.
   */
  onMessage(handler: (message: ServerMessage) => void): () => void {
    return this.messages.add(handler);
  }

  /** Calls `handler` once the connection has closed. Returns a function that removes the handler. */
  onClose(handler: (info: CloseInfo) => void): () => void {
    return this.closes.add(handler);
  }

  /** Sends `body` with a new request id and waits for its reply. */
  private request<T>(body: ClientBody, what: string, collect: Collector<T>): Promise<T> {
    if (!this.isOpen) {
      return Promise.reject(this.closedError());
    }
    if (this.pending.full) {
      return Promise.reject(new TooManyRequestsError(this.pending.limit));
    }
    const id = this.nextRequestId++;
    const reply = this.pending.wait(id, what, collect);
    try {
      this.send(body, id);
    } catch (error) {
      this.pending.cancel(id, error instanceof Error ? error : new Error(String(error)));
    }
    return reply;
  }

  /** Sends `body` with `requestId` (default: a new one); returns the id. */
  private send(body: ClientBody, requestId?: bigint): bigint {
    if (!this.isOpen) {
      throw this.closedError();
    }
    const id = requestId ?? this.nextRequestId++;
    this.socket.send(toBinary(ClientMessageSchema, create(ClientMessageSchema, { requestId: id, body })));
    return id;
  }

  private receive(data: unknown): void {
    const bytes = binaryData(data);
    if (bytes === undefined) {
      this.fail(1003, new ProtocolError("the server sent a text message; Tavern speaks binary messages only"));
      return;
    }
    let message: ServerMessage;
    try {
      message = fromBinary(ServerMessageSchema, bytes);
    } catch (error) {
      this.fail(1002, new ProtocolError(`undecodable ServerMessage: ${String(error)}`));
      return;
    }
    this.dispatch(message);
  }

  private dispatch(message: ServerMessage): void {
    const body = message.body;
    if (body.case === "heartbeat" && this.isOpen) {
      // Request id 0: its Pong answers nothing and is not delivered.
      this.send({ case: "ping", value: create(PingSchema, { clientTimeUs: nowUs() }) }, 0n);
    }
    if (body.case === "pong" && message.requestId === 0n) {
      return;
    }
    if (message.requestId !== 0n && this.pending.take(message)) {
      return;
    }
    if (body.case === "error" && message.requestId === 0n) {
      // Answers no request: the connection is failing (the server closes it next).
      this.fatal = new TavernError(body.value.code, body.value.message, 0n);
      this.pending.rejectAll(this.fatal);
    }
    this.messages.emit(message);
  }

  /** Closes the connection because the server broke the protocol. */
  private fail(code: number, error: Error): void {
    this.pending.rejectAll(error);
    this.socket.close(code, error.message.slice(0, 100));
    this.closed({ code, reason: error.message });
  }

  private closed(info: CloseInfo): void {
    if (this.closeInfo !== undefined) {
      return;
    }
    this.closeInfo = info;
    this.pending.rejectAll(new ConnectionClosedError(info.code, info.reason, this.fatal));
    this.closes.emit(info);
    this.messages.clear();
    this.closes.clear();
  }

  private closedError(): ConnectionClosedError {
    const info = this.closeInfo ?? { code: 1006, reason: "closing" };
    return new ConnectionClosedError(info.code, info.reason, this.fatal);
  }
}

/** Collects `RoomJoined` and the `RoomMembers` frames that complete its member list. */
function roomJoined(): Collector<RoomJoined> {
  let joined: RoomJoined | undefined;
  return (body) => {
    if (joined === undefined && body.case === "roomJoined") {
      joined = body.value;
    } else if (joined !== undefined && body.case === "roomMembers" && body.value.room === joined.room) {
      joined.members.push(...body.value.members);
    } else {
      return undefined;
    }
    // member_count 0: a server that predates it sends the whole list at once.
    const complete = joined.memberCount === 0 || joined.members.length >= joined.memberCount;
    return complete ? { done: true, value: joined } : { done: false };
  };
}

/** Microseconds since the Unix epoch. */
function nowUs(): bigint {
  return BigInt(Date.now()) * 1000n;
}

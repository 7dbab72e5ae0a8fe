/**
 * `ReconnectingClient`: a `TavernClient` that survives dropped connections,
 * as the Rust library's `client::Reconnecting`.
 */

import { type Backoff, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
import { type ConnectOptions, type JoinOptions, type ListRoomsOptions, TavernClient } from "./client.js";
import { ConnectError, ConnectionClosedError, NotConnectedError, RequestTimeoutError, TavernError } from "./errors.js";
import { ErrorCode } from "./gen/tavern/v1/tavern_pb.js";
import type {
  Pong,
  RoomInfo,
  RoomJoined,
  RoomLeft,
  ServerMessage,
  Welcome,
  WorldEntered,
  WorldLeft,
} from "./gen/tavern/v1/tavern_pb.js";
import { Listeners } from "./listeners.js";
import type { CloseInfo } from "./socket.js";

/** A reconnection's outcome: the `reconnected` event. */
export interface Reconnected {
  /**
   * Whether the server gave the old session back (`Welcome.resumed`): its
   * name, its seats and world entity held, the others told nothing.
   */
  resumed: boolean;
  /** Each room joined again, and whether it recovered what was missed (`RoomJoined.recovered`). */
  rooms: [room: string, recovered: boolean][];
  /** Connection attempts it took. */
  attempts: number;
}

/** The `closed` event: the client is done and will not reconnect. */
export interface Closed extends CloseInfo {
  /** Why, when it was not `close()` or `goodbye()`: the last attempt's error, or the server's fatal error. */
  error?: Error;
}

/** What a `ReconnectingClient` emits, by event name. */
export interface ReconnectingEvents {
  /** A server message, as `TavernClient.onMessage` delivers them. */
  message: ServerMessage;
  /** The connection dropped; reconnecting. */
  disconnected: CloseInfo;
  /** Back, before the events replayed by the rooms that recovered. */
  reconnected: Reconnected;
  /** For good: `close()`, `goodbye()`, every attempt failed, or a fatal error a reconnection cannot mend. */
  closed: Closed;
}

/** `ReconnectingClient.connect`'s options. */
export interface ReconnectingOptions extends ConnectOptions {
  /**
   * `Hello.token` (with `--auth token`): a string, or a function called
   * before each connection (to fetch a fresh one; if it throws, the client
   * gives up with its error).
   */
  token?: string | (() => string | Promise<string>);
  /** How attempts are spaced (default `DEFAULT_BACKOFF`). */
  backoff?: Partial<Backoff>;
  /**
   * The other nodes of a cluster (their WebSocket URLs): a reconnection
   * tries the URL it was on first, then each of these in turn, one per
   * attempt, so that the clients of a node that died come back on another.
   */
  fallbackUrls?: string[];
}

/** Most events kept while rejoining rooms, before `reconnected` is emitted; more fail the attempt. */
export const MAX_BUFFERED_EVENTS = 1 << 16;

/** How to join a room again. */
interface Seat {
  kind: string;
  params: Uint8Array;
  metadata: Uint8Array;
  epoch: bigint;
}

/** One successful attempt, not yet in use. */
interface Attempt {
  client: TavernClient;
  buffered: ServerMessage[];
  stopBuffering: () => void;
  reconnected: Reconnected;
}

/**
 * A client that reconnects when its connection drops: it connects again
 * with exponential backoff and full jitter (`backoff`), says Hello with the
 * last Welcome's resume token (so the server gives the session back while it
 * holds it), joins each room it had joined again from the last seq it saw
 * (`sinceSeq`/`epoch`: the room replays what was missed), and emits
 * `reconnected` before the replayed events.
 *
 * Requests fail fast while it is disconnected: they throw (or reject with)
 * `NotConnectedError` and nothing is sent, nor queued, so nothing is sent
 * twice. Send again after `reconnected`. A world is not entered again: a
 * resumed session's world sends `WorldEntered` by itself; otherwise enter it
 * again after `reconnected` (`resumed` false).
 */
export class ReconnectingClient {
  private current: TavernClient | undefined;
  private attempting: TavernClient | undefined;
  private readonly seats = new Map<string, Seat>();
  /** The last seq seen of each room this session is in. */
  private readonly latest = new Map<string, bigint>();
  private readonly backoff: Backoff;
  /** Where it connects: the first URL, then the fallbacks. */
  private readonly urls: string[];
  /** The one it is on (or was, last). */
  private at = 0;
  private stopping = false;
  private finished = false;
  /** A fatal error after which coming back would do harm (another connection took the session). */
  private fatal: TavernError | undefined;
  private wake: (() => void) | undefined;
  private readonly listeners: { [K in keyof ReconnectingEvents]: Listeners<ReconnectingEvents[K]> } = {
    message: new Listeners<ServerMessage>(),
    disconnected: new Listeners<CloseInfo>(),
    reconnected: new Listeners<Reconnected>(),
    closed: new Listeners<Closed>(),
  };

  private constructor(
    private readonly firstUrl: string,
    private readonly name: string,
    private readonly options: ReconnectingOptions,
    private lastWelcome: Welcome,
  ) {
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.urls = [firstUrl, ...(options.fallbackUrls ?? [])];
  }

  /** The URL it is connected to (or was, last). */
  get url(): string {
    return this.urls[this.at % this.urls.length] ?? this.firstUrl;
  }

  /**
   * Connects to `url` and says Hello as `name`; later connections do the same.
   *
   * @throws ConnectError or TavernError if this first connection or its Hello fails (no retry).
   */
  static async connect(url: string, name: string, options: ReconnectingOptions = {}): Promise<ReconnectingClient> {
    const token = await tokenOf(options.token);
    const client = await TavernClient.connect(url, options);
    let welcome: Welcome;
    try {
      welcome = await client.hello(name, { token });
    } catch (error) {
      client.close();
      throw error;
    }
    const reconnecting = new ReconnectingClient(url, name, options, welcome);
    reconnecting.install(client);
    return reconnecting;
  }

  /** The last `Welcome` (of the latest connection). */
  get welcome(): Welcome {
    return this.lastWelcome;
  }

  /** Whether requests can be sent now. */
  get connected(): boolean {
    return this.current?.isOpen ?? false;
  }

  /** Calls `handler` on each `event`; returns a function that removes it. */
  on<K extends keyof ReconnectingEvents>(event: K, handler: (value: ReconnectingEvents[K]) => void): () => void {
    const listeners: Listeners<ReconnectingEvents[K]> = this.listeners[event];
    return listeners.add(handler);
  }

  /** `on("message", handler)`. */
  onMessage(handler: (message: ServerMessage) => void): () => void {
    return this.on("message", handler);
  }

  /** Joins `room`, and joins it again after each reconnection. See `TavernClient.join`. */
  async join(room: string, options: Omit<JoinOptions, "sinceSeq" | "epoch"> = {}): Promise<RoomJoined> {
    const joined = await this.connectedClient().join(room, options);
    this.seated(joined, options);
    return joined;
  }

  /** Quick-joins a room of `kind`, and joins that room again after each reconnection. See `TavernClient.quickJoin`. */
  async quickJoin(kind: string, filter = "", params: Uint8Array = new Uint8Array()): Promise<RoomJoined> {
    const joined = await this.connectedClient().quickJoin(kind, filter, params);
    this.seated(joined, { kind, params });
    return joined;
  }

  /** Leaves `room` (no longer joined again). See `TavernClient.leave`. */
  async leave(room: string): Promise<RoomLeft> {
    const left = await this.connectedClient().leave(room);
    this.forget(room);
    return left;
  }

  /** See `TavernClient.ping`. */
  async ping(): Promise<Pong> {
    return this.connectedClient().ping();
  }

  /** See `TavernClient.chat`. @throws NotConnectedError while disconnected. */
  chat(room: string, text: string): bigint {
    return this.connectedClient().chat(room, text);
  }

  /** See `TavernClient.roomSend`. @throws NotConnectedError while disconnected. */
  roomSend(room: string, op: number, data: Uint8Array): bigint {
    return this.connectedClient().roomSend(room, op, data);
  }

  /** See `TavernClient.listRooms`. */
  async listRooms(options: ListRoomsOptions = {}): Promise<RoomInfo[]> {
    return this.connectedClient().listRooms(options);
  }

  /** See `TavernClient.enterWorld`. */
  async enterWorld(world: string, spawn?: { x: number; y: number }): Promise<WorldEntered> {
    return this.connectedClient().enterWorld(world, spawn);
  }

  /** See `TavernClient.move`. @throws NotConnectedError while disconnected. */
  move(x: number, y: number, heading: number, clientTick: number): bigint {
    return this.connectedClient().move(x, y, heading, clientTick);
  }

  /** See `TavernClient.leaveWorld`. */
  async leaveWorld(world: string): Promise<WorldLeft> {
    return this.connectedClient().leaveWorld(world);
  }

  /** Leaves for good (see `TavernClient.goodbye`); no reconnection follows. */
  async goodbye(): Promise<void> {
    this.stopping = true;
    const client = this.current;
    if (client === undefined) {
      this.close();
      return;
    }
    await client.goodbye();
  }

  /** Closes the connection (or stops reconnecting) for good; `closed` follows. */
  close(): void {
    this.stopping = true;
    if (this.current !== undefined) {
      // Its close ends in `dropped`, which finishes.
      this.current.close();
      return;
    }
    // Reconnecting (or done): the attempt under way sees `stopping` and closes what it opened.
    this.attempting?.close();
    this.wake?.();
    this.finish({ code: 1000, reason: "closed by the client" });
  }

  /**
   * Drops the connection without Goodbye (see `TavernClient.drop`); the
   * client then reconnects, as after a network failure.
   */
  disconnect(): void {
    this.current?.drop();
  }

  private connectedClient(): TavernClient {
    if (this.current === undefined || !this.current.isOpen) {
      throw new NotConnectedError();
    }
    return this.current;
  }

  private install(client: TavernClient): void {
    this.current = client;
    client.onMessage((message) => this.deliver(message));
    client.onClose((info) => this.dropped(client, info));
  }

  private seated(joined: RoomJoined, options: { kind?: string; params?: Uint8Array; metadata?: Uint8Array }): void {
    this.noteSeq(joined.room, joined.seq);
    this.seats.set(joined.room, {
      kind: options.kind ?? "",
      params: options.params ?? new Uint8Array(),
      metadata: options.metadata ?? new Uint8Array(),
      epoch: joined.epoch,
    });
  }

  private forget(room: string): void {
    this.seats.delete(room);
    this.latest.delete(room);
  }

  private noteSeq(room: string, seq: bigint): void {
    const last = this.latest.get(room);
    if (last === undefined || seq > last) {
      this.latest.set(room, seq);
    }
  }

  /** Notes where the message leaves its room, then hands it to the application. */
  private deliver(message: ServerMessage): void {
    const body = message.body;
    switch (body.case) {
      case "chat":
      case "memberJoined":
      case "memberLeft":
        this.noteSeq(body.value.room, body.value.seq);
        break;
      case "roomEvent":
        if (body.value.seq !== 0n) {
          this.noteSeq(body.value.room, body.value.seq);
        }
        break;
      case "roomLeft":
        this.forget(body.value.room);
        break;
      case "error":
        if (message.requestId === 0n && body.value.code === ErrorCode.RESUMED_ELSEWHERE) {
          this.fatal = new TavernError(body.value.code, body.value.message, 0n);
        }
        break;
      default:
        break;
    }
    this.listeners.message.emit(message);
  }

  private dropped(client: TavernClient, info: CloseInfo): void {
    if (client !== this.current) {
      return;
    }
    this.current = undefined;
    if (this.stopping || this.fatal !== undefined) {
      this.finish(this.fatal === undefined ? info : { ...info, error: this.fatal });
      return;
    }
    this.listeners.disconnected.emit(info);
    void this.reconnect();
  }

  /** Attempts to come back until one succeeds, the backoff's attempts run out, or `close()`. */
  private async reconnect(): Promise<void> {
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < this.backoff.attempts && !this.stopping; attempt++) {
      await this.sleep(backoffDelay(this.backoff, attempt));
      if (this.stopping) {
        break;
      }
      const at = (this.at + attempt) % this.urls.length;
      try {
        const next = await this.attempt(this.urls[at] ?? this.firstUrl);
        if (this.stopping || !next.client.isOpen) {
          next.client.close();
          lastError = new ConnectionClosedError(1006, "closed while rejoining");
          continue;
        }
        next.reconnected.attempts = attempt + 1;
        this.at = at;
        this.resume(next);
        return;
      } catch (error) {
        lastError = error instanceof Error ? error : new Error(String(error));
        if (!retryable(lastError)) {
          break;
        }
      }
    }
    const reason = this.stopping ? "closed by the client" : `could not reconnect: ${lastError?.message ?? "no attempt"}`;
    this.finish(this.stopping ? { code: 1000, reason } : { code: 1006, reason, ...(lastError && { error: lastError }) });
  }

  /** One attempt: connect, Hello with the resume token, join every room from where it left off. */
  private async attempt(url: string): Promise<Attempt> {
    const token = await tokenOf(this.options.token);
    const client = await TavernClient.connect(url, this.options);
    this.attempting = client;
    const buffered: ServerMessage[] = [];
    const stopBuffering = client.onMessage((message) => {
      buffered.push(message);
      if (buffered.length > MAX_BUFFERED_EVENTS) {
        client.close();
      }
    });
    try {
      const welcome = await client.hello(this.name, { token, resumeToken: this.lastWelcome.resumeToken });
      // The token it sent is spent: the next attempt uses this one.
      this.lastWelcome = welcome;
      const rooms: [string, boolean][] = [];
      for (const [room, seat] of this.seats) {
        const joined = await client.join(room, {
          kind: seat.kind,
          params: seat.params,
          metadata: seat.metadata,
          sinceSeq: this.latest.get(room) ?? 0n,
          epoch: seat.epoch,
        });
        if (!joined.recovered) {
          // Starting again: the member list is the state, live events follow seq.
          this.latest.set(room, joined.seq);
        }
        seat.epoch = joined.epoch;
        rooms.push([room, joined.recovered]);
      }
      return { client, buffered, stopBuffering, reconnected: { resumed: welcome.resumed, rooms, attempts: 0 } };
    } catch (error) {
      stopBuffering();
      client.close();
      throw error;
    } finally {
      this.attempting = undefined;
    }
  }

  /** Puts a successful attempt in use: `reconnected`, then what came meanwhile, in order. */
  private resume(next: Attempt): void {
    next.stopBuffering();
    this.install(next.client);
    this.listeners.reconnected.emit(next.reconnected);
    for (const message of next.buffered) {
      this.deliver(message);
    }
  }

  private finish(closed: Closed): void {
    if (this.finished) {
      return;
    }
    this.finished = true;
    this.stopping = true;
    this.listeners.closed.emit(closed);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }
}

/** The token to say Hello with. */
async function tokenOf(token: ReconnectingOptions["token"]): Promise<string> {
  return typeof token === "function" ? await token() : (token ?? "");
}

/** Whether another attempt may succeed: the connection failed, or the old session still holds the name, or the server is busy. */
function retryable(error: Error): boolean {
  if (error instanceof TavernError) {
    return [
      ErrorCode.NAME_TAKEN,
      ErrorCode.OVERLOADED,
      ErrorCode.SERVER_FULL,
      ErrorCode.SERVER_SHUTTING_DOWN,
      ErrorCode.TOO_MANY_CONNECTIONS,
      ErrorCode.CLUSTER_UNAVAILABLE,
    ].includes(error.code);
  }
  return error instanceof ConnectError || error instanceof ConnectionClosedError || error instanceof RequestTimeoutError;
}

/**
 * What the tests against a real Tavern share: the server's URL (from
 * `TAVERN_WS_URL`), connecting with the `ws` package, unique names, and an
 * inbox that waits for a message with a bounded timeout (never a sleep).
 */

import type { TestContext } from "node:test";

import { WebSocket } from "ws";

import { type ServerMessage, TavernClient, type Welcome } from "../src/index.js";
import type { ServerBodyCase, ServerBodyValue } from "../src/pending.js";

/** How long any single expected message may take, ms. */
export const WAIT_MS = 10_000;

/** Each test's bound (node:test's `timeout`), ms. */
export const LIMITS = { timeout: 60_000 };

/** The server's WebSocket URL; throws (failing the test) when `TAVERN_WS_URL` is unset. */
export function wsUrl(): string {
  const url = process.env["TAVERN_WS_URL"];
  if (url === undefined || url === "") {
    throw new Error(
      "TAVERN_WS_URL is not set: run these tests with `cargo test --test ts_client` (it starts a server), " +
        "or start `tavern` and run `TAVERN_WS_URL=ws://127.0.0.1:4002/ npm test` in clients/ts",
    );
  }
  return url;
}

/** Connect options for Node 20: the `ws` package's WebSocket. */
export const nodeOptions = { WebSocket, requestTimeoutMs: WAIT_MS };

let counter = 0;

/** A name (of a player, room or world) no other test uses: `prefix` and a unique suffix, under 32 characters. */
export function unique(prefix: string): string {
  counter += 1;
  return `${prefix.slice(0, 10)}-${process.pid % 100_000}-${counter}-${Math.floor(Math.random() * 1e6)}`;
}

/** A welcomed client, and an inbox of its messages. */
export interface Player {
  client: TavernClient;
  welcome: Welcome;
  inbox: Inbox<ServerMessage>;
}

/** Connects and says Hello as a unique name starting with `prefix`; the connection is closed after test `t`. */
export async function player(t: TestContext, prefix: string): Promise<Player> {
  const client = await TavernClient.connect(wsUrl(), nodeOptions);
  t.after(() => client.close());
  const inbox = new Inbox<ServerMessage>((handler) => client.onMessage(handler));
  const welcome = await client.hello(unique(prefix));
  return { client, welcome, inbox };
}

/**
 * Everything a subscription delivers, in order, read with `next`, which
 * waits (bounded) for the first item that `pick` accepts and drops the
 * items before it.
 */
export class Inbox<T> {
  private readonly items: T[] = [];
  private wakeUp: (() => void) | undefined;

  constructor(subscribe: (handler: (item: T) => void) => unknown) {
    subscribe((item) => {
      this.items.push(item);
      this.wakeUp?.();
    });
  }

  /** The first item `pick` maps to a value (`what` names it in the timeout error). */
  async next<U>(what: string, pick: (item: T) => U | undefined, timeoutMs = WAIT_MS): Promise<U> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.items.length > 0) {
        const item = this.items.shift() as T;
        const picked = pick(item);
        if (picked !== undefined) {
          return picked;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`no ${what} within ${timeoutMs} ms`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }
}

/** Picks a message's body of kind `kind`. */
export function body<C extends ServerBodyCase>(kind: C): (message: ServerMessage) => ServerBodyValue<C> | undefined {
  return (message) => (message.body.case === kind ? (message.body.value as unknown as ServerBodyValue<C>) : undefined);
}

/** A room's sequenced event (chat, presence, plugin broadcast): its kind and seq, if `message` is one in `room`. */
export function roomEvent(room: string) {
  return (message: ServerMessage): { kind: string; seq: bigint; message: ServerMessage } | undefined => {
    const b = message.body;
    switch (b.case) {
      case "chat":
      case "memberJoined":
      case "memberLeft":
        return b.value.room === room ? { kind: b.case, seq: b.value.seq, message } : undefined;
      case "roomEvent":
        return b.value.room === room && b.value.seq !== 0n ? { kind: b.case, seq: b.value.seq, message } : undefined;
      default:
        return undefined;
    }
  };
}

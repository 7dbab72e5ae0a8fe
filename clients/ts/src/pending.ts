/**
 * Requests waiting for their reply, by request id: bounded in number, each
 * with a timeout, and answered by one or more reply frames.
 */

import type { ServerMessage } from "./gen/tavern/v1/tavern_pb.js";
import { ProtocolError, RequestTimeoutError, TavernError, TooManyRequestsError } from "./errors.js";

/** A server message's body. */
export type ServerBody = ServerMessage["body"];
/** The name of a server message body (`"welcome"`, `"roomJoined"`, …). */
export type ServerBodyCase = NonNullable<ServerBody["case"]>;
/** The value of the body named `C`. */
export type ServerBodyValue<C extends ServerBodyCase> = Extract<ServerBody, { case: C }>["value"];

/** What a reply frame did to a request: answered it, or more frames are to come. */
export type Step<T> = { done: true; value: T } | { done: false };

/**
 * Takes one reply frame's body (never an error); `undefined` means the
 * frame is not a reply this request can have.
 */
export type Collector<T> = (body: ServerBody) => Step<T> | undefined;

/** A collector for a request answered by one frame of body `kind`. */
export function single<C extends ServerBodyCase>(kind: C): Collector<ServerBodyValue<C>> {
  return (body) => (body.case === kind ? { done: true, value: body.value as ServerBodyValue<C> } : undefined);
}

interface Entry {
  what: string;
  collect: Collector<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** See the module documentation. */
export class PendingRequests {
  private readonly entries = new Map<bigint, Entry>();

  /**
   * @param limit most requests waiting at once; more are refused.
   * @param timeoutMs how long each waits for its reply.
   */
  constructor(
    readonly limit: number,
    readonly timeoutMs: number,
  ) {}

  /** How many requests wait. */
  get size(): number {
    return this.entries.size;
  }

  /** Whether another request may wait. */
  get full(): boolean {
    return this.entries.size >= this.limit;
  }

  /**
   * Waits for the replies to request `id` (`what` names it in errors).
   *
   * @throws TooManyRequestsError (as a rejection) when `limit` requests wait already.
   */
  wait<T>(id: bigint, what: string, collect: Collector<T>): Promise<T> {
    if (this.full) {
      return Promise.reject(new TooManyRequestsError(this.limit));
    }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.entries.delete(id);
        reject(new RequestTimeoutError(what, this.timeoutMs));
      }, this.timeoutMs);
      this.entries.set(id, { what, collect, resolve: resolve as (value: unknown) => void, reject, timer });
    });
  }

  /** Takes `message` if it answers a waiting request; returns whether it did. */
  take(message: ServerMessage): boolean {
    const entry = this.entries.get(message.requestId);
    if (entry === undefined) {
      return false;
    }
    const body = message.body;
    if (body.case === "error") {
      this.settle(message.requestId, entry);
      entry.reject(new TavernError(body.value.code, body.value.message, message.requestId));
      return true;
    }
    const step = entry.collect(body);
    if (step === undefined) {
      this.settle(message.requestId, entry);
      entry.reject(new ProtocolError(`unexpected reply to ${entry.what}: ${body.case ?? "an empty body"}`));
    } else if (step.done) {
      this.settle(message.requestId, entry);
      entry.resolve(step.value);
    }
    return true;
  }

  /** Stops waiting for request `id`, rejecting it with `error` (e.g. it could not be sent). */
  cancel(id: bigint, error: Error): void {
    const entry = this.entries.get(id);
    if (entry !== undefined) {
      this.settle(id, entry);
      entry.reject(error);
    }
  }

  /** Rejects every waiting request with `error`. */
  rejectAll(error: Error): void {
    const entries = [...this.entries.values()];
    for (const entry of entries) {
      clearTimeout(entry.timer);
    }
    this.entries.clear();
    for (const entry of entries) {
      entry.reject(error);
    }
  }

  private settle(id: bigint, entry: Entry): void {
    clearTimeout(entry.timer);
    this.entries.delete(id);
  }
}

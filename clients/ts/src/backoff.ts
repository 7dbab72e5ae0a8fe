/** Exponential backoff with full jitter, as the Rust client's `client::Backoff`. */

/** How a `ReconnectingClient` spaces its connection attempts. */
export interface Backoff {
  /** The first attempt's upper bound, ms. */
  firstMs: number;
  /** The largest upper bound, ms. */
  capMs: number;
  /** Attempts before giving up. */
  attempts: number;
}

/** 100 ms, doubling up to 10 s, 20 attempts. */
export const DEFAULT_BACKOFF: Readonly<Backoff> = { firstMs: 100, capMs: 10_000, attempts: 20 };

/**
 * The wait before attempt `attempt` (from 0), ms: uniformly random between
 * 0 and `min(capMs, firstMs * 2^attempt)` (full jitter, so that clients cut
 * off together do not come back together).
 */
export function backoffDelay(backoff: Backoff, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.capMs, backoff.firstMs * 2 ** Math.min(attempt, 52));
  return ceiling * random();
}

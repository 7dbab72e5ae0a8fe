// The admin endpoint's figures, polled once a second: `/stats` (the summary)
// and the counters of `/metrics`, turned into per-second rates.

/** `/stats`, as the server's `overload::Summary` serialises it. */
export interface Summary {
  version: string;
  uptime_s: number;
  ready: boolean;
  overload: "normal" | "shedding" | "presence_paused" | string;
  connections: number;
  rooms: number;
  msg_in_per_s: number;
  msg_out_per_s: number;
  deliveries_per_s: number;
  fanout_p50_ms: number;
  fanout_p99_ms: number;
  error_rate: number;
  memory_mb: number;
  window_s: number;
}

/** The counters and gauges of `/metrics` that the console charts. */
export interface Counters {
  messagesIn: number;
  messagesOut: number;
  chatMessages: number;
  tickSeconds: number;
  ticks: number;
  worldPlayers: number;
  worldsOpen: number;
}

/** Rates between two readings of the counters. */
export interface Rates {
  messagesInPerS: number;
  messagesOutPerS: number;
  chatPerS: number;
  /** Mean world tick over the interval, ms; null when no world ticked. */
  tickMs: number | null;
}

/** The overload state as a level: 0 normal, 1 shedding, 2 presence paused. */
export function overloadLevel(state: string): number {
  return state === "shedding" ? 1 : state === "presence_paused" ? 2 : 0;
}

export async function fetchSummary(): Promise<Summary> {
  const response = await fetch("/stats", { cache: "no-store" });
  if (!response.ok) throw new Error(`/stats answered ${response.status}`);
  return (await response.json()) as Summary;
}

export async function fetchCounters(): Promise<Counters> {
  const response = await fetch("/metrics", { cache: "no-store" });
  if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
  return parseCounters(await response.text());
}

/** Sums the samples of each metric the console needs from Prometheus text. */
export function parseCounters(text: string): Counters {
  const sums = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    const brace = line.indexOf("{");
    const name = line.slice(0, brace >= 0 && brace < space ? brace : space);
    const value = Number(line.slice(space + 1));
    if (Number.isFinite(value)) sums.set(name, (sums.get(name) ?? 0) + value);
  }
  const get = (name: string) => sums.get(`tavern_${name}`) ?? 0;
  return {
    messagesIn: get("messages_in_total"),
    messagesOut: get("messages_out_total"),
    chatMessages: get("chat_messages_total"),
    tickSeconds: get("world_tick_seconds_sum"),
    ticks: get("world_tick_seconds_count"),
    worldPlayers: get("world_players"),
    worldsOpen: get("worlds_open"),
  };
}

/** What changed per second between `before` and `after`, `seconds` apart. */
export function rates(before: Counters, after: Counters, seconds: number): Rates {
  const per = (a: number, b: number) => (seconds > 0 ? Math.max(0, b - a) / seconds : 0);
  const ticks = after.ticks - before.ticks;
  return {
    messagesInPerS: per(before.messagesIn, after.messagesIn),
    messagesOutPerS: per(before.messagesOut, after.messagesOut),
    chatPerS: per(before.chatMessages, after.chatMessages),
    tickMs: ticks > 0 ? ((after.tickSeconds - before.tickSeconds) / ticks) * 1000 : null,
  };
}

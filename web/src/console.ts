// The live console (`/`): the rooms and their members over the WebSocket
// (ListRooms once a second), and the server's figures from the admin endpoint
// (`/stats` and `/metrics` once a second) as small live charts.
import { TavernClient, byId, connect, describe, randomSuffix, setStatus } from "./common.ts";
import { type Counters, type Summary, fetchCounters, fetchSummary, overloadLevel, rates } from "./metrics.ts";
import { Sparkline } from "./sparkline.ts";
import type { RoomInfo } from "../../clients/ts/src/index.ts";

/** A listed room, as the console shows it: the `RoomInfo` fields it uses. */
type RoomRow = Pick<RoomInfo, "room" | "kind" | "members" | "maxMembers" | "label" | "locked">;

/** What the page knows, on `window.tavernConsole` for scripts and tests. */
interface ConsoleState {
  name: string;
  connected: boolean;
  rooms: RoomRow[];
  /** ListRooms answers received. */
  listings: number;
  stats: Summary | null;
  /** Mean world tick over the last second, ms (null: no world ticked). */
  tickMs: number | null;
  messagesInPerS: number;
  /** `/stats` polls answered. */
  polls: number;
  error: string | null;
}

declare global {
  interface Window {
    tavernConsole: ConsoleState;
  }
}

const POLL_MS = 1000;
const RECONNECT_MS = 2000;

const state: ConsoleState = {
  name: `console-${randomSuffix()}`,
  connected: false,
  rooms: [],
  listings: 0,
  stats: null,
  tickMs: null,
  messagesInPerS: 0,
  polls: 0,
  error: null,
};
window.tavernConsole = state;

const charts = {
  connections: new Sparkline(byId<HTMLCanvasElement>("connections-chart"), { color: "#4e9af1", minTop: 1 }),
  messages: new Sparkline(byId<HTMLCanvasElement>("msg-chart"), { color: "#3fb68b", minTop: 1 }),
  overload: new Sparkline(byId<HTMLCanvasElement>("overload-chart"), { color: "#e5534b", minTop: 2, steps: true }),
  tick: new Sparkline(byId<HTMLCanvasElement>("tick-chart"), { color: "#c98a1b", minTop: 1 }),
};

/** The WebSocket side: connect, say Hello, list the rooms every second; again after a drop. */
async function watchRooms(): Promise<void> {
  let client: TavernClient;
  try {
    setStatus("connecting…", "wait");
    client = await connect();
    await client.hello(state.name);
  } catch (error) {
    state.error = describe(error);
    setStatus(`offline: ${state.error}`, "down");
    setTimeout(watchRooms, RECONNECT_MS);
    return;
  }
  state.connected = true;
  state.error = null;
  setStatus(`live as ${state.name}`, "ok");
  let timer = 0;
  client.onClose(() => {
    state.connected = false;
    clearInterval(timer);
    setStatus("disconnected: reconnecting…", "down");
    setTimeout(watchRooms, RECONNECT_MS);
  });
  const list = async () => {
    try {
      const rooms = await client.listRooms({ limit: 100 });
      state.rooms = rooms.map((r) => ({
        room: r.room,
        kind: r.kind,
        members: r.members,
        maxMembers: r.maxMembers,
        label: r.label,
        locked: r.locked,
      }));
      state.listings += 1;
      renderRooms(state.rooms);
    } catch (error) {
      state.error = describe(error);
    }
  };
  await list();
  timer = window.setInterval(list, POLL_MS);
}

function renderRooms(rooms: RoomRow[]): void {
  const body = byId("rooms");
  byId("room-count").textContent = `(${rooms.length})`;
  if (rooms.length === 0) {
    body.innerHTML = '<tr class="empty"><td colspan="5">no rooms yet</td></tr>';
    return;
  }
  const rows = rooms.map((r) => {
    const row = document.createElement("tr");
    row.dataset.room = r.room;
    const cell = (text: string, className = "") => {
      const td = document.createElement("td");
      td.textContent = text;
      if (className) td.className = className;
      row.append(td);
      return td;
    };
    cell(r.room, "name");
    cell(r.kind);
    cell(`${r.members}${r.maxMembers ? ` / ${r.maxMembers}` : ""}`, "num members");
    const bar = cell("", "bar");
    const fill = document.createElement("span");
    fill.style.width = `${r.maxMembers ? Math.min(100, (100 * r.members) / r.maxMembers) : 0}%`;
    bar.append(fill);
    cell(`${r.label}${r.locked ? " 🔒" : ""}`, "muted");
    return row;
  });
  body.replaceChildren(...rows);
}

let previous: { at: number; counters: Counters } | null = null;

/** The admin side: `/stats` and `/metrics`, charted once a second. */
async function pollFigures(): Promise<void> {
  try {
    const [summary, counters] = await Promise.all([fetchSummary(), fetchCounters()]);
    const at = performance.now();
    state.stats = summary;
    state.polls += 1;
    if (previous) {
      const r = rates(previous.counters, counters, (at - previous.at) / 1000);
      state.messagesInPerS = r.messagesInPerS;
      state.tickMs = r.tickMs;
      charts.messages.push(r.messagesInPerS);
      charts.tick.push(r.tickMs ?? 0);
      byId("msg-rate").textContent = r.messagesInPerS.toFixed(r.messagesInPerS < 10 ? 1 : 0);
      byId("msg-sub").textContent = `received · ${r.messagesOutPerS.toFixed(0)}/s sent · ${r.chatPerS.toFixed(0)} chats/s`;
      byId("tick").textContent = r.tickMs === null ? "idle" : `${r.tickMs.toFixed(2)} ms`;
    }
    previous = { at, counters };
    charts.connections.push(summary.connections);
    charts.overload.push(overloadLevel(summary.overload));
    byId("connections").textContent = String(summary.connections);
    byId("connections-sub").textContent = `${plural(summary.rooms, "room")} · ${summary.ready ? "ready" : "not ready"}`;
    const overload = byId("overload");
    overload.textContent = summary.overload.replace("_", " ");
    overload.className = `figure level-${overloadLevel(summary.overload)}`;
    byId("overload-sub").textContent = `errors ${(summary.error_rate * 100).toFixed(1)}% · fan-out p99 ${summary.fanout_p99_ms.toFixed(2)} ms`;
    byId("tick-sub").textContent = `${plural(counters.worldsOpen, "world")} · ${plural(counters.worldPlayers, "player")}`;
    byId("server").textContent =
      `Tavern ${summary.version} · up ${formatUptime(summary.uptime_s)} · ${summary.memory_mb.toFixed(0)} MiB resident`;
  } catch (error) {
    state.error = describe(error);
    byId("server").textContent = `admin endpoint unreachable: ${state.error}`;
  }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function formatUptime(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

void watchRooms();
void pollFigures();
setInterval(pollFigures, POLL_MS);

// The playground (`/play`): one session over the WebSocket, to talk in a chat
// room and to walk in a world. Its state is on `window.tavernPlayground`.
import type { ServerMessage } from "../../clients/ts/src/index.ts";
import { TavernClient, byId, connect, describe, randomSuffix, setStatus } from "./common.ts";
import { type EnteredInfo, type Entity, WorldView, draw, projection } from "./world.ts";

/** A line of the room's conversation. */
interface ChatLine {
  room: string;
  seq: number;
  from: string;
  text: string;
  /** Sent by this page's session. */
  mine: boolean;
}

/** What the page knows, on `window.tavernPlayground` for scripts and tests. */
interface PlaygroundState {
  name: string;
  connected: boolean;
  sessionId: string | null;
  room: string | null;
  members: string[];
  chats: ChatLine[];
  world: string | null;
  /** This player's entity id in the world. */
  me: string | null;
  /** Every entity in view, by id, in world units. */
  entities: Record<string, Entity>;
  tick: number;
  updates: number;
  target: { x: number; y: number } | null;
  error: string | null;
}

declare global {
  interface Window {
    tavernPlayground: PlaygroundState;
  }
}

/** Lines of conversation kept (on the page and in `chats`). */
const MAX_LINES = 500;

const state: PlaygroundState = {
  name: "",
  connected: false,
  sessionId: null,
  room: null,
  members: [],
  chats: [],
  world: null,
  me: null,
  entities: {},
  tick: 0,
  updates: 0,
  target: null,
  error: null,
};
window.tavernPlayground = state;

const nameInput = byId<HTMLInputElement>("name");
const roomInput = byId<HTMLInputElement>("room");
const messageInput = byId<HTMLInputElement>("message");
const worldInput = byId<HTMLInputElement>("world");
const canvas = byId<HTMLCanvasElement>("world-canvas");
nameInput.value = `player-${randomSuffix()}`;

let client: TavernClient | null = null;
let connecting: Promise<TavernClient> | null = null;
let view: WorldView | null = null;

function showError(error: unknown): void {
  state.error = error === null ? null : describe(error);
  const line = byId("error");
  line.textContent = state.error ?? "";
  line.hidden = state.error === null;
}

/** The session, connecting and saying Hello with the name field's name the first time. */
async function session(): Promise<TavernClient> {
  if (client) return client;
  connecting ??= (async () => {
    setStatus("connecting…", "wait");
    const fresh = await connect();
    try {
      fresh.onMessage(onMessage);
      const welcome = await fresh.hello(nameInput.value.trim());
      fresh.onClose(onClosed);
      state.name = nameInput.value.trim();
      state.sessionId = welcome.sessionId.toString();
      state.connected = true;
      nameInput.disabled = true;
      setStatus(`connected as ${state.name}`, "ok");
      client = fresh;
      return fresh;
    } catch (error) {
      fresh.close();
      setStatus("not connected", "down");
      throw error;
    }
  })();
  try {
    return await connecting;
  } finally {
    connecting = null;
  }
}

function onClosed(): void {
  client = null;
  state.connected = false;
  state.room = null;
  state.members = [];
  endWorld("connection closed");
  nameInput.disabled = false;
  setChatEnabled(false);
  setStatus("disconnected", "down");
}

/** Every message that answers no request of ours: events, chat echoes, world updates. */
function onMessage(message: ServerMessage): void {
  const body = message.body;
  switch (body.case) {
    case "chat": {
      const c = body.value;
      const line = { room: c.room, seq: Number(c.seq), from: c.fromName, text: c.text, mine: c.fromSession.toString() === state.sessionId };
      state.chats.push(line);
      if (state.chats.length > MAX_LINES) state.chats.splice(0, state.chats.length - MAX_LINES);
      appendLine(line.from, line.text, line.mine ? "chat mine" : "chat", line.seq);
      return;
    }
    case "memberJoined":
    case "memberLeft": {
      const { room, member } = body.value;
      if (room !== state.room || !member) return;
      const joined = body.case === "memberJoined";
      state.members = joined ? [...state.members.filter((m) => m !== member.name), member.name] : state.members.filter((m) => m !== member.name);
      appendLine(null, `${member.name} ${joined ? "joined" : "left"}`, "system");
      showRoom();
      return;
    }
    case "roomLeft":
      if (body.value.room === state.room && message.requestId === 0n) {
        appendLine(null, `removed from ${body.value.room}: ${body.value.reason}`, "system");
        leftRoom();
      }
      return;
    case "worldEntered":
      beginWorld(body.value);
      return;
    case "worldUpdate":
      if (view) {
        view.apply(body.value);
        state.tick = Number(view.tick);
        state.updates = view.updates;
      }
      return;
    case "worldLeft":
      endWorld(body.value.reason || "left");
      return;
    case "shutdown":
      appendLine(null, `server shutting down: ${body.value.reason}`, "system");
      return;
    case "error":
      if (message.requestId === 0n) showError(`${body.value.message}`);
      return;
    default:
      return;
  }
}

function appendLine(from: string | null, text: string, className: string, seq?: number): void {
  const list = byId("messages");
  const item = document.createElement("li");
  item.className = className;
  if (seq !== undefined) item.dataset.seq = String(seq);
  if (from !== null) {
    const who = document.createElement("span");
    who.className = "from";
    who.textContent = from;
    item.append(who, " ");
  }
  item.append(text);
  list.append(item);
  while (list.childElementCount > MAX_LINES) list.firstElementChild?.remove();
  list.scrollTop = list.scrollHeight;
}

function setChatEnabled(inRoom: boolean): void {
  messageInput.disabled = !inRoom;
  byId<HTMLButtonElement>("send").disabled = !inRoom;
  byId<HTMLButtonElement>("leave").disabled = !inRoom;
}

function showRoom(): void {
  byId("room-info").textContent = state.room
    ? `In ${state.room} · ${state.members.length} member${state.members.length === 1 ? "" : "s"}: ${state.members.join(", ")}`
    : "Not in a room.";
}

function leftRoom(): void {
  state.room = null;
  state.members = [];
  setChatEnabled(false);
  showRoom();
}

byId<HTMLFormElement>("join-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const room = roomInput.value.trim();
  try {
    showError(null);
    const c = await session();
    if (state.room && state.room !== room) {
      await c.leave(state.room);
      leftRoom();
    }
    const joined = await c.join(room);
    state.room = joined.room;
    state.members = joined.members.map((m) => m.name);
    appendLine(null, `joined ${joined.room}`, "system");
    setChatEnabled(true);
    showRoom();
    messageInput.focus();
  } catch (error) {
    showError(error);
  }
});

byId("leave").addEventListener("click", async () => {
  if (!client || !state.room) return;
  try {
    const room = state.room;
    await client.leave(room);
    appendLine(null, `left ${room}`, "system");
    leftRoom();
  } catch (error) {
    showError(error);
  }
});

byId<HTMLFormElement>("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = messageInput.value;
  if (!client || !state.room || text.trim() === "") return;
  client.chat(state.room, text);
  messageInput.value = "";
});

function beginWorld(entered: EnteredInfo): void {
  if (view && view.world === entered.world && view.me === entered.entityId.toString() && view.updates === 0) return;
  view = new WorldView(entered, state.name);
  state.world = view.world;
  state.me = view.me;
  state.entities = view.entities;
  state.tick = Number(view.tick);
  state.updates = 0;
  state.target = null;
  byId<HTMLButtonElement>("leave-world").disabled = false;
  byId<HTMLButtonElement>("enter").disabled = true;
}

function endWorld(reason: string): void {
  if (!view) return;
  view = null;
  state.world = null;
  state.me = null;
  state.entities = {};
  state.target = null;
  byId("world-info").textContent = `Left the world (${reason}).`;
  byId<HTMLButtonElement>("leave-world").disabled = true;
  byId<HTMLButtonElement>("enter").disabled = false;
}

/** The spawn field's point ("x, y"), or undefined for a random one. */
function spawnPoint(): { x: number; y: number } | undefined {
  const parts = byId<HTMLInputElement>("spawn").value.split(/[\s,]+/).filter((part) => part !== "");
  const [x, y] = parts.map(Number);
  return parts.length === 2 && Number.isFinite(x) && Number.isFinite(y) ? { x: x!, y: y! } : undefined;
}

byId<HTMLFormElement>("world-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    showError(null);
    const c = await session();
    beginWorld(await c.enterWorld(worldInput.value.trim(), spawnPoint()));
    canvas.focus();
  } catch (error) {
    showError(error);
  }
});

byId("leave-world").addEventListener("click", async () => {
  if (!client || !view) return;
  try {
    const left = await client.leaveWorld(view.world);
    endWorld(left.reason || "left");
  } catch (error) {
    showError(error);
  }
});

/** Sends a Move toward `target`. */
function walkTo(target: { x: number; y: number }): void {
  if (!client || !view) return;
  const [x, y, heading, tick] = view.moveTo(target);
  state.target = view.target;
  client.move(x, y, heading, tick);
}

const DIRECTIONS: Record<string, [number, number]> = {
  ArrowUp: [0, 1],
  ArrowDown: [0, -1],
  ArrowLeft: [-1, 0],
  ArrowRight: [1, 0],
  w: [0, 1],
  s: [0, -1],
  a: [-1, 0],
  d: [1, 0],
};
const held = new Set<string>();

function heldDirection(): [number, number] | null {
  let dx = 0;
  let dy = 0;
  for (const key of held) {
    const [x, y] = DIRECTIONS[key]!;
    dx += x;
    dy += y;
  }
  return dx === 0 && dy === 0 ? null : [dx, dy];
}

window.addEventListener("keydown", (event) => {
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (!(key in DIRECTIONS) || !view || event.target instanceof HTMLInputElement) return;
  event.preventDefault();
  held.add(key);
  // A tap walks half a second's way; holding keeps the target ahead (below).
  const direction = heldDirection();
  if (direction && !event.repeat) walkTo(view.ahead(direction[0], direction[1], 0.5));
});
window.addEventListener("keyup", (event) => {
  held.delete(event.key.length === 1 ? event.key.toLowerCase() : event.key);
});
window.addEventListener("blur", () => held.clear());
setInterval(() => {
  const direction = heldDirection();
  if (direction && view) walkTo(view.ahead(direction[0], direction[1], 0.5));
}, 100);

canvas.addEventListener("click", (event) => {
  if (!view) return;
  const box = canvas.getBoundingClientRect();
  const sx = ((event.clientX - box.left) / box.width) * canvas.width;
  const sy = ((event.clientY - box.top) / box.height) * canvas.height;
  walkTo(projection(view, canvas).toWorld(sx, sy));
});

function frame(): void {
  draw(canvas, view);
  if (view) {
    const me = view.self;
    const where = me ? `at (${me.x.toFixed(1)}, ${me.y.toFixed(1)})` : "";
    const count = Object.keys(view.entities).length;
    byId("world-info").textContent = `${view.world} · ${where} · ${count} in view · tick ${view.tick}`;
  }
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);
showRoom();

// The playground's world: what this player sees (from WorldEntered and each
// WorldUpdate), where it wants to go (keys, clicks), and the canvas drawing.

/** An entity in view, in world units. */
export interface Entity {
  x: number;
  y: number;
  name: string;
  /** Radians, counter-clockwise from east. */
  heading: number;
}

/** WorldEntered, as the client's generated types give it (the fields used here). */
export interface EnteredInfo {
  world: string;
  entityId: bigint;
  position?: { x: number; y: number };
  aoiRadius: number;
  bounds?: { x: number; y: number };
  maxSpeed: number;
  positionQuantum: number;
  tick: bigint;
}

/** WorldUpdate, as the client's generated types give it (the fields used here). */
export interface UpdateInfo {
  tick: bigint;
  entered: { id: bigint; x: number; y: number; heading: number; name: string }[];
  left: bigint[];
  moved: { id: bigint; dx: number; dy: number; heading: number }[];
}

const TURN = Math.PI * 2;

/** One world as this player sees it. */
export class WorldView {
  readonly world: string;
  readonly me: string;
  readonly quantum: number;
  readonly aoiRadius: number;
  readonly bounds: { x: number; y: number };
  readonly maxSpeed: number;
  tick: bigint;
  updates = 0;
  /** Every entity in view, by id (decimal). */
  readonly entities: Record<string, Entity> = {};
  /** Fixed-point positions, the exact values the updates add to. */
  private readonly fixed = new Map<string, { x: number; y: number }>();
  /** Where this player asked to go. */
  target: { x: number; y: number } | null = null;
  private clientTick = 0;

  constructor(entered: EnteredInfo, name: string) {
    this.world = entered.world;
    this.me = entered.entityId.toString();
    this.quantum = entered.positionQuantum || 0.01;
    this.aoiRadius = entered.aoiRadius;
    this.bounds = entered.bounds ?? { x: 0, y: 0 };
    this.maxSpeed = entered.maxSpeed;
    this.tick = entered.tick;
    const at = entered.position ?? { x: 0, y: 0 };
    this.place(this.me, Math.round(at.x / this.quantum), Math.round(at.y / this.quantum), name, 0);
  }

  /** This player's entity, once known. */
  get self(): Entity | undefined {
    return this.entities[this.me];
  }

  /** Applies one WorldUpdate: entered (absolute), moved (deltas), left. */
  apply(update: UpdateInfo): void {
    this.tick = update.tick;
    this.updates += 1;
    for (const e of update.entered) {
      this.place(e.id.toString(), e.x, e.y, e.name, e.heading);
    }
    for (const m of update.moved) {
      const id = m.id.toString();
      const at = this.fixed.get(id);
      if (!at) continue;
      this.place(id, at.x + m.dx, at.y + m.dy, this.entities[id]?.name ?? "", m.heading);
    }
    for (const id of update.left) {
      const key = id.toString();
      if (key === this.me) continue;
      this.fixed.delete(key);
      delete this.entities[key];
    }
  }

  private place(id: string, fx: number, fy: number, name: string, heading256: number): void {
    this.fixed.set(id, { x: fx, y: fy });
    this.entities[id] = { x: fx * this.quantum, y: fy * this.quantum, name, heading: (heading256 / 256) * TURN };
  }

  /**
   * A Move toward `target` (clamped to the bounds), as the arguments of
   * `TavernClient.move`: x, y, heading and a client tick that grows.
   */
  moveTo(target: { x: number; y: number }): [number, number, number, number] {
    const x = Math.min(Math.max(target.x, 0), this.bounds.x || target.x);
    const y = Math.min(Math.max(target.y, 0), this.bounds.y || target.y);
    this.target = { x, y };
    const from = this.self ?? { x, y };
    const heading = Math.atan2(y - from.y, x - from.x);
    this.clientTick += 1;
    return [x, y, Number.isFinite(heading) ? heading : 0, this.clientTick];
  }

  /** The point `seconds` of walking from here in direction (`dx`, `dy`). */
  ahead(dx: number, dy: number, seconds: number): { x: number; y: number } {
    const from = this.self ?? { x: 0, y: 0 };
    const length = Math.hypot(dx, dy) || 1;
    const reach = this.maxSpeed * seconds;
    return { x: from.x + (dx / length) * reach, y: from.y + (dy / length) * reach };
  }
}

/** Units shown from the centre to the canvas's nearer edge. */
function viewRadius(view: WorldView): number {
  return Math.max(20, view.aoiRadius * 1.1);
}

/** Canvas pixels ↔ world units, centred on this player (y grows upward). */
export function projection(view: WorldView, canvas: HTMLCanvasElement) {
  const centre = view.self ?? { x: 0, y: 0 };
  const scale = Math.min(canvas.width, canvas.height) / 2 / viewRadius(view);
  return {
    scale,
    toScreen: (p: { x: number; y: number }) => ({
      x: canvas.width / 2 + (p.x - centre.x) * scale,
      y: canvas.height / 2 - (p.y - centre.y) * scale,
    }),
    toWorld: (sx: number, sy: number) => ({
      x: centre.x + (sx - canvas.width / 2) / scale,
      y: centre.y - (sy - canvas.height / 2) / scale,
    }),
  };
}

/** Draws the view: a grid, the bounds, the area of interest, the target and every entity. */
export function draw(canvas: HTMLCanvasElement, view: WorldView | null): void {
  const g = canvas.getContext("2d");
  if (!g) return;
  g.fillStyle = "#10151c";
  g.fillRect(0, 0, canvas.width, canvas.height);
  if (!view) {
    g.fillStyle = "#6b7785";
    g.font = "14px system-ui, sans-serif";
    g.textAlign = "center";
    g.fillText("not in a world", canvas.width / 2, canvas.height / 2);
    return;
  }
  const p = projection(view, canvas);
  const origin = p.toWorld(0, canvas.height);
  const corner = p.toWorld(canvas.width, 0);
  g.strokeStyle = "rgba(255,255,255,0.06)";
  g.lineWidth = 1;
  g.beginPath();
  for (let x = Math.ceil(origin.x / 10) * 10; x <= corner.x; x += 10) {
    const s = p.toScreen({ x, y: 0 }).x;
    g.moveTo(s, 0);
    g.lineTo(s, canvas.height);
  }
  for (let y = Math.ceil(origin.y / 10) * 10; y <= corner.y; y += 10) {
    const s = p.toScreen({ x: 0, y }).y;
    g.moveTo(0, s);
    g.lineTo(canvas.width, s);
  }
  g.stroke();
  const low = p.toScreen({ x: 0, y: 0 });
  const high = p.toScreen(view.bounds);
  g.strokeStyle = "rgba(229,83,75,0.7)";
  g.strokeRect(low.x, high.y, high.x - low.x, low.y - high.y);
  const self = view.self;
  if (self) {
    const c = p.toScreen(self);
    g.strokeStyle = "rgba(78,154,241,0.35)";
    g.setLineDash([4, 4]);
    g.beginPath();
    g.arc(c.x, c.y, view.aoiRadius * p.scale, 0, TURN);
    g.stroke();
    g.setLineDash([]);
  }
  if (view.target) {
    const t = p.toScreen(view.target);
    g.strokeStyle = "#c98a1b";
    g.beginPath();
    g.moveTo(t.x - 5, t.y - 5);
    g.lineTo(t.x + 5, t.y + 5);
    g.moveTo(t.x + 5, t.y - 5);
    g.lineTo(t.x - 5, t.y + 5);
    g.stroke();
  }
  g.font = "12px system-ui, sans-serif";
  g.textAlign = "center";
  for (const [id, e] of Object.entries(view.entities)) {
    const s = p.toScreen(e);
    const mine = id === view.me;
    g.fillStyle = mine ? "#4e9af1" : "#3fb68b";
    g.beginPath();
    g.arc(s.x, s.y, mine ? 8 : 7, 0, TURN);
    g.fill();
    g.strokeStyle = "#e8eef5";
    g.beginPath();
    g.moveTo(s.x, s.y);
    g.lineTo(s.x + Math.cos(e.heading) * 12, s.y - Math.sin(e.heading) * 12);
    g.stroke();
    g.fillStyle = "#e8eef5";
    g.fillText(mine ? `${e.name} (you)` : e.name, s.x, s.y - 13);
  }
}

// What both pages share: finding the WebSocket listener, connecting, and a
// few DOM shortcuts.
import { TavernClient } from "../../clients/ts/src/index.ts";

export { TavernClient };

/** `GET /endpoints`: where the server's listeners are, as the admin endpoint knows them. */
export interface Endpoints {
  /** The WebSocket listener's URL (`ws://host:port/`), or null when it is off. */
  ws_url: string | null;
}

/** The admin endpoint's `/endpoints`. */
export async function endpoints(): Promise<Endpoints> {
  const response = await fetch("/endpoints", { cache: "no-store" });
  if (!response.ok) throw new Error(`/endpoints answered ${response.status}`);
  return (await response.json()) as Endpoints;
}

/**
 * The URL to open: the listener's, with an unspecified host (0.0.0.0, [::])
 * replaced by the host this page came from.
 */
export function reachableUrl(wsUrl: string): string {
  const url = new URL(wsUrl);
  if (url.hostname === "0.0.0.0" || url.hostname === "[::]") {
    url.hostname = location.hostname;
  }
  return url.toString();
}

/** Connects to the WebSocket listener that `/endpoints` names. */
export async function connect(): Promise<TavernClient> {
  const { ws_url } = await endpoints();
  if (!ws_url) throw new Error("the server's WebSocket listener is off (--ws-addr off)");
  return TavernClient.connect(reachableUrl(ws_url), { requestTimeoutMs: 5000 });
}

/** A short random suffix for names (`console-k3x9`). */
export function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 6);
}

/** The element with `id`, which the page's HTML must have. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

/** Sets the connection badge: its text and a class for its colour. */
export function setStatus(text: string, state: "ok" | "wait" | "down"): void {
  const badge = byId("status");
  badge.textContent = text;
  badge.className = `badge ${state}`;
}

/** An error's message, whatever was thrown. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

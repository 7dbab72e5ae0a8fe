/**
 * TavernClient's own rules, with a stand-in socket playing the server: a
 * big room's member list folded into RoomJoined, the bound on waiting
 * requests, timeouts, Heartbeats, closes and protocol violations; the
 * backoff's bounds; and a ReconnectingClient trying a cluster's other nodes.
 * No server needed.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  backoffDelay,
  ConnectError,
  ConnectionClosedError,
  ErrorCode,
  MAX_PENDING_REQUESTS,
  ProtocolError,
  ReconnectingClient,
  RequestTimeoutError,
  type ServerMessage,
  TavernClient,
  TavernError,
  TooManyRequestsError,
} from "../src/index.js";
import { FakeWebSocket } from "./fake_socket.js";

/** A client over a fresh stand-in socket, and that socket. */
async function fakeClient(requestTimeoutMs = 5_000): Promise<{ client: TavernClient; socket: FakeWebSocket }> {
  const connecting = TavernClient.connect("ws://fake/", { WebSocket: FakeWebSocket, requestTimeoutMs });
  const socket = FakeWebSocket.last as FakeWebSocket;
  assert.deepEqual(socket.protocols, "tavern.v1");
  socket.open();
  const client = await connecting;
  assert.equal(socket.binaryType, "arraybuffer");
  return { client, socket };
}

const member = (n: number): { sessionId: bigint; name: string } => ({ sessionId: BigInt(n), name: `p${n}` });

test("RoomMembers frames are folded into the RoomJoined a join resolves with", async () => {
  const { client, socket } = await fakeClient();
  let resolved = false;
  const joining = client.join("big", { sinceSeq: 4n, epoch: 9n }).then((joined) => {
    resolved = true;
    return joined;
  });
  const sent = socket.sent[0];
  assert.equal(sent?.body.case, "joinRoom");
  assert.equal(sent.body.case === "joinRoom" && sent.body.value.sinceSeq, 4n);
  const id = sent.requestId;
  const joined = { room: "big", seq: 10n, epoch: 9n, memberCount: 5, members: [member(1), member(2)] };
  socket.receive({ requestId: id, body: { case: "roomJoined", value: joined } });
  socket.receive({ requestId: id, body: { case: "roomMembers", value: { room: "big", seq: 10n, members: [member(3), member(4)] } } });
  await Promise.resolve();
  assert.equal(resolved, false, "not before every member came");
  socket.receive({ requestId: id, body: { case: "roomMembers", value: { room: "big", seq: 10n, members: [member(5)] } } });
  const result = await joining;
  assert.deepEqual(
    result.members.map((m) => m.name),
    ["p1", "p2", "p3", "p4", "p5"],
  );
});

test("requests beyond MAX_PENDING_REQUESTS are refused and not sent", async () => {
  const { client, socket } = await fakeClient();
  const waiting = Array.from({ length: MAX_PENDING_REQUESTS }, () => client.ping().catch((error: unknown) => error));
  await assert.rejects(client.ping(), TooManyRequestsError);
  assert.equal(socket.sent.length, MAX_PENDING_REQUESTS);
  client.close();
  const outcomes = await Promise.all(waiting);
  assert.ok(outcomes.every((outcome) => outcome instanceof ConnectionClosedError), "a close rejects every waiting request");
  await assert.rejects(client.ping(), ConnectionClosedError);
});

test("a request with no reply in time is rejected with RequestTimeoutError", async () => {
  const { client } = await fakeClient(20);
  await assert.rejects(client.ping(), RequestTimeoutError);
});

test("an Error reply rejects its request with a TavernError; a fatal one rejects them all", async () => {
  const { client, socket } = await fakeClient();
  const leaving = client.leave("r");
  const pinging = client.ping();
  const [leave, ping] = socket.sent;
  socket.receive({ requestId: leave?.requestId ?? 0n, body: { case: "error", value: { code: ErrorCode.NOT_IN_ROOM, message: "no" } } });
  await assert.rejects(leaving, (error) => error instanceof TavernError && error.code === ErrorCode.NOT_IN_ROOM);
  const events: ServerMessage[] = [];
  client.onMessage((message) => events.push(message));
  socket.receive({ requestId: 0n, body: { case: "error", value: { code: ErrorCode.SLOW_CONSUMER, message: "read faster" } } });
  await assert.rejects(pinging, (error) => error instanceof TavernError && error.code === ErrorCode.SLOW_CONSUMER);
  assert.equal(events[0]?.body.case, "error", "the fatal error is an event too");
  assert.ok(ping);
  socket.serverClose(1008, "slow consumer");
  await assert.rejects(client.ping(), (error) => {
    assert.ok(error instanceof ConnectionClosedError);
    assert.equal(error.serverError?.code, ErrorCode.SLOW_CONSUMER, "a later request says why the server closed");
    assert.match(error.message, /SLOW_CONSUMER/);
    return true;
  });
});

test("a Heartbeat is answered with a Ping and delivered; that Ping's Pong is not", async () => {
  const { client, socket } = await fakeClient();
  const events: ServerMessage[] = [];
  client.onMessage((message) => events.push(message));
  socket.receive({ body: { case: "heartbeat", value: { serverTimeUs: 1n } } });
  const answer = socket.sent.at(-1);
  assert.equal(answer?.body.case, "ping");
  assert.equal(answer.requestId, 0n);
  socket.receive({ body: { case: "pong", value: { clientTimeUs: 1n } } });
  socket.receive({ body: { case: "chat", value: { room: "r", seq: 1n, text: "hi" } } });
  assert.deepEqual(
    events.map((event) => event.body.case),
    ["heartbeat", "chat"],
  );
});

test("the server's close reaches onClose and rejects what waits", async () => {
  const { client, socket } = await fakeClient();
  const closes: { code: number; reason: string }[] = [];
  client.onClose((info) => closes.push(info));
  const pinging = client.ping();
  socket.serverClose(1001, "shutting down");
  await assert.rejects(pinging, (error) => error instanceof ConnectionClosedError && error.code === 1001);
  assert.deepEqual(closes, [{ code: 1001, reason: "shutting down" }]);
  assert.equal(client.isOpen, false);
});

test("a text message is a protocol violation: the client closes", async () => {
  const { client, socket } = await fakeClient();
  const pinging = client.ping();
  socket.receiveText("hello");
  await assert.rejects(pinging, ProtocolError);
  assert.equal(socket.closedWith?.code, 1003);
  assert.equal(client.isOpen, false);
});

test("a server that does not select tavern.v1 is refused", async () => {
  const connecting = TavernClient.connect("ws://fake/", { WebSocket: FakeWebSocket });
  (FakeWebSocket.last as FakeWebSocket).open("");
  await assert.rejects(connecting, ConnectError);
});

test("backoff: full jitter under a ceiling that doubles up to the cap", () => {
  const backoff = { firstMs: 100, capMs: 1_000, attempts: 10 };
  assert.equal(backoffDelay(backoff, 0, () => 1), 100);
  assert.equal(backoffDelay(backoff, 1, () => 1), 200);
  assert.equal(backoffDelay(backoff, 3, () => 1), 800);
  assert.equal(backoffDelay(backoff, 4, () => 1), 1_000);
  assert.equal(backoffDelay(backoff, 10_000, () => 1), 1_000);
  assert.equal(backoffDelay(backoff, 5, () => 0), 0);
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const delay = backoffDelay(backoff, attempt);
    assert.ok(delay >= 0 && delay <= Math.min(1_000, 100 * 2 ** attempt));
  }
});

/** What `get` gives once it gives something, polled every millisecond for at most a second. */
async function waitFor<T>(get: () => T | undefined, what: string): Promise<T> {
  for (let tries = 0; tries < 1_000; tries += 1) {
    const value = get();
    if (value !== undefined) {
      return value;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error(`no ${what} within a second`);
}

/** The stand-in socket made after `previous`. */
function socketAfter(previous: FakeWebSocket | undefined): Promise<FakeWebSocket> {
  return waitFor(() => (FakeWebSocket.last !== previous ? FakeWebSocket.last : undefined), "new connection");
}

/** Opens `socket` and answers its Hello with a Welcome. */
async function welcome(socket: FakeWebSocket): Promise<void> {
  socket.open();
  const hello = await waitFor(() => socket.sent[0], "Hello");
  const value = { sessionId: 1n, resumeToken: "token", serverVersion: "test" };
  socket.receive({ requestId: hello.requestId, body: { case: "welcome", value } });
}

test("a ReconnectingClient whose node is gone comes back on the next of its fallbackUrls", async () => {
  const options = { WebSocket: FakeWebSocket, backoff: { firstMs: 1, capMs: 1, attempts: 5 }, fallbackUrls: ["ws://b/"] };
  const before = FakeWebSocket.last;
  const connecting = ReconnectingClient.connect("ws://a/", "bob", options);
  const first = await socketAfter(before);
  await welcome(first);
  const client = await connecting;
  let back = false;
  client.on("reconnected", () => {
    back = true;
  });
  first.serverClose(1006, "the node died");
  // First the node it was on, which is gone; then the next one.
  const again = await socketAfter(first);
  assert.equal(again.url, "ws://a/");
  again.serverClose(1006, "refused");
  const fallback = await socketAfter(again);
  assert.equal(fallback.url, "ws://b/");
  await welcome(fallback);
  await waitFor(() => (back ? true : undefined), "reconnected");
  assert.equal(client.url, "ws://b/");
  client.close();
});

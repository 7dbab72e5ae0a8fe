/**
 * ReconnectingClient against a real Tavern: a cut connection comes back
 * with its session (resumed), rejoins its room from the last seq it saw,
 * and gets the chats it missed, in order, after `reconnected`.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { NotConnectedError, type Reconnected, ReconnectingClient, type ServerMessage } from "../src/index.js";
import { body, Inbox, LIMITS, nodeOptions, player, roomEvent, unique, wsUrl } from "./support.js";

/** What a ReconnectingClient emits, in one stream. */
type Happening = { message: ServerMessage } | { reconnected: Reconnected } | { disconnected: true };

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = (): void => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

test("a cut connection is resumed, and the missed chats arrive in order after `reconnected`", LIMITS, async (t) => {
  const room = unique("resume");
  // Connections after the first wait for the gate: the test decides when the client may come back.
  const comeBack = gate();
  let connections = 0;
  const token = async (): Promise<string> => {
    connections += 1;
    if (connections > 1) {
      await comeBack.opened;
    }
    return "";
  };
  const name = unique("rc");
  const client = await ReconnectingClient.connect(wsUrl(), name, {
    ...nodeOptions,
    token,
    backoff: { firstMs: 20, capMs: 200, attempts: 50 },
  });
  t.after(() => client.close());
  const happenings = new Inbox<Happening>((push) => {
    client.onMessage((message) => push({ message }));
    client.on("reconnected", (reconnected) => push({ reconnected }));
    client.on("disconnected", () => push({ disconnected: true }));
  });
  const joined = await client.join(room);
  const other = await player(t, "other");
  t.after(() => other.client.close());
  await other.client.join(room);
  const before = await happenings.next("Other's MemberJoined", (h) =>
    "message" in h ? roomEvent(room)(h.message) : undefined,
  );
  assert.equal(before.seq, joined.seq + 1n);

  client.disconnect();
  await happenings.next("disconnected", (h) => ("disconnected" in h ? true : undefined));
  assert.equal(client.connected, false);
  assert.throws(() => client.chat(room, "while away"), NotConnectedError);
  await assert.rejects(client.ping(), NotConnectedError);

  const missed = Array.from({ length: 5 }, (_, i) => `missed ${i}`);
  for (const text of missed) {
    other.client.chat(room, text);
  }
  for (const text of missed) {
    const echo = await other.inbox.next(`the echo of "${text}"`, body("chat"));
    assert.equal(echo.text, text);
  }
  comeBack.open();

  const reconnected = await happenings.next("reconnected", (h) => ("reconnected" in h ? h.reconnected : undefined));
  assert.equal(reconnected.resumed, true, "the server gave the session back");
  assert.deepEqual(reconnected.rooms, [[room, true]]);
  assert.ok(reconnected.attempts >= 1);
  assert.equal(client.welcome.resumed, true);
  let seq = before.seq;
  for (const text of missed) {
    const event = await happenings.next(`the missed chat "${text}"`, (h) =>
      "message" in h ? roomEvent(room)(h.message) : undefined,
    );
    assert.equal(event.seq, seq + 1n, "no gap, no duplicate");
    assert.equal(event.message.body.case === "chat" && event.message.body.value.text, text);
    seq = event.seq;
  }

  // Back in the room with its seat: the other member saw it neither leave nor join.
  client.chat(room, "back");
  const next = await other.inbox.next("the next event in the room", roomEvent(room));
  assert.equal(next.seq, seq + 1n);
  assert.equal(next.message.body.case === "chat" && next.message.body.value.text, "back");

  const closed = new Promise((resolve) => client.on("closed", resolve));
  await client.goodbye();
  await closed;
  await other.client.goodbye();
});

test("close() while reconnecting stops it and says so", LIMITS, async (t) => {
  const never = gate();
  let connections = 0;
  const client = await ReconnectingClient.connect(wsUrl(), unique("rc"), {
    ...nodeOptions,
    token: async () => {
      connections += 1;
      if (connections > 1) {
        await never.opened;
      }
      return "";
    },
    backoff: { firstMs: 1, capMs: 1, attempts: 3 },
  });
  t.after(() => client.close());
  const disconnected = new Promise((resolve) => client.on("disconnected", resolve));
  const closed = new Promise<{ code: number }>((resolve) => client.on("closed", resolve));
  client.disconnect();
  await disconnected;
  client.close();
  assert.equal((await closed).code, 1000);
  assert.equal(client.connected, false);
  assert.throws(() => client.chat("any", "text"), NotConnectedError);
});

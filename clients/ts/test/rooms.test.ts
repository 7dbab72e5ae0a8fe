/** Rooms against a real Tavern: chat between two clients in one gap-free order, a plugin's op, QuickJoin, ListRooms. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { ErrorCode, type ServerMessage } from "../src/index.js";
import { body, LIMITS, player, roomEvent, type Inbox, unique } from "./support.js";

/** The next `count` sequenced events of `room`, checked to follow `seq` without a gap. */
async function inOrder(inbox: Inbox<ServerMessage>, room: string, seq: bigint, count: number): Promise<ServerMessage[]> {
  const events: ServerMessage[] = [];
  let last = seq;
  for (let i = 0; i < count; i += 1) {
    const event = await inbox.next(`event ${i + 1} of ${count} in ${room}`, roomEvent(room));
    assert.equal(event.seq, last + 1n, `gap or reorder after seq ${last} (got a ${event.kind})`);
    last = event.seq;
    events.push(event.message);
  }
  return events;
}

test("two clients chat, and both see one gap-free order", LIMITS, async (t) => {
  const room = unique("chat");
  const alice = await player(t, "alice");
  const bob = await player(t, "bob");
  const aliceJoined = await alice.client.join(room);
  assert.equal(aliceJoined.room, room);
  assert.equal(aliceJoined.kind, "chat");
  assert.notEqual(aliceJoined.epoch, 0n);
  const bobJoined = await bob.client.join(room);
  const sessions = bobJoined.members.map((member) => member.sessionId);
  assert.deepEqual(sessions.sort(), [alice.welcome.sessionId, bob.welcome.sessionId].sort());
  assert.equal(bobJoined.members.length, 2);
  assert.equal(bobJoined.memberCount, 2);
  const ids: bigint[] = [];
  for (let i = 0; i < 10; i += 1) {
    ids.push(alice.client.chat(room, `alice ${i}`));
    bob.client.chat(room, `bob ${i}`);
  }
  // Alice sees Bob join (seq bobJoined.seq), then the 20 chats; Bob sees the 20 chats after his join.
  const seenByAlice = await inOrder(alice.inbox, room, aliceJoined.seq, 21);
  const seenByBob = await inOrder(bob.inbox, room, bobJoined.seq, 20);
  assert.equal(seenByAlice[0]?.body.case, "memberJoined");
  const texts = (events: ServerMessage[]): string[] =>
    events.flatMap((event) => (event.body.case === "chat" ? [event.body.value.text] : []));
  assert.deepEqual(texts(seenByAlice), texts(seenByBob), "both saw the same order");
  assert.deepEqual(
    texts(seenByBob).filter((text) => text.startsWith("alice")),
    Array.from({ length: 10 }, (_, i) => `alice ${i}`),
  );
  // Alice's own copies echo her request ids; Bob's copies of them carry 0.
  const aliceEchoes = seenByAlice.filter((e) => e.body.case === "chat" && e.body.value.fromSession === alice.welcome.sessionId);
  assert.deepEqual(aliceEchoes.map((e) => e.requestId), ids);
  const bobsCopies = seenByBob.filter((e) => e.body.case === "chat" && e.body.value.fromSession === alice.welcome.sessionId);
  assert.ok(bobsCopies.every((e) => e.requestId === 0n));
  await alice.client.goodbye();
  await bob.client.goodbye();
});

test("an echo room sends a member's op back to every member as a sequenced RoomEvent", LIMITS, async (t) => {
  const room = unique("echo");
  const alice = await player(t, "alice");
  const bob = await player(t, "bob");
  const joined = await alice.client.join(room, { kind: "echo" });
  assert.equal(joined.kind, "echo");
  const bobJoined = await bob.client.join(room, { kind: "echo" });
  const data = new Uint8Array([1, 2, 3, 250]);
  alice.client.roomSend(room, 7, data);
  const seqs: bigint[] = [];
  for (const who of [alice, bob]) {
    const event = await who.inbox.next("the echo", (m) => {
      const e = body("roomEvent")(m);
      return e?.room === room ? e : undefined;
    });
    assert.equal(event.op, 7);
    assert.deepEqual(event.data, data);
    assert.equal(event.fromSession, alice.welcome.sessionId);
    seqs.push(event.seq);
  }
  // The room's next seq (or later, if a QuickJoin elsewhere in the suite came in first), the same for both.
  assert.ok((seqs[0] ?? 0n) > bobJoined.seq, "a sequenced event");
  assert.equal(seqs[0], seqs[1]);
  await assert.rejects(bob.client.join(room, { kind: "chat" }), { name: "TavernError", code: ErrorCode.ALREADY_IN_ROOM });
  await alice.client.goodbye();
  await bob.client.goodbye();
});

test("QuickJoin finds or makes a room of a kind, and ListRooms lists it", LIMITS, async (t) => {
  const { client } = await player(t, "quick");
  const joined = await client.quickJoin("echo", "game=echo");
  assert.equal(joined.kind, "echo");
  assert.ok(joined.members.some((member) => member.sessionId !== 0n));
  const rooms = await client.listRooms({ kind: "echo" });
  const listed = rooms.find((info) => info.room === joined.room);
  assert.ok(listed, `${joined.room} is listed among ${rooms.map((info) => info.room).join(", ")}`);
  assert.equal(listed.kind, "echo");
  assert.equal(listed.label, "game=echo");
  assert.ok(listed.members >= 1);
  assert.deepEqual(await client.listRooms({ kind: "echo", filter: "game=nothing-of-the-kind" }), []);
  const limited = await client.listRooms({ limit: 1 });
  assert.ok(limited.length <= 1);
  await assert.rejects(client.listRooms({ filter: "junk" }), { name: "TavernError", code: ErrorCode.INVALID_FILTER });
  await client.goodbye();
});

test("leaving a room is answered, and the others see it", LIMITS, async (t) => {
  const room = unique("leave");
  const alice = await player(t, "alice");
  const bob = await player(t, "bob");
  await alice.client.join(room);
  const bobJoined = await bob.client.join(room);
  const left = await bob.client.leave(room);
  assert.equal(left.room, room);
  const event = await alice.inbox.next("Bob's MemberLeft", body("memberLeft"));
  assert.equal(event.seq, bobJoined.seq + 1n);
  assert.equal(event.member?.sessionId, bob.welcome.sessionId);
  await alice.client.goodbye();
  await bob.client.goodbye();
});

/** An MMO world against a real Tavern: entering, seeing another player, moving, leaving. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { ErrorCode } from "../src/index.js";
import { body, LIMITS, player, unique } from "./support.js";

test("two players enter a world, see each other, and one moves", LIMITS, async (t) => {
  const world = unique("world");
  const alice = await player(t, "alice");
  const bob = await player(t, "bob");
  const entered = await alice.client.enterWorld(world, { x: 100, y: 100 });
  assert.equal(entered.world, world);
  assert.equal(entered.entityId, alice.welcome.sessionId);
  assert.ok(entered.tickRateHz > 0);
  assert.ok(entered.positionQuantum > 0);
  assert.equal(entered.position?.x, 100);
  await bob.client.enterWorld(world, { x: 110, y: 100 });

  // Bob's updates bring Alice into his area of interest.
  const seen = await bob.inbox.next("a WorldUpdate with Alice entering", (message) => {
    const update = body("worldUpdate")(message);
    return update?.entered.find((entity) => entity.id === alice.welcome.sessionId);
  });
  assert.equal(seen.x, Math.round(100 / entered.positionQuantum));
  assert.equal(seen.y, Math.round(100 / entered.positionQuantum));

  alice.client.move(104, 100, 0, 1);
  const acked = await alice.inbox.next("a WorldUpdate acknowledging Move 1", (message) => {
    const update = body("worldUpdate")(message);
    return update !== undefined && update.ackClientTick >= 1 ? update : undefined;
  });
  assert.equal(acked.ackClientTick, 1);
  const moved = await bob.inbox.next("a WorldUpdate with Alice moving", (message) =>
    body("worldUpdate")(message)?.moved.find((entity) => entity.id === alice.welcome.sessionId),
  );
  assert.ok(moved.dx > 0, "Alice moved east");

  const left = await alice.client.leaveWorld(world);
  assert.equal(left.world, world);
  const gone = await bob.inbox.next("a WorldUpdate with Alice leaving", (message) =>
    body("worldUpdate")(message)?.left.includes(alice.welcome.sessionId) ? true : undefined,
  );
  assert.equal(gone, true);
  const id = alice.client.move(1, 1, 0, 2);
  const error = await alice.inbox.next("the Move's error", (message) =>
    message.requestId === id ? body("error")(message) : undefined,
  );
  assert.equal(error.code, ErrorCode.NOT_IN_WORLD);
  await assert.rejects(alice.client.leaveWorld(world), { name: "TavernError", code: ErrorCode.NOT_IN_WORLD });
  await alice.client.goodbye();
  await bob.client.goodbye();
});

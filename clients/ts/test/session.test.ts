/** A session's life against a real Tavern: Hello, Ping, errors as TavernError, Goodbye. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { ConnectError, ConnectionClosedError, ErrorCode, TavernClient, TavernError } from "../src/index.js";
import { body, LIMITS, nodeOptions, player, unique, wsUrl } from "./support.js";

test("Hello is answered by Welcome, Ping by Pong", LIMITS, async (t) => {
  const { client, welcome } = await player(t, "hello");
  assert.ok(welcome.sessionId > 0n, "a session id");
  assert.ok(welcome.heartbeatIntervalMs > 0, "a heartbeat interval");
  assert.ok(welcome.maxFrameLen > 0, "a frame limit");
  assert.notEqual(welcome.resumeToken, "", "a resume token (the server holds sessions for a resume)");
  assert.equal(welcome.resumed, false);
  const pong = await client.ping();
  assert.ok(pong.serverTimeUs > 0n);
  assert.ok(pong.clientTimeUs > 0n);
  await client.goodbye();
});

test("the server's errors reject requests as TavernError with their code", LIMITS, async (t) => {
  const { client, inbox } = await player(t, "errors");
  await assert.rejects(client.leave(unique("nowhere")), (error) => {
    assert.ok(error instanceof TavernError, `a TavernError, not ${String(error)}`);
    assert.equal(error.code, ErrorCode.NOT_IN_ROOM);
    assert.ok(error.requestId > 0n);
    return true;
  });
  await assert.rejects(client.hello(unique("again")), { name: "TavernError", code: ErrorCode.ALREADY_WELCOMED });
  await assert.rejects(client.join("no spaces allowed"), { name: "TavernError", code: ErrorCode.INVALID_ROOM });
  await assert.rejects(client.join(unique("r"), { kind: "no-such-kind" }), {
    name: "TavernError",
    code: ErrorCode.UNKNOWN_ROOM_KIND,
  });
  // A request without a reply: its error is an event echoing its request id.
  const id = client.chat(unique("notjoined"), "hello?");
  const error = await inbox.next("the chat's error", (message) =>
    message.requestId === id ? body("error")(message) : undefined,
  );
  assert.equal(error.code, ErrorCode.NOT_IN_ROOM);
  // The connection stays.
  await client.ping();
  await client.goodbye();
});

test("a refused Hello may be retried", LIMITS, async (t) => {
  const client = await TavernClient.connect(wsUrl(), nodeOptions);
  t.after(() => client.close());
  await assert.rejects(client.hello(""), { name: "TavernError", code: ErrorCode.INVALID_NAME });
  const welcome = await client.hello(unique("retry"));
  assert.ok(welcome.sessionId > 0n);
  await client.goodbye();
});

test("Goodbye ends the session at once: the others see it leave, and requests fail", LIMITS, async (t) => {
  const room = unique("bye");
  const leaving = await player(t, "leaving");
  const staying = await player(t, "staying");
  await leaving.client.join(room);
  await staying.client.join(room);
  await leaving.client.goodbye();
  assert.equal(leaving.client.isOpen, false);
  const left = await staying.inbox.next("MemberLeft", body("memberLeft"));
  assert.equal(left.room, room);
  assert.equal(left.member?.sessionId, leaving.welcome.sessionId);
  await assert.rejects(leaving.client.ping(), ConnectionClosedError);
  assert.throws(() => leaving.client.chat(room, "too late"), ConnectionClosedError);
  await staying.client.goodbye();
});

test("without options.WebSocket the global one is used, and its absence is explained", LIMITS, async () => {
  if ("WebSocket" in globalThis) {
    const client = await TavernClient.connect(wsUrl());
    client.close();
    return;
  }
  await assert.rejects(TavernClient.connect(wsUrl()), (error) => {
    assert.ok(error instanceof ConnectError, `a ConnectError, not ${String(error)}`);
    assert.match(error.message, /options\.WebSocket/);
    return true;
  });
});

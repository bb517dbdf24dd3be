// Contract §2 server → client pushes, triggered through the §4 HTTP API: the right event with
// the exact payload to exactly the right sockets, the `clients` counts, and ordering.
//
// The broadcast test counts every session on the server: run the test files one at a time
// (`--test-concurrency=1`, as tests/socketio_client.rs does).

import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  api,
  broadcast,
  closeAll,
  connectAdmin,
  connectUser,
  pushRoomMessage,
  pushRoomNotification,
  pushToUser,
  request,
  sample,
  socket,
  outcome,
  token,
  uid,
  until,
  QUIET_MS,
} from "./lib.mjs";

afterEach(closeAll);

async function ok(s, event, payload, replyEvent) {
  const [reply, ack] = await request(s, event, replyEvent, payload);
  assert.deepEqual(ack, reply);
  return reply;
}

async function roomSize(room) {
  const { status, body } = await api("GET", `/api/v1/rooms/${encodeURIComponent(room)}`);
  assert.equal(status, 200);
  assert.equal(body.room, room);
  return body.clients;
}

describe("user notifications", () => {
  test("reach every socket of the user, exactly, and nobody else", async () => {
    const sub = uid();
    const a = await connectUser(sub);
    const b = await connectUser(sub);
    const other = await connectUser();
    const n = sample("quota.updated");
    assert.equal(await pushToUser(sub, n), 2);
    assert.deepEqual(await a.inbox.next("notification"), n);
    assert.deepEqual(await b.inbox.next("notification"), n);
    await other.inbox.assertQuiet(QUIET_MS, "another user receives nothing");
    await a.inbox.assertQuiet(0, "exactly one copy");
    await b.inbox.assertQuiet(0, "exactly one copy");
  });

  test("an integer-looking and an odd user id", async () => {
    const numeric = String(1 + Math.floor(Math.random() * 1e12));
    const odd = `a b/é?#%${uid()}`;
    const s1 = await connectUser(numeric);
    const s2 = await connectUser(odd);
    const n1 = { type: "quota.alert", data: { userId: Number(numeric) } };
    const n2 = { type: "quota.alert", data: { userId: odd } };
    assert.equal(await pushToUser(numeric, n1), 1);
    assert.equal(await pushToUser(odd, n2), 1);
    assert.deepEqual(await s1.inbox.next("notification"), n1);
    assert.deepEqual(await s2.inbox.next("notification"), n2);
  });

  test("nobody connected: clients 0", async () => {
    assert.equal(await pushToUser(uid(), sample("nobody")), 0);
  });

  test("an admin subscribed to a user gets the user's notifications until it unsubscribes", async () => {
    const user = await connectUser();
    const admin = await connectAdmin();
    await ok(admin, "subscribe", { userId: user.sub }, "subscribed");
    const n1 = sample("device.status.changed", { seq: 1 });
    assert.equal(await pushToUser(user.sub, n1), 2);
    assert.deepEqual(await user.inbox.next("notification"), n1);
    assert.deepEqual(await admin.inbox.next("notification"), n1);

    await ok(admin, "unsubscribe", { userId: user.sub }, "unsubscribed");
    const n2 = sample("device.status.changed", { seq: 2 });
    assert.equal(await pushToUser(user.sub, n2), 1);
    assert.deepEqual(await user.inbox.next("notification"), n2);
    await admin.inbox.assertQuiet(QUIET_MS, "no push after unsubscribe");
  });

  test("a user that unsubscribes from itself stops receiving its notifications", async () => {
    const s = await connectUser();
    await ok(s, "unsubscribe", { userId: s.sub }, "unsubscribed");
    assert.equal(await pushToUser(s.sub, sample("gone")), 0);
    await s.inbox.assertQuiet(QUIET_MS, "no push after unsubscribe");
    await ok(s, "subscribe", { userId: s.sub }, "subscribed");
    const n = sample("back");
    assert.equal(await pushToUser(s.sub, n), 1);
    assert.deepEqual(await s.inbox.next("notification"), n);
  });

  test("a disconnected socket no longer counts", async () => {
    const sub = uid();
    const a = await connectUser(sub);
    const b = await connectUser(sub);
    b.close();
    // The server notices the close asynchronously: poll the room size.
    await until(async () => (await roomSize(`user:${sub}`)) === 1, "the closed socket left user:<sub>");
    const n = sample("one.left");
    assert.equal(await pushToUser(sub, n), 1);
    assert.deepEqual(await a.inbox.next("notification"), n);
  });
});

describe("room pushes", () => {
  test("message and notification reach the room's members only, until they leave", async () => {
    const room = uid("room-");
    const a1 = await connectAdmin();
    const a2 = await connectAdmin();
    const outsider = await connectAdmin();
    const user = await connectUser();
    await ok(a1, "join_room", { room }, "room_joined");
    await ok(a2, "join_room", { room }, "room_joined");
    assert.equal(await roomSize(room), 2);

    const m = sample("device.started", { kind: "message" });
    assert.equal(await pushRoomMessage(room, m), 2);
    assert.deepEqual(await a1.inbox.next("message"), m);
    assert.deepEqual(await a2.inbox.next("message"), m);

    const n = sample("critical", { kind: "notification" });
    assert.equal(await pushRoomNotification(room, n), 2);
    assert.deepEqual(await a1.inbox.next("notification"), n);
    assert.deepEqual(await a2.inbox.next("notification"), n);

    await outsider.inbox.assertQuiet(QUIET_MS, "an admin not in the room receives nothing");
    await user.inbox.assertQuiet(0, "a user not in the room receives nothing");
    await a1.inbox.assertQuiet(0, "one copy of each push");

    await ok(a2, "leave_room", { room }, "room_left");
    const m2 = sample("device.stopped", { kind: "message" });
    assert.equal(await pushRoomMessage(room, m2), 1);
    assert.deepEqual(await a1.inbox.next("message"), m2);
    const n2 = sample("error", { kind: "notification" });
    assert.equal(await pushRoomNotification(room, n2), 1);
    assert.deepEqual(await a1.inbox.next("notification"), n2);
    await a2.inbox.assertQuiet(QUIET_MS, "no push after leave_room");

    await ok(a1, "leave_room", { room }, "room_left");
    assert.equal(await pushRoomMessage(room, sample("empty")), 0);
    assert.equal(await pushRoomNotification(room, sample("empty")), 0);
    await a1.inbox.assertQuiet(QUIET_MS, "no push after leave_room");
  });

  test("the admin room and a user room addressed as a room", async () => {
    const admin = await connectAdmin();
    const user = await connectUser();
    await ok(admin, "join_room", { room: "admin" }, "room_joined");
    const m = sample("quota.updated", { room: "admin" });
    const before = await roomSize("admin");
    assert.ok(before >= 1);
    assert.equal(await pushRoomMessage("admin", m), before);
    assert.deepEqual(await admin.inbox.next("message"), m);
    await user.inbox.assertQuiet(QUIET_MS, "a user is not in the admin room");

    // user:<sub> is a room like any other for the room routes.
    const n = sample("to.user.room");
    assert.equal(await pushRoomNotification(`user:${user.sub}`, n), 1);
    assert.deepEqual(await user.inbox.next("notification"), n);
    const m2 = sample("to.user.room.message");
    assert.equal(await pushRoomMessage(`user:${user.sub}`, m2), 1);
    assert.deepEqual(await user.inbox.next("message"), m2);
    await ok(admin, "leave_room", { room: "admin" }, "room_left");
  });

  test("a user that joins its own room again gets one copy", async () => {
    const s = await connectUser();
    await ok(s, "join_room", { room: `user:${s.sub}` }, "room_joined");
    await ok(s, "subscribe", { userId: s.sub }, "subscribed");
    const n = sample("once");
    assert.equal(await pushToUser(s.sub, n), 1);
    assert.deepEqual(await s.inbox.next("notification"), n);
    await s.inbox.assertQuiet(QUIET_MS, "one copy");
  });
});

describe("broadcast", () => {
  test("reaches every connected client; clients counts them all", async () => {
    const sockets = [await connectUser(), await connectUser(), await connectAdmin()];
    // Sockets of earlier tests are closed, but the server may still be noticing it.
    await until(async () => (await api("GET", "/api/v1/stats")).body.connections === sockets.length,
      "only this test's sockets are connected (GET /api/v1/stats)");
    const n = sample("maintenance", { broadcast: true });
    assert.equal(await broadcast(n), sockets.length);
    for (const s of sockets) {
      assert.deepEqual(await s.inbox.next("notification"), n);
    }
    sockets[0].close();
    await until(async () => (await api("GET", "/api/v1/stats")).body.connections === sockets.length - 1,
      "the closed socket is gone");
    const n2 = sample("after.close");
    assert.equal(await broadcast(n2), sockets.length - 1);
    assert.deepEqual(await sockets[1].inbox.next("notification"), n2);
    assert.deepEqual(await sockets[2].inbox.next("notification"), n2);
  });
});

describe("ordering", () => {
  test("subscribe and join_room emitted in the connect handler are answered in order", async () => {
    const sub = uid();
    const s = socket({ token: token(sub) });
    const acks = [];
    s.on("connect", () => {
      s.emit("subscribe", { userId: sub }, (a) => acks.push(["subscribe", a]));
      s.emit("join_room", { room: `user:${sub}` }, (a) => acks.push(["join_room", a]));
    });
    assert.equal(await outcome(s), "connect");
    assert.equal((await s.inbox.next("welcome")).userId, sub);
    const subscribed = await s.inbox.next("subscribed");
    const joined = await s.inbox.next("room_joined");
    assert.equal(subscribed.userId, sub);
    assert.equal(joined.room, `user:${sub}`);
    const order = s.inbox.events.map((e) => e.event);
    assert.deepEqual(order, ["welcome", "subscribed", "room_joined"]);
    await until(() => acks.length === 2, "both acks");
    assert.deepEqual(acks, [
      ["subscribe", subscribed],
      ["join_room", joined],
    ]);

    // A burst of pushes to that user: all arrive, once each, in order.
    const N = 200;
    for (let i = 0; i < N; i++) {
      assert.equal(await pushToUser(sub, { type: "burst", seq: i }), 1);
    }
    const got = await s.inbox.take("notification", N);
    assert.deepEqual(
      got.map((p) => p.seq),
      Array.from({ length: N }, (_, i) => i),
    );
    await s.inbox.assertQuiet(QUIET_MS, "no duplicates");
  });

  test("pushes of different kinds to one socket keep their order", async () => {
    const room = uid("room-");
    const s = await connectAdmin();
    await ok(s, "join_room", { room }, "room_joined");
    const sent = [];
    for (let i = 0; i < 30; i++) {
      const kind = ["user", "message", "notification"][i % 3];
      const body = { type: "mixed", seq: i };
      if (kind === "user") await pushToUser(s.sub, body);
      else if (kind === "message") await pushRoomMessage(room, body);
      else await pushRoomNotification(room, body);
      sent.push([kind === "message" ? "message" : "notification", body]);
    }
    await until(() => s.inbox.pending().length >= sent.length, `${sent.length} pushes`).catch(() => {});
    assert.deepEqual(s.inbox.pending(), sent);
  });
});

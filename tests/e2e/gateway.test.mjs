// Contract §2 with the real socket.io-client: the welcome event, the four client events with
// their reply events and acks, the room ACL, malformed requests, and both Socket.IO paths.

import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  closeAll,
  connect,
  connectAdmin,
  connectUser,
  pushToUser,
  request,
  sample,
  sleep,
  uid,
  QUIET_MS,
} from "./lib.mjs";

afterEach(closeAll);

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Expect `event payload` to be answered with the success `replyEvent` (event and ack). */
async function expectOk(s, event, payload, replyEvent, expected) {
  const [reply, ack] = await request(s, event, replyEvent, payload);
  assert.deepEqual(ack, reply, `${event}: the ack carries the reply event's payload`);
  const key = "userId" in expected ? "userId" : "room";
  assert.equal(reply[key], expected[key], `${event} ${JSON.stringify(payload)}: ${key}`);
  assert.equal(typeof reply.message, "string", `${event}: message`);
  assert.deepEqual(Object.keys(reply).sort(), [key, "message"].sort(), `${event}: payload keys`);
  return reply;
}

/** Expect `event ...args` to be refused with `code` (the `error` event and the ack). */
async function expectRefused(s, event, args, code) {
  const [reply, ack] = await request(s, event, "error", ...args);
  assert.deepEqual(ack, reply, `${event}: the ack carries the error event's payload`);
  assert.equal(reply.event, event, `${event} ${JSON.stringify(args)}: error.event`);
  assert.equal(reply.code, code, `${event} ${JSON.stringify(args)}: error.code (${reply.message})`);
  assert.equal(typeof reply.message, "string");
  assert.ok(reply.message.length > 0);
  assert.ok(s.connected, "the connection stays open after a refusal");
  return reply;
}

describe("welcome", () => {
  test("exactly once per connect, with clientId === socket.id and userId === sub", async () => {
    const before = Date.now();
    const s = await connectUser();
    const w = s.welcome;
    assert.equal(typeof w.message, "string");
    assert.ok(w.message.length > 0);
    assert.equal(w.clientId, s.id, "clientId is the Socket.IO socket id");
    assert.equal(w.userId, s.sub);
    assert.match(w.timestamp, RFC3339);
    const t = Date.parse(w.timestamp);
    assert.ok(!Number.isNaN(t), `timestamp ${w.timestamp} parses`);
    assert.ok(t >= before - 60_000 && t <= Date.now() + 60_000, `timestamp ${w.timestamp} is now`);
    await sleep(QUIET_MS);
    assert.equal(s.inbox.all("welcome").length, 1, "welcome is emitted once");
  });

  test("every connection of the same user gets its own welcome", async () => {
    const sub = uid();
    const a = await connectUser(sub);
    const b = await connectUser(sub);
    assert.notEqual(a.id, b.id);
    assert.equal(a.welcome.clientId, a.id);
    assert.equal(b.welcome.clientId, b.id);
    await sleep(QUIET_MS);
    assert.equal(a.inbox.all("welcome").length, 1);
    assert.equal(b.inbox.all("welcome").length, 1);
  });
});

describe("a user (non-admin)", () => {
  test("subscribe / unsubscribe to itself: reply event and ack", async () => {
    const s = await connectUser();
    await expectOk(s, "subscribe", { userId: s.sub }, "subscribed", { userId: s.sub });
    await expectOk(s, "unsubscribe", { userId: s.sub }, "unsubscribed", { userId: s.sub });
  });

  test("an integer userId means its decimal string", async () => {
    const sub = String(42 + Math.floor(Math.random() * 1e9));
    const s = await connectUser(sub);
    await expectOk(s, "subscribe", { userId: Number(sub) }, "subscribed", { userId: sub });
    await expectOk(s, "unsubscribe", { userId: Number(sub) }, "unsubscribed", { userId: sub });
  });

  test("subscribing to another user is forbidden", async () => {
    const s = await connectUser();
    await expectRefused(s, "subscribe", [{ userId: uid() }], "forbidden");
    await expectRefused(s, "unsubscribe", [{ userId: uid() }], "forbidden");
  });

  test("join_room: own user room allowed; admin, another user's room, other rooms forbidden", async () => {
    const s = await connectUser();
    await expectOk(s, "join_room", { room: `user:${s.sub}` }, "room_joined", { room: `user:${s.sub}` });
    await expectRefused(s, "join_room", [{ room: "admin" }], "forbidden");
    await expectRefused(s, "join_room", [{ room: `user:${uid()}` }], "forbidden");
    await expectRefused(s, "join_room", [{ room: "lobby" }], "forbidden");
    await expectRefused(s, "join_room", [{ room: uid("room-") }], "forbidden");
  });

  test("leave_room is always allowed", async () => {
    const s = await connectUser();
    for (const room of ["admin", "lobby", `user:${uid()}`, `user:${s.sub}`]) {
      await expectOk(s, "leave_room", { room }, "room_left", { room });
    }
  });

  test("the connection stays open after a refusal: the next request is answered", async () => {
    const s = await connectUser();
    await expectRefused(s, "join_room", [{ room: "admin" }], "forbidden");
    await expectRefused(s, "subscribe", [{ userId: -1 }], "bad_request");
    await expectOk(s, "subscribe", { userId: s.sub }, "subscribed", { userId: s.sub });
    await expectOk(s, "join_room", { room: `user:${s.sub}` }, "room_joined", { room: `user:${s.sub}` });
    assert.ok(s.connected);
    // And pushes still arrive.
    const n = sample("after.refusal");
    assert.equal(await pushToUser(s.sub, n), 1);
    assert.deepEqual(await s.inbox.next("notification"), n);
  });

  test("without an ack callback the reply event still comes, exactly once", async () => {
    const s = await connectUser();
    s.emit("subscribe", { userId: s.sub });
    const reply = await s.inbox.next("subscribed");
    assert.equal(reply.userId, s.sub);
    s.emit("join_room", { room: "admin" });
    const err = await s.inbox.next("error");
    assert.equal(err.event, "join_room");
    assert.equal(err.code, "forbidden");
    await s.inbox.assertQuiet(QUIET_MS, "one reply per request");
  });

  test("a sub with any characters owns its user room", async () => {
    for (const sub of ["a b/é?#%", "x".repeat(128), "émoji 🚀"]) {
      const s = await connectUser(sub);
      assert.equal(s.welcome.userId, sub);
      await expectOk(s, "subscribe", { userId: sub }, "subscribed", { userId: sub });
      await expectOk(s, "join_room", { room: `user:${sub}` }, "room_joined", { room: `user:${sub}` });
      await expectOk(s, "leave_room", { room: `user:${sub}` }, "room_left", { room: `user:${sub}` });
      s.close();
    }
  });
});

describe("an admin", () => {
  test("may subscribe to and unsubscribe from any user", async () => {
    const s = await connectAdmin();
    const other = uid();
    await expectOk(s, "subscribe", { userId: other }, "subscribed", { userId: other });
    await expectOk(s, "unsubscribe", { userId: other }, "unsubscribed", { userId: other });
    await expectOk(s, "subscribe", { userId: 0 }, "subscribed", { userId: "0" });
    await expectOk(s, "subscribe", { userId: 2 ** 53 }, "subscribed", { userId: "9007199254740992" });
  });

  test("may join admin, another user's room and any other room, and leave them", async () => {
    const s = await connectAdmin();
    const rooms = ["admin", `user:${uid()}`, "lobby", "a:B_c.d@e-f", "r".repeat(128)];
    for (const room of rooms) {
      await expectOk(s, "join_room", { room }, "room_joined", { room });
    }
    for (const room of rooms) {
      await expectOk(s, "leave_room", { room }, "room_left", { room });
    }
  });
});

describe("malformed requests are bad_request", () => {
  const badUserIds = [
    ["missing userId", [{}]],
    ["userId -1", [{ userId: -1 }]],
    ["userId 1.5", [{ userId: 1.5 }]],
    ['userId ""', [{ userId: "" }]],
    ["userId object", [{ userId: { id: "42" } }]],
    ["userId null", [{ userId: null }]],
    ["userId true", [{ userId: true }]],
    ["userId array", [{ userId: ["42"] }]],
    ["userId above 2^53", [{ userId: 2 ** 53 + 2 }]],
    ["payload a string", ["42"]],
    ["no payload at all", []],
  ];
  const badRooms = [
    ["missing room", [{}]],
    ["room with a space", [{ room: "bad room" }]],
    ["empty room", [{ room: "" }]],
    ["129-char room", [{ room: "r".repeat(129) }]],
    ["room with a slash", [{ room: "a/b" }]],
    ["non-string room", [{ room: 42 }]],
    ["room null", [{ room: null }]],
    ["room object", [{ room: { name: "admin" } }]],
    ["payload a string", ["admin"]],
    ["no payload at all", []],
  ];

  // Each of `events` with each of `badArgs` (`[what, args]`) is refused as bad_request; a
  // failure names the event and the argument.
  async function expectAllBadRequests(s, events, badArgs) {
    for (const event of events) {
      for (const [what, args] of badArgs) {
        await expectRefused(s, event, args, "bad_request").catch((e) => {
          e.message = `${event} with ${what}: ${e.message}`;
          throw e;
        });
      }
    }
  }

  for (const [who, connectAs] of [
    ["user", () => connectUser()],
    ["admin", () => connectAdmin()],
  ]) {
    test(`subscribe / unsubscribe (${who})`, async () => {
      const s = await connectAs();
      await expectAllBadRequests(s, ["subscribe", "unsubscribe"], badUserIds);
      await expectOk(s, "subscribe", { userId: s.sub }, "subscribed", { userId: s.sub });
    });

    test(`join_room / leave_room (${who})`, async () => {
      const s = await connectAs();
      await expectAllBadRequests(s, ["join_room", "leave_room"], badRooms);
      await expectOk(s, "leave_room", { room: "admin" }, "room_left", { room: "admin" });
    });
  }
});

describe("paths", () => {
  for (const path of [undefined, "/socket.io", "/socket.io/", "/ws", "/ws/"]) {
    test(`path ${path ?? "(default /socket.io/)"}: welcome, requests and pushes`, async () => {
      const s = await connectUser(uid(), {}, path ? { path } : {});
      assert.equal(s.welcome.clientId, s.id);
      await expectOk(s, "subscribe", { userId: s.sub }, "subscribed", { userId: s.sub });
      await expectRefused(s, "join_room", [{ room: "admin" }], "forbidden");
      const n = sample("path.test", { path: path ?? null });
      assert.equal(await pushToUser(s.sub, n), 1);
      assert.deepEqual(await s.inbox.next("notification"), n);
    });
  }
});

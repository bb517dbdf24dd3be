// Contract §2 transports with the real socket.io-client: HTTP long-polling first with the
// upgrade to WebSocket (the client's default), polling only, WebSocket only, the admin
// console's `transports: ["websocket", "polling"]`, and the `/ws` path. Each connects with a
// JWT, gets its welcome, subscribes and joins a room with acks, receives HTTP pushes (exact
// payloads, a burst of 100 in order) and emits with an ack; binary attachments too.

import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  adminToken,
  closeAll,
  outcome,
  pushRoomMessage,
  pushRoomNotification,
  pushToUser,
  request,
  sample,
  sleep,
  socket,
  uid,
  until,
  QUIET_MS,
  WAIT_MS,
} from "./lib.mjs";

afterEach(closeAll);

/** Every test is bounded: the node runner fails it past this. */
const TEST_TIMEOUT = 20_000;
/** How many pushes a burst has. */
const BURST = 100;

const CONFIGS = [
  {
    name: "default transports (polling, then upgrade to WebSocket)",
    opts: { transports: undefined },
    first: "polling",
    last: "websocket",
  },
  {
    name: "polling only",
    opts: { transports: ["polling"] },
    first: "polling",
    last: "polling",
  },
  {
    name: "WebSocket only",
    opts: { transports: ["websocket"] },
    first: "websocket",
    last: "websocket",
  },
  {
    name: 'the admin console\'s transports: ["websocket", "polling"]',
    opts: { transports: ["websocket", "polling"] },
    first: "websocket",
    last: "websocket",
  },
  {
    name: "polling only at path /ws",
    opts: { transports: ["polling"], path: "/ws" },
    first: "polling",
    last: "polling",
  },
  {
    name: "default transports at path /ws",
    opts: { transports: undefined, path: "/ws" },
    first: "polling",
    last: "websocket",
  },
];

/**
 * Open an admin socket with `opts` (an admin may join any room); resolves once connected and
 * welcomed. `s.transports` records the engine's transport at creation, and `s.upgraded`
 * resolves with the transport name when the engine upgrades.
 */
async function open(opts) {
  const sub = uid("t");
  const s = socket({ token: adminToken(sub), ...opts });
  s.sub = sub;
  const engine = s.io.engine;
  s.firstTransport = engine.transport.name;
  s.upgrades = [];
  s.upgraded = new Promise((resolve) => {
    engine.on("upgrade", (transport) => {
      s.upgrades.push(transport.name);
      resolve(transport.name);
    });
  });
  const result = await outcome(s);
  if (result !== "connect") throw new Error(`connect refused: ${result.message}`);
  s.welcome = await s.inbox.next("welcome");
  return s;
}

/** Emit `event` with an ack and expect the success reply event, the same payload in the ack. */
async function ok(s, event, payload, replyEvent) {
  const [reply, ack] = await request(s, event, replyEvent, payload);
  assert.deepEqual(ack, reply, `${event}: the ack carries the reply event's payload`);
  return reply;
}

/** Push a burst of `BURST` numbered notifications to `sub`; resolves when all were accepted. */
async function burst(sub, tag) {
  for (let i = 0; i < BURST; i++) {
    assert.equal(await pushToUser(sub, { type: "burst", tag, seq: i }), 1, `push ${i}`);
  }
}

async function expectBurst(s, tag) {
  const got = await s.inbox.take("notification", BURST, WAIT_MS * 2);
  assert.deepEqual(
    got,
    Array.from({ length: BURST }, (_, i) => ({ type: "burst", tag, seq: i })),
    "every push of the burst, once, in order",
  );
}

for (const config of CONFIGS) {
  describe(config.name, () => {
    test("connect, welcome, acks, pushes, a burst of 100 in order, emit with ack", { timeout: TEST_TIMEOUT }, async () => {
      const s = await open(config.opts);
      assert.equal(s.firstTransport, config.first, "the first transport");
      assert.equal(s.welcome.clientId, s.id, "welcome.clientId is the socket id");
      assert.equal(s.welcome.userId, s.sub);

      // A burst racing the upgrade (when there is one): nothing lost, nothing reordered.
      await burst(s.sub, "early");
      await expectBurst(s, "early");

      if (config.first !== config.last) {
        const name = await Promise.race([
          s.upgraded,
          sleep(WAIT_MS).then(() => "no upgrade within 3 s"),
        ]);
        assert.equal(name, config.last, "the upgrade event");
      } else {
        // Several heartbeats later, no upgrade happened.
        await sleep(700);
        assert.deepEqual(s.upgrades, [], "no upgrade");
      }
      assert.equal(s.io.engine.transport.name, config.last, "the transport after the upgrade");

      await ok(s, "subscribe", { userId: s.sub }, "subscribed");
      const room = uid("room-");
      const joined = await ok(s, "join_room", { room }, "room_joined");
      assert.equal(joined.room, room);

      const n = sample("quota.updated", { transport: config.name });
      assert.equal(await pushToUser(s.sub, n), 1, "one session: subscribing again adds no copy");
      assert.deepEqual(await s.inbox.next("notification"), n);
      const m = sample("device.started", { kind: "message" });
      assert.equal(await pushRoomMessage(room, m), 1);
      assert.deepEqual(await s.inbox.next("message"), m);
      const rn = sample("critical", { kind: "room notification" });
      assert.equal(await pushRoomNotification(room, rn), 1);
      assert.deepEqual(await s.inbox.next("notification"), rn);

      await burst(s.sub, "late");
      await expectBurst(s, "late");

      const left = await ok(s, "leave_room", { room }, "room_left");
      assert.equal(left.room, room);
      assert.equal(await pushRoomMessage(room, sample("gone")), 0);
      const [refused, refusedAck] = await request(s, "subscribe", "error", { userId: "" });
      assert.deepEqual(refusedAck, refused);
      assert.equal(refused.code, "bad_request");
      assert.equal(refused.event, "subscribe");

      await s.inbox.assertQuiet(QUIET_MS, "nothing else, no duplicates");
      assert.equal(s.io.engine.transport.name, config.last, "still on the same transport");
      assert.ok(s.connected);
    });

    test("binary attachments: an unknown event's ack is an error object, a known event is answered", { timeout: TEST_TIMEOUT }, async () => {
      const s = await open(config.opts);
      // The gateway ignores unknown events but answers their ack with an `error`-shaped object.
      const ack = await s.timeout(WAIT_MS).emitWithAck("upload", Buffer.from([1, 2, 3, 255]));
      assert.deepEqual(Object.keys(ack).sort(), ["code", "event", "message"]);
      assert.equal(ack.event, "upload");
      assert.equal(ack.code, "bad_request");
      assert.match(ack.message, /upload/);
      // A known event whose payload carries a buffer.
      const blob = Buffer.alloc(2048, 7);
      const reply = await ok(s, "subscribe", { userId: s.sub, blob }, "subscribed");
      assert.equal(reply.userId, s.sub);
      // Several buffers in one event, after the upgrade when there is one.
      if (config.first !== config.last) await s.upgraded;
      const ack2 = await s.timeout(WAIT_MS).emitWithAck("upload", { a: Buffer.from("a"), b: [Buffer.alloc(0), Buffer.from([0])] });
      assert.equal(ack2.code, "bad_request");
      assert.ok(s.connected);
      await until(() => s.io.engine.transport.name === config.last, `transport ${config.last}`);
      const n = sample("after.binary");
      assert.equal(await pushToUser(s.sub, n), 1);
      assert.deepEqual(await s.inbox.next("notification"), n);
    });
  });
}

describe("a polling client", () => {
  test("closing it ends its session on the server", { timeout: TEST_TIMEOUT }, async () => {
    const s = await open({ transports: ["polling"] });
    assert.equal(await pushToUser(s.sub, sample("before.close")), 1);
    s.close();
    await until(async () => (await pushToUser(s.sub, sample("probe"))) === 0, "the session is gone");
  });

  test("stays connected across several heartbeats while idle", { timeout: TEST_TIMEOUT }, async () => {
    const s = await open({ transports: ["polling"] });
    const disconnects = [];
    s.on("disconnect", (reason) => disconnects.push(reason));
    await sleep(1500); // five pingIntervals of the test server
    assert.deepEqual(disconnects, []);
    assert.ok(s.connected);
    const n = sample("after.idle");
    assert.equal(await pushToUser(s.sub, n), 1);
    assert.deepEqual(await s.inbox.next("notification"), n);
  });
});

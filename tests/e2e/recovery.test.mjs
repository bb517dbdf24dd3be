// Contract §5 with the real socket.io-client: a client whose transport drops (WebSocket,
// polling only, polling upgraded to WebSocket) reconnects with its pid and offset and gets its
// socket id, its rooms and every push it missed, in order and once, then live pushes; every
// case that is not recovered is an ordinary new session with `welcome.recovered === false`.
// The window and history cases run against a second server with a short RECOVERY_WINDOW_MS and
// a tiny RECOVERY_HISTORY_BYTES (PUSHGATE_TIGHT_RECOVERY_URL, see lib.mjs).

import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  adminToken,
  closeAll,
  metric,
  outcome,
  pushRoomMessage,
  pushToUser,
  request,
  sleep,
  socket,
  token,
  uid,
  until,
} from "./lib.mjs";

afterEach(closeAll);

const TEST_TIMEOUT = 20_000;
/** The second server: RECOVERY_WINDOW_MS and RECOVERY_HISTORY_BYTES as tests/socketio_client.rs sets them. */
const TIGHT_URL = process.env.PUSHGATE_TIGHT_RECOVERY_URL;
const TIGHT_WINDOW_MS = 1500;
/** How many pushes each case misses. */
const MISSED = 5;

/** Reconnect after a fixed delay, long enough for the pushes a test makes meanwhile. */
const RECONNECT = {
  reconnection: true,
  reconnectionDelay: 300,
  reconnectionDelayMax: 300,
  randomizationFactor: 0,
};

const TRANSPORTS = [
  { name: "WebSocket", opts: { transports: ["websocket"] }, last: "websocket" },
  { name: "polling only", opts: { transports: ["polling"] }, last: "polling" },
  { name: "polling upgraded to WebSocket", opts: { transports: undefined }, last: "websocket" },
];

/** Connect with `opts` and reconnection on; returns the socket and its welcome. */
async function connected(opts) {
  const s = socket({ ...RECONNECT, ...opts });
  assert.equal(await outcome(s), "connect");
  const welcome = await s.inbox.next("welcome");
  return [s, welcome];
}

/** Drop the transport (the client closes it, without a Socket.IO DISCONNECT); resolves the reason. */
function drop(s) {
  const reason = new Promise((resolve) => s.once("disconnect", resolve));
  s.io.engine.close();
  return reason;
}

/** Wait for the reconnection's welcome (the one after `s` connected again). */
async function reconnected(s) {
  await until(() => s.connected, "reconnected");
  return s.inbox.next("welcome");
}

/** The `n` of the next `count` events `event`. */
async function ns(s, event, count) {
  return (await s.inbox.take(event, count)).map((p) => p.data.n);
}

/** The index in the socket's event log of the first event matching `pred`. */
function indexOf(s, pred) {
  return s.inbox.events.findIndex((e) => pred(e.event, e.args[0]));
}

const range = (from, count) => Array.from({ length: count }, (_, i) => from + i);

describe("a dropped transport is recovered", { timeout: TEST_TIMEOUT }, () => {
  for (const t of TRANSPORTS) {
    test(`${t.name}: same id, rooms back, missed pushes in order and once, then live ones`, async () => {
      const sub = uid("u");
      const room = uid("room");
      const [s, welcome] = await connected({ token: adminToken(sub), ...t.opts });
      assert.equal(welcome.recovered, false);
      await until(() => s.io.engine.transport.name === t.last, `on ${t.last}`);
      await request(s, "join_room", "room_joined", { room });
      await pushToUser(sub, { type: "t", data: { n: 0 } });
      assert.deepEqual(await ns(s, "notification", 1), [0]);
      const id = s.id;
      const replayed = await metric("pushgate_recovered_pushes_total");

      const reason = await drop(s);
      assert.equal(reason, "forced close");
      for (const n of range(1, MISSED)) {
        await pushToUser(sub, { type: "t", data: { n } });
        await pushRoomMessage(room, { data: { n: 100 + n } });
      }
      const again = await reconnected(s);
      assert.equal(s.recovered, true);
      assert.equal(s.id, id);
      assert.deepEqual([again.recovered, again.clientId, again.userId], [true, id, sub]);
      assert.deepEqual(await ns(s, "notification", MISSED), range(1, MISSED));
      assert.deepEqual(await ns(s, "message", MISSED), range(101, MISSED));
      assert.ok((await metric("pushgate_recovered_pushes_total")) > replayed, "some were replayed");
      // The missed pushes came before the welcome that follows them.
      const second = indexOf(s, (e, p) => e === "welcome" && p.recovered);
      const lastMissed = indexOf(s, (e, p) => e === "message" && p.data.n === 100 + MISSED);
      assert.ok(lastMissed < second, `missed pushes (${lastMissed}) before welcome (${second})`);

      // Live pushes to both of its rooms, once each.
      await pushRoomMessage(room, { data: { n: 200 } });
      await pushToUser(sub, { type: "t", data: { n: 201 } });
      assert.deepEqual(await ns(s, "message", 1), [200]);
      assert.deepEqual(await ns(s, "notification", 1), [201]);
      await s.inbox.assertQuiet(undefined, "no push repeated");
    });
  }

  test("an admin whose new token is not admin any more does not get `admin` back", async () => {
    const sub = uid("a");
    const [s] = await connected({ token: adminToken(sub) });
    await request(s, "join_room", "room_joined", { room: "admin" });
    await pushRoomMessage("admin", { data: { n: 0 } });
    assert.deepEqual(await ns(s, "message", 1), [0]);
    s.auth = { token: token(sub) }; // what it reconnects with: a user token
    await drop(s);
    await pushRoomMessage("admin", { data: { n: 1 } });
    await pushToUser(sub, { type: "t", data: { n: 2 } });
    const again = await reconnected(s);
    assert.equal(again.recovered, true);
    assert.equal(s.recovered, true);
    assert.deepEqual(await ns(s, "notification", 1), [2]);
    await pushRoomMessage("admin", { data: { n: 3 } });
    await s.inbox.assertQuiet(undefined, "nothing of room admin, missed or live");
  });
});

describe("not recovered: a new session, welcome.recovered false", { timeout: TEST_TIMEOUT }, () => {
  test("after the client's own disconnect()", async () => {
    const sub = uid("u");
    const [s] = await connected({ token: token(sub) });
    const id = s.id;
    s.disconnect();
    await pushToUser(sub, { type: "t", data: { n: 1 } });
    s.connect();
    const again = await reconnected(s);
    assert.equal(again.recovered, false);
    assert.equal(s.recovered, false);
    assert.notEqual(s.id, id);
    await s.inbox.assertQuiet(undefined, "the push while it was away is not replayed");
  });

  /** A socket for `sub` that asks for the session `pid` (not its own) on its first CONNECT. */
  async function askingFor(pid, sub) {
    const s = socket({ token: token(sub), autoConnect: false });
    s._pid = pid; // socket.io-client's own field: what it reconnects with
    s.connect();
    assert.equal(await outcome(s), "connect");
    return [s, await s.inbox.next("welcome")];
  }

  test("another user's pid, or an unknown one", async () => {
    const owner = uid("u");
    const [kept] = await connected({ token: token(owner), reconnection: false });
    const pid = kept._pid;
    assert.equal(typeof pid, "string");
    kept.io.engine.close(); // kept for recovery; it does not reconnect
    await sleep(100);
    const mismatches = await metric("pushgate_recoveries_total", { outcome: "user_mismatch" });
    const unknowns = await metric("pushgate_recoveries_total", { outcome: "unknown" });
    for (const [asked, sub] of [[pid, uid("u")], ["A".repeat(22), owner]]) {
      const [s, welcome] = await askingFor(asked, sub);
      assert.equal(welcome.recovered, false);
      assert.equal(s.recovered, false);
      assert.notEqual(s._pid, asked);
    }
    assert.equal(await metric("pushgate_recoveries_total", { outcome: "user_mismatch" }), mismatches + 1);
    assert.equal(await metric("pushgate_recoveries_total", { outcome: "unknown" }), unknowns + 1);
    // Its owner still gets it back.
    const [s, welcome] = await askingFor(pid, owner);
    assert.equal(welcome.recovered, true);
    assert.equal(s.recovered, true);
  });

  const tight = { skip: !TIGHT_URL && "PUSHGATE_TIGHT_RECOVERY_URL is not set", timeout: TEST_TIMEOUT };

  test("the window passed", tight, async () => {
    const sub = uid("u");
    const [s] = await connected({ token: token(sub), url: TIGHT_URL, reconnection: false });
    await pushToUser(sub, { type: "t", data: { n: 0 } }, TIGHT_URL);
    await s.inbox.next("notification");
    const expired = await metric("pushgate_recoveries_total", { outcome: "expired" }, TIGHT_URL);
    s.io.engine.close();
    await sleep(TIGHT_WINDOW_MS + 500);
    s.connect();
    const again = await reconnected(s);
    assert.equal(again.recovered, false);
    assert.equal(s.recovered, false);
    assert.equal(await metric("pushgate_recoveries_total", { outcome: "expired" }, TIGHT_URL), expired + 1);
  });

  test("its offset was dropped from the history", tight, async () => {
    const sub = uid("u");
    const [s] = await connected({ token: token(sub), url: TIGHT_URL });
    await pushToUser(sub, { type: "t", data: { n: 0 } }, TIGHT_URL);
    await s.inbox.next("notification");
    const tooOld = await metric("pushgate_recoveries_total", { outcome: "offset_too_old" }, TIGHT_URL);
    await drop(s);
    // Far more than the history holds (RECOVERY_HISTORY_BYTES=2048).
    for (const n of range(1, 10)) {
      await pushToUser(sub, { type: "t", data: { n, pad: "x".repeat(500) } }, TIGHT_URL);
    }
    const again = await reconnected(s);
    assert.equal(again.recovered, false);
    assert.equal(s.recovered, false);
    await s.inbox.assertQuiet(undefined, "nothing replayed");
    assert.equal(
      await metric("pushgate_recoveries_total", { outcome: "offset_too_old" }, TIGHT_URL),
      tooOld + 1,
    );
  });
});

/** How many pushes the long-replay case misses: a replay many times the server's 16 KiB slice. */
const MANY_MISSED = 1500;

describe("a long replay", { timeout: 60_000 }, () => {
  for (const t of TRANSPORTS) {
    test(`${t.name}: ${MANY_MISSED} missed pushes, in order and once, then live ones`, async () => {
      const sub = uid("u");
      // Reconnected by hand once every push was missed.
      const [s] = await connected({ token: token(sub), ...t.opts, reconnection: false });
      await until(() => s.io.engine.transport.name === t.last, `on ${t.last}`);
      await pushToUser(sub, { type: "t", data: { n: 0 } });
      assert.deepEqual(await ns(s, "notification", 1), [0]);
      const id = s.id;
      await drop(s);
      const pad = "x".repeat(64);
      for (const n of range(1, MANY_MISSED)) await pushToUser(sub, { type: "t", data: { n, pad } });
      s.connect();
      const again = await reconnected(s);
      assert.deepEqual([again.recovered, s.recovered, s.id], [true, true, id]);
      assert.deepEqual(await ns(s, "notification", MANY_MISSED), range(1, MANY_MISSED));
      await pushToUser(sub, { type: "t", data: { n: MANY_MISSED + 1 } });
      assert.deepEqual(await ns(s, "notification", 1), [MANY_MISSED + 1]);
      await s.inbox.assertQuiet(undefined, "no push repeated");
    });
  }
});

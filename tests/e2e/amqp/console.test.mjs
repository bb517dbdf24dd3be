// The admin console, unchanged, against pushgate (issue "the real console shows everything"):
// events published the way the real services publish them (flat JSON with `_trace`, persistent,
// no content type; `severity` and a `percentage` object; floats with long fractions; an admin who
// owns the device) reach the console's sockets exactly as its handlers read them, and the
// console's dev setup (path `/ws` through a proxy that strips it) connects.
//
// Run by tests/amqp_e2e.rs (console) against a server of its own.

import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { closeAll, connectAdmin, connectUser, Inbox, request, token, uid, until, QUIET_MS, URL, WAIT_MS } from "../lib.mjs";
import { closePublishers, Publisher, trace } from "./broker.mjs";
import { devProxy, quotaData, quotaEvent } from "./console.mjs";

const T = { timeout: 20000 };

afterEach(async () => {
  closeAll();
  await closePublishers();
});

/** An admin in room `admin` (and, as every client, in its own user room). */
async function adminInRoom(sub = uid("a")) {
  const admin = await connectAdmin(sub);
  const [joined] = await request(admin, "join_room", "room_joined", { room: "admin" });
  assert.equal(joined.room, "admin");
  return admin;
}

async function quiet(sockets) {
  await Promise.all(sockets.map((s) => s.inbox.assertQuiet(QUIET_MS, `${s.sub} receives nothing more`)));
}

test("quota.alert and quota.exceeded reach the admins as `message`, with alertLevel and usagePercent", T, async () => {
  const user = await connectUser();
  const admin = await adminInRoom();
  const pub = await Publisher.open();

  const alert = quotaEvent(user.sub, { severity: "warning", percentage: { devices: 80, cpu: "85.5", memory: 60 } });
  await pub.publish("quota.alert", alert);
  const expected = { type: "quota.alert", data: quotaData(alert) };
  assert.deepEqual(await user.inbox.next("notification"), expected);
  const message = await admin.inbox.next("message");
  assert.deepEqual(message, expected);
  // What the console's admin handler reads.
  assert.equal(message.data.alertLevel, "warning");
  assert.equal(message.data.usagePercent, 85.5);
  assert.equal(message.data.severity, "warning", "the published members stay");
  assert.deepEqual(message.data.percentage, alert.percentage);

  // Critical, exceeded: the message too, beside the `critical` / `error` notification.
  const critical = quotaEvent(user.sub, { severity: "critical", percentage: { devices: 97.25, cpu: "12" } });
  await pub.publish("quota.alert", critical);
  const criticalPayload = { type: "quota.alert", data: quotaData(critical) };
  assert.deepEqual(await user.inbox.next("notification"), criticalPayload);
  assert.deepEqual(await admin.inbox.next("message"), criticalPayload);
  const n = await admin.inbox.next("notification");
  assert.equal(n.type, "critical");
  assert.deepEqual(n.data, quotaData(critical));
  assert.equal(n.data.usagePercent, 97.25);

  const exceeded = quotaEvent(user.sub, { severity: "critical", percentage: { devices: 110.00000000000001, cpu: "50" } });
  await pub.publish("quota.exceeded", exceeded);
  const exceededPayload = { type: "quota.exceeded", data: quotaData(exceeded) };
  assert.deepEqual(await user.inbox.next("notification"), exceededPayload);
  assert.deepEqual(await admin.inbox.next("message"), exceededPayload);
  const error = await admin.inbox.next("notification");
  assert.equal(error.type, "error");
  assert.equal(error.data.alertLevel, "critical");
  assert.equal(error.data.usagePercent, 110.00000000000001);

  // The console's own names, when published, are left as they are.
  const own = quotaEvent(user.sub, { alertLevel: "info", usagePercent: 12, severity: "warning", percentage: { devices: 80 } });
  await pub.publish("quota.alert", own);
  assert.deepEqual(await user.inbox.next("notification"), { type: "quota.alert", data: own });
  assert.deepEqual(await admin.inbox.next("message"), { type: "quota.alert", data: own });
  await quiet([user, admin]);
});

test("an admin who owns the device gets its events once, the other admins as `message`", T, async () => {
  const owner = await adminInRoom();
  const other = await adminInRoom();
  const pub = await Publisher.open();

  const deviceId = uid("d");
  const started = { userId: owner.sub, deviceId, startedAt: "2026-01-02T00:00:01.000Z", providerType: "redroid", _trace: trace() };
  await pub.publish("device.started", started);
  const status = {
    type: "device.status.changed",
    data: { deviceId, deviceName: deviceId, oldStatus: "stopped", newStatus: "running", timestamp: started.startedAt },
  };
  assert.deepEqual(await owner.inbox.next("notification"), status);
  assert.deepEqual(await other.inbox.next("message"), status);

  const created = { userId: owner.sub, deviceId: uid("d"), deviceName: "Pixel", _trace: trace() };
  await pub.publish("device.created", created);
  assert.deepEqual(await owner.inbox.next("notification"), { type: "device.created", data: created });
  assert.deepEqual(await other.inbox.next("message"), { type: "device.created", data: created });

  // The owner's own critical alert: its notification only; the other admin gets the copies.
  const alert = quotaEvent(owner.sub, { severity: "critical", percentage: { devices: 99 } });
  await pub.publish("quota.alert", alert);
  const payload = { type: "quota.alert", data: quotaData(alert) };
  assert.deepEqual(await owner.inbox.next("notification"), payload);
  assert.deepEqual(await other.inbox.next("message"), payload);
  assert.equal((await other.inbox.next("notification")).type, "critical");

  await quiet([owner, other]);
  assert.deepEqual(owner.inbox.all("message"), [], "the owner never gets the admin copies");
});

test("numbers and member order arrive as published", T, async () => {
  const user = await connectUser();
  const admin = await adminInRoom();
  const pub = await Publisher.open();
  const body =
    `{"zeta":1,"userId":"${user.sub}","quotaId":"q1","price":110.00000000000001,` +
    `"big":123456789.12345679,"tiny":0.30000000000000004,"alpha":[1e21,-0.0]}`;
  await pub.publishRaw("quota.updated", body);
  const published = JSON.parse(body);
  for (const [s, event] of [[user, "notification"], [admin, "message"]]) {
    const { type, data } = await s.inbox.next(event);
    assert.equal(type, "quota.updated");
    assert.deepEqual(Object.keys(data), ["zeta", "userId", "quotaId", "price", "big", "tiny", "alpha"]);
    assert.equal(data.price, 110.00000000000001);
    assert.notEqual(data.price, 110);
    assert.equal(data.big, 123456789.12345679);
    assert.notEqual(data.big, 123456789.1234568);
    assert.equal(data.tiny, 0.30000000000000004);
    assert.deepEqual(data, published);
  }
  const device = `{"userId":"${user.sub}","deviceId":"d-1","cpuLoad":0.1234567890123456789,"memoryMB":2047.9999999999998}`;
  await pub.publishRaw("device.error", device);
  const got = await user.inbox.next("notification");
  assert.deepEqual(got, { type: "device.error", data: JSON.parse(device) });
  assert.equal(got.data.memoryMB, 2047.9999999999998);
  assert.deepEqual(await admin.inbox.next("message"), got);
  await quiet([user, admin]);
});

test("the console's dev setup: path /ws through a proxy that strips it, both transports", T, async () => {
  const proxy = await devProxy(URL);
  const sockets = [];
  try {
    const pub = await Publisher.open();
    for (const transports of [["websocket", "polling"], ["polling", "websocket"]]) {
      const sub = uid("u");
      const s = io(proxy.url, {
        path: "/ws",
        transports,
        auth: { token: token(sub) },
        reconnection: false,
        forceNew: true,
        timeout: WAIT_MS,
      });
      sockets.push(s);
      s.inbox = new Inbox(s);
      const welcome = await s.inbox.next("welcome");
      assert.equal(welcome.userId, sub);
      if (transports[0] === "polling") {
        await until(() => s.io.engine.transport.name === "websocket", "the upgrade to WebSocket through the proxy");
      }
      const event = { userId: sub, quotaId: uid("q"), _trace: trace() };
      await pub.publish("quota.renewed", event);
      assert.deepEqual(await s.inbox.next("notification"), { type: "quota.renewed", data: event });
      await s.inbox.assertQuiet(QUIET_MS);
    }
  } finally {
    for (const s of sockets) s.close();
    await proxy.close();
  }
});

// Contract §3 routing, end to end: events published the way the real backends publish them
// (flat JSON with `_trace`, persistent, no content type, to the durable topic exchange
// cloudphone.events) reach exactly the right socket.io-client sockets with the exact payloads.
//
// Every test has four sockets: the event's user (room user:<userId>), an admin in room `admin`,
// another user, and a non-admin who tried to join `admin` and was refused. Each test ends by
// checking that none of them received anything beyond what it expected.
//
// Run by tests/amqp_e2e.rs (routing_table) against a server of its own.

import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, connectAdmin, connectUser, metric, request, uid, QUIET_MS } from "../lib.mjs";
import {
  assertReceiveTime,
  closePublishers,
  DEAD_LETTER_QUEUE,
  DEVICE_QUEUE,
  Publisher,
  QUOTA_QUEUE,
  trace,
} from "./broker.mjs";
import { quotaData, quotaEvent } from "./console.mjs";

const T = { timeout: 15000 };

afterEach(async () => {
  closeAll();
  await closePublishers();
});

/** The user `userId` (a string or an integer), an admin in `admin`, another user, an intruder. */
async function audience(userId = uid("u")) {
  const user = await connectUser(String(userId));
  const admin = await connectAdmin();
  const [joined] = await request(admin, "join_room", "room_joined", { room: "admin" });
  assert.equal(joined.room, "admin");
  const other = await connectUser();
  const intruder = await connectUser();
  const [refused, ack] = await request(intruder, "join_room", "error", { room: "admin" });
  assert.deepEqual(ack, refused);
  assert.equal(refused.event, "join_room");
  assert.equal(refused.code, "forbidden");
  const pub = await Publisher.open();
  return { userId, user, admin, other, intruder, pub };
}

/** Nothing more arrives at any of them (everything expected was taken already). */
async function nothingElse({ user, admin, other, intruder }) {
  await Promise.all([
    user.inbox.assertQuiet(QUIET_MS, "the user receives nothing more"),
    admin.inbox.assertQuiet(QUIET_MS, "the admin receives nothing more"),
    other.inbox.assertQuiet(QUIET_MS, "another user receives nothing"),
    intruder.inbox.assertQuiet(QUIET_MS, "a non-admin refused from `admin` receives nothing"),
  ]);
}

async function expectEvent(s, event, payload) {
  assert.deepEqual(await s.inbox.next(event), payload);
}

/**
 * The admin's `notification` of a critical alert or an exceeded quota: exactly
 * {type, title, message, data, timestamp}, `data` the event, `timestamp` the event's, else the
 * time pushgate received it.
 */
async function expectAdminNotification(admin, type, event, published) {
  const n = await admin.inbox.next("notification");
  assert.deepEqual(Object.keys(n).sort(), ["data", "message", "timestamp", "title", "type"], JSON.stringify(n));
  assert.equal(n.type, type);
  assert.equal(typeof n.title, "string");
  assert.ok(n.title.length > 0, "a title");
  assert.equal(typeof n.message, "string");
  assert.ok(n.message.length > 0, "a message");
  assert.deepEqual(n.data, event);
  if (event.timestamp !== undefined) {
    assert.equal(n.timestamp, event.timestamp);
  } else {
    assertReceiveTime(n.timestamp, published, Date.now());
  }
}

describe("quota events", () => {
  test("quota.updated: the user gets a notification, admins the same object as a message", T, async () => {
    const a = await audience();
    const event = quotaEvent(a.userId, { usagePercent: 42 });
    await a.pub.publish("quota.updated", event);
    const expected = { type: "quota.updated", data: event };
    await expectEvent(a.user, "notification", expected);
    await expectEvent(a.admin, "message", expected);
    await nothingElse(a);
  });

  test("quota.renewed: the user only", T, async () => {
    const a = await audience();
    const event = quotaEvent(a.userId, { renewedAt: "2026-02-01T00:00:00.000Z" });
    await a.pub.publish("quota.renewed", event);
    await expectEvent(a.user, "notification", { type: "quota.renewed", data: event });
    await nothingElse(a);
  });

  test("quota.alert that is not critical: the user, and admins the same object as a message", T, async () => {
    const a = await audience();
    const variants = [
      { alertLevel: "warning", usagePercent: 80 },
      { severity: "warning", usagePercent: 94.9 },
      { usagePercent: "94.99" },
      { percentage: { cpu: 90, memory: "94", storage: 10 } },
      { alertLevel: "info", severity: "high" },
      {},
    ];
    for (const extra of variants) {
      const event = quotaEvent(a.userId, extra);
      await a.pub.publish("quota.alert", event);
      const expected = { type: "quota.alert", data: quotaData(event) };
      await expectEvent(a.user, "notification", expected);
      await expectEvent(a.admin, "message", expected);
    }
    await nothingElse(a);
  });

  test("critical quota.alert: the user gets the alert, admins it as a message and a `critical` notification", T, async () => {
    const a = await audience();
    const variants = [
      // Real publishers send `severity`; the old consumer read `alertLevel` only.
      { severity: "critical", usagePercent: 90 },
      { alertLevel: "critical" },
      { usagePercent: 95 },
      { usagePercent: 99.5, timestamp: undefined },
      { usagePercent: "97.5" },
      { usagePercent: "95", timestamp: undefined },
      { percentage: { cpu: 40, memory: 95 } },
      { percentage: { cpu: "12", storage: "99.9" }, timestamp: undefined },
    ];
    for (const extra of variants) {
      const event = quotaEvent(a.userId, extra);
      const published = Date.now();
      await a.pub.publish("quota.alert", event);
      const expected = { type: "quota.alert", data: quotaData(event) };
      await expectEvent(a.user, "notification", expected);
      await expectEvent(a.admin, "message", expected);
      await expectAdminNotification(a.admin, "critical", quotaData(event), published);
    }
    await nothingElse(a);
  });

  test("quota.exceeded: the user, and admins it as a message and always an `error` notification", T, async () => {
    const a = await audience();
    const variants = [
      {},
      { timestamp: undefined },
      { usagePercent: 50, severity: "info" },
      { percentage: { cpu: 101.5, memory: "80" }, timestamp: undefined },
    ];
    for (const extra of variants) {
      const event = quotaEvent(a.userId, extra);
      const published = Date.now();
      await a.pub.publish("quota.exceeded", event);
      const expected = { type: "quota.exceeded", data: quotaData(event) };
      await expectEvent(a.user, "notification", expected);
      await expectEvent(a.admin, "message", expected);
      await expectAdminNotification(a.admin, "error", quotaData(event), published);
    }
    await nothingElse(a);
  });
});

/** Publish a device event; the user and the admins get `payload` (`notification` / `message`). */
async function deviceEvent(a, key, event, payload) {
  await a.pub.publish(key, event);
  await expectEvent(a.user, "notification", payload);
  await expectEvent(a.admin, "message", payload);
}

function statusChanged(data) {
  return { type: "device.status.changed", data };
}

describe("device events", () => {
  test("device.started / device.stopped: oldStatus from the last status seen, and the fallbacks", T, async () => {
    const a = await audience();
    const d1 = uid("d");
    const d2 = uid("d");
    // Never seen: the old service's constant, `stopped` before `running`. deviceName falls back
    // to deviceId; the timestamp is startedAt (not timestamp).
    await deviceEvent(
      a,
      "device.started",
      { userId: a.userId, deviceId: d1, startedAt: "2026-01-02T00:00:01.000Z", timestamp: "2026-01-02T00:00:00.999Z", _trace: trace() },
      statusChanged({ deviceId: d1, deviceName: d1, oldStatus: "stopped", newStatus: "running", timestamp: "2026-01-02T00:00:01.000Z" }),
    );
    // Seen running: oldStatus is `running`, even for a second start. No startedAt: timestamp.
    await deviceEvent(
      a,
      "device.started",
      { userId: a.userId, deviceId: d1, deviceName: "Pixel 8", timestamp: "2026-01-02T00:00:02.000Z", _trace: trace() },
      statusChanged({ deviceId: d1, deviceName: "Pixel 8", oldStatus: "running", newStatus: "running", timestamp: "2026-01-02T00:00:02.000Z" }),
    );
    // Stopped: from running; the timestamp is stoppedAt.
    await deviceEvent(
      a,
      "device.stopped",
      { userId: a.userId, deviceId: d1, stoppedAt: "2026-01-02T00:00:03.000Z", timestamp: "2026-01-02T00:00:02.999Z", reason: "user", _trace: trace() },
      statusChanged({ deviceId: d1, deviceName: d1, oldStatus: "running", newStatus: "stopped", timestamp: "2026-01-02T00:00:03.000Z" }),
    );
    // Stopped again: from stopped. No time at all: the receive time.
    const published = Date.now();
    await a.pub.publish("device.stopped", { userId: a.userId, deviceId: d1, _trace: trace() });
    const again = await a.user.inbox.next("notification");
    assertReceiveTime(again.data.timestamp, published, Date.now());
    assert.deepEqual(
      again,
      statusChanged({ deviceId: d1, deviceName: d1, oldStatus: "stopped", newStatus: "stopped", timestamp: again.data.timestamp }),
    );
    await expectEvent(a.admin, "message", again);
    // Another device, never seen, stopped first: `running` before `stopped`.
    await deviceEvent(
      a,
      "device.stopped",
      { userId: a.userId, deviceId: d2, deviceName: "Galaxy", stoppedAt: "2026-01-02T00:00:04.000Z", _trace: trace() },
      statusChanged({ deviceId: d2, deviceName: "Galaxy", oldStatus: "running", newStatus: "stopped", timestamp: "2026-01-02T00:00:04.000Z" }),
    );
    // device.deleted forgets d1 (last seen: stopped): its next stop is from the default `running`.
    const deleted = { userId: a.userId, deviceId: d1, _trace: trace() };
    await deviceEvent(a, "device.deleted", deleted, { type: "device.deleted", data: deleted });
    await deviceEvent(
      a,
      "device.stopped",
      { userId: a.userId, deviceId: d1, stoppedAt: "2026-01-02T00:00:05.000Z", _trace: trace() },
      statusChanged({ deviceId: d1, deviceName: d1, oldStatus: "running", newStatus: "stopped", timestamp: "2026-01-02T00:00:05.000Z" }),
    );
    await nothingElse(a);
  });

  test("created, deleted, error, connection_lost, creation_failed: to the user and admins as they are", T, async () => {
    const a = await audience();
    for (const key of ["device.created", "device.deleted", "device.error", "device.connection_lost", "device.creation_failed"]) {
      const event = {
        userId: a.userId,
        deviceId: uid("d"),
        deviceName: `name of ${key}`,
        providerType: "redroid",
        details: { code: 17, message: 'héllo "quoted" ✓', list: [1, null, true] },
        timestamp: "2026-01-02T00:00:06.000Z",
        _trace: trace(),
      };
      await deviceEvent(a, key, event, { type: key, data: event });
    }
    await nothingElse(a);
  });
});

test("integer ids: a userId and 2^53 route to user:<decimal>", T, async () => {
  for (const userId of [1_000_000 + Math.floor(Math.random() * 1e9), 2 ** 53]) {
    const a = await audience(userId);
    const quota = quotaEvent(userId, { quotaId: 7, severity: "critical" });
    const published = Date.now();
    await a.pub.publish("quota.alert", quota);
    const expected = { type: "quota.alert", data: quotaData(quota) };
    await expectEvent(a.user, "notification", expected);
    await expectEvent(a.admin, "message", expected);
    await expectAdminNotification(a.admin, "critical", quotaData(quota), published);
    const deviceId = Math.floor(Math.random() * 1e12);
    const device = { userId, deviceId, startedAt: "2026-01-02T00:00:07.000Z", _trace: trace() };
    // deviceId stays the published number; deviceName falls back to its decimal string.
    await deviceEvent(
      a,
      "device.started",
      device,
      statusChanged({ deviceId, deviceName: String(deviceId), oldStatus: "stopped", newStatus: "running", timestamp: "2026-01-02T00:00:07.000Z" }),
    );
    await nothingElse(a);
    closeAll();
    await closePublishers();
  }
});

test("routing keys without a row (quota.deducted, ...) reach nobody and are never dead-lettered", T, async () => {
  const a = await audience();
  const ignored = [
    ["quota.deducted", JSON.stringify(quotaEvent(a.userId, { amount: 1, usagePercent: 99 }))],
    ["quota.deducted", "not json at all"],
    ["quota.metrics", "[1,2,3]"],
    ["device.heartbeat", JSON.stringify({ userId: a.userId, deviceId: "d1", _trace: trace() })],
    ["device.backup_completed", "{}"],
  ];
  for (const [key, body] of ignored) await a.pub.publishRaw(key, body);
  // One valid event after them on each queue: once it arrives, the ones before were handled.
  const renewed = quotaEvent(a.userId);
  const created = { userId: a.userId, deviceId: uid("d"), _trace: trace() };
  await a.pub.publish("quota.renewed", renewed);
  await a.pub.publish("device.created", created);
  // Two queues, two consumers: no order between the two.
  const got = await a.user.inbox.take("notification", 2);
  got.sort((x, y) => x.type.localeCompare(y.type));
  assert.deepEqual(got, [
    { type: "device.created", data: created },
    { type: "quota.renewed", data: renewed },
  ]);
  await expectEvent(a.admin, "message", { type: "device.created", data: created });
  await nothingElse(a);

  const messages = "pushgate_amqp_messages_total";
  assert.equal(await metric(messages, { routing_key: "quota.deducted", outcome: "ignored" }), 2);
  assert.equal(await metric(messages, { routing_key: "quota.metrics", outcome: "ignored" }), 1);
  assert.equal(await metric(messages, { routing_key: "device.heartbeat", outcome: "ignored" }), 1);
  assert.equal(await metric(messages, { routing_key: "device.backup_completed", outcome: "ignored" }), 1);
  assert.equal(await metric(messages, { outcome: "dead_lettered" }), 0);
  assert.equal((await a.pub.queue(DEAD_LETTER_QUEUE)).messageCount, 0, "nothing dead-lettered");
  for (const queue of [QUOTA_QUEUE, DEVICE_QUEUE]) {
    const q = await a.pub.queue(queue);
    assert.equal(q.messageCount, 0, `${queue}: everything acked`);
    assert.equal(q.consumerCount, 1, `${queue}: pushgate's one consumer`);
  }
});

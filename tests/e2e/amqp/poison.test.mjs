// Contract §3 poison messages, end to end: a message that is not a JSON object, lacks a required
// field or has one of the wrong type is dead-lettered (reject, no requeue: it lands in
// pushgate.dead-letter through the DLX), counted in /metrics, and never stalls the consumer; a
// routing key without a row is acked and ignored whatever its body, never dead-lettered.
//
// Run by tests/amqp_e2e.rs (poison_messages) against a server of its own.

import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, connectAdmin, connectUser, metric, request, uid, QUIET_MS, sleep } from "../lib.mjs";
import {
  closePublishers,
  DEAD_LETTER_QUEUE,
  DEVICE_QUEUE,
  EXCHANGE,
  Publisher,
  QUOTA_QUEUE,
  queueHolds,
  ready,
  trace,
} from "./broker.mjs";

afterEach(async () => {
  closeAll();
  await closePublishers();
});

test("malformed messages are dead-lettered, exactly them, and the valid ones after still arrive", { timeout: 20000 }, async () => {
  const userId = uid("u");
  const user = await connectUser(userId);
  const admin = await connectAdmin();
  await request(admin, "join_room", "room_joined", { room: "admin" });
  const pub = await Publisher.open();
  const t = JSON.stringify(trace());
  const u = JSON.stringify(userId);

  const malformed = [
    // Not JSON.
    ["quota.updated", "not json at all"],
    ["quota.updated", ""],
    ["quota.alert", `{"userId":${u},"quotaId":"q1"`],
    ["device.started", Buffer.from([0xff, 0xfe, 0x00, 0x7b])],
    // JSON, but not an object.
    ["quota.updated", `[{"userId":${u},"quotaId":"q1","_trace":${t}}]`],
    ["quota.exceeded", "[]"],
    ["device.created", '"just a string"'],
    ["device.connection_lost", "null"],
    ["device.error", "42"],
    // A required field missing.
    ["quota.alert", `{"quotaId":"q1","severity":"critical","_trace":${t}}`],
    ["quota.renewed", `{"userId":${u},"_trace":${t}}`],
    ["device.started", `{"userId":${u},"startedAt":"2026-01-02T00:00:00Z","_trace":${t}}`],
    ["device.stopped", `{"deviceId":"d1","_trace":${t}}`],
    // A required field of the wrong type.
    ["quota.updated", `{"userId":true,"quotaId":"q1","_trace":${t}}`],
    ["quota.exceeded", `{"userId":${u},"quotaId":1.5,"_trace":${t}}`],
    ["quota.renewed", `{"userId":"","quotaId":"q1","_trace":${t}}`],
    ["quota.alert", `{"userId":-1,"quotaId":"q1","_trace":${t}}`],
    ["quota.updated", `{"userId":18446744073709551616,"quotaId":"q1","_trace":${t}}`],
    ["device.error", `{"userId":${u},"deviceId":{"id":"d1"},"_trace":${t}}`],
    ["device.deleted", `{"userId":[${u}],"deviceId":"d1","_trace":${t}}`],
    ["device.creation_failed", `{"userId":${u},"deviceId":null,"_trace":${t}}`],
  ];
  for (const [key, body] of malformed) await pub.publishRaw(key, body);
  // Ignored, whatever the body: acked, not dead-lettered.
  await pub.publishRaw("quota.deducted", "not json either");
  // Valid events after the poison, on both queues.
  const renewed = { userId, quotaId: uid("q"), _trace: trace() };
  const created = { userId, deviceId: uid("d"), _trace: trace() };
  await pub.publish("quota.renewed", renewed);
  await pub.publish("device.created", created);

  const got = await user.inbox.take("notification", 2);
  got.sort((x, y) => x.type.localeCompare(y.type));
  assert.deepEqual(got, [
    { type: "device.created", data: created },
    { type: "quota.renewed", data: renewed },
  ]);
  assert.deepEqual(await admin.inbox.next("message"), { type: "device.created", data: created });

  // The dead-letter queue holds exactly the malformed messages (a few ms behind the rejects).
  await queueHolds(pub, DEAD_LETTER_QUEUE, malformed.length);
  await sleep(QUIET_MS);
  await user.inbox.assertQuiet(0, "the user got nothing from the poison");
  await admin.inbox.assertQuiet(0, "the admin got nothing from the poison");
  assert.equal((await pub.queue(DEAD_LETTER_QUEUE)).messageCount, malformed.length, "nothing more dead-lettered");

  const dead = await pub.drain(DEAD_LETTER_QUEUE);
  const entry = (key, body) => `${key} ${Buffer.from(body).toString("base64")}`;
  assert.deepEqual(
    dead.map((m) => entry(m.fields.routingKey, m.content)).sort(),
    malformed.map(([key, body]) => entry(key, body)).sort(),
    "the dead-letter queue holds exactly the malformed messages, routing keys kept",
  );
  for (const m of dead) {
    const h = m.properties.headers;
    const family = m.fields.routingKey.startsWith("quota.") ? QUOTA_QUEUE : DEVICE_QUEUE;
    assert.equal(h["x-first-death-reason"], "rejected", "rejected, not expired");
    assert.equal(h["x-first-death-queue"], family, "rejected from this node's queue");
    assert.equal(h["x-first-death-exchange"], EXCHANGE);
    assert.equal(m.properties.deliveryMode, 2, "still persistent");
  }
  for (const queue of [QUOTA_QUEUE, DEVICE_QUEUE]) {
    assert.equal((await pub.queue(queue)).messageCount, 0, `${queue}: nothing left, nothing requeued`);
  }

  const messages = "pushgate_amqp_messages_total";
  assert.equal(await metric(messages, { outcome: "dead_lettered" }), malformed.length);
  const perKey = {};
  for (const [key] of malformed) perKey[key] = (perKey[key] || 0) + 1;
  for (const [key, n] of Object.entries(perKey)) {
    assert.equal(await metric(messages, { routing_key: key, outcome: "dead_lettered" }), n, key);
  }
  assert.equal(await metric(messages, { routing_key: "quota.deducted", outcome: "ignored" }), 1);
  assert.equal(await metric(messages, { routing_key: "quota.deducted", outcome: "dead_lettered" }), 0);
  assert.equal(await metric(messages, { routing_key: "quota.renewed", outcome: "routed" }), 1);
  assert.equal(await metric(messages, { routing_key: "device.created", outcome: "routed" }), 1);

  // Neither the consumers nor the connection suffered.
  assert.equal((await ready()).status, 200);
  assert.equal(await metric("pushgate_amqp_reconnects_total"), 0);
  const again = { userId, quotaId: uid("q"), _trace: trace() };
  await pub.publish("quota.updated", again);
  assert.deepEqual(await user.inbox.next("notification"), { type: "quota.updated", data: again });
});

// Contract §7, storms and priority, end to end: real publishers, the real broker, real
// socket.io-client sockets, against a server whose rooms coalesce for 500 ms
// (PUSH_COALESCE_MS) and whose quota consumer coalesces quota.updated for 250 ms
// (QUOTA_COALESCE_MS).
//
// - A burst of quota.updated for one quota reaches the user (and the admins, as `message`) as a
//   few pushes in publish order, the last one the latest; every replaced one is counted in
//   pushgate_coalesced_total.
// - Updates of different quotas are not merged.
// - Alerts (quota.alert, quota.exceeded, the admin critical / error notifications) are all
//   delivered, in order, and not held by the room's window: what the room held goes out first,
//   then the alert at once, while a push accepted after them waits for the window's end.
// - An alert for a quota whose update is held: the update goes out first, then the alert, and
//   the update is not pushed again at the window's end.
// - Held updates are neither lost nor pushed twice when deliveries after them are acked first.
//
// Run by tests/amqp_e2e.rs (storms_and_alert_priority) against a server of its own.

import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, connectAdmin, connectUser, metric, request, uid, WAIT_MS } from "../lib.mjs";
import { closePublishers, Publisher, sleep } from "./broker.mjs";
import { quotaData, quotaEvent } from "./console.mjs";

const T = { timeout: 20000 };
/** The server's QUOTA_COALESCE_MS and PUSH_COALESCE_MS (tests/amqp_e2e.rs). */
const QUOTA_WINDOW_MS = 250;
const ROOM_WINDOW_MS = 500;
/** Longer than both windows: what was held has gone out by then. */
const QUIET_MS = ROOM_WINDOW_MS + QUOTA_WINDOW_MS + 300;
const COALESCED = ["pushgate_coalesced_total", { routing_key: "quota.updated" }];
const ROUTED = ["pushgate_amqp_messages_total", { routing_key: "quota.updated", outcome: "routed" }];

afterEach(async () => {
  closeAll();
  await closePublishers();
});

/** A user, an admin in room `admin`, and a publisher; each socket records arrival times. */
async function audience() {
  const userId = uid("u");
  const user = await connectUser(userId);
  const admin = await connectAdmin();
  const [joined] = await request(admin, "join_room", "room_joined", { room: "admin" });
  assert.equal(joined.room, "admin");
  for (const s of [user, admin]) {
    s.arrivals = [];
    s.onAny((event, payload) => s.arrivals.push({ event, payload, at: performance.now() }));
  }
  return { userId, user, admin, pub: await Publisher.open() };
}

/** The `event` payloads of `s` until one satisfies `last` (it included). */
async function until(s, event, last) {
  const out = [];
  for (;;) {
    const payload = await s.inbox.next(event, WAIT_MS * 2);
    out.push(payload);
    if (last(payload)) return out;
  }
}

/** When `s` received the `event` whose payload is `payload`. */
function arrival(s, event, payload) {
  const found = s.arrivals.find((a) => a.event === event && JSON.stringify(a.payload) === JSON.stringify(payload));
  assert.ok(found, `${event} ${JSON.stringify(payload)} arrived`);
  return found.at;
}

test("a burst of 200 quota.updated for one quota: a few pushes, in order, the last the latest", T, async () => {
  const { userId, user, admin, pub } = await audience();
  // Another quota's update first: the counters below exist from then on.
  const other = quotaEvent(userId);
  await pub.publish("quota.updated", other);
  assert.deepEqual(await user.inbox.next("notification"), { type: "quota.updated", data: quotaData(other) });
  assert.deepEqual(await admin.inbox.next("message"), { type: "quota.updated", data: quotaData(other) });
  const quotaId = uid("q");
  const [before, routedBefore] = [await metric(...COALESCED), await metric(...ROUTED)];
  const events = Array.from({ length: 200 }, (_, seq) => quotaEvent(userId, { quotaId, seq }));
  await pub.publishAll(events.map((e) => ["quota.updated", e]));

  const got = await until(user, "notification", (n) => n.data.seq === 199);
  const seqs = got.map((n) => n.data.seq);
  assert.ok(seqs.length < 20, `a few pushes, not 200: ${seqs.length} (${seqs})`);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "in publish order");
  assert.equal(new Set(seqs).size, seqs.length, "each once");
  for (const n of got) assert.deepEqual(n, { type: "quota.updated", data: quotaData(events[n.data.seq]) });
  // The admins get the same pushes, as `message`.
  const copies = await until(admin, "message", (m) => m.data.seq === 199);
  assert.deepEqual(copies, got);
  // Every update not pushed was replaced by a later one, and counted.
  assert.equal((await metric(...COALESCED)) - before, 200 - seqs.length);
  // Each delivery settled once: none redelivered (an ack covering a held delivery would close
  // the channel, and the broker would deliver the unacked ones again).
  await user.inbox.assertQuiet(QUIET_MS, "nothing more for the user");
  assert.equal((await metric(...ROUTED)) - routedBefore, 200, "200 deliveries routed, once each");
  assert.equal(await metric("pushgate_amqp_reconnects_total"), 0);
  await admin.inbox.assertQuiet(0, "nothing more for the admin");
});

test("quota.updated of different quotas are not merged", T, async () => {
  const { userId, user, pub } = await audience();
  const quotas = Array.from({ length: 10 }, () => uid("q"));
  const burst = [];
  for (let seq = 0; seq < 3; seq++) {
    for (const quotaId of quotas) burst.push(["quota.updated", quotaEvent(userId, { quotaId, seq })]);
  }
  await pub.publishAll(burst);

  const latest = new Map();
  const got = [];
  while (quotas.some((q) => latest.get(q) !== 2)) {
    const n = await user.inbox.next("notification", WAIT_MS * 2);
    got.push(n);
    const previous = latest.get(n.data.quotaId) ?? -1;
    assert.ok(n.data.seq > previous, `per quota in publish order: ${JSON.stringify(got.map((g) => g.data))}`);
    latest.set(n.data.quotaId, n.data.seq);
  }
  // Each quota's first update went out at once (its quota was quiet), the latest at the end.
  for (const q of quotas) {
    assert.equal(got.find((n) => n.data.quotaId === q).data.seq, 0, `${q}: the first at once`);
  }
  await user.inbox.assertQuiet(QUIET_MS, "nothing more");
});

test("alerts are all delivered, in order, and not held by the room's 500 ms window", T, async (t) => {
  const { userId, user, admin, pub } = await audience();
  // The user's room gets a push: its window starts.
  const first = quotaEvent(userId, { seq: "first" });
  await pub.publish("quota.updated", first);
  assert.deepEqual(await user.inbox.next("notification"), { type: "quota.updated", data: quotaData(first) });
  // Another quota's update within the window: the room holds it.
  const held = quotaEvent(userId, { seq: "held" });
  await pub.publish("quota.updated", held);
  // Alerts for a third quota: critical ones, and exceeded.
  const quotaId = uid("q");
  const alerts = [];
  for (let seq = 0; seq < 10; seq++) alerts.push(["quota.alert", quotaEvent(userId, { quotaId, seq, usagePercent: 97 })]);
  for (let seq = 10; seq < 15; seq++) alerts.push(["quota.exceeded", quotaEvent(userId, { quotaId, seq })]);
  await pub.publishAll(alerts);
  // An update accepted after them: the room holds it until its window ends.
  const after = quotaEvent(userId, { seq: "after" });
  await pub.publish("quota.updated", after);
  const afterSentAt = performance.now();

  const expected = [
    { type: "quota.updated", data: quotaData(held) },
    ...alerts.map(([type, event]) => ({ type, data: quotaData(event) })),
    { type: "quota.updated", data: quotaData(after) },
  ];
  assert.deepEqual(await user.inbox.take("notification", expected.length, WAIT_MS * 2), expected);
  // The admins: the same objects as `message`, and one critical / error notification each.
  assert.deepEqual(await admin.inbox.take("message", expected.length + 1, WAIT_MS * 2), [
    { type: "quota.updated", data: quotaData(first) },
    ...expected,
  ]);
  const notices = await admin.inbox.take("notification", alerts.length, WAIT_MS * 2);
  assert.deepEqual(
    notices.map((n) => [n.type, n.data.seq]),
    alerts.map(([key, event]) => [key === "quota.alert" ? "critical" : "error", event.seq]),
  );
  // Not held: the alerts went out before the room's window released the update accepted
  // after them (held by the window, they would have gone out together, in one write). Shown
  // when the publishing took well under the window (else that update found the room quiet).
  const firstAt = arrival(user, "notification", { type: "quota.updated", data: quotaData(first) });
  const lastAlertAt = arrival(user, "notification", expected.at(-2));
  const afterAt = arrival(user, "notification", expected.at(-1));
  if (afterSentAt - firstAt < ROOM_WINDOW_MS - 150) {
    assert.ok(
      afterAt - lastAlertAt > 30,
      `the last alert came ${Math.round(afterAt - lastAlertAt)} ms before the update after it`,
    );
  } else {
    t.diagnostic(`publishing took ${Math.round(afterSentAt - firstAt)} ms: not timed`);
  }
  await user.inbox.assertQuiet(QUIET_MS, "nothing more for the user");
  await admin.inbox.assertQuiet(0, "nothing more for the admin");
});

test("an alert for a quota whose update is held: the update first, then the alert, once each", T, async () => {
  const { userId, user, pub } = await audience();
  const quotaId = uid("q");
  const first = quotaEvent(userId, { quotaId, seq: 0 });
  await pub.publish("quota.updated", first);
  assert.deepEqual(await user.inbox.next("notification"), { type: "quota.updated", data: quotaData(first) });
  const before = await metric(...COALESCED);
  // Within the quota's window: the update is held, then the alert comes.
  const update = quotaEvent(userId, { quotaId, seq: 1 });
  const alert = quotaEvent(userId, { quotaId, seq: 2, usagePercent: 97 });
  await pub.publishAll([
    ["quota.updated", update],
    ["quota.alert", alert],
  ]);
  assert.deepEqual(await user.inbox.take("notification", 2), [
    { type: "quota.updated", data: quotaData(update) },
    { type: "quota.alert", data: quotaData(alert) },
  ]);
  await user.inbox.assertQuiet(QUIET_MS, "the update is not pushed again at the window's end");
  assert.equal(await metric(...COALESCED), before, "nothing was replaced");
});

test("held updates survive the acks of the deliveries after them", T, async () => {
  const { userId, user, pub } = await audience();
  const [a, c] = [uid("q"), uid("q")];
  const update = (quotaId, seq) => quotaEvent(userId, { quotaId, seq });
  const events = [update(a, 0), update(c, 0), update(a, 1), update(c, 1)];
  // Two quotas whose windows end 100 ms apart.
  await pub.publish("quota.updated", events[0]);
  await sleep(100);
  await pub.publish("quota.updated", events[1]);
  // Both updated again (held), then deliveries acked at once (ignored keys): no ack of theirs
  // may cover the held ones (their own acks later would close the channel, and an update held
  // then would be lost: neither pushed nor redelivered).
  const ignored = Array.from({ length: 50 }, () => ["quota.deducted", { userId, quotaId: a }]);
  await pub.publishAll([["quota.updated", events[2]], ["quota.updated", events[3]], ...ignored]);
  assert.deepEqual(
    await user.inbox.take("notification", 4, WAIT_MS * 2),
    events.map((e) => ({ type: "quota.updated", data: quotaData(e) })),
  );
  await user.inbox.assertQuiet(QUIET_MS, "each once");
});

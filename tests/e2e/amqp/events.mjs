// Numbered event series for the fault and restart tests: publish them, then check that a socket
// got every one exactly once and, per queue, in publish order; and the receiving client those
// tests start from.

import assert from "node:assert/strict";
import { connectUser, metric, uid } from "../lib.mjs";
import { Publisher, ready, trace } from "./broker.mjs";

/**
 * A new user's client, shown to receive through the broker before a fault is made: one event
 * published and received, pushgate ready, its link never reconnected so far. `disconnects()`
 * counts the client's disconnections from then on.
 */
export async function receivingUser() {
  const userId = uid("u");
  const user = await connectUser(userId);
  let disconnects = 0;
  user.on("disconnect", () => disconnects++);
  const pub = await Publisher.open();
  const first = { userId, quotaId: uid("q"), _trace: trace() };
  await pub.publish("quota.renewed", first);
  assert.deepEqual(await user.inbox.next("notification"), { type: "quota.renewed", data: first });
  assert.equal((await ready()).status, 200);
  assert.equal(await metric("pushgate_amqp_reconnects_total"), 0, "the first connection is not a reconnect");
  return { userId, user, disconnects: () => disconnects };
}

/**
 * `n` quota.renewed and `n` device.error events for `userId`, interleaved, each with its `seq`
 * and `tag` (so that two series never mix): [[routingKey, event], ...].
 */
export function series(userId, n, tag = uid("s")) {
  const out = [];
  for (let seq = 0; seq < n; seq++) {
    out.push(["quota.renewed", { userId, quotaId: `q-${tag}-${seq}`, seq, tag, _trace: trace() }]);
    out.push(["device.error", { userId, deviceId: `d-${tag}-${seq}`, seq, tag, errorMessage: "adb lost", _trace: trace() }]);
  }
  return out;
}

/** Publish a series one event after the other, each confirmed before the next. */
export async function publishSeries(pub, events) {
  for (const [key, event] of events) await pub.publish(key, event);
}

/**
 * Wait for the `notification`s of `events` on `socket` (within `timeout` ms for the first and
 * for each next one) and check: the exact payloads, each once, in publish order per routing
 * key (quota and device events are two queues, two consumers: no order between them).
 */
export async function expectSeries(socket, events, timeout) {
  const got = await socket.inbox.take("notification", events.length, timeout).catch((err) => {
    err.message += socket.connected ? " (the socket is connected)" : " (the socket is DISCONNECTED)";
    throw err;
  });
  for (const key of new Set(events.map(([k]) => k))) {
    assert.deepEqual(
      got.filter((n) => n.type === key),
      events.filter(([k]) => k === key).map(([type, data]) => ({ type, data })),
      `every ${key} once, in order`,
    );
  }
}

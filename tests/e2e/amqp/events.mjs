// Numbered event series for the fault and restart tests: publish them, then check that a socket
// got every one exactly once and, per queue, in publish order.

import assert from "node:assert/strict";
import { uid } from "../lib.mjs";
import { trace } from "./broker.mjs";

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

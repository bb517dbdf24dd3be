// Contract §3, NODE_ID: a node's queues outlive it (durable, x-expires), so a pushgate restarted
// with the same NODE_ID finds what was published while it was down and delivers it.
//
// Run by tests/amqp_e2e.rs (restart_with_the_same_node_id); `control` is its control socket:
// `stop` shuts the server down gracefully, `start` starts a new one with the same configuration
// (vhost, NODE_ID) on the same address.

import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, connectUser, uid, QUIET_MS, WAIT_MS } from "../lib.mjs";
import { closePublishers, control, DEVICE_QUEUE, Publisher, QUOTA_QUEUE, ready, readyBecomes, trace } from "./broker.mjs";
import { expectSeries, publishSeries, series } from "./events.mjs";

afterEach(async () => {
  closeAll();
  await closePublishers();
});

const N = 10;

test("a server restarted with the same NODE_ID delivers what was published while it was down", { timeout: 25000 }, async () => {
  const userId = uid("u");
  const user = await connectUser(userId);
  const pub = await Publisher.open();
  const first = { userId, quotaId: uid("q"), _trace: trace() };
  await pub.publish("quota.renewed", first);
  assert.deepEqual(await user.inbox.next("notification"), { type: "quota.renewed", data: first });

  // Graceful stop: the client is told to go away.
  const gone = new Promise((resolve) => user.once("disconnect", resolve));
  await control("stop");
  await Promise.race([
    gone,
    new Promise((_, reject) => setTimeout(() => reject(new Error("no disconnect after the stop")), WAIT_MS)),
  ]);
  await assert.rejects(ready(), "nothing listens any more");

  // Published while no pushgate runs: kept by this node's queues.
  const events = series(userId, N);
  await publishSeries(pub, events);
  for (const queue of [QUOTA_QUEUE, DEVICE_QUEUE]) {
    const q = await pub.queue(queue);
    assert.deepEqual([q.messageCount, q.consumerCount], [N, 0], `${queue} keeps them`);
  }

  // The new server must not consume before the client is back (the pushes would reach nobody):
  // it starts without access to the vhost, the client connects, then access comes back.
  await control("revoke");
  await control("start");
  const again = await connectUser(userId);
  assert.equal((await ready()).status, 503, "not consuming yet");
  await control("grant");
  await expectSeries(again, events, 10000);
  await again.inbox.assertQuiet(QUIET_MS, "each event exactly once");
  await readyBecomes(200, 5000);
  for (const queue of [QUOTA_QUEUE, DEVICE_QUEUE]) {
    const q = await pub.queue(queue);
    assert.deepEqual([q.messageCount, q.consumerCount], [0, 1], `${queue} consumed by the new server`);
  }
});

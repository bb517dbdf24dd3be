// Contract §1/§3, a lost broker: pushgate's connection is closed by the broker and cannot come
// back (its user's permissions are revoked) while the publishers go on publishing (as another
// user). Meanwhile /ready says 503, clients stay connected, the events wait in pushgate's durable
// queues; once the permissions are back, pushgate reconnects (backoff at most 5 s) and every
// event reaches the client exactly once, in order.
//
// Run by tests/amqp_e2e.rs (broker_connection_cut); `control` is its control socket.

import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, metric, uid, until, QUIET_MS, sleep } from "../lib.mjs";
import { closePublishers, control, DEVICE_QUEUE, Publisher, QUOTA_QUEUE, ready, readyBecomes, trace } from "./broker.mjs";
import { expectSeries, publishSeries, receivingUser, series } from "./events.mjs";

afterEach(async () => {
  closeAll();
  await closePublishers();
});

const N = 10;

test("cut off the broker: not ready meanwhile, then every event once, in order", { timeout: 25000 }, async () => {
  const { userId, user, disconnects } = await receivingUser();

  // Revoke pushgate's permissions, then close every connection of the vhost.
  await control("cut");
  let state;
  await until(
    async () => {
      state = await ready();
      return state.status === 503 && state.body.components.amqp !== "connected";
    },
    "/ready 503 with the broker link down",
  );
  assert.equal(state.body.status, "not_ready");

  // The publisher (another user) reconnects and publishes while pushgate stays down.
  const pub = await Publisher.open();
  const events = series(userId, N);
  await publishSeries(pub, events);
  assert.equal((await pub.queue(QUOTA_QUEUE)).messageCount, N, "held by the durable quota queue");
  assert.equal((await pub.queue(DEVICE_QUEUE)).messageCount, N, "held by the durable device queue");
  await sleep(1000);
  const still = await ready();
  assert.equal(still.status, 503, `still down: ${JSON.stringify(still.body)}`);
  assert.deepEqual(still.body.components.consumers, { quota: "stopped", device: "stopped" });
  await user.inbox.assertQuiet(0, "nothing delivered while down");
  assert.equal(user.connected, true, "the client stays connected");

  // Back: every event once, in order, within the backoff cap (and the time to reconnect).
  await control("grant");
  await expectSeries(user, events, 10000);
  await user.inbox.assertQuiet(QUIET_MS, "each event exactly once");
  await readyBecomes(200, 5000);
  assert.ok((await metric("pushgate_amqp_reconnects_total")) >= 1, "counted as a reconnect");
  assert.equal(disconnects(), 0, "the client never noticed");

  // And it keeps consuming.
  const after = { userId, quotaId: uid("q"), _trace: trace() };
  await pub.publish("quota.renewed", after);
  assert.deepEqual(await user.inbox.next("notification"), { type: "quota.renewed", data: after });
});

// Contract §1/§3, a dropped connection: the broker closes every connection of the vhost
// (rabbitmqctl close_all_connections, permissions untouched). pushgate reconnects at once and
// loses nothing published right after the close.
//
// Run by tests/amqp_e2e.rs (broker_connection_closed); `control` is its control socket.

import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, metric, QUIET_MS } from "../lib.mjs";
import { closePublishers, control, Publisher, readyBecomes } from "./broker.mjs";
import { expectSeries, publishSeries, receivingUser, series } from "./events.mjs";

afterEach(async () => {
  closeAll();
  await closePublishers();
});

const N = 10;

test("connection closed by the broker: a quick reconnect, nothing published right after is lost", { timeout: 25000 }, async () => {
  const { userId, user, disconnects } = await receivingUser();

  await control("close");
  const closed = Date.now();
  // Right after the close (the publisher's connection was closed too: a new one).
  const pub = await Publisher.open();
  const events = series(userId, N);
  await publishSeries(pub, events);
  await expectSeries(user, events, 5000);
  const elapsed = Date.now() - closed;
  assert.ok(elapsed < 5000, `delivered ${elapsed} ms after the close`);
  await user.inbox.assertQuiet(QUIET_MS, "each event exactly once");
  await readyBecomes(200, 5000);
  assert.ok((await metric("pushgate_amqp_reconnects_total")) >= 1, "counted as a reconnect");
  assert.equal(disconnects(), 0, "the client never noticed");
});

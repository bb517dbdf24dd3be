// Contract §7 with the real socket.io-client: a session whose token's `exp` passes is ended
// without a Socket.IO DISCONNECT, so the client sees a transport close and reconnects by
// itself with the auth it then holds (here a fresh token from its `auth` callback).

import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, metric, pushToUser, socket, token, uid } from "./lib.mjs";

afterEach(closeAll);

const now = () => Math.floor(Date.now() / 1000);

/** The next `event` the socket emits (a reserved one too), within `timeout` ms. */
function once(s, event, timeout) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeout} ms`)), timeout);
    s.once(event, (arg) => {
      clearTimeout(timer);
      resolve(arg);
    });
  });
}

test("an expiring token: transport close at exp, then a reconnect with a fresh token", async () => {
  const before = await metric("pushgate_disconnects_total", { reason: "token_expired" });
  const sub = uid();
  const issued = [];
  const s = socket({
    reconnection: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
    // socket.io-client asks for the auth on every (re)connect: first a token expiring in 2 s
    // (a whole second, so 1-2 s after the connect), then a long one.
    auth: (cb) => {
      const exp = issued.length === 0 ? now() + 2 : now() + 3600;
      issued.push(exp);
      cb({ token: token(sub, { exp }) });
    },
  });
  await once(s, "connect", 3000);
  await s.inbox.next("welcome");
  const connectedAt = Date.now();

  const reason = await once(s, "disconnect", 4000);
  const after = Date.now() - connectedAt;
  assert.equal(reason, "transport close", "not `io server disconnect`: the client reconnects");
  assert.ok(after < 3500, `closed ${after} ms after the connect`);

  await once(s, "connect", 3000);
  const welcome = await s.inbox.next("welcome");
  assert.equal(welcome.userId, sub);
  assert.equal(issued.length, 2, "the reconnect asked for the auth again");

  await pushToUser(sub, { type: "after.reconnect" });
  const pushed = await s.inbox.next("notification");
  assert.equal(pushed.type, "after.reconnect");
  assert.equal(
    await metric("pushgate_disconnects_total", { reason: "token_expired" }),
    before + 1,
  );
});

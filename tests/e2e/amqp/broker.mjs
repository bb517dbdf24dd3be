// Helpers for the RabbitMQ end-to-end tests (docs/rabbitmq.md): a publisher that publishes the way
// the real backends do, the broker-side queues, /ready, and the control socket of the Rust test
// that runs these files (tests/amqp_e2e.rs).
//
// Environment, on top of what ../lib.mjs reads:
//   PUSHGATE_AMQP_URL  a publisher's URL on the server's vhost (a user other than pushgate's)
//   PUSHGATE_NODE_ID   the server's NODE_ID (its queues are pushgate.<NODE_ID>.quota / .device)
//   PUSHGATE_CONTROL   host:port of the control socket (revoke, grant, close, cut, stop, start;
//                      see tests/amqp_e2e.rs)
// These files are not run by tests/socketio_client.rs (it runs ../*.test.mjs only).

import net from "node:net";
import { randomBytes } from "node:crypto";
import assert from "node:assert/strict";
import amqp from "amqplib";
import { URL, WAIT_MS, sleep, until } from "../lib.mjs";

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (see tests/e2e/amqp/broker.mjs)`);
  return value;
}

export const AMQP_URL = required("PUSHGATE_AMQP_URL");
export const NODE_ID = required("PUSHGATE_NODE_ID");
const CONTROL = required("PUSHGATE_CONTROL");

/** The publishers' exchange: durable, topic. */
export const EXCHANGE = "cloudphone.events";
/** Where pushgate's dead-letter exchange leads. */
export const DEAD_LETTER_QUEUE = "pushgate.dead-letter";
export const QUOTA_QUEUE = `pushgate.${NODE_ID}.quota`;
export const DEVICE_QUEUE = `pushgate.${NODE_ID}.device`;

/** The `_trace` real publishers add to every event. */
export function trace() {
  return { traceId: randomBytes(16).toString("hex"), spanId: randomBytes(8).toString("hex"), sampled: true };
}

const publishers = new Set();

/** Close every publisher opened through this module (call in afterEach). */
export async function closePublishers() {
  const all = [...publishers];
  publishers.clear();
  await Promise.all(all.map((p) => p.close()));
}

/**
 * A backend publisher: its own connection and a confirm channel; flat JSON bodies, persistent,
 * no content type, to the durable topic exchange, each publish waiting for the broker's confirm.
 */
export class Publisher {
  static async open(url = AMQP_URL) {
    const connection = await amqp.connect(url);
    const p = new Publisher(connection);
    // A connection the broker closes (close_all_connections) must not crash the test process.
    connection.on("error", (err) => (p.lastError = err));
    connection.on("close", () => (p.closed = true));
    p.channel = await connection.createConfirmChannel();
    p.channel.on("error", (err) => (p.lastError = err));
    // What the real publishers do before publishing (same declaration as pushgate's).
    await p.channel.assertExchange(EXCHANGE, "topic", { durable: true });
    publishers.add(p);
    return p;
  }

  constructor(connection) {
    this.connection = connection;
    this.closed = false;
  }

  /** Publish `body` (string or Buffer) as it is, and wait for the confirm. */
  publishRaw(routingKey, body) {
    return new Promise((resolve, reject) => {
      this.channel.publish(EXCHANGE, routingKey, Buffer.from(body), { persistent: true }, (err) =>
        err ? reject(new Error(`publish ${routingKey} nacked: ${err}`)) : resolve(),
      );
    });
  }

  /** Publish `event` as flat JSON. */
  publish(routingKey, event) {
    return this.publishRaw(routingKey, JSON.stringify(event));
  }

  /** Publish every [routingKey, event] at once, then wait for every confirm (a burst). */
  publishAll(events) {
    return Promise.all(events.map(([key, event]) => this.publish(key, event)));
  }

  /** {messageCount, consumerCount} of `queue` (passive check on a throw-away channel). */
  async queue(queue) {
    const ch = await this.connection.createChannel();
    ch.on("error", () => {});
    try {
      return await ch.checkQueue(queue);
    } finally {
      await ch.close().catch(() => {});
    }
  }

  /** Take every message of `queue` (no ack needed): [{fields, properties, content}]. */
  async drain(queue) {
    const ch = await this.connection.createChannel();
    ch.on("error", () => {});
    const out = [];
    try {
      for (;;) {
        const msg = await ch.get(queue, { noAck: true });
        if (msg === false) return out;
        out.push(msg);
      }
    } finally {
      await ch.close().catch(() => {});
    }
  }

  async close() {
    publishers.delete(this);
    if (!this.closed) await this.connection.close().catch(() => {});
  }
}

/** Wait until `queue` holds exactly `n` ready messages; returns the last count seen. */
export async function queueHolds(publisher, queue, n, timeout = WAIT_MS) {
  let last;
  await until(
    async () => (last = (await publisher.queue(queue)).messageCount) === n,
    `${queue} holds ${n} messages (last seen: ${last})`,
    timeout,
  );
  return last;
}

/** GET /ready: {status, body}. */
export async function ready() {
  const res = await fetch(`${URL}/ready`, { signal: AbortSignal.timeout(WAIT_MS) });
  return { status: res.status, body: await res.json() };
}

/** Wait until /ready answers `status`; returns its body. */
export async function readyBecomes(status, timeout = WAIT_MS) {
  let last;
  await until(
    async () => {
      try {
        last = await ready();
      } catch (err) {
        last = { error: err.message };
      }
      return last.status === status;
    },
    `/ready ${status} (last: ${JSON.stringify(last)})`,
    timeout,
  );
  return last.body;
}

/** Ask the Rust test to carry out `command` (see tests/amqp_e2e.rs); resolves once done. */
export function control(command) {
  const [host, port] = CONTROL.split(":");
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), host);
    let answer = "";
    sock.setEncoding("utf8");
    sock.setTimeout(20000, () => sock.destroy(new Error(`control ${command}: no answer within 20 s`)));
    sock.on("connect", () => sock.write(`${command}\n`));
    sock.on("data", (d) => (answer += d));
    sock.on("error", reject);
    sock.on("close", () => {
      const line = answer.trim();
      if (line === "ok") resolve();
      else reject(new Error(`control ${command}: ${line || "no answer"}`));
    });
  });
}

/** An RFC 3339 time between `before` and `after` (ms since the epoch), within clock slack. */
export function assertReceiveTime(ts, before, after) {
  assert.equal(typeof ts, "string", `timestamp ${JSON.stringify(ts)}`);
  assert.match(ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
  const t = Date.parse(ts);
  assert.ok(t >= before - 1000 && t <= after + 1000, `${ts} not between publish and receipt`);
}

export { sleep };

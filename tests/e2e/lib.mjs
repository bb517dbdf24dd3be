// Helpers for the end-to-end tests: configuration from the environment, HS256 tokens minted
// with node's crypto, socket.io-client connections that record every event, waits with
// timeouts, and the HTTP push API.
//
// Environment: PUSHGATE_URL (e.g. http://127.0.0.1:30006), PUSHGATE_JWT_SECRET,
// PUSHGATE_API_KEY, PUSHGATE_JWT_ISSUER and PUSHGATE_JWT_AUDIENCE (empty or unset: the claim is
// not put in tokens, matching a server that skips the check). PUSHGATE_TIGHT_RECOVERY_URL: a
// second server (same secret and key) with a short RECOVERY_WINDOW_MS and a tiny
// RECOVERY_HISTORY_BYTES (see recovery.test.mjs; its tests are skipped when it is unset).
//
// `cargo test --test socketio_client` starts a server and runs every *.test.mjs with these set.
// By hand, against a running pushgate (short heartbeats are fine, the client answers pings):
//   cd tests/e2e && npm ci && PUSHGATE_URL=http://127.0.0.1:30006 PUSHGATE_JWT_SECRET=... \
//     PUSHGATE_API_KEY=... PUSHGATE_JWT_ISSUER=cloudphone-platform \
//     PUSHGATE_JWT_AUDIENCE=cloudphone-users npm test
// Test files run one at a time (--test-concurrency=1): the broadcast test counts every session.

import { createHmac, randomBytes } from "node:crypto";
import assert from "node:assert/strict";
import { io } from "socket.io-client";

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} must be set (see tests/e2e/lib.mjs)`);
  }
  return value;
}

export const URL = required("PUSHGATE_URL").replace(/\/+$/, "");
export const SECRET = required("PUSHGATE_JWT_SECRET");
export const API_KEY = required("PUSHGATE_API_KEY");
export const ISSUER = process.env.PUSHGATE_JWT_ISSUER || undefined;
export const AUDIENCE = process.env.PUSHGATE_JWT_AUDIENCE || undefined;

/** How long a wait for something that must happen may take. */
export const WAIT_MS = 3000;
/** How long to watch for something that must not happen. */
export const QUIET_MS = 300;

// ---------------------------------------------------------------------------------------------
// Tokens

export function b64url(data) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(typeof data === "string" ? data : JSON.stringify(data));
  return buf.toString("base64url");
}

/** A JWT with `header` and `claims`, signed with HMAC-`hash` (sha256 for HS256). */
export function signJwt(header, claims, { secret = SECRET, hash = "sha256" } = {}) {
  const input = `${b64url(header)}.${b64url(claims)}`;
  const sig = createHmac(hash, secret).update(input).digest("base64url");
  return `${input}.${sig}`;
}

/** The claims user-service signs for `sub`, with `extra` merged in (undefined deletes a claim). */
export function claims(sub, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  const c = {
    sub,
    username: `user-${sub}`,
    roles: ["user"],
    isSuperAdmin: false,
    tenantId: "tenant-1",
    iss: ISSUER,
    aud: AUDIENCE,
    iat: now,
    exp: now + 3600,
    ...extra,
  };
  for (const k of Object.keys(c)) {
    if (c[k] === undefined) delete c[k];
  }
  return c;
}

/** A valid HS256 user token for `sub`. */
export function token(sub, extra = {}, opts = {}) {
  return signJwt({ alg: "HS256", typ: "JWT" }, claims(sub, extra), opts);
}

/** A valid HS256 admin token (roles: ["admin"]). */
export function adminToken(sub, extra = {}) {
  return token(sub, { roles: ["admin"], ...extra });
}

/** A fresh id, so that tests never share users or rooms. */
export function uid(prefix = "u") {
  return `${prefix}${randomBytes(6).toString("hex")}`;
}

// ---------------------------------------------------------------------------------------------
// Sockets

const open = new Set();

/** Close every socket opened through this module (call in afterEach). */
export function closeAll() {
  for (const s of open) s.close();
  open.clear();
}

/**
 * A socket.io-client socket (WebSocket only, no reconnection, its own connection) whose every
 * received event is recorded in `socket.inbox`. `opts` go to `io()`; `opts.token` is a
 * shorthand for `auth: {token}`; `opts.url` is the server's (default `URL`).
 */
export function socket(opts = {}) {
  const { token: tok, url = URL, ...rest } = opts;
  const options = {
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    timeout: WAIT_MS,
    ...(tok !== undefined ? { auth: { token: tok } } : {}),
    ...rest,
  };
  const s = io(url, options);
  open.add(s);
  s.inbox = new Inbox(s);
  return s;
}

/** Every event a socket received, in order, with waits that consume them one at a time. */
export class Inbox {
  constructor(s) {
    this.events = []; // [{event, args, taken}]
    this.waiters = [];
    s.onAny((event, ...args) => {
      const entry = { event, args, taken: false };
      this.events.push(entry);
      for (const w of [...this.waiters]) {
        if (!entry.taken && w.event === event) {
          entry.taken = true;
          w.resolve(args[0]);
        }
      }
    });
  }

  /** Payloads of every `event` received so far (taken or not). */
  all(event) {
    return this.events.filter((e) => e.event === event).map((e) => e.args[0]);
  }

  /** The first not yet consumed `event` payload, waiting at most `timeout` ms. */
  next(event, timeout = WAIT_MS) {
    const found = this.events.find((e) => !e.taken && e.event === event);
    if (found) {
      found.taken = true;
      return Promise.resolve(found.args[0]);
    }
    return new Promise((resolve, reject) => {
      const w = {
        event,
        resolve: (v) => {
          clearTimeout(timer);
          this.waiters.splice(this.waiters.indexOf(w), 1);
          resolve(v);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        const seen = this.events.map((e) => e.event).join(", ") || "nothing";
        reject(new Error(`no "${event}" event within ${timeout} ms (received: ${seen})`));
      }, timeout);
      this.waiters.push(w);
    });
  }

  /** The next `n` `event` payloads, in order. */
  async take(event, n, timeout = WAIT_MS) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await this.next(event, timeout));
    return out;
  }

  /** Not-yet-consumed events, as [event, payload]. */
  pending() {
    return this.events.filter((e) => !e.taken).map((e) => [e.event, e.args[0]]);
  }

  /** Assert that nothing unconsumed arrives (or has arrived) within `ms`. */
  async assertQuiet(ms = QUIET_MS, what = "no further event") {
    await sleep(ms);
    assert.deepEqual(this.pending(), [], what);
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `cond` (sync or async) every 10 ms until it is true; fails with `what` after `timeout`. */
export async function until(cond, what, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for: ${what}`);
    await sleep(10);
  }
}

/**
 * Wait until `s` connects or is refused. Resolves "connect" or the connect_error's Error.
 */
export function outcome(s, timeout = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const done = (v) => {
      clearTimeout(timer);
      s.off("connect", onConnect);
      s.off("connect_error", onError);
      resolve(v);
    };
    const onConnect = () => done("connect");
    const onError = (err) => done(err);
    const timer = setTimeout(() => {
      s.off("connect", onConnect);
      s.off("connect_error", onError);
      reject(new Error(`neither connect nor connect_error within ${timeout} ms`));
    }, timeout);
    if (s.connected) return done("connect");
    s.on("connect", onConnect);
    s.on("connect_error", onError);
  });
}

/** Connect with `opts` (see `socket`), expect success and the welcome; returns the socket. */
export async function connect(opts = {}) {
  const s = socket(opts);
  const result = await outcome(s);
  if (result !== "connect") {
    throw new Error(`connect refused: ${result.message}`);
  }
  s.welcome = await s.inbox.next("welcome");
  return s;
}

/** Connect as a user with a fresh (or given) sub; returns the socket, with `s.sub`. */
export async function connectUser(sub = uid("u"), extra = {}, opts = {}) {
  const s = await connect({ token: token(sub, extra), ...opts });
  s.sub = sub;
  return s;
}

/** Connect as an admin with a fresh (or given) sub. */
export async function connectAdmin(sub = uid("a"), extra = {}, opts = {}) {
  return connectUser(sub, { roles: ["admin"], ...extra }, opts);
}

/** Expect the connection to be refused as unauthorized, with no event at all. */
export async function expectUnauthorized(opts) {
  const s = socket(opts);
  const result = await outcome(s);
  if (result === "connect") {
    const welcome = await s.inbox.next("welcome").catch(() => "no welcome");
    assert.fail(`expected connect_error "unauthorized", but the connection was accepted (welcome: ${JSON.stringify(welcome)})`);
  }
  assert.equal(result.message, "unauthorized");
  await sleep(100);
  assert.deepEqual(s.inbox.pending(), [], "no event after a refused connect");
  assert.equal(s.connected, false);
  s.close();
}

/**
 * Emit `event` with `args` and an ack callback; resolves [reply event payload, ack payload],
 * where the reply is the next `replyEvent` the server sends.
 */
export async function request(s, event, replyEvent, ...args) {
  const [reply, ack] = await Promise.all([
    s.inbox.next(replyEvent),
    s.timeout(WAIT_MS).emitWithAck(event, ...args),
  ]);
  return [reply, ack];
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** `method path` (of the server at `base`) with the API key and an optional JSON body; resolves {status, body}. */
export async function api(method, path, body, base = URL) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      "X-API-Key": API_KEY,
      ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

/** Push (to the server at `base`) and expect `202 {"clients": n}`; returns n. */
async function push(path, body, base = URL) {
  const { status, body: answer } = await api("POST", path, body, base);
  assert.equal(status, 202, `POST ${path}: ${JSON.stringify(answer)}`);
  assert.equal(typeof answer.clients, "number", `POST ${path}: ${JSON.stringify(answer)}`);
  return answer.clients;
}

export const pushToUser = (userId, body, base = URL) =>
  push(`/api/v1/users/${encodeURIComponent(userId)}/notifications`, body, base);
export const pushRoomMessage = (room, body) =>
  push(`/api/v1/rooms/${encodeURIComponent(room)}/messages`, body);
export const pushRoomNotification = (room, body) =>
  push(`/api/v1/rooms/${encodeURIComponent(room)}/notifications`, body);
export const broadcast = (body) => push("/api/v1/broadcast", body);

/** Every sample of `name` in /metrics (of the server at `base`), as {labels: {name: value}, value}. */
export async function metricSamples(name, base = URL) {
  const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) });
  assert.equal(res.status, 200);
  const text = await res.text();
  const re = new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, "gm");
  const samples = [];
  for (const m of text.matchAll(re)) {
    const labels = {};
    for (const l of (m[1] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ labels, value: Number(m[2]) });
  }
  return samples;
}

/**
 * The sum of every sample of `name` in /metrics whose labels include `labels` (0 when none
 * does); fails when /metrics has no sample of `name` at all.
 */
export async function metric(name, labels = {}, base = URL) {
  const samples = await metricSamples(name, base);
  assert.ok(samples.length > 0, `${name} missing from /metrics`);
  return samples
    .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** A notification object with nested data and characters that need escaping. */
export function sample(type, extra = {}) {
  return {
    type,
    title: "Quota \"almost\" full ✓",
    message: "line 1\nline 2 — héllo 🚀 <b>&amp;</b> \\ /",
    data: { userId: "42", usagePercent: 95.5, limits: { cpu: 4, ram: null }, tags: ["a", 1, true, false] },
    ...extra,
  };
}

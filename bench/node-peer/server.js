// Benchmark peer for pushgate: a small Node server written the way the old NestJS
// notification gateway works (socket.io 4 server, amqplib consumers, jsonwebtoken), implementing
// the subset of pushgate's protocol (docs/) that the load generator
// exercises:
//
//   * Socket.IO at /socket.io/ (WebSocket and polling), JWT auth from the CONNECT auth object,
//     the query `token` or `Authorization: Bearer` (HS256, exp, iss/aud when configured), join
//     `user:<sub>` and one `welcome` on connect;
//   * client events subscribe / unsubscribe / join_room / leave_room with pushgate's ACL,
//     answered with the reply event and the ack;
//   * HTTP push routes /api/v1/users/:id/notifications, /api/v1/rooms/:room/messages,
//     /api/v1/rooms/:room/notifications, /api/v1/broadcast (X-API-Key or Bearer), 202
//     {"clients": n}; GET /health;
//   * an amqplib consumer of quota.* and device.* on its own queues, routing quota.updated and
//     device.started / device.stopped the way docs/rabbitmq.md says (other keys are acked and
//     ignored; malformed messages are rejected without requeue).
//
// Plain node, no build step. Configuration from the environment, with pushgate's names:
// PORT (30007), HOST (127.0.0.1), JWT_SECRET (required), JWT_ISSUER / JWT_AUDIENCE
// (cloudphone-platform / cloudphone-users; empty skips the check), PUSH_API_KEY, RABBITMQ_URL,
// RABBITMQ_EXCHANGE (cloudphone.events), NODE_ID, RABBITMQ_PREFETCH (256),
// RABBITMQ_QUEUE_EXPIRES_MS (600000), CORS_ORIGIN (*), AMQP=off to run without a broker,
// JWT_KEY_OBJECT=1 to verify with a prepared key (see below), RECOVERY_WINDOW_MS (0: off, the
// default here so that earlier figures stay comparable; above 0: socket.io's own connection-
// state recovery for that long, and `welcome` says `recovered`, as pushgate's does).
"use strict";

const http = require("node:http");
const os = require("node:os");
const { randomBytes } = require("node:crypto");
const { Server } = require("socket.io");
const jwt = require("jsonwebtoken");
const amqp = require("amqplib");

const env = process.env;
const PORT = Number(env.PORT || 30007);
const HOST = env.HOST || "127.0.0.1";
const SECRET = env.JWT_SECRET || "";
const ISSUER = env.JWT_ISSUER ?? "cloudphone-platform";
const AUDIENCE = env.JWT_AUDIENCE ?? "cloudphone-users";
const API_KEY = env.PUSH_API_KEY || "";
const RABBITMQ_URL = env.RABBITMQ_URL || "amqp://guest:guest@127.0.0.1:5672/%2f";
const EXCHANGE = env.RABBITMQ_EXCHANGE || "cloudphone.events";
const NODE_ID = env.NODE_ID || os.hostname();
const PREFETCH = Number(env.RABBITMQ_PREFETCH || 256);
const QUEUE_EXPIRES_MS = Number(env.RABBITMQ_QUEUE_EXPIRES_MS || 600000);
const CORS_ORIGIN = env.CORS_ORIGIN || "*";
const RECOVERY_WINDOW_MS = Number(env.RECOVERY_WINDOW_MS || 0);
const MAX_BODY = 1048576;
const ADMIN_ROLES = ["admin", "super_admin", "superadmin"];
const ROOM_NAME = /^[A-Za-z0-9:_.@-]{1,128}$/;

if (SECRET.length < 32) {
  console.error("node-peer: JWT_SECRET (at least 32 characters) is required");
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Socket.IO

const httpServer = http.createServer(handleHttp);
httpServer.keepAliveTimeout = 65000;
const io = new Server(httpServer, {
  path: "/socket.io/",
  transports: ["polling", "websocket"],
  pingInterval: Number(env.PING_INTERVAL_MS || 25000),
  pingTimeout: Number(env.PING_TIMEOUT_MS || 20000),
  maxHttpBufferSize: Number(env.MAX_PAYLOAD_BYTES || 1000000),
  cors: { origin: CORS_ORIGIN === "*" ? true : CORS_ORIGIN.split(","), credentials: true },
  serveClient: false,
  ...(RECOVERY_WINDOW_MS > 0 && {
    connectionStateRecovery: { maxDisconnectionDuration: RECOVERY_WINDOW_MS, skipMiddlewares: false },
  }),
});

function pickToken(handshake) {
  const auth = handshake.auth || {};
  if (auth.token !== undefined && auth.token !== null && auth.token !== "") {
    if (typeof auth.token !== "string") return { error: "auth.token is not a string" };
    return { token: auth.token };
  }
  const q = handshake.query && handshake.query.token;
  if (typeof q === "string" && q !== "") return { token: q };
  const h = handshake.headers.authorization;
  if (typeof h === "string" && h.startsWith("Bearer ") && h.slice(7).trim() !== "") {
    return { token: h.slice(7).trim() };
  }
  return { error: "no token" };
}

// @nestjs/jwt hands jsonwebtoken the secret as a string, and jsonwebtoken 9 then first tries to
// parse it as a PEM public key (crypto.createPublicKey throws, ~1.5 ms here) before using it as
// an HMAC secret: that is the old service's cost per connect, so it is the default.
// JWT_KEY_OBJECT=1 passes a prepared KeyObject instead (the peer's best case, ~20x cheaper).
const { createSecretKey } = require("node:crypto");
const VERIFY_KEY = env.JWT_KEY_OBJECT === "1" ? createSecretKey(Buffer.from(SECRET)) : SECRET;
const verifyOptions = { algorithms: ["HS256"] };
if (ISSUER) verifyOptions.issuer = ISSUER;
if (AUDIENCE) verifyOptions.audience = AUDIENCE;

// The NestJS gateway's guard, done right: verify before the connection is accepted.
io.use((socket, next) => {
  const { token, error } = pickToken(socket.handshake);
  if (error) return next(new Error("unauthorized"));
  let claims;
  try {
    claims = jwt.verify(token, VERIFY_KEY, verifyOptions);
  } catch (e) {
    return next(new Error("unauthorized"));
  }
  if (claims.exp === undefined) return next(new Error("unauthorized"));
  let sub = claims.sub;
  if (Number.isSafeInteger(sub) && sub >= 0) sub = String(sub);
  if (typeof sub !== "string" || sub === "" || [...sub].length > 128) {
    return next(new Error("unauthorized"));
  }
  const roles = Array.isArray(claims.roles) ? claims.roles : [];
  socket.data.user = {
    id: sub,
    admin: claims.isSuperAdmin === true || roles.some((r) => ADMIN_ROLES.includes(r)),
  };
  next();
});

function parseUserId(v) {
  if (typeof v === "string" && v !== "") return v;
  if (Number.isSafeInteger(v) && v >= 0) return String(v);
  return null;
}

function reply(socket, ack, event, payload) {
  socket.emit(event, payload);
  if (typeof ack === "function") ack(payload);
}

function refuse(socket, ack, asked, code, message) {
  reply(socket, ack, "error", { event: asked, code, message });
}

io.on("connection", (socket) => {
  const user = socket.data.user;
  socket.join(`user:${user.id}`);
  socket.emit("welcome", {
    message: "Connected to notification service",
    clientId: socket.id,
    userId: user.id,
    timestamp: new Date().toISOString(),
    ...(RECOVERY_WINDOW_MS > 0 && { recovered: socket.recovered }),
  });

  for (const name of ["subscribe", "unsubscribe"]) {
    socket.on(name, (data, ack) => {
      const userId = parseUserId(data && data.userId);
      if (userId === null) return refuse(socket, ack, name, "bad_request", "userId is required");
      if (userId !== user.id && !user.admin) {
        return refuse(socket, ack, name, "forbidden", "not allowed");
      }
      const room = `user:${userId}`;
      if (name === "subscribe") {
        socket.join(room);
        reply(socket, ack, "subscribed", { userId, message: `Subscribed to ${room}` });
      } else {
        socket.leave(room);
        reply(socket, ack, "unsubscribed", { userId, message: `Unsubscribed from ${room}` });
      }
    });
  }

  socket.on("join_room", (data, ack) => {
    const room = data && data.room;
    if (typeof room !== "string" || !ROOM_NAME.test(room)) {
      return refuse(socket, ack, "join_room", "bad_request", "invalid room");
    }
    const own = room === `user:${user.id}`;
    if (!own && !user.admin) return refuse(socket, ack, "join_room", "forbidden", "admins only");
    socket.join(room);
    reply(socket, ack, "room_joined", { room, message: `Joined room ${room}` });
  });

  socket.on("leave_room", (data, ack) => {
    const room = data && data.room;
    if (typeof room !== "string" || !ROOM_NAME.test(room)) {
      return refuse(socket, ack, "leave_room", "bad_request", "invalid room");
    }
    socket.leave(room);
    reply(socket, ack, "room_left", { room, message: `Left room ${room}` });
  });
});

function roomSize(room) {
  const members = io.sockets.adapter.rooms.get(room);
  return members ? members.size : 0;
}

// The gateway's methods, as the NestJS NotificationGateway has them.
function sendToUser(userId, notification) {
  const room = `user:${userId}`;
  const n = roomSize(room);
  io.to(room).emit("notification", notification);
  return n;
}
function sendToRoom(room, message) {
  const n = roomSize(room);
  io.to(room).emit("message", message);
  return n;
}
function sendNotificationToRoom(room, notification) {
  const n = roomSize(room);
  io.to(room).emit("notification", notification);
  return n;
}
function broadcast(notification) {
  io.emit("notification", notification);
  return io.of("/").sockets.size;
}

// ---------------------------------------------------------------------------------------------
// HTTP

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

const ROUTES = [
  [/^\/api\/v1\/users\/([^/]+)\/notifications$/, (m, body) => sendToUser(m, body)],
  [/^\/api\/v1\/rooms\/([^/]+)\/messages$/, (m, body) => sendToRoom(m, body)],
  [/^\/api\/v1\/rooms\/([^/]+)\/notifications$/, (m, body) => sendNotificationToRoom(m, body)],
  [/^\/api\/v1\/broadcast$/, (_m, body) => broadcast(body)],
];

function handleHttp(req, res) {
  const path = req.url.split("?")[0];
  if (path === "/health") return send(res, 200, { status: "ok" });
  if (path === "/ready") {
    return send(res, amqpReady ? 200 : 503, { status: amqpReady ? "ready" : "not_ready" });
  }
  let route = null;
  let param = null;
  for (const [re, fn] of ROUTES) {
    const m = re.exec(path);
    if (m) {
      route = fn;
      try {
        param = m[1] === undefined ? null : decodeURIComponent(m[1]);
      } catch {
        return send(res, 400, { error: "bad_request", message: "bad path" });
      }
      break;
    }
  }
  if (!route) return send(res, 404, { error: "not_found", message: "no such route" });
  if (req.method !== "POST") return send(res, 405, { error: "method_not_allowed", message: "POST" });
  if (!API_KEY) return send(res, 403, { error: "forbidden", message: "push API disabled" });
  const auth = req.headers.authorization;
  const given = req.headers["x-api-key"] || (auth && auth.startsWith("Bearer ") ? auth.slice(7) : "");
  if (given !== API_KEY) return send(res, 401, { error: "unauthorized", message: "bad API key" });
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  req.on("data", (c) => {
    size += c.length;
    if (size > MAX_BODY) tooLarge = true;
    else chunks.push(c);
  });
  req.on("end", () => {
    if (tooLarge) return send(res, 413, { error: "payload_too_large", message: "body too large" });
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return send(res, 400, { error: "bad_request", message: "body is not valid JSON" });
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      return send(res, 400, { error: "bad_request", message: "body must be a JSON object" });
    }
    send(res, 202, { clients: route(param, body) });
  });
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ

const lastDeviceStatus = new Map();
let amqpReady = false;

function validId(v) {
  return (typeof v === "string" && v !== "") || (Number.isSafeInteger(v) && v >= 0);
}

// Returns false for a message that must be dead-lettered.
function route(key, event) {
  if (event === null || typeof event !== "object" || Array.isArray(event)) return false;
  if (!validId(event.userId)) return false;
  const userId = String(event.userId);
  if (key === "quota.updated") {
    if (!validId(event.quotaId)) return false;
    const notification = { type: "quota.updated", data: event };
    sendToUser(userId, notification);
    if (roomSize("admin") > 0) sendToRoom("admin", notification);
    return true;
  }
  if (key === "device.started" || key === "device.stopped") {
    if (!validId(event.deviceId)) return false;
    const deviceId = String(event.deviceId);
    const running = key === "device.started";
    const newStatus = running ? "running" : "stopped";
    const oldStatus = lastDeviceStatus.get(deviceId) || (running ? "stopped" : "running");
    lastDeviceStatus.set(deviceId, newStatus);
    const notification = {
      type: "device.status.changed",
      data: {
        deviceId,
        deviceName: event.deviceName || deviceId,
        oldStatus,
        newStatus,
        timestamp:
          (running ? event.startedAt : event.stoppedAt) || event.timestamp || new Date().toISOString(),
      },
    };
    sendToUser(userId, notification);
    sendToRoom("admin", notification);
    return true;
  }
  return true; // acked and ignored
}

async function consume(conn, name, pattern) {
  const ch = await conn.createChannel();
  await ch.assertExchange(EXCHANGE, "topic", { durable: true });
  const queue = `pushgate-node.${NODE_ID}.${name}`;
  await ch.assertQueue(queue, { durable: true, arguments: { "x-expires": QUEUE_EXPIRES_MS } });
  await ch.bindQueue(queue, EXCHANGE, pattern);
  await ch.prefetch(PREFETCH);
  await ch.consume(queue, (msg) => {
    if (msg === null) return;
    let event;
    try {
      event = JSON.parse(msg.content.toString("utf8"));
    } catch {
      return ch.reject(msg, false);
    }
    if (route(msg.fields.routingKey, event)) ch.ack(msg);
    else ch.reject(msg, false);
  });
}

async function startAmqp(attempt = 0) {
  try {
    const conn = await amqp.connect(RABBITMQ_URL);
    conn.on("error", () => {});
    conn.on("close", () => {
      amqpReady = false;
      setTimeout(() => startAmqp(0), 1000);
    });
    await consume(conn, "quota", "quota.*");
    await consume(conn, "device", "device.*");
    amqpReady = true;
    console.error(`node-peer: consuming ${EXCHANGE} as ${NODE_ID}`);
  } catch (e) {
    const delay = Math.min(5000, 250 * 2 ** attempt);
    console.error(`node-peer: broker: ${e.message}; retrying in ${delay} ms`);
    setTimeout(() => startAmqp(attempt + 1), delay);
  }
}

httpServer.listen(PORT, HOST, () => {
  console.error(`node-peer: listening on ${HOST}:${PORT} (pid ${process.pid}, id ${randomBytes(2).toString("hex")})`);
});
if (env.AMQP !== "off") startAmqp();

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    io.close();
    httpServer.close();
    setTimeout(() => process.exit(0), 500).unref();
  });
}

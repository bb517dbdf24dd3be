// Quota events and the admin console, for the RabbitMQ end-to-end tests: a quota event as
// quota-service publishes it, the `data` it is pushed with (the event as published, plus `alertLevel` / `usagePercent` in the console's
// names when the publisher only sent `severity` / `percentage`), and a tiny dev proxy like the
// console's (Vite's http-proxy with `rewrite: path => path.replace(/^\/ws/, '')`, `ws: true`).

import http from "node:http";
import net from "node:net";
import { uid } from "../lib.mjs";
import { trace } from "./broker.mjs";

/** A quota event as quota-service publishes it; `extra` members with value undefined are dropped. */
export function quotaEvent(userId, extra = {}) {
  const event = {
    userId,
    quotaId: uid("q"),
    limits: { maxDevices: 10, totalCpuCores: 20, totalMemoryGB: 64 },
    usage: { currentDevices: 5, usedCpuCores: 8, usedMemoryGB: 12.5 },
    timestamp: "2026-01-02T03:04:05.678Z",
    _trace: trace(),
    ...extra,
  };
  for (const k of Object.keys(event)) if (event[k] === undefined) delete event[k];
  return event;
}

/** The highest value of a `percentage` object (numbers or numeric strings), or undefined. */
function peakPercentage(percentage) {
  if (percentage === null || typeof percentage !== "object" || Array.isArray(percentage)) return undefined;
  let peak;
  for (const value of Object.values(percentage)) {
    if (typeof value !== "number" && typeof value !== "string") continue;
    if (typeof value === "string" && value.trim() === "") continue;
    const n = Number(value);
    if (Number.isFinite(n) && (peak === undefined || n > peak)) peak = n;
  }
  return peak;
}

/** The `data` pushgate pushes for the quota event `event`. */
export function quotaData(event) {
  const data = { ...event };
  if (!("alertLevel" in event) && "severity" in event) data.alertLevel = event.severity;
  const peak = peakPercentage(event.percentage);
  if (!("usagePercent" in event) && peak !== undefined) data.usagePercent = peak;
  return data;
}

/**
 * A proxy on 127.0.0.1:0 that forwards `/ws...` to `target` (http://host:port) with `/ws`
 * removed from the path, plain HTTP and WebSocket upgrades alike; anything else is 404.
 * Resolves {url, close()}; `url` is the proxy's http://127.0.0.1:<port>.
 */
export async function devProxy(target) {
  const { hostname, port } = new URL(target);
  const rewrite = (path) => path.replace(/^\/ws/, "");
  const server = http.createServer((req, res) => {
    if (!req.url.startsWith("/ws")) {
      res.writeHead(404).end();
      return;
    }
    const upstream = http.request(
      { host: hostname, port, method: req.method, path: rewrite(req.url), headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  const sockets = new Set();
  server.on("upgrade", (req, client, head) => {
    if (!req.url.startsWith("/ws")) {
      client.destroy();
      return;
    }
    const upstream = net.connect(port, hostname, () => {
      let request = `${req.method} ${rewrite(req.url)} HTTP/${req.httpVersion}\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        request += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      }
      upstream.write(request + "\r\n");
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

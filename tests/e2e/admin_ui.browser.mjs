// Contract §9 in a real browser: the official Socket.IO Admin UI (the built UI of
// @socket.io/admin-ui, unchanged, served from a local static server on 127.0.0.1) in headless
// Debian chromium driven by playwright-core, logged in to pushgate's /admin namespace; it must
// list the test's socket.io-client sockets and their rooms. A screenshot is kept at
// $PUSHGATE_ARTIFACTS/admin-ui.png. Run by tests/admin_ui_browser.rs (which starts the server
// with the admin UI on and passes PUSHGATE_ADMIN_USERNAME / PUSHGATE_ADMIN_PASSWORD).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import { URL as SERVER, connectUser, closeAll, uid } from "./lib.mjs";

const require = createRequire(import.meta.url);
const UI_DIR = path.join(path.dirname(require.resolve("@socket.io/admin-ui/package.json")), "ui", "dist");
const USERNAME = process.env.PUSHGATE_ADMIN_USERNAME;
const PASSWORD = process.env.PUSHGATE_ADMIN_PASSWORD;
const ARTIFACTS = process.env.PUSHGATE_ARTIFACTS;
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml" };

/** A static server for the UI's files on 127.0.0.1:0. */
function serveUi() {
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new globalThis.URL(req.url, "http://x").pathname).replace(/^\/+/, "") || "index.html";
    const file = path.join(UI_DIR, path.normalize(rel));
    if (!file.startsWith(UI_DIR) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

after(() => closeAll());

test("the official admin UI logs in and shows the sockets and their rooms", { timeout: 90_000 }, async () => {
  assert.ok(USERNAME && PASSWORD && ARTIFACTS, "run by tests/admin_ui_browser.rs");
  const a = await connectUser(uid("ui"));
  const b = await connectUser(uid("ui"));
  const ui = await serveUi();
  const uiUrl = `http://127.0.0.1:${ui.address().port}/`;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "pushgate-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: 1400, height: 900 },
  });
  try {
    // Everything stays on loopback: the UI's web fonts and icon CDN are not fetched.
    await context.route("**/*", (route) => {
      const host = new globalThis.URL(route.request().url()).hostname;
      return host === "127.0.0.1" ? route.continue() : route.abort();
    });
    const page = await context.newPage();
    await page.goto(uiUrl);
    await page.getByLabel(/server url/i).fill(SERVER);
    await page.getByLabel(/username/i).fill(USERNAME);
    await page.getByLabel(/password/i).fill(PASSWORD);
    await page.getByRole("button", { name: /connect/i }).click();
    // Logged in: the modal closes. Then the sockets page lists both sockets.
    await page.getByLabel(/password/i).waitFor({ state: "hidden", timeout: 15_000 });
    await page.goto(`${uiUrl}#/sockets/`);
    for (const s of [a, b]) {
      await page.getByText(s.id, { exact: true }).first().waitFor({ timeout: 15_000 });
    }
    // Each socket's page shows its own user room.
    await page.goto(`${uiUrl}#/rooms/`);
    for (const s of [a, b]) {
      await page.getByText(`user:${s.sub}`, { exact: true }).first().waitFor({ timeout: 15_000 });
    }
    await page.goto(`${uiUrl}#/sockets/`);
    await page.getByText(a.id, { exact: true }).first().waitFor({ timeout: 15_000 });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, "admin-ui.png"), fullPage: true });
    const text = await page.textContent("body");
    assert.ok(text.includes(a.id) && text.includes(b.id), "both sockets listed");
  } finally {
    await context.close();
    ui.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
});

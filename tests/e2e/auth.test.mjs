// Contract §2 authentication with the real socket.io-client: every refused token gets
// `connect_error` "unauthorized" and nothing else; the three token sources and their
// precedence; the admin rule; and the refusals counted in /metrics.

import { afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  AUDIENCE,
  ISSUER,
  b64url,
  claims,
  closeAll,
  connect,
  expectUnauthorized,
  metric,
  request,
  signJwt,
  token,
  uid,
} from "./lib.mjs";

afterEach(closeAll);

let refusals = 0;
let rejectedBefore;

before(async () => {
  rejectedBefore = await metric("pushgate_auth_rejected_total");
});

async function refused(opts) {
  await expectUnauthorized(opts);
  refusals += 1;
}

const now = () => Math.floor(Date.now() / 1000);

describe("refused: connect_error unauthorized, no welcome", () => {
  const cases = [
    ["missing token", () => ({})],
    ["auth object without token", () => ({ auth: {} })],
    ["garbage token", () => ({ token: "garbage" })],
    ["three garbage segments", () => ({ token: "abc.def.ghi" })],
    ["expired token", () => ({ token: token(uid(), { exp: now() - 60 }) })],
    ["token without exp", () => ({ token: token(uid(), { exp: undefined }) })],
    ["wrong secret", () => ({ token: token(uid(), {}, { secret: "not-the-server-secret-0123456789abcdef" }) })],
    ["alg none", () => ({ token: `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims(uid()))}.` })],
    [
      "alg none with an HS256 signature",
      () => {
        const good = token(uid()).split(".");
        return { token: `${b64url({ alg: "none", typ: "JWT" })}.${good[1]}.${good[2]}` };
      },
    ],
    ["HS512-signed", () => ({ token: signJwt({ alg: "HS512", typ: "JWT" }, claims(uid()), { hash: "sha512" }) })],
    ["HS384-signed", () => ({ token: signJwt({ alg: "HS384", typ: "JWT" }, claims(uid()), { hash: "sha384" }) })],
    ["empty sub", () => ({ token: token("") })],
    ["missing sub", () => ({ token: token(undefined) })],
    ["129-char sub", () => ({ token: token("x".repeat(129)) })],
    ["auth.token a number", () => ({ auth: { token: 42 } })],
    ["auth.token an object", () => ({ auth: { token: { jwt: token(uid()) } } })],
  ];
  if (ISSUER) {
    cases.push(["wrong issuer", () => ({ token: token(uid(), { iss: "someone-else" }) })]);
    // §1: "when non-empty, a token must carry this iss".
    cases.push(["no issuer", () => ({ token: token(uid(), { iss: undefined }) })]);
  }
  if (AUDIENCE) {
    cases.push(["wrong audience", () => ({ token: token(uid(), { aud: "someone-else" }) })]);
    // §1: "when non-empty, a token must carry this aud".
    cases.push(["no audience", () => ({ token: token(uid(), { aud: undefined }) })]);
  }
  for (const [name, opts] of cases) {
    test(name, () => refused(opts()));
  }
  if (!ISSUER) test("wrong issuer", { skip: "PUSHGATE_JWT_ISSUER is empty" }, () => {});
  if (!AUDIENCE) test("wrong audience", { skip: "PUSHGATE_JWT_AUDIENCE is empty" }, () => {});

  test("a refused client can connect afterwards with a good token", async () => {
    await refused({ token: "garbage" });
    const s = await connect({ token: token(uid()) });
    assert.ok(s.connected);
  });
});

describe("token sources", () => {
  test("auth: {token}", async () => {
    const sub = uid();
    const s = await connect({ auth: { token: token(sub) } });
    assert.equal(s.welcome.userId, sub);
  });

  test("query token", async () => {
    const sub = uid();
    const s = await connect({ query: { token: token(sub) } });
    assert.equal(s.welcome.userId, sub);
  });

  test("Authorization: Bearer header", async () => {
    const sub = uid();
    const s = await connect({ extraHeaders: { Authorization: `Bearer ${token(sub)}` } });
    assert.equal(s.welcome.userId, sub);
  });

  test("a valid auth token wins over a garbage query token", async () => {
    const sub = uid();
    const s = await connect({ auth: { token: token(sub) }, query: { token: "garbage" } });
    assert.equal(s.welcome.userId, sub);
  });

  test("the auth token wins over a valid query token and header", async () => {
    const [a, q, h] = [uid(), uid(), uid()];
    const s = await connect({
      auth: { token: token(a) },
      query: { token: token(q) },
      extraHeaders: { Authorization: `Bearer ${token(h)}` },
    });
    assert.equal(s.welcome.userId, a);
  });

  test("an invalid auth token is refused even when the query token is valid", () =>
    refused({ auth: { token: "garbage" }, query: { token: token(uid()) } }));

  test("an expired auth token is refused even when the header token is valid", () =>
    refused({
      auth: { token: token(uid(), { exp: now() - 60 }) },
      extraHeaders: { Authorization: `Bearer ${token(uid())}` },
    }));

  test("a non-string auth.token is refused even when the query token is valid", () =>
    refused({ auth: { token: 42 }, query: { token: token(uid()) } }));

  test("an empty auth.token is absent: the query token is used", async () => {
    const sub = uid();
    const s = await connect({ auth: { token: "" }, query: { token: token(sub) } });
    assert.equal(s.welcome.userId, sub);
  });

  test("the query token wins over the header", async () => {
    const [q, h] = [uid(), uid()];
    const s = await connect({
      query: { token: token(q) },
      extraHeaders: { Authorization: `Bearer ${token(h)}` },
    });
    assert.equal(s.welcome.userId, q);
  });

  test("an invalid query token is refused even when the header is valid", () =>
    refused({ query: { token: "garbage" }, extraHeaders: { Authorization: `Bearer ${token(uid())}` } }));

  test("an empty query token is absent: the header is used", async () => {
    const sub = uid();
    const s = await connect({ query: { token: "" }, extraHeaders: { Authorization: `Bearer ${token(sub)}` } });
    assert.equal(s.welcome.userId, sub);
  });

  test("a header that is not Bearer is no token", () =>
    refused({ extraHeaders: { Authorization: `Basic ${Buffer.from("a:b").toString("base64")}` } }));

  test("both paths take the query token", async () => {
    const sub = uid();
    const s = await connect({ path: "/ws", query: { token: token(sub) } });
    assert.equal(s.welcome.userId, sub);
  });
});

describe("admin rule", () => {
  const cases = [
    ["isSuperAdmin: true", { isSuperAdmin: true, roles: ["user"] }, true],
    ['roles ["admin"]', { roles: ["admin"] }, true],
    ['roles ["super_admin"]', { roles: ["super_admin"] }, true],
    ['roles ["superadmin"]', { roles: ["superadmin"] }, true],
    ['roles ["user", "superadmin"]', { roles: ["user", "superadmin"] }, true],
    ['roles ["Admin"]', { roles: ["Admin"] }, false],
    ['roles ["user"]', { roles: ["user"] }, false],
    ["no roles, isSuperAdmin false", { roles: undefined, isSuperAdmin: false }, false],
    ["no roles, no isSuperAdmin", { roles: undefined, isSuperAdmin: undefined }, false],
  ];
  for (const [name, extra, admin] of cases) {
    test(`${name}: ${admin ? "admin" : "not admin"}`, async () => {
      const s = await connect({ token: token(uid(), extra) });
      if (admin) {
        const [reply] = await request(s, "join_room", "room_joined", { room: "admin" });
        assert.equal(reply.room, "admin");
        const other = uid();
        const [sub] = await request(s, "subscribe", "subscribed", { userId: other });
        assert.equal(sub.userId, other);
      } else {
        const [reply] = await request(s, "join_room", "error", { room: "admin" });
        assert.equal(reply.code, "forbidden");
        const [sub] = await request(s, "subscribe", "error", { userId: uid() });
        assert.equal(sub.code, "forbidden");
      }
    });
  }
});

// Last in this file (tests run in order): every refusal above is counted.
test("/metrics: pushgate_auth_rejected_total counts the refusals", async () => {
  const now = await metric("pushgate_auth_rejected_total");
  assert.ok(now > 0, `pushgate_auth_rejected_total is ${now}`);
  assert.ok(
    now - rejectedBefore >= refusals,
    `pushgate_auth_rejected_total grew by ${now - rejectedBefore}, ${refusals} connections were refused`,
  );
});

// Verify JWTs with `jose` (remote JWKS) and `jsonwebtoken` (key picked from the JWKS).
// stdin:  {"jwks_url": str, "tokens": [str], "issuer": str, "audience": str,
//          "algorithms": [str], "typ": str|null}
// stdout: {"results": [{"jose": {"ok", "payload"|"error"}, "jsonwebtoken": {...}}]}
import { createRequire } from "node:module";
import { createPublicKey } from "node:crypto";
import * as jose from "jose";

const require = createRequire(import.meta.url);
const jsonwebtoken = require("jsonwebtoken");

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function failure(err) {
  return { ok: false, error: String((err && (err.code || err.name)) || err), message: String(err && err.message) };
}

const input = await readStdin();
const remote = jose.createRemoteJWKSet(new URL(input.jwks_url), { cooldownDuration: 0 });
const response = await fetch(input.jwks_url);
const jwks = await response.json();
const results = [];
for (const token of input.tokens) {
  const out = {};
  try {
    const { payload, protectedHeader } = await jose.jwtVerify(token, remote, {
      issuer: input.issuer, audience: input.audience, algorithms: input.algorithms,
      ...(input.typ ? { typ: input.typ } : {}),
    });
    out.jose = { ok: true, payload, header: protectedHeader };
  } catch (err) {
    out.jose = failure(err);
  }
  try {
    const decoded = jsonwebtoken.decode(token, { complete: true });
    if (!decoded) throw new Error("undecodable token");
    const jwk = jwks.keys.find((k) => k.kid === decoded.header.kid);
    if (!jwk) throw new Error(`no key ${decoded.header.kid} in the JWKS`);
    if (jwk.alg === "EdDSA") throw new Error("jsonwebtoken does not support EdDSA");
    if (input.typ && decoded.header.typ !== input.typ) throw new Error("unexpected typ");
    const payload = jsonwebtoken.verify(token, createPublicKey({ key: jwk, format: "jwk" }), {
      algorithms: input.algorithms, issuer: input.issuer, audience: input.audience,
    });
    out.jsonwebtoken = { ok: true, payload };
  } catch (err) {
    out.jsonwebtoken = failure(err);
  }
  results.push(out);
}
process.stdout.write(JSON.stringify({ results }));

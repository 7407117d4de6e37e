// JWE interop with the npm package `jose`, both directions.
// stdin:  {"plaintext": str, "cases": [{"id", "alg", "enc", "private_jwk", "public_jwk", "token", "p2c"}]}
//         (`token` is jotkit's, for jose to decrypt; the JWKs come from jotkit)
// stdout: {"results": [{"id", "decrypted": str|null, "token": str|null, "errors": {...}}],
//          "versions": {...}}
import { createRequire } from "node:module";
import * as jose from "jose";

const require = createRequire(import.meta.url);

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function message(err) {
  return String(err && err.message ? err.message : err);
}

async function importKey(jwk, alg) {
  const clean = { ...jwk };
  delete clean.use;
  delete clean.alg;
  delete clean.key_ops;
  if (clean.kty === "oct") return jose.base64url.decode(clean.k);
  return jose.importJWK(clean, alg);
}

async function runCase(c, plaintext) {
  const out = { id: c.id, decrypted: null, token: null, errors: {} };
  try {
    const key = await importKey(c.private_jwk, c.alg);
    const { plaintext: pt } = await jose.compactDecrypt(c.token, key, {
      keyManagementAlgorithms: [c.alg],
      contentEncryptionAlgorithms: [c.enc],
    });
    out.decrypted = new TextDecoder().decode(pt);
  } catch (err) {
    out.errors.decrypt = message(err);
  }
  try {
    const key = await importKey(c.public_jwk, c.alg);
    const enc = new jose.CompactEncrypt(new TextEncoder().encode(plaintext)).setProtectedHeader({
      alg: c.alg,
      enc: c.enc,
    });
    if (c.p2c) enc.setKeyManagementParameters({ p2c: c.p2c });
    out.token = await enc.encrypt(key);
  } catch (err) {
    out.errors.encrypt = message(err);
  }
  return out;
}

const input = await readStdin();
const results = [];
for (const c of input.cases) results.push(await runCase(c, input.plaintext));
const versions = { node: process.version, jose: require("jose/package.json").version };
process.stdout.write(JSON.stringify({ results, versions }));

// Sign JWTs with the npm packages `jose` and `jsonwebtoken` for jotkit to verify.
// stdin:  {"algs": ["HS256", ...], "claims": {...}, "typ": "at+jwt"}
// stdout: {"results": [{"alg", "jwk", "tokens": {"jose": str, "jsonwebtoken": str|null},
//                       "errors": {...}}], "versions": {...}}
import { createRequire } from "node:module";
import { createPrivateKey, createSecretKey } from "node:crypto";
import * as jose from "jose";

const require = createRequire(import.meta.url);
const jsonwebtoken = require("jsonwebtoken");

// What jsonwebtoken 9 can sign (no EdDSA, no ES256K).
const JSONWEBTOKEN_ALGS = new Set([
  "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
  "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
]);

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

async function makeKey(alg) {
  // alg names as jotkit knows them; "Ed25519"/"Ed448" are EdDSA with that curve.
  if (alg.startsWith("HS")) {
    const secret = await jose.generateSecret(alg, { extractable: true });
    return { joseAlg: alg, privateKey: secret, publicJwk: await jose.exportJWK(secret), symmetric: true };
  }
  let joseAlg = alg;
  const options = { extractable: true };
  if (alg === "EdDSA" || alg === "Ed25519") { joseAlg = "EdDSA"; options.crv = "Ed25519"; }
  if (alg === "Ed448") { joseAlg = "EdDSA"; options.crv = "Ed448"; }
  const { privateKey, publicKey } = await jose.generateKeyPair(joseAlg, options);
  return { joseAlg, privateKey, publicJwk: await jose.exportJWK(publicKey), symmetric: false };
}

async function signCase(alg, claims, typ, index) {
  const kid = `node-${alg}-${index}`;
  const key = await makeKey(alg);
  const jwk = { ...key.publicJwk, kid, alg: key.joseAlg };
  const tokens = { jose: null, jsonwebtoken: null };
  const errors = {};
  try {
    tokens.jose = await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: key.joseAlg, kid, typ })
      .sign(key.privateKey);
  } catch (err) {
    errors.jose = String(err && err.message ? err.message : err);
  }
  if (JSONWEBTOKEN_ALGS.has(alg)) {
    try {
      let signingKey;
      if (key.symmetric) {
        const privJwk = await jose.exportJWK(key.privateKey);
        signingKey = createSecretKey(Buffer.from(privJwk.k, "base64url"));
      } else {
        signingKey = createPrivateKey({ key: await jose.exportJWK(key.privateKey), format: "jwk" });
      }
      tokens.jsonwebtoken = jsonwebtoken.sign(claims, signingKey, {
        algorithm: alg, keyid: kid, header: { typ },
      });
    } catch (err) {
      errors.jsonwebtoken = String(err && err.message ? err.message : err);
    }
  }
  return { alg, jwk, tokens, errors };
}

const input = await readStdin();
const results = [];
let i = 0;
for (const alg of input.algs) {
  results.push(await signCase(alg, input.claims, input.typ || "JWT", i++));
}
process.stdout.write(JSON.stringify({
  results,
  versions: {
    node: process.versions.node,
    jose: require("jose/package.json").version,
    jsonwebtoken: require("jsonwebtoken/package.json").version,
  },
}));

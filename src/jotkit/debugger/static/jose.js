// jotkit debugger: strict JWS parsing, verification and signing with WebCrypto.
// Runs entirely in the page; nothing here touches the network.
// Parsing mirrors jotkit.decode_unverified: canonical base64url (RFC 7515 §2),
// strict UTF-8 JSON objects with no duplicate member names (RFC 7515 §5.2).

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64_RE = /^[A-Za-z0-9_-]*$/;

export class TokenError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export function isCanonicalB64(seg) {
  if (!B64_RE.test(seg)) return false;
  const rem = seg.length % 4;
  if (rem === 1) return false;
  if (rem === 0) return true;
  const last = ALPHABET.indexOf(seg[seg.length - 1]);
  return rem === 2 ? last % 16 === 0 : last % 4 === 0;
}

export function b64urlDecode(seg) {
  if (!isCanonicalB64(seg)) throw new TokenError("malformed", "not canonical base64url");
  const std = seg.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((seg.length + 3) % 4);
  const bin = atob(std);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64urlEncode(bytes) {
  if (typeof bytes === "string") bytes = new TextEncoder().encode(bytes);
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// ---- strict JSON (RFC 8259) with duplicate-name detection ----
function parseJSONStrict(text) {
  let i = 0;
  const ws = () => {
    while (i < text.length) {
      const c = text[i];
      if (c === " " || c === "\t" || c === "\n" || c === "\r") i++;
      else break;
    }
  };
  const fail = (why) => {
    throw new TokenError("malformed", `invalid JSON: ${why} at char ${i}`);
  };
  const value = (depth) => {
    if (depth > 200) fail("nested too deeply");
    ws();
    const c = text[i];
    if (c === "{") return object(depth);
    if (c === "[") return array(depth);
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    for (const [lit, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return v;
      }
    }
    return fail("unexpected value");
  };
  const object = (depth) => {
    i++;
    const obj = Object.create(null);
    const seen = new Set();
    ws();
    if (text[i] === "}") {
      i++;
      return Object.assign({}, obj);
    }
    for (;;) {
      ws();
      if (text[i] !== '"') fail("expected member name");
      const k = string();
      if (seen.has(k)) fail(`duplicate member name "${k}"`);
      seen.add(k);
      ws();
      if (text[i] !== ":") fail("expected ':'");
      i++;
      const v = value(depth + 1);
      Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
      ws();
      if (text[i] === ",") { i++; continue; }
      if (text[i] === "}") { i++; break; }
      fail("expected ',' or '}'");
    }
    const out = {};
    for (const k of Object.keys(obj)) {
      Object.defineProperty(out, k, { value: obj[k], enumerable: true, writable: true, configurable: true });
    }
    return out;
  };
  const array = (depth) => {
    i++;
    const arr = [];
    ws();
    if (text[i] === "]") { i++; return arr; }
    for (;;) {
      arr.push(value(depth + 1));
      ws();
      if (text[i] === ",") { i++; continue; }
      if (text[i] === "]") { i++; break; }
      fail("expected ',' or ']'");
    }
    return arr;
  };
  const string = () => {
    const start = i;
    i++;
    for (;;) {
      if (i >= text.length) fail("unterminated string");
      const ch = text.charCodeAt(i);
      if (ch === 0x22) break;
      if (ch < 0x20) fail("control character in string");
      if (ch === 0x5c) {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail("bad \\u escape");
          i += 6;
          continue;
        }
        if (!'"\\/bfnrt'.includes(e) || e === undefined) fail("bad escape");
        i += 2;
        continue;
      }
      i++;
    }
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const number = () => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(text.slice(i, i + 5000));
    if (!m) fail("bad number");
    // Python's int() refuses more than 4300 digits, so jotkit rejects such tokens too.
    if (m[2] === undefined && m[3] === undefined && m[1].length > 4300) fail("integer too long");
    i += m[0].length;
    return Number(m[0]);
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail("extra data");
  return v;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function parseJSONObject(bytes) {
  let text;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new TokenError("malformed", "not UTF-8");
  }
  const obj = parseJSONStrict(text);
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw new TokenError("malformed", "JSON value is not an object");
  }
  return obj;
}

export const MAX_TOKEN_BYTES = 16384;

/** Parse a compact JWS without verifying it (mirrors jotkit.decode_unverified). */
export function decodeUnverified(token) {
  if (typeof token !== "string") throw new TokenError("malformed", "token must be text");
  if (token.length > MAX_TOKEN_BYTES) {
    throw new TokenError("token_too_large", `token larger than ${MAX_TOKEN_BYTES} bytes`);
  }
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[0] || !parts[1]) {
    throw new TokenError("malformed", `a JWS compact token has 3 dot-separated non-empty segments, got ${parts.length}`);
  }
  for (const p of parts) {
    if (!isCanonicalB64(p)) throw new TokenError("malformed", "segment is not canonical base64url");
  }
  const header = parseJSONObject(b64urlDecode(parts[0]));
  const payload = parseJSONObject(b64urlDecode(parts[1]));
  const signature = b64urlDecode(parts[2]);
  return { header, payload, signature, parts };
}

// ---- algorithms ----
const HASH = { 256: "SHA-256", 384: "SHA-384", 512: "SHA-512" };
const CURVES = { ES256: "P-256", ES384: "P-384", ES512: "P-521" };

/** WebCrypto parameters for a JWS alg (RFC 7518 §3), or null if unsupported. */
export function webAlg(alg) {
  const bits = (alg || "").slice(2);
  if (/^HS(256|384|512)$/.test(alg)) return { kind: "oct", import: { name: "HMAC", hash: HASH[bits] }, sign: { name: "HMAC" } };
  if (/^RS(256|384|512)$/.test(alg)) return { kind: "RSA", import: { name: "RSASSA-PKCS1-v1_5", hash: HASH[bits] }, sign: { name: "RSASSA-PKCS1-v1_5" } };
  if (/^PS(256|384|512)$/.test(alg)) return { kind: "RSA", import: { name: "RSA-PSS", hash: HASH[bits] }, sign: { name: "RSA-PSS", saltLength: Number(bits) / 8 } };
  if (CURVES[alg]) return { kind: "EC", crv: CURVES[alg], import: { name: "ECDSA", namedCurve: CURVES[alg] }, sign: { name: "ECDSA", hash: HASH[bits] } };
  if (alg === "EdDSA" || alg === "Ed25519") return { kind: "OKP", crv: "Ed25519", import: { name: "Ed25519" }, sign: { name: "Ed25519" } };
  return null;
}

// ---- minimal DER helpers for PEM handling ----
function pemBody(pem) {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(pem);
  if (!m) return null;
  const b64 = m[2].replace(/[\r\n\t ]/g, "");
  const bin = atob(b64);
  const der = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) der[i] = bin.charCodeAt(i);
  return { label: m[1], der };
}

function derRead(der, pos) {
  const tag = der[pos];
  let len = der[pos + 1];
  let hdr = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let j = 0; j < n; j++) len = len * 256 + der[pos + 2 + j];
    hdr += n;
  }
  return { tag, start: pos, body: pos + hdr, end: pos + hdr + len };
}

function derLen(n) {
  if (n < 128) return [n];
  const out = [];
  while (n > 0) { out.unshift(n & 0xff); n >>= 8; }
  return [0x80 | out.length, ...out];
}

function derWrap(tag, bytes) {
  return new Uint8Array([tag, ...derLen(bytes.length), ...bytes]);
}

function spkiFromCertificate(der) {
  const cert = derRead(der, 0);
  const tbs = derRead(der, cert.body);
  let p = tbs.body;
  let el = derRead(der, p);
  if (el.tag === 0xa0) { p = el.end; } // explicit version
  for (let k = 0; k < 5; k++) { el = derRead(der, p); p = el.end; } // serial, sigAlg, issuer, validity, subject
  el = derRead(der, p);
  return der.slice(el.start, el.end);
}

function spkiFromPkcs1(pkcs1) {
  const algId = new Uint8Array([0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]);
  const bitString = derWrap(0x03, new Uint8Array([0, ...pkcs1]));
  return derWrap(0x30, new Uint8Array([...algId, ...bitString]));
}

function toPem(label, der) {
  const b64 = btoa(String.fromCharCode(...der));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g).join("\n")}\n-----END ${label}-----\n`;
}

/** The bytes of an HMAC secret given as text (UTF-8) or base64url. */
export function secretBytes(material) {
  return material.encoding === "base64url"
    ? b64urlDecode((material.text || "").trim())
    : new TextEncoder().encode(material.text || "");
}

/** Import key material for verifying (usage "verify") or signing ("sign").
 * material: {type: "secret", text, encoding} | {type: "pem", text} | {type: "jwk", text} | {type: "jwks", text}
 */
export async function importKey(material, alg, header, usage) {
  const wa = webAlg(alg);
  if (!wa) throw new TokenError("alg_not_allowed", `the page cannot ${usage} ${alg || "this alg"}`);
  const text = (material.text || "").trim();
  if (material.type === "secret") {
    if (wa.kind !== "oct") throw new TokenError("key_mismatch", `a secret cannot ${usage} ${alg}`);
    let raw = secretBytes(material);
    // WebCrypto refuses empty HMAC keys; HMAC zero-pads keys (RFC 2104 §2), so one zero
    // byte gives the same MACs as the empty secret.
    if (raw.length === 0) raw = new Uint8Array(1);
    return crypto.subtle.importKey("raw", raw, wa.import, false, [usage]);
  }
  if (material.type === "pem") {
    const pb = pemBody(text);
    if (!pb) throw new TokenError("invalid_key", "no PEM block found");
    if (wa.kind === "oct") throw new TokenError("key_mismatch", `a PEM key cannot ${usage} ${alg}`);
    let format = "spki";
    let der = pb.der;
    if (pb.label === "CERTIFICATE") der = spkiFromCertificate(der);
    else if (pb.label === "RSA PUBLIC KEY") der = spkiFromPkcs1(der);
    else if (pb.label === "PRIVATE KEY") format = "pkcs8";
    else if (pb.label !== "PUBLIC KEY") throw new TokenError("invalid_key", `unsupported PEM type ${pb.label} (use PUBLIC KEY, CERTIFICATE or PKCS#8 PRIVATE KEY)`);
    if (format === "pkcs8" && usage === "verify") throw new TokenError("invalid_key", "paste the public key to verify");
    try {
      return await crypto.subtle.importKey(format, der, wa.import, false, [usage]);
    } catch (e) {
      throw new TokenError("key_mismatch", `the key does not fit ${alg}: ${e.message}`);
    }
  }
  let jwk;
  try {
    jwk = JSON.parse(text);
  } catch {
    throw new TokenError("invalid_key", "the key is not valid JSON");
  }
  if (material.type === "jwks" || Array.isArray(jwk.keys)) jwk = selectFromJwks(jwk, alg, header);
  return importJwk(jwk, alg, wa, usage);
}

function selectFromJwks(jwks, alg, header) {
  if (!jwks || !Array.isArray(jwks.keys)) throw new TokenError("invalid_key", 'a JWKS needs a "keys" array');
  const wa = webAlg(alg);
  const fits = (k) => k && typeof k === "object" && (k.alg === undefined || k.alg === alg) &&
    k.kty === wa.kind && (k.use === undefined || k.use === "sig") && (wa.crv === undefined || k.crv === wa.crv);
  const kid = header && typeof header.kid === "string" ? header.kid : undefined;
  if (kid !== undefined) {
    const found = jwks.keys.filter((k) => k && k.kid === kid);
    if (found.length === 0) throw new TokenError("key_not_found", `no key with kid "${kid}" in the JWKS`);
    const ok = found.filter(fits);
    if (ok.length === 0) throw new TokenError("key_mismatch", `key "${kid}" does not fit ${alg}`);
    return ok[0];
  }
  const ok = jwks.keys.filter(fits);
  if (ok.length === 1) return ok[0];
  if (ok.length === 0) throw new TokenError("key_not_found", `no key in the JWKS fits ${alg}`);
  throw new TokenError("kid_missing", "the token has no kid and several keys fit");
}

async function importJwk(jwk, alg, wa, usage) {
  if (!jwk || typeof jwk !== "object") throw new TokenError("invalid_key", "a JWK is a JSON object");
  if (jwk.alg !== undefined && jwk.alg !== alg) {
    throw new TokenError("key_mismatch", `the key is for ${jwk.alg}, the token says ${alg}`);
  }
  if (jwk.kty !== wa.kind || (wa.crv && jwk.crv !== wa.crv)) {
    throw new TokenError("key_mismatch", `a ${jwk.kty}${jwk.crv ? " " + jwk.crv : ""} key cannot ${usage} ${alg}`);
  }
  const clean = { ...jwk };
  delete clean.alg;
  delete clean.key_ops;
  delete clean.use;
  delete clean.ext;
  if (usage === "verify") {
    for (const p of ["d", "p", "q", "dp", "dq", "qi", "oth"]) delete clean[p];
  }
  try {
    return await crypto.subtle.importKey("jwk", clean, wa.import, false, [usage]);
  } catch (e) {
    throw new TokenError("invalid_key", `cannot import the JWK: ${e.message}`);
  }
}

/** Verify the signature of a token; resolves {valid, code, message}. */
export async function verifyToken(token, material) {
  let dec;
  try {
    dec = decodeUnverified(token);
  } catch (e) {
    return { valid: false, code: e.code || "malformed", message: e.message };
  }
  const alg = dec.header.alg;
  if (typeof alg === "string" && alg.toLowerCase() === "none") {
    return { valid: false, code: "alg_none", message: "unsigned tokens (alg none) are never valid" };
  }
  try {
    const key = await importKey(material, alg, dec.header, "verify");
    const wa = webAlg(alg);
    const data = new TextEncoder().encode(dec.parts[0] + "." + dec.parts[1]);
    const ok = await crypto.subtle.verify(wa.sign, key, dec.signature, data);
    return ok
      ? { valid: true, code: "ok", message: `signature verified (${alg})` }
      : { valid: false, code: "bad_signature", message: "invalid signature" };
  } catch (e) {
    return { valid: false, code: e.code || "invalid_key", message: e.message };
  }
}

/** Sign header+payload objects with key material; returns the compact JWS. */
export async function signToken(header, payload, material) {
  const alg = header.alg;
  const key = material.cryptoKey || (await importKey(material, alg, header, "sign"));
  const wa = webAlg(alg);
  const input = b64urlEncode(JSON.stringify(header)) + "." + b64urlEncode(JSON.stringify(payload));
  const sig = new Uint8Array(await crypto.subtle.sign(wa.sign, key, new TextEncoder().encode(input)));
  return input + "." + b64urlEncode(sig);
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of a public JWK. */
export async function jwkThumbprint(jwk) {
  const members = { RSA: ["e", "kty", "n"], EC: ["crv", "kty", "x", "y"], OKP: ["crv", "kty", "x"], oct: ["k", "kty"] }[jwk.kty];
  if (!members) throw new TokenError("invalid_key", `unsupported kty ${jwk.kty}`);
  const canon = "{" + members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(",") + "}";
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canon));
  return b64urlEncode(new Uint8Array(digest));
}

// ---- DPoP (RFC 9449) ----
const DPOP_ALGS = ["ES256", "ES384", "ES512", "EdDSA", "Ed25519", "PS256", "RS256"];
const PRIVATE_JWK_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/**
 * Check a DPoP proof against an access token as far as a page can (RFC 9449 §4.3): typ,
 * an asymmetric alg, a public jwk and the signature by it, jti/htm/htu/iat present, ath =
 * the token's SHA-256, and the proof key's thumbprint = the token's cnf.jkt. The request's
 * method, URL, time window and replay are the server's to check: htm, htu and iat are shown.
 * Resolves {valid, code, message, jkt, claims}; codes are those of jotkit.dpop.
 */
export async function checkDPoPProof(proof, token) {
  const fail = (code, message, extra = {}) => ({ valid: false, code, message, ...extra });
  let dec;
  try {
    dec = decodeUnverified(proof);
  } catch (e) {
    return fail("dpop_malformed", `the proof is not a JWS: ${e.message}`);
  }
  const { header, payload } = dec;
  if (header.typ !== "dpop+jwt") return fail("dpop_invalid_typ", 'typ must be "dpop+jwt"');
  if (!DPOP_ALGS.includes(header.alg)) return fail("dpop_alg_not_allowed", `alg ${header.alg} is not an asymmetric DPoP algorithm`);
  const jwk = header.jwk;
  if (!jwk || typeof jwk !== "object" || Array.isArray(jwk)) return fail("dpop_invalid_jwk", "the header has no jwk object");
  if (PRIVATE_JWK_MEMBERS.some((m) => m in jwk)) return fail("dpop_invalid_jwk", "the jwk holds a private key: never send one");
  let jkt;
  try {
    jkt = await jwkThumbprint(jwk);
  } catch (e) {
    return fail("dpop_invalid_jwk", e.message);
  }
  const sig = await verifyToken(proof, { type: "jwk", text: JSON.stringify(jwk) });
  if (!sig.valid) return fail(sig.code === "bad_signature" ? "dpop_bad_signature" : "dpop_invalid_jwk", `signature: ${sig.message}`, { jkt });
  for (const [name, type] of [["jti", "string"], ["htm", "string"], ["htu", "string"], ["iat", "number"]]) {
    if (typeof payload[name] !== type) return fail("dpop_invalid_claim", `the proof needs a ${type} ${name}`, { jkt });
  }
  if (token) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
    if (payload.ath !== b64urlEncode(new Uint8Array(digest))) return fail("dpop_ath_mismatch", "ath is not the SHA-256 of this token", { jkt });
    let claims = null;
    try {
      claims = decodeUnverified(token).payload;
    } catch {
      claims = null;
    }
    const bound = claims && claims.cnf && typeof claims.cnf === "object" ? claims.cnf.jkt : undefined;
    if (bound === undefined) return fail("dpop_unbound_token", "the token has no cnf.jkt: it is not bound to a key", { jkt });
    if (bound !== jkt) return fail("dpop_key_mismatch", "the proof's key is not the one the token is bound to (cnf.jkt)", { jkt });
  }
  return { valid: true, code: "ok", jkt, claims: payload,
    message: `proof of key ${jkt} for ${payload.htm} ${payload.htu} (iat ${payload.iat})` };
}

/** Generate a key pair (or secret) for alg; returns {privateKey, publicJwk, publicPem, secret?}. */
export async function generateKey(alg) {
  const wa = webAlg(alg);
  if (!wa) throw new TokenError("alg_not_allowed", `cannot generate a key for ${alg}`);
  if (wa.kind === "oct") {
    const raw = crypto.getRandomValues(new Uint8Array(Number(alg.slice(2)) / 8));
    const secret = b64urlEncode(raw);
    const key = await crypto.subtle.importKey("raw", raw, wa.import, false, ["sign"]);
    return { privateKey: key, secret, publicJwk: null, publicPem: null };
  }
  const params = { ...wa.import };
  if (wa.kind === "RSA") Object.assign(params, { modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) });
  const pair = await crypto.subtle.generateKey(params, true, ["sign", "verify"]);
  const publicJwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
  delete publicJwk.key_ops;
  delete publicJwk.ext;
  publicJwk.alg = alg;
  publicJwk.kid = await jwkThumbprint(publicJwk);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  return { privateKey: pair.privateKey, publicJwk, publicPem: toPem("PUBLIC KEY", spki) };
}

// ---- JWE decryption (RFC 7516) through WebCrypto ----
// What WebCrypto can do here: RSA-OAEP (SHA-1, SHA-256), AES-KW, AES-GCM, AES-CBC + HMAC,
// ECDH on P-256/384/521. What it cannot: RSA1_5 (no RSAES-PKCS1-v1_5 encryption in
// WebCrypto), 192-bit AES (Chromium refuses 192-bit AES keys: A192KW, A192GCMKW, A192GCM,
// A192CBC-HS384), PBES2 (not offered by this page), X25519/X448 ECDH (not in every browser),
// and zip (not decompressed here). Use `jotkit decrypt` for those.
export const JWE_WEBCRYPTO_LIMITS =
  "WebCrypto in this page decrypts RSA-OAEP, RSA-OAEP-256, A128KW, A256KW, dir and ECDH-ES " +
  "(+A128KW/+A256KW) on P-256/P-384/P-521, with A128GCM, A256GCM, A128CBC-HS256 or " +
  "A256CBC-HS512. It cannot do RSA1_5 (WebCrypto has no PKCS #1 v1.5 encryption), 192-bit AES " +
  "(A192KW, A192GCMKW, A192GCM, A192CBC-HS384: Chromium refuses 192-bit AES keys), the GCM key " +
  "wrap and PBES2 algorithms, X25519/X448, or zip; use `jotkit decrypt` for those.";

const JWE_ALGS = {
  "RSA-OAEP": { kind: "rsa", hash: "SHA-1" },
  "RSA-OAEP-256": { kind: "rsa", hash: "SHA-256" },
  A128KW: { kind: "kw", bits: 128 },
  A256KW: { kind: "kw", bits: 256 },
  dir: { kind: "dir" },
  "ECDH-ES": { kind: "ecdh", bits: 0 },
  "ECDH-ES+A128KW": { kind: "ecdh", bits: 128 },
  "ECDH-ES+A256KW": { kind: "ecdh", bits: 256 },
};
const JWE_ENCS = {
  A128GCM: { kind: "gcm", bytes: 16 },
  A256GCM: { kind: "gcm", bytes: 32 },
  "A128CBC-HS256": { kind: "cbc", bytes: 32, hash: "SHA-256", tag: 16 },
  "A256CBC-HS512": { kind: "cbc", bytes: 64, hash: "SHA-512", tag: 32 },
};
const WHY_NOT = {
  RSA1_5: "WebCrypto has no RSAES-PKCS1-v1_5 encryption",
  A192KW: "Chromium refuses 192-bit AES keys",
  A192GCMKW: "Chromium refuses 192-bit AES keys",
  A192GCM: "Chromium refuses 192-bit AES keys",
  "A192CBC-HS384": "Chromium refuses 192-bit AES keys",
  "ECDH-ES+A192KW": "Chromium refuses 192-bit AES keys",
};

function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}

function u32(n) {
  return new Uint8Array([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

// Concat KDF, SHA-256 (RFC 7518 §4.6.2): WebCrypto has no such KDF, so it is framed here
// over crypto.subtle.digest.
async function concatKdf(z, algId, bytes, apu, apv) {
  const name = new TextEncoder().encode(algId);
  const other = concatBytes(u32(name.length), name, u32(apu.length), apu, u32(apv.length), apv, u32(bytes * 8));
  const out = [];
  for (let round = 1; out.length * 32 < bytes; round++) {
    out.push(new Uint8Array(await crypto.subtle.digest("SHA-256", concatBytes(u32(round), z, other))));
  }
  return concatBytes(...out).slice(0, bytes);
}

async function unwrapAesKw(kekBytes, ek) {
  const kek = await crypto.subtle.importKey("raw", kekBytes, "AES-KW", false, ["unwrapKey"]);
  // Unwrap as an extractable HMAC key: any length fits, then export the raw CEK.
  const cek = await crypto.subtle.unwrapKey("raw", ek, kek, "AES-KW", { name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
  return new Uint8Array(await crypto.subtle.exportKey("raw", cek));
}

function jweFail(code, message) {
  return { ok: false, code, message };
}

function cleanJwk(jwk) {
  const out = { ...jwk };
  for (const name of ["alg", "use", "key_ops", "kid"]) delete out[name];
  return out;
}

/** Decrypt a compact JWE with a private JWK, an oct JWK or a secret (RFC 7516 §5.2).
 * Returns {ok: true, plaintext (Uint8Array), text, header} or {ok: false, code, message}. */
export async function decryptJWE(token, material) {
  const parts = (token || "").trim().split(".");
  if (parts.length !== 5) return jweFail("malformed", "a compact JWE has five segments");
  let header;
  let ek;
  let iv;
  let ct;
  let tag;
  try {
    header = parseJSONObject(b64urlDecode(parts[0]));
    [ek, iv, ct, tag] = parts.slice(1).map((p) => b64urlDecode(p));
  } catch (e) {
    return jweFail("malformed", e.message);
  }
  const alg = header.alg;
  const enc = header.enc;
  if (WHY_NOT[alg] || WHY_NOT[enc] || (typeof alg === "string" && alg.startsWith("PBES2")) || header.zip !== undefined) {
    const what = WHY_NOT[alg] ? `${alg}: ${WHY_NOT[alg]}` : WHY_NOT[enc] ? `${enc}: ${WHY_NOT[enc]}` : header.zip !== undefined ? "zip: not decompressed in this page" : `${alg}: not offered by this page`;
    return jweFail("webcrypto_unsupported", `cannot decrypt here (${what}); use jotkit decrypt`);
  }
  const km = JWE_ALGS[alg];
  const ce = JWE_ENCS[enc];
  if (!km || !ce) return jweFail("webcrypto_unsupported", `cannot decrypt alg ${alg} / enc ${enc} here; use jotkit decrypt`);
  let jwk = null;
  let secret = null;
  try {
    if (material.type === "secret") secret = secretBytes(material);
    else if (material.type === "jwk") jwk = JSON.parse(material.text);
    else return jweFail("invalid_key", "paste the recipient's private JWK (or the secret) to decrypt");
  } catch (e) {
    return jweFail("invalid_key", `the key is not JSON: ${e.message}`);
  }
  if (jwk && jwk.kty === "oct") secret = b64urlDecode(jwk.k || "");
  try {
    let cek;
    if (km.kind === "dir") {
      if (!secret) return jweFail("key_mismatch", "dir needs the shared secret (an oct JWK)");
      cek = secret;
    } else if (km.kind === "kw") {
      if (!secret || secret.length * 8 !== km.bits) return jweFail("key_mismatch", `${alg} needs a ${km.bits}-bit key`);
      cek = await unwrapAesKw(secret, ek);
    } else if (km.kind === "rsa") {
      if (!jwk || jwk.kty !== "RSA" || !jwk.d) return jweFail("key_mismatch", `${alg} needs the recipient's private RSA JWK`);
      const key = await crypto.subtle.importKey("jwk", cleanJwk(jwk), { name: "RSA-OAEP", hash: km.hash }, false, ["decrypt"]);
      cek = new Uint8Array(await crypto.subtle.decrypt({ name: "RSA-OAEP" }, key, ek));
    } else {
      const epk = header.epk;
      if (!jwk || jwk.kty !== "EC" || !jwk.d) return jweFail("key_mismatch", `${alg} needs the recipient's private EC JWK (P-256/384/521)`);
      if (!epk || epk.kty !== "EC" || epk.crv !== jwk.crv) return jweFail("invalid_epk", "the epk is not on the key's curve");
      const params = { name: "ECDH", namedCurve: jwk.crv };
      const priv = await crypto.subtle.importKey("jwk", cleanJwk(jwk), params, false, ["deriveBits"]);
      let pub;
      try {
        pub = await crypto.subtle.importKey("jwk", { kty: "EC", crv: epk.crv, x: epk.x, y: epk.y }, params, false, []);
      } catch (e) {
        return jweFail("invalid_epk", `the epk is not a valid ${jwk.crv} point`);
      }
      const bits = { "P-256": 256, "P-384": 384, "P-521": 528 }[jwk.crv];
      const z = new Uint8Array(await crypto.subtle.deriveBits({ name: "ECDH", public: pub }, priv, bits));
      const apu = header.apu ? b64urlDecode(header.apu) : new Uint8Array(0);
      const apv = header.apv ? b64urlDecode(header.apv) : new Uint8Array(0);
      if (km.bits === 0) cek = await concatKdf(z, enc, ce.bytes, apu, apv);
      else cek = await unwrapAesKw(await concatKdf(z, alg, km.bits / 8, apu, apv), ek);
    }
    if (cek.length !== ce.bytes) return jweFail("decryption_failed", "the token does not decrypt with this key");
    const aad = new TextEncoder().encode(parts[0]);
    let plain;
    if (ce.kind === "gcm") {
      const key = await crypto.subtle.importKey("raw", cek, "AES-GCM", false, ["decrypt"]);
      plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad, tagLength: 128 }, key, concatBytes(ct, tag));
    } else {
      const half = ce.bytes / 2;
      const mac = await crypto.subtle.importKey("raw", cek.slice(0, half), { name: "HMAC", hash: ce.hash }, false, ["sign"]);
      const al = new Uint8Array(8);
      new DataView(al.buffer).setUint32(4, aad.length * 8);
      const full = new Uint8Array(await crypto.subtle.sign("HMAC", mac, concatBytes(aad, iv, ct, al)));
      let diff = tag.length === ce.tag ? 0 : 1;
      for (let i = 0; i < ce.tag; i++) diff |= full[i] ^ (tag[i] || 0);
      if (diff) return jweFail("decryption_failed", "the token does not decrypt with this key");
      const key = await crypto.subtle.importKey("raw", cek.slice(half), "AES-CBC", false, ["decrypt"]);
      plain = await crypto.subtle.decrypt({ name: "AES-CBC", iv }, key, ct);
    }
    const bytes = new Uint8Array(plain);
    return { ok: true, plaintext: bytes, text: new TextDecoder().decode(bytes), header };
  } catch (e) {
    return jweFail("decryption_failed", "the token does not decrypt with this key");
  }
}

// jotkit debugger: the token security audit, in the page.
// Same rules file (audit_rules.json) and same logic as jotkit/audit.py, so the
// two give the same findings. Nothing here touches the network except loading
// the rules file from the page's own origin.
import { decodeUnverified, b64urlDecode, verifyToken, secretBytes, parseJSONObject } from "./jose.js";

const HMAC_HASH = { HS256: "SHA-256", HS384: "SHA-384", HS512: "SHA-512" };

export async function loadRules(url = "audit_rules.json") {
  const resp = await fetch(url, { credentials: "omit", cache: "no-cache" });
  if (!resp.ok) throw new Error(`cannot load audit rules: HTTP ${resp.status}`);
  return compileRules(await resp.json());
}

function rx(spec) {
  if (/[^i]/.test(spec.flags || "")) throw new Error(`unsupported regex flag in ${spec.pattern}`);
  return new RegExp(spec.pattern, spec.flags || "");
}

export function compileRules(raw) {
  const p = raw.patterns;
  return {
    raw,
    severityRank: Object.fromEntries(raw.severity_order.map((s, i) => [s, i])),
    texts: Object.fromEntries(raw.rules.map((r) => [r.code, r])),
    known: new Set(raw.expected_algorithms),
    minSecret: raw.hmac_min_secret_bytes,
    maxLifetime: raw.limits.max_access_lifetime_seconds,
    maxBytes: raw.limits.max_token_bytes,
    skew: raw.limits.clock_skew_seconds,
    kidPath: rx(p.kid_path),
    kidSql: rx(p.kid_sql),
    keyPatterns: p.sensitive_keys.map((s) => ({ code: s.code, name: s.name || s.code, re: rx(s) })),
    valuePatterns: p.sensitive_values.map((s) => ({ code: s.code, name: s.name || s.code, re: rx(s) })),
    card: rx(p.card_number),
    cardMin: p.card_number.min_digits,
    cardMax: p.card_number.max_digits,
    secrets: raw.common_secrets,
  };
}

function finding(rules, code, detail = "") {
  const t = rules.texts[code];
  return { code, severity: t.severity, title: t.title, why: t.why, fix: t.fix, detail };
}

function isNumber(v) {
  return typeof v === "number" && Number.isFinite(v);
}

export function fmtDuration(seconds) {
  const s = Math.trunc(Math.abs(seconds));
  if (s >= 86400) return `${Math.trunc(s / 86400)} d ${Math.trunc((s % 86400) / 3600)} h`;
  if (s >= 3600) return `${Math.trunc(s / 3600)} h ${Math.trunc((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.trunc(s / 60)} min`;
  return `${s} s`;
}

export function luhnOk(digits) {
  let total = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    total += d;
  }
  return total % 10 === 0;
}

function* walk(value, path) {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = `${path}/${i}`;
      yield [p, "", value[i]];
      yield* walk(value[i], p);
    }
  } else if (value !== null && typeof value === "object") {
    for (const k of Object.keys(value)) {
      const p = `${path}/${k}`;
      yield [p, k, value[k]];
      yield* walk(value[k], p);
    }
  }
}

function scalarText(v) {
  if (typeof v === "string") return v;
  if (Number.isSafeInteger(v)) return String(v);
  return null;
}

function isEmpty(v) {
  if (v === null || v === "" || typeof v === "boolean") return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object") return Object.keys(v).length === 0;
  return false;
}

function* sensitive(rules, payload) {
  // One finding per (code, claim path), in the same order as jotkit/audit.py.
  const seen = new Set();
  for (const [path, name, value] of walk(payload, "")) {
    const hits = [];
    const text = scalarText(value);
    if (name && !isEmpty(value)) {
      for (const p of rules.keyPatterns) if (p.re.test(name)) hits.push([p.code, `claim ${path}`]);
    }
    if (text !== null) {
      for (const p of rules.valuePatterns) if (p.re.test(text)) hits.push([p.code, `${p.name} in ${path}`]);
      if (rules.card.test(text)) {
        const digits = text.replace(/[^0-9]/g, "");
        if (digits.length >= rules.cardMin && digits.length <= rules.cardMax && luhnOk(digits)) {
          hits.push(["sensitive_card_number", `Luhn-valid number in ${path}`]);
        }
      }
    }
    for (const [code, detail] of hits) {
      const k = JSON.stringify([code, path]);
      if (!seen.has(k)) {
        seen.add(k);
        yield finding(rules, code, detail);
      }
    }
  }
}

async function weakSecret(rules, alg, dec) {
  const data = new TextEncoder().encode(dec.parts[0] + "." + dec.parts[1]);
  const enc = new TextEncoder();
  const params = { name: "HMAC", hash: HMAC_HASH[alg] };
  for (const s of rules.secrets) {
    const raw = enc.encode(s);
    let ok;
    if (raw.length === 0) {
      // WebCrypto refuses zero-length HMAC keys; HMAC with an empty key equals
      // HMAC with a key of one zero byte (RFC 2104 §2: keys are zero-padded).
      const key = await crypto.subtle.importKey("raw", new Uint8Array(1), params, false, ["verify"]);
      ok = await crypto.subtle.verify("HMAC", key, dec.signature, data);
    } else {
      const key = await crypto.subtle.importKey("raw", raw, params, false, ["verify"]);
      ok = await crypto.subtle.verify("HMAC", key, dec.signature, data);
    }
    if (ok) return finding(rules, "weak_secret", `signed with ${raw.length === 0 ? "the empty secret" : `"${s}"`}`);
  }
  return null;
}

function headerChecks(rules, header, expected) {
  const out = [];
  const alg = header.alg;
  const allowed = expected ? new Set(expected) : rules.known;
  if (typeof alg === "string" && alg.toLowerCase() === "none") out.push(finding(rules, "alg_none", algText(header)));
  else if (typeof alg !== "string" || !allowed.has(alg)) out.push(finding(rules, "alg_unexpected", algText(header)));
  for (const name of ["jku", "x5u", "jwk", "x5c"]) {
    if (Object.prototype.hasOwnProperty.call(header, name)) out.push(finding(rules, `header_${name}`, `${name} present`));
  }
  const kid = header.kid;
  if (typeof kid === "string") {
    if (rules.kidPath.test(kid)) out.push(finding(rules, "kid_path", `kid ${JSON.stringify(kid)}`));
    if (rules.kidSql.test(kid)) out.push(finding(rules, "kid_sql", `kid ${JSON.stringify(kid)}`));
  }
  if (!Object.prototype.hasOwnProperty.call(header, "typ")) out.push(finding(rules, "typ_missing"));
  return out;
}

// The JSON type of a value, named as jotkit/audit.py names it.
function kind(v) {
  if (v === null) return "null";
  if (typeof v === "boolean") return "a boolean";
  if (typeof v === "string") return "a string";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  return "a non-finite number";
}

function algText(header) {
  if (!Object.prototype.hasOwnProperty.call(header, "alg")) return "alg is missing";
  const alg = header.alg;
  return typeof alg === "string" ? `alg is ${JSON.stringify(alg)}` : `alg is ${kind(alg)}`;
}

function timeChecks(rules, payload, now) {
  const out = [];
  const times = {};
  for (const name of ["exp", "nbf", "iat"]) {
    if (Object.prototype.hasOwnProperty.call(payload, name)) {
      const v = payload[name];
      if (isNumber(v)) times[name] = v;
      else out.push(finding(rules, "claim_type", `${name} is ${kind(v)}`));
    }
  }
  const exp = times.exp;
  if (!Object.prototype.hasOwnProperty.call(payload, "exp")) out.push(finding(rules, "exp_missing"));
  if (exp !== undefined) {
    const start = times.iat !== undefined ? times.iat : times.nbf !== undefined ? times.nbf : now;
    if (exp - start > rules.maxLifetime) out.push(finding(rules, "lifetime_too_long", `lifetime ${fmtDuration(exp - start)}`));
    if (exp <= now) out.push(finding(rules, "expired", `expired ${fmtDuration(now - exp)} ago`));
    if (times.nbf !== undefined && times.nbf > exp) out.push(finding(rules, "nbf_after_exp"));
  }
  if (times.iat !== undefined && times.iat > now + rules.skew) {
    out.push(finding(rules, "iat_in_future", `${fmtDuration(times.iat - now)} ahead`));
  }
  return out;
}

function cmp(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortFindings(rules, findings) {
  const seen = new Map();
  for (const f of findings) seen.set(JSON.stringify([f.code, f.severity, f.detail]), f);
  return [...seen.values()].sort(
    (a, b) => rules.severityRank[a.severity] - rules.severityRank[b.severity] || cmp(a.code, b.code) || cmp(a.detail, b.detail),
  );
}

// A JWE's protected header (mirrors _jwe_checks in audit.py): RSA1_5, PBES2 p2c, zip, enc.
function jweChecks(rules, token) {
  let header;
  try {
    header = parseJSONObject(b64urlDecode(token.split(".")[0]));
  } catch (e) {
    return [finding(rules, "malformed", `the JWE protected header is not a JSON object: ${e.message}`)];
  }
  const spec = rules.raw.jwe;
  const out = [];
  const has = (name) => Object.prototype.hasOwnProperty.call(header, name);
  const alg = header.alg;
  const enc = header.enc;
  if (typeof alg !== "string" || !spec.key_management.includes(alg)) out.push(finding(rules, "alg_unexpected", algText(header)));
  if (typeof enc !== "string" || !spec.content_encryption.includes(enc)) {
    const shown = typeof enc === "string" ? `enc is ${JSON.stringify(enc)}` : !has("enc") ? "enc is missing" : `enc is ${kind(enc)}`;
    out.push(finding(rules, "jwe_enc_unexpected", shown));
  }
  if (alg === "RSA1_5") out.push(finding(rules, "jwe_rsa1_5"));
  const p2c = header.p2c;
  if (typeof alg === "string" && alg.startsWith("PBES2") && isNumber(p2c)) {
    if (p2c < spec.pbes2_min_p2c) out.push(finding(rules, "jwe_p2c_low", `p2c ${p2c} < ${spec.pbes2_min_p2c}`));
    if (p2c > spec.pbes2_max_p2c) out.push(finding(rules, "jwe_p2c_high", `p2c ${p2c} > ${spec.pbes2_max_p2c}`));
  }
  if (has("zip")) {
    const nested = ["JWT", "APPLICATION/JWT"].includes(String(has("cty") ? header.cty : "").toUpperCase());
    out.push(finding(rules, "jwe_zip", nested ? "zip on a nested JWT" : "zip present"));
  }
  for (const name of ["jku", "x5u", "jwk", "x5c"]) {
    if (has(name)) out.push(finding(rules, `header_${name}`, `${name} present`));
  }
  const kid = header.kid;
  if (typeof kid === "string") {
    if (rules.kidPath.test(kid)) out.push(finding(rules, "kid_path", `kid ${JSON.stringify(kid)}`));
    if (rules.kidSql.test(kid)) out.push(finding(rules, "kid_sql", `kid ${JSON.stringify(kid)}`));
  }
  out.push(finding(rules, "jwe_payload_hidden"));
  return out;
}

/** Audit a token (mirrors jotkit.audit.audit without a key). now: epoch seconds. */
// Signature checks with a key or secret the user gave (mirrors _check_key in audit.py).
async function keyChecks(rules, token, dec, material) {
  const alg = dec.header.alg;
  if (typeof alg !== "string" || alg.toLowerCase() === "none") return [];
  if (material.type === "secret") {
    if (!HMAC_HASH[alg]) return [finding(rules, "signature_invalid", `a secret cannot verify ${alg}`)];
    const res = await verifyToken(token, material);
    if (!res.valid) return [finding(rules, "signature_invalid", "bad_signature: the secret does not match")];
    const len = secretBytes(material).length;
    const need = rules.minSecret[alg];
    return len < need ? [finding(rules, "short_secret", `${len} bytes, ${alg} needs at least ${need}`)] : [];
  }
  const res = await verifyToken(token, material);
  return res.valid ? [] : [finding(rules, "signature_invalid", `${res.code}: ${res.message}`)];
}

/** Audit a token (mirrors jotkit.audit.audit). now: epoch seconds; key: optional key
 * material as for verifyToken ({type: "secret"|"pem"|"jwk"|"jwks", text, encoding}). */
export async function audit(token, rules, { now = Date.now() / 1000, expectedAlgorithms = null, key = null } = {}) {
  token = token.trim();
  const out = [];
  const size = new TextEncoder().encode(token).length;
  if (size > rules.maxBytes) out.push(finding(rules, "token_oversized", `${size} bytes > ${rules.maxBytes}`));
  if (token.split(".").length === 5) {
    // A JWE (RFC 7516 §7.1): only its protected header can be audited.
    out.push(...jweChecks(rules, token));
    return sortFindings(rules, out);
  }
  let dec;
  try {
    dec = decodeUnverified(token);
  } catch (e) {
    out.push(finding(rules, "malformed", e.message));
    return sortFindings(rules, out);
  }
  out.push(...headerChecks(rules, dec.header, expectedAlgorithms));
  if (typeof dec.header.alg === "string" && HMAC_HASH[dec.header.alg]) {
    const f = await weakSecret(rules, dec.header.alg, dec);
    if (f) out.push(f);
  }
  out.push(...timeChecks(rules, dec.payload, now));
  out.push(...sensitive(rules, dec.payload));
  if (key) out.push(...(await keyChecks(rules, token, dec, key)));
  return sortFindings(rules, out);
}

export { b64urlDecode };

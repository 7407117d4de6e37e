// jotkit debugger page: decoding, verification, audit and signing, all in the page.
import {
  decodeUnverified, verifyToken, signToken, generateKey, b64urlEncode, TokenError,
  decryptJWE, parseJSONObject, b64urlDecode, JWE_WEBCRYPTO_LIMITS, checkDPoPProof,
} from "./jose.js";
import { loadRules, audit, fmtDuration } from "./audit.js";

const $ = (id) => document.getElementById(id);
let rules = null;
let currentPayload = null;
let generated = null;
let seq = 0;
let dpopSeq = 0;

const CLAIM_NAMES = {
  iss: "issuer", sub: "subject", aud: "audience", exp: "expires", nbf: "not before",
  iat: "issued at", jti: "token id", scope: "scopes", azp: "authorized party",
  auth_time: "authenticated at", nonce: "nonce", sid: "session id", client_id: "client id",
  cnf: "confirmation (RFC 7800): with jkt, a DPoP-bound token (RFC 9449): only the holder of the key with this thumbprint may use it, as Authorization: DPoP with a proof; sent as Bearer it is refused",
};
const TIME_CLAIMS = new Set(["exp", "nbf", "iat", "auth_time", "updated_at"]);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

export function relative(seconds) {
  const d = fmtDuration(seconds);
  return seconds >= 0 ? `in ${d}` : `${d} ago`;
}

function isoDate(epoch) {
  const d = new Date(epoch * 1000);
  return Number.isNaN(d.getTime()) ? "invalid date" : d.toISOString().replace(".000Z", "Z");
}

function renderColored(token) {
  const box = $("token-colored");
  box.replaceChildren();
  const parts = token.split(".");
  const classes = ["part-header", "part-payload", "part-signature"];
  parts.forEach((p, i) => {
    if (i > 0) box.append(el("span", { class: "dot" }, "."));
    box.append(el("span", { class: classes[i] || "part-extra" }, p));
  });
}

function renderClaims(payload) {
  const tbody = $("claims").querySelector("tbody");
  tbody.replaceChildren();
  const now = Date.now() / 1000;
  for (const [k, v] of Object.entries(payload)) {
    let meaning = CLAIM_NAMES[k] || "";
    let shown = typeof v === "string" ? v : JSON.stringify(v);
    if (TIME_CLAIMS.has(k) && typeof v === "number") {
      shown = `${v}`;
      meaning = `${meaning ? meaning + ": " : ""}${isoDate(v)} (${relative(v - now)})`;
    }
    tbody.append(el("tr", { "data-claim": k }, el("td", {}, k), el("td", {}, shown), el("td", {}, meaning)));
  }
}

// Second-precision duration for the live countdown ("13 min 52 s").
function precise(seconds) {
  const s = Math.trunc(Math.abs(seconds));
  if (s >= 86400) return fmtDuration(s);
  const h = Math.trunc(s / 3600);
  const m = Math.trunc((s % 3600) / 60);
  const sec = s % 60;
  return (h ? `${h} h ` : "") + (h || m ? `${m} min ` : "") + `${sec} s`;
}

function tickCountdown() {
  const box = $("countdown");
  if (!currentPayload || typeof currentPayload.exp !== "number") {
    box.textContent = currentPayload ? "No expiry (exp) claim." : "";
    box.dataset.state = currentPayload ? "noexp" : "";
    return;
  }
  const left = currentPayload.exp - Date.now() / 1000;
  box.textContent = left > 0 ? `Expires in ${precise(left)}` : `Expired ${precise(left)} ago`;
  box.dataset.state = left > 0 ? "valid" : "expired";
}

function renderFindings(findings) {
  const list = $("findings");
  list.replaceChildren();
  const counts = {};
  for (const f of findings) {
    counts[f.severity] = (counts[f.severity] || 0) + 1;
    list.append(
      el("li", { class: `finding sev-${f.severity}`, "data-code": f.code, "data-severity": f.severity },
        el("span", { class: "sev" }, f.severity.toUpperCase()), " ",
        el("strong", {}, f.title), " ", el("code", {}, f.code),
        f.detail ? el("span", { class: "detail" }, ` — ${f.detail}`) : "",
        el("p", { class: "why" }, f.why),
        el("p", { class: "fix" }, `Fix: ${f.fix}`)),
    );
  }
  $("audit-summary").textContent = findings.length === 0
    ? "No findings."
    : `${findings.length} finding(s): ` + Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ");
}

function keyMaterial() {
  return {
    type: $("key-type").value,
    text: $("key").value,
    encoding: $("secret-b64").checked ? "base64url" : "utf-8",
  };
}

const isJWE = (token) => token.split(".").length === 5;

// A JWE (RFC 7516): decrypt with the pasted key through WebCrypto instead of verifying.
async function runDecrypt(token, mat, box) {
  const my = ++seq;
  if (rules) {
    const findings = await audit(token, rules);
    if (my === seq) renderFindings(findings);
  }
  if (!mat.text.trim()) {
    box.dataset.state = "idle";
    delete box.dataset.code;
    box.textContent = "Paste the recipient's private JWK (or the secret) to decrypt this JWE in the page.";
    return;
  }
  const res = await decryptJWE(token, mat);
  if (my !== seq) return;
  box.dataset.state = res.ok ? "valid" : "invalid";
  box.dataset.code = res.ok ? "decrypted" : res.code;
  if (!res.ok) {
    box.textContent = `✘ Not decrypted — ${res.message}`;
    return;
  }
  box.textContent = `✔ Decrypted — ${res.plaintext.length} bytes; the header is now authenticated`;
  let shown = res.text;
  try {
    shown = JSON.stringify(JSON.parse(res.text), null, 2);
  } catch {
    // not JSON (a nested JWT, or text): show as is
  }
  $("payload").textContent = shown;
  $("unverified-badge").textContent = "DECRYPTED";
  $("unverified-badge").className = "badge verified";
}

async function runVerify() {
  const token = $("token").value.trim();
  const box = $("verify-result");
  const mat = keyMaterial();
  if (token && isJWE(token)) return runDecrypt(token, mat, box);
  if (!token || !mat.text.trim()) {
    box.dataset.state = "idle";
    delete box.dataset.code;
    box.textContent = "Paste a token and a key to verify.";
    if (token && rules) {
      const my = ++seq;
      const findings = await audit(token, rules);
      if (my === seq) renderFindings(findings);
    }
    return;
  }
  const my = ++seq;
  const res = await verifyToken(token, mat);
  if (my !== seq) return;
  if (rules) {
    // the audit adds signature_invalid / short_secret once a key or secret is given
    let findings;
    try {
      findings = await audit(token, rules, { key: mat });
    } catch {
      findings = await audit(token, rules);
    }
    if (my !== seq) return;
    renderFindings(findings);
  }
  box.dataset.state = res.valid ? "valid" : "invalid";
  box.dataset.code = res.code;
  let note = "";
  if (res.valid && currentPayload && typeof currentPayload.exp === "number" && currentPayload.exp <= Date.now() / 1000) {
    note = " — but the token has expired, so verifiers reject it";
  }
  box.textContent = res.valid ? `✔ Signature verified — ${res.message}${note}` : `✘ Invalid — ${res.message}`;
  $("unverified-badge").textContent = res.valid ? "SIGNATURE VERIFIED" : "UNVERIFIED";
  $("unverified-badge").className = res.valid ? "badge verified" : "badge unverified";
}

// ---- DPoP proof against the token (RFC 9449) ----
async function runDPoP() {
  const proof = $("dpop-proof").value.trim();
  const box = $("dpop-result");
  if (!proof) {
    box.dataset.state = "idle";
    delete box.dataset.code;
    box.textContent = "Paste the DPoP header sent with this token to check it.";
    return;
  }
  const my = ++dpopSeq;
  const res = await checkDPoPProof(proof, $("token").value.trim());
  if (my !== dpopSeq) return;
  box.dataset.state = res.valid ? "valid" : "invalid";
  box.dataset.code = res.code;
  box.textContent = res.valid ? `✔ ${res.message}` : `✘ ${res.code}: ${res.message}`;
}

async function onToken() {
  const token = $("token").value.trim();
  renderColored(token);
  const err = $("decode-error");
  err.hidden = true;
  currentPayload = null;
  for (const id of ["header", "payload", "signature"]) $(id).textContent = "";
  $("claims").querySelector("tbody").replaceChildren();
  $("unverified-badge").textContent = "UNVERIFIED";
  $("unverified-badge").className = "badge unverified";
  const note = $("jwe-note");
  note.hidden = true;
  if (token && isJWE(token)) {
    note.textContent = JWE_WEBCRYPTO_LIMITS;
    note.hidden = false;
    try {
      const header = parseJSONObject(b64urlDecode(token.split(".")[0]));
      $("header").textContent = JSON.stringify(header, null, 2);
      $("payload").textContent = "(encrypted JWE: paste the recipient's key to decrypt it in this page)";
      $("signature").textContent = "(a JWE has no signature: the authentication tag is checked on decryption)";
    } catch (e) {
      err.textContent = `Cannot decode the JWE header: ${e.message}`;
      err.hidden = false;
    }
    tickCountdown();
    await runVerify();
    return;
  }
  if (!token) {
    renderFindings([]);
    $("audit-summary").textContent = "";
    tickCountdown();
    return;
  }
  try {
    const dec = decodeUnverified(token);
    $("header").textContent = JSON.stringify(dec.header, null, 2);
    $("payload").textContent = JSON.stringify(dec.payload, null, 2);
    $("signature").textContent = dec.parts[2] || "(empty)";
    currentPayload = dec.payload;
    renderClaims(dec.payload);
  } catch (e) {
    err.textContent = `Cannot decode: ${e.message}`;
    err.hidden = false;
  }
  tickCountdown();
  await runVerify(); // also runs the audit (with the key, when one is given)
  await runDPoP();
}

// ---- generate tab ----
function defaultClaims() {
  const now = Math.floor(Date.now() / 1000);
  return { sub: "user-123", name: "Ada Lovelace", iat: now };
}

function parseEdited(id) {
  try {
    const v = JSON.parse($(id).value);
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    return v;
  } catch (e) {
    throw new TokenError("invalid_json", `${id.replace("gen-", "")} is not a JSON object: ${e.message}`);
  }
}

async function onGenerateKey() {
  const alg = $("gen-alg").value;
  generated = { alg, ...(await generateKey(alg)) };
  $("gen-keytype").value = "generated";
  $("gen-key-input").value = "(private key kept in this page only)";
  $("gen-public").value = generated.secret
    ? generated.secret
    : JSON.stringify(generated.publicJwk, null, 2) + "\n\n" + generated.publicPem;
  const header = safeHeader();
  header.alg = alg;
  if (generated.publicJwk) header.kid = generated.publicJwk.kid;
  else delete header.kid;
  $("gen-header").value = JSON.stringify(header, null, 2);
}

function safeHeader() {
  try {
    return parseEdited("gen-header");
  } catch {
    return { alg: $("gen-alg").value, typ: "JWT" };
  }
}

async function onSign() {
  const err = $("gen-error");
  err.hidden = true;
  try {
    const header = parseEdited("gen-header");
    const payload = parseEdited("gen-payload");
    header.alg = $("gen-alg").value;
    const exp = $("gen-expires").value;
    if (exp) {
      const now = Math.floor(Date.now() / 1000);
      payload.iat = now;
      payload.exp = now + Number(exp);
    }
    const kt = $("gen-keytype").value;
    let material;
    if (kt === "generated") {
      if (!generated || generated.alg !== header.alg) {
        await onGenerateKey();
        const kid = generated.publicJwk ? generated.publicJwk.kid : undefined;
        if (kid) header.kid = kid;
        else delete header.kid;
      }
      material = { cryptoKey: generated.privateKey };
    } else {
      material = { type: kt, text: $("gen-key-input").value };
      if (kt === "secret") $("gen-public").value = $("gen-key-input").value;
    }
    $("gen-token").value = await signToken(header, payload, material);
    $("gen-payload").value = JSON.stringify(payload, null, 2);
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
}

function showTab(id) {
  for (const t of document.querySelectorAll(".tab")) {
    const on = t.id === id;
    t.classList.toggle("active", on);
    t.setAttribute("aria-selected", String(on));
    $(t.dataset.panel).hidden = !on;
  }
}

function onOpenInDecoder() {
  const tok = $("gen-token").value;
  if (!tok) return;
  $("token").value = tok;
  const kt = $("gen-keytype").value;
  if (generated && kt === "generated") {
    if (generated.secret) {
      $("key-type").value = "secret";
      $("secret-b64").checked = true;
      $("key").value = generated.secret;
    } else {
      $("key-type").value = "jwk";
      $("key").value = JSON.stringify(generated.publicJwk);
    }
  } else if (kt === "secret") {
    $("key-type").value = "secret";
    $("secret-b64").checked = false;
    $("key").value = $("gen-key-input").value;
  }
  showTab("tab-decode");
  onToken();
}

async function init() {
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => showTab(t.id));
  $("token").addEventListener("input", onToken);
  $("dpop-proof").addEventListener("input", runDPoP);
  for (const id of ["key", "key-type", "secret-b64"]) {
    $(id).addEventListener("input", runVerify);
    $(id).addEventListener("change", runVerify);
  }
  $("gen-header").value = JSON.stringify({ alg: "ES256", typ: "JWT" }, null, 2);
  $("gen-payload").value = JSON.stringify(defaultClaims(), null, 2);
  $("gen-key").addEventListener("click", () => onGenerateKey().catch((e) => { $("gen-error").textContent = e.message; $("gen-error").hidden = false; }));
  $("gen-alg").addEventListener("change", () => {
    generated = null;
    const h = safeHeader();
    h.alg = $("gen-alg").value;
    delete h.kid;
    $("gen-header").value = JSON.stringify(h, null, 2);
  });
  $("gen-sign").addEventListener("click", onSign);
  $("gen-open").addEventListener("click", onOpenInDecoder);
  setInterval(tickCountdown, 1000);
  try {
    rules = await loadRules("audit_rules.json");
  } catch (e) {
    $("audit-summary").textContent = `Audit unavailable: ${e.message}`;
  }
  const frag = new URLSearchParams(location.hash.slice(1)).get("token");
  if (frag) $("token").value = frag;
  if ($("token").value) await onToken();
  document.body.dataset.ready = "1";
}

// A small programmatic surface for tests and power users (nothing leaves the page).
window.jotkitDebugger = {
  ready: init(),
  audit: (token, opts) => audit(token, rules, opts || {}),
  verify: (token, material) => verifyToken(token, material),
  decryptJWE: async (token, material) => {
    const res = await decryptJWE(token, material);
    return res.ok ? { ok: true, text: res.text, header: res.header } : res;
  },
  decode: (token) => decodeUnverified(token),
  checkDPoP: (proof, token) => checkDPoPProof(proof, token),
  b64urlEncode,
};

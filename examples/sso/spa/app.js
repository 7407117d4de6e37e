// SSO example, app 2: a single-page app doing the OpenID Connect code flow with PKCE in the
// browser (a public client). Tokens live in sessionStorage for this tab only.
const cfg = await (await fetch('/config.json')).json()
const meta = await (await fetch(`${cfg.issuer}/.well-known/openid-configuration`)).json()
const redirectUri = `${location.origin}/`
const $ = (id) => document.getElementById(id)

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
const random = () => b64url(crypto.getRandomValues(new Uint8Array(32)))
const payload = (jwt) => JSON.parse(atob(jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')))

async function login () {
  const verifier = random(); const state = random(); const nonce = random()
  const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)))
  sessionStorage.setItem('flow', JSON.stringify({ verifier, state, nonce }))
  const url = new URL(meta.authorization_endpoint)
  url.search = new URLSearchParams({
    response_type: 'code', client_id: cfg.client_id, redirect_uri: redirectUri,
    scope: 'openid email', state, nonce, code_challenge: challenge, code_challenge_method: 'S256'
  })
  location.assign(url)
}

async function callback (params) {
  const flow = JSON.parse(sessionStorage.getItem('flow') || 'null')
  sessionStorage.removeItem('flow')
  history.replaceState(null, '', '/')
  // state binds the response to this tab; iss defeats mix-up (RFC 9207)
  if (!flow || params.get('state') !== flow.state || params.get('iss') !== cfg.issuer) {
    throw new Error('bad state or issuer')
  }
  if (params.get('error')) throw new Error(params.get('error'))
  const response = await fetch(meta.token_endpoint, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'authorization_code', code: params.get('code'), redirect_uri: redirectUri,
      client_id: cfg.client_id, code_verifier: flow.verifier
    })
  })
  const tokens = await response.json()
  if (!response.ok) throw new Error(tokens.error)
  // Received straight from the token endpoint over TLS: OIDC Core §3.1.3.7 lets the client
  // rely on the TLS server validation instead of checking the signature; check the claims.
  const claims = payload(tokens.id_token)
  const aud = [].concat(claims.aud)
  if (claims.iss !== cfg.issuer || !aud.includes(cfg.client_id) || claims.nonce !== flow.nonce) {
    throw new Error('bad ID token')
  }
  const user = await (await fetch(meta.userinfo_endpoint, {
    headers: { Authorization: `Bearer ${tokens.access_token}` }
  })).json()
  sessionStorage.setItem('session', JSON.stringify({
    email: user.email, sid: claims.sid, id_token: tokens.id_token, access_token: tokens.access_token
  }))
}

function logout () {
  const session = JSON.parse(sessionStorage.getItem('session') || 'null')
  sessionStorage.removeItem('session')
  const url = new URL(meta.end_session_endpoint)
  url.search = new URLSearchParams({
    id_token_hint: session.id_token, post_logout_redirect_uri: redirectUri, state: random()
  })
  location.assign(url)
}

function render () {
  const session = JSON.parse(sessionStorage.getItem('session') || 'null')
  $('status').textContent = session ? `Signed in as ${session.email}` : 'Signed out'
  $('login').hidden = !!session
  $('logout').hidden = !session
}

async function watch () {
  // The host receives the back-channel logout tokens; ask it whether our sid still lives.
  const session = JSON.parse(sessionStorage.getItem('session') || 'null')
  if (!session) return
  const status = await (await fetch(`/session-status?sid=${encodeURIComponent(session.sid)}`)).json()
  if (!status.active) {
    sessionStorage.removeItem('session')
    render()
  }
}

$('login').addEventListener('click', login)
$('logout').addEventListener('click', logout)
const params = new URLSearchParams(location.search)
try {
  if (params.has('code') || params.has('error')) await callback(params)
} catch (err) {
  $('status').textContent = `Sign-in failed: ${err.message}`
}
if (!$('status').textContent.startsWith('Sign-in failed')) render()
setInterval(watch, 500)

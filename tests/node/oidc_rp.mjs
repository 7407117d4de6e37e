// A relying party built on panva's openid-client (an OpenID-certified RP library), used by
// tests/oauth/test_openid_client_flow.py. It talks JSON lines over stdin/stdout:
//   in  {"issuer", "client_id", "redirect_uri", "post_logout_redirect_uri", "scope"}
//   out {"authorization_url"}            (the test drives Chromium through the login page)
//   in  {"callback"}                     (the URL the browser was redirected to)
//   out {"id_token_claims", "userinfo", "refreshed_claims", "refresh_rotated",
//        "end_session_url", "access_token"}
// Every check is openid-client's default: state, iss (RFC 9207), PKCE, the ID token
// (signature via the JWKS, iss, aud, azp, exp, iat, nonce, at_hash when present).
import * as client from 'openid-client'
import * as readline from 'node:readline'

const rl = readline.createInterface({ input: process.stdin })
const lines = rl[Symbol.asyncIterator]()
const next = async () => JSON.parse((await lines.next()).value)
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

try {
  const input = await next()
  const config = await client.discovery(
    new URL(input.issuer), input.client_id, undefined, client.None(),
    { execute: [client.allowInsecureRequests] },  // the test server is plain http on 127.0.0.1
  )
  const verifier = client.randomPKCECodeVerifier()
  const challenge = await client.calculatePKCECodeChallenge(verifier)
  const nonce = client.randomNonce()
  const state = client.randomState()
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: input.redirect_uri,
    scope: input.scope,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    nonce,
    state,
  })
  say({ authorization_url: url.href })
  const { callback } = await next()
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  })
  const claims = tokens.claims()
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  const end = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: input.post_logout_redirect_uri,
    state: 'bye-' + state,
  })
  say({
    id_token_claims: claims,
    userinfo,
    refreshed_claims: refreshed.claims() ?? null,
    refresh_rotated: refreshed.refresh_token !== tokens.refresh_token,
    end_session_url: end.href,
    access_token: refreshed.access_token,
    logout_state: 'bye-' + state,
  })
} catch (err) {
  say({ error: String(err && err.code ? `${err.code}: ${err.message}` : err) , cause: String(err?.cause ?? '') })
  process.exitCode = 1
} finally {
  rl.close()
}

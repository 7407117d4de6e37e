// panva's oauth4webapi as a real client of jotkit's pushed authorization requests (RFC 9126)
// and device authorization grant (RFC 8628), used by tests/oauth/test_oauth4webapi_par_device.py.
// JSON lines over stdin/stdout:
//   in  {"flow": "par", "issuer", "client_id", "client_secret", "redirect_uri", "scope",
//        "api_url"?}  (with api_url: DPoP, RFC 9449, on every request, then a call of the API)
//   out {"authorization_url", "request_uri", "expires_in"}   (the test signs in on the page)
//   in  {"callback"}                                          (where the browser was sent)
//   out {"id_token_claims", "scope", "has_refresh_token", "token_type", "access_token",
//        "nonce_retries", "api": {"status", "body", "nonce_retries"}}
//
//   in  {"flow": "device", "issuer", "client_id", "scope"}
//   out {"user_code", "verification_uri", "verification_uri_complete", "interval"}
//   ... polls the token endpoint every `interval` seconds (+5 s on slow_down) while the test
//   approves the user code on the hosted page ...
//   out {"id_token_claims", "scope", "pending_polls", "has_refresh_token"}
// Every check is oauth4webapi's: discovery (issuer match), the PAR and device responses'
// shape, state and iss (RFC 9207) on the callback, PKCE, the token response and the ID token
// (signature via the JWKS, iss, aud, exp, iat, nonce).
import * as oauth from 'oauth4webapi'
import * as readline from 'node:readline'
import { discover, insecure } from './_io.mjs'

const rl = readline.createInterface({ input: process.stdin })
const lines = rl[Symbol.asyncIterator]()
const next = async () => JSON.parse((await lines.next()).value)
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000))

async function parFlow (input) {
  const as = await discover(input.issuer)
  const client = { client_id: input.client_id }
  const auth = oauth.ClientSecretBasic(input.client_secret)
  // With api_url, every request carries a DPoP proof of one key (oauth4webapi's handle keeps
  // the server's DPoP-Nonce and retries once on use_dpop_nonce, RFC 9449 §8).
  const DPoP = input.api_url
    ? oauth.DPoP(client, await oauth.generateKeyPair('ES256')) : undefined
  const options = DPoP ? { DPoP, ...insecure } : insecure
  let nonceRetries = 0
  const retryOnNonce = async (request) => {
    try {
      return await request()
    } catch (err) {
      if (!DPoP || !oauth.isDPoPNonceError(err)) throw err
      nonceRetries += 1
      return request()
    }
  }
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const nonce = oauth.generateRandomNonce()
  const pushed = await retryOnNonce(async () => oauth.processPushedAuthorizationResponse(
    as, client, await oauth.pushedAuthorizationRequest(as, client, auth, {
      response_type: 'code',
      redirect_uri: input.redirect_uri,
      scope: input.scope,
      state,
      nonce,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }, options)))
  const url = new URL(as.authorization_endpoint)
  url.searchParams.set('client_id', client.client_id)
  url.searchParams.set('request_uri', pushed.request_uri)
  say({ authorization_url: url.href, request_uri: pushed.request_uri, expires_in: pushed.expires_in })
  const { callback } = await next()
  const params = oauth.validateAuthResponse(as, client, new URL(callback), state)
  const result = await retryOnNonce(async () => oauth.processAuthorizationCodeResponse(
    as, client, await oauth.authorizationCodeGrantRequest(
      as, client, auth, params, input.redirect_uri, verifier, options),
    { expectedNonce: nonce, requireIdToken: true }))
  const out = {
    id_token_claims: oauth.getValidatedIdTokenClaims(result),
    scope: result.scope,
    has_refresh_token: Boolean(result.refresh_token),
    token_type: result.token_type,
    access_token: result.access_token,
    nonce_retries: nonceRetries,
  }
  if (input.api_url) {
    // A resource server may require its own nonce (RFC 9449 §9): oauth4webapi throws on its
    // 401 use_dpop_nonce challenge, keeps the DPoP-Nonce it sent, and the call is retried once.
    let apiRetries = 0
    const call = () => oauth.protectedResourceRequest(
      result.access_token, 'GET', new URL(input.api_url), new Headers(), null, options)
    let response
    try {
      response = await call()
    } catch (err) {
      if (!oauth.isDPoPNonceError(err)) throw err
      apiRetries += 1
      response = await call()
    }
    out.api = { status: response.status, body: await response.json(), nonce_retries: apiRetries }
  }
  say(out)
}

async function deviceFlow (input) {
  const as = await discover(input.issuer)
  const client = { client_id: input.client_id }
  const auth = oauth.None()  // a public client, as CLIs are
  const device = await oauth.processDeviceAuthorizationResponse(as, client,
    await oauth.deviceAuthorizationRequest(as, client, auth, { scope: input.scope }, insecure))
  say({
    user_code: device.user_code,
    verification_uri: device.verification_uri,
    verification_uri_complete: device.verification_uri_complete,
    interval: device.interval,
  })
  let interval = device.interval ?? 5
  let pending = 0
  for (;;) {
    await sleep(interval)
    try {
      const result = await oauth.processDeviceCodeResponse(as, client,
        await oauth.deviceCodeGrantRequest(as, client, auth, device.device_code, insecure))
      say({
        id_token_claims: oauth.getValidatedIdTokenClaims(result) ?? null,
        scope: result.scope,
        pending_polls: pending,
        has_refresh_token: Boolean(result.refresh_token),
      })
      return
    } catch (err) {
      if (!(err instanceof oauth.ResponseBodyError)) throw err
      if (err.error === 'authorization_pending') pending += 1
      else if (err.error === 'slow_down') interval += 5  // RFC 8628 §3.5
      else throw err
    }
  }
}

try {
  const input = await next()
  await (input.flow === 'par' ? parFlow(input) : deviceFlow(input))
} catch (err) {
  say({ error: String(err && (err.error || err.code || err.message)), detail: String(err) })
}
rl.close()

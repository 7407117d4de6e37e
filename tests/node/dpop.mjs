// oauth4webapi (panva) as a DPoP client (RFC 9449) of a running `jotkit serve` that requires
// DPoP nonces: client_credentials with a DPoP handle (the first request is answered with
// use_dpop_nonce and a DPoP-Nonce header; the handle keeps the nonce and the retry succeeds),
// then calls of a jotkit-protected API (FastAPI + jotkit.integrations) with
// protectedResourceRequest and the same handle, and the same token sent as a plain bearer
// token (refused). Reads one JSON object on stdin, prints one JSON object.
import * as oauth from 'oauth4webapi'
import { discover, insecure, readInput } from './_io.mjs'

const input = await readInput()
const as = await discover(input.issuer)

const out = { algs: as.dpop_signing_alg_values_supported, token_requests: 0 }
const client = { client_id: input.client_id }
const auth = oauth.ClientSecretBasic(input.client_secret)
const keyPair = await oauth.generateKeyPair('ES256')
const DPoP = oauth.DPoP(client, keyPair)

async function token () {
  out.token_requests += 1
  const response = await oauth.clientCredentialsGrantRequest(
    as, client, auth, new URLSearchParams({ scope: input.scope }), { DPoP, ...insecure })
  return oauth.processClientCredentialsResponse(as, client, response)
}

let result
try {
  result = await token()
} catch (err) {
  out.first_error = err.error || err.code || String(err)
  if (!oauth.isDPoPNonceError(err)) throw err
  result = await token() // the handle now carries the server's nonce
}
out.token_type = result.token_type
out.access_token = result.access_token

async function call (options) {
  const response = await oauth.protectedResourceRequest(
    result.access_token, 'GET', new URL(input.resource_url), new Headers(), null,
    { ...options, ...insecure })
  return { status: response.status, body: await response.json(),
           challenge: response.headers.get('www-authenticate') }
}
out.api = await call({ DPoP })
out.api_again = await call({ DPoP }) // a fresh proof (new jti) for every request
try {
  out.as_bearer = await call({})
} catch (err) {
  out.as_bearer = { status: err.response?.status, error: err.code || err.name,
                    challenge: err.response?.headers.get('www-authenticate') }
}
process.stdout.write(JSON.stringify(out))

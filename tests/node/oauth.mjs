// oauth4webapi (panva) against a running `jotkit serve`: discovery, client_credentials,
// the code exchange (a code made through jotkit's Python API), refresh, and RFC 9068
// validation of every access token (validateJwtAccessToken). Reads one JSON object on stdin,
// prints one JSON object.
import * as oauth from 'oauth4webapi'
import { discover, insecure, readInput } from './_io.mjs'

const input = await readInput()
const as = await discover(input.issuer)

async function validate (token, audience) {
  const request = new Request(input.resource_url, { headers: { authorization: `Bearer ${token}` } })
  return oauth.validateJwtAccessToken(as, request, audience, insecure)
}

const out = {}
// client_credentials
{
  const client = { client_id: input.service.client_id }
  const auth = oauth.ClientSecretBasic(input.service.client_secret)
  const response = await oauth.clientCredentialsGrantRequest(
    as, client, auth, new URLSearchParams({ scope: input.service.scope }), insecure)
  const result = await oauth.processClientCredentialsResponse(as, client, response)
  out.client_credentials = await validate(result.access_token, input.audience)
}
// authorization_code + refresh
{
  const client = { client_id: input.web.client_id }
  const auth = oauth.ClientSecretBasic(input.web.client_secret)
  const params = oauth.validateAuthResponse(
    as, client, new URLSearchParams({ code: input.web.code, iss: input.issuer }), oauth.expectNoState)
  const response = await oauth.authorizationCodeGrantRequest(
    as, client, auth, params, input.web.redirect_uri, input.web.code_verifier, insecure)
  const result = await oauth.processAuthorizationCodeResponse(
    as, client, response, { expectedNonce: input.web.nonce, requireIdToken: true })
  out.id_token_claims = oauth.getValidatedIdTokenClaims(result)
  out.code = await validate(result.access_token, input.audience)
  const refreshed = await oauth.processRefreshTokenResponse(
    as, client, await oauth.refreshTokenGrantRequest(as, client, auth, result.refresh_token, insecure))
  out.refresh = await validate(refreshed.access_token, input.audience)
  out.rotated = refreshed.refresh_token !== result.refresh_token
  // a token of another audience is refused (RFC 9068 §4)
  try {
    await validate(result.access_token, 'https://other.example/')
    out.wrong_audience = 'accepted'
  } catch (e) {
    out.wrong_audience = e.code || e.name
  }
}
process.stdout.write(JSON.stringify(out))

// oauth4webapi (panva) doing RFC 8693 token exchange against a running `jotkit serve`:
// genericTokenEndpointRequest with the token-exchange grant, processGenericTokenEndpointResponse,
// then RFC 9068 validation of the exchanged token for the target audience
// (validateJwtAccessToken). Reads one JSON object on stdin, prints one JSON object.
import * as oauth from 'oauth4webapi'
import { discover, insecure, readInput } from './_io.mjs'

const input = await readInput()
const as = await discover(input.issuer)
const client = { client_id: input.client_id }
const auth = oauth.ClientSecretBasic(input.client_secret)
const response = await oauth.genericTokenEndpointRequest(
  as, client, auth, 'urn:ietf:params:oauth:grant-type:token-exchange', new URLSearchParams({
    subject_token: input.subject_token,
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    audience: input.audience,
    scope: input.scope
  }), insecure)
const result = await oauth.processGenericTokenEndpointResponse(as, client, response)
const request = new Request('https://b.example/api', {
  headers: { authorization: `Bearer ${result.access_token}` }
})
const claims = await oauth.validateJwtAccessToken(as, request, input.audience, insecure)
process.stdout.write(JSON.stringify({
  issued_token_type: result.issued_token_type, scope: result.scope, claims,
  grant_supported: as.grant_types_supported.includes('urn:ietf:params:oauth:grant-type:token-exchange')
}))

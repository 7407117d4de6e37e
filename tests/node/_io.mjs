// What the one-shot interop scripts share: read one JSON object from stdin, and discover an
// issuer with oauth4webapi over plain http on 127.0.0.1.
import * as oauth from 'oauth4webapi'

export const insecure = { [oauth.allowInsecureRequests]: true }

export async function readInput () {
  const data = await new Promise((resolve) => {
    let text = ''
    process.stdin.on('data', (c) => { text += c })
    process.stdin.on('end', () => resolve(text))
  })
  return JSON.parse(data)
}

export async function discover (issuerUrl) {
  const issuer = new URL(issuerUrl)
  return oauth.processDiscoveryResponse(
    issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }))
}

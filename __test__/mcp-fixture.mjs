// The tests' MCP server behind OAuth is the example's (examples/express/oauth-mcp-server.mjs), and
// two helpers that follow its authorization URL as a browser would, without one.
export { startOAuthMcpServer } from '../examples/express/oauth-mcp-server.mjs'

/** Where the tests' Hoot backend says the authorization server sends the browser back. */
export const redirectUrl = 'http://localhost:8009/oauth/callback'

/** The client metadata Hoot registers with (public client, PKCE, refresh tokens). */
export const clientMetadata = {
  client_name: 'Hoot MCP Testing Tool',
  redirect_uris: [redirectUrl],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
}

/** Follows an authorization URL the way the browser would, returning the code it comes back with. */
export async function approve(authorizationUrl) {
  return (await callback(authorizationUrl)).code
}

/** Follows an authorization URL the way the browser would: the callback's `code` and `state`. */
export async function callback(authorizationUrl) {
  const response = await fetch(authorizationUrl, { redirect: 'manual' })
  const location = response.headers.get('location')
  if (response.status !== 302 || !location) throw new Error(`authorization did not redirect: ${response.status}`)
  const { searchParams } = new URL(location)
  return { code: searchParams.get('code'), state: searchParams.get('state') }
}

// The tests' MCP server behind OAuth is the example's (examples/express/oauth-mcp-server.mjs), and
// two helpers that follow its authorization URL as a browser would, without one.
export { startOAuthMcpServer } from '../examples/express/oauth-mcp-server.mjs'

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

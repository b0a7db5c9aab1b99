// Compiled by types.test.mjs with `tsc --strict`: hoot-core's provider is an OAuthClientProvider
// of each MCP SDK Hoot uses (1.20 and 1.32) and of the v2 client, from the package entry and from
// the pure-JS subpath, over an OAuthStore and over { adapter, userId }.
import type { OAuthClientProvider as Provider132 } from '@modelcontextprotocol/sdk/client/auth.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { OAuthClientProvider as ProviderV2 } from '@modelcontextprotocol/client'
import type { OAuthClientProvider as Provider120 } from 'sdk120/client/auth.js'
import { StreamableHTTPClientTransport as Transport120 } from 'sdk120/client/streamableHttp.js'

import { OAuthStore, createOAuthProvider, loadKeys, openDatabase } from 'hoot-core'
import type { Database, KeysInfo } from 'hoot-core'
import { UserConnections, createDatabaseAdapter } from 'hoot-core/hoot'
import type { DatabaseAdapter } from 'hoot-core/hoot'
import { createOAuthProvider as pureProvider } from 'hoot-core/provider'

const redirectUrl = 'http://localhost:8009/oauth/callback'
// Hoot's clientMetadata (server/lib/handlers.js), as written there.
const options = {
  redirectUrl,
  clientMetadata: {
    client_name: 'Hoot MCP Testing Tool',
    client_uri: 'http://localhost:8009',
    redirect_uris: [redirectUrl],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  },
}

const userId = '3b241101-e2bb-4255-8caf-4136c566a962'
const fromStore = createOAuthProvider(new OAuthStore(userId), 'srv', options)
const adapter: DatabaseAdapter = createDatabaseAdapter({ dbPath: ':memory:' })
const fromAdapter = createOAuthProvider({ adapter, userId }, 'srv', options)
const fromSubpath = pureProvider({ adapter, userId }, 'srv', {
  ...options,
  clientMetadataUrl: 'https://hoot.example/client.json',
})

// The same store on either backend, as openDatabase() gives it; the shared key set's promise.
const db: Database = openDatabase(process.env.HOOT_DATABASE_URL)
const fromDatabase = createOAuthProvider(db.store(userId), 'srv', options)
const onPostgres = createDatabaseAdapter({ database: 'postgres://hoot@127.0.0.1/hoot' })
export const overDatabase: DatabaseAdapter = createDatabaseAdapter(db)
export const shared: Promise<KeysInfo> = db.loadKeys()
export const fromFiles: KeysInfo = loadKeys({ keyDir: '/tmp/keys' })
export const saved: Promise<object | undefined> = db.store(userId).tokens('srv')
export const pgAdapter: DatabaseAdapter = onPostgres

export const providers: Array<Provider132 & Provider120 & ProviderV2> = [fromStore, fromAdapter, fromSubpath, fromDatabase]
export const transports = [
  new StreamableHTTPClientTransport(new URL('http://127.0.0.1/mcp'), { authProvider: fromStore }),
  new Transport120(new URL('http://127.0.0.1/mcp'), { authProvider: fromAdapter }),
]

export async function callback(state: string): Promise<boolean> {
  return fromStore.consumeState(state)
}

// A client kept per user: whatever has close().
const connections = new UserConnections<{ close(): Promise<void> }>({ perUser: 5 })
export const servers: string[] = connections.servers(userId)

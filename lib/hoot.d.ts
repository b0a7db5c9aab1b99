// Types of `hoot-core/hoot` (lib/hoot.js), hand-written: its value exports are exactly
// lib/hoot.js's (__test__/types.test.mjs compares them).

import type { Database } from './index'
import type { DatabaseAdapter } from './provider'

export type { DatabaseAdapter } from './provider'

/** `createDatabaseAdapter`'s options, when it is not given a `Database`. */
export interface DatabaseAdapterOptions {
  /** The SQLite file. Defaults to `$HOOT_DB_PATH`, else `~/.hoot/hoot-mcp.db`. */
  dbPath?: string
  /** PostgreSQL: a `postgres://` URL or an `openDatabase()` result. Defaults to `$HOOT_DATABASE_URL` when it is one and no `dbPath` is given. */
  database?: string | Database
  /** `'on'` turns encryption at rest on for the database's writes. */
  encryption?: 'on' | 'off'
}

/**
 * Hoot's `DatabaseAdapter` on hoot-core's store (a drop-in for its `SQLiteAdapter`), over `db`
 * (an `openDatabase()` result, either backend); or, given options, the SQLite database at
 * `opts.dbPath` (default `$HOOT_DB_PATH`, else `~/.hoot/hoot-mcp.db`), opened and migrated now,
 * or PostgreSQL: `opts.database`, else `$HOOT_DATABASE_URL` when it is one and no `dbPath` is given.
 * Every call is scoped to the user id it is given, which must be one a store accepts.
 */
export declare function createDatabaseAdapter(db?: Database | DatabaseAdapterOptions): DatabaseAdapter

/** A live MCP client, as `UserConnections` keeps it: anything that can be closed. */
export interface ClosableClient {
  /** Closes the connection. */
  close(): unknown
}

/**
 * Live MCP clients per user, then per server (the replacement for Hoot's `NodeConnectionPool`
 * map, which is keyed by server id alone). Bounded per user and in total, least recently used
 * closed first; `evictIdle` closes those unused for `idleMs`. `now` is in milliseconds.
 */
export declare class UserConnections<C extends ClosableClient = ClosableClient> {
  /** Defaults: 20 per user, 1,000 in all, 30 minutes idle. */
  constructor(opts?: { perUser?: number; total?: number; idleMs?: number })
  /** The user's client for `serverId`, marked as used; `undefined` without creating anything. */
  get(userId: string, serverId: string, now?: number): C | undefined
  /** Keeps `client` as the user's connection to `serverId`, closing what it replaces or evicts. */
  set(userId: string, serverId: string, client: C, now?: number): Promise<void>
  /** Closes and forgets the user's connection to `serverId`; true if there was one. */
  delete(userId: string, serverId: string): Promise<boolean>
  /** Closes every connection unused for `idleMs`. */
  evictIdle(now?: number): Promise<void>
  /** The server ids the user has a live connection to, sorted. */
  servers(userId: string): string[]
  /** Users with at least one connection. */
  readonly users: number
  /** Connections in all. */
  readonly count: number
  /** Closes every connection. */
  closeAll(): Promise<void>
}

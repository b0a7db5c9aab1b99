// Compiled by types.test.mjs with `tsc --strict`: the transfer-code calls of the example server
// (examples/express/server.mjs), as written there, on a Database from openDatabase(); every other
// Database method as an operator's script calls it; and what the types must refuse.
import { loadKeys, openDatabase, verifyToken } from 'hoot-core'
import type { Database, DatabaseInfo, DatabaseStatus, KeysInfo, TransferCode } from 'hoot-core'
import { inspectDatabase } from 'hoot-core/sqlite'

const db: Database = openDatabase(process.env.HOOT_DATABASE_URL)

// POST /auth/transfer: the code derives from the token the request came with.
export async function transfer(token: string): Promise<TransferCode | undefined> {
  const result = verifyToken(token)
  if (!result.valid) return undefined
  const iat = result.payload.iat
  return db
    .store(result.userId)
    .createTransferCode({ ttlSeconds: 600, tokenIssuedAt: typeof iat === 'number' ? iat : undefined })
}

// POST /auth/redeem: failures counted per client address, a legacy code moved into the session's user.
export async function redeem(code: string, ip: string, into?: string): Promise<string> {
  const { userId, moved } = await db.redeemTransferCode(code, { intoUserId: into, source: ip })
  return moved === undefined ? userId : `${userId} (${moved.moved} moved)`
}

// An operator's maintenance, the same on both backends.
export async function maintain(): Promise<string> {
  const ready: DatabaseInfo = await db.ready()
  const report: DatabaseStatus = await db.inspect()
  const activity = await db.activitySummary()
  const purged = await db.purgeInactiveUsers({ inactiveDays: 90, dryRun: true })
  const legacy = await db.legacyTransferCode({ ttlSeconds: 600 })
  const moved = await db.moveUserData('a', 'b', { onConflict: 'keep-target' })
  const sealed = await db.encrypt({ rotate: false })
  const opened = await db.decrypt()
  const rotated = await db.rotateKeys({ dropPrevious: false })
  const copied = await db.copyFromSqlite('/tmp/hoot-mcp.db', { force: true })
  const keys: KeysInfo = await db.loadKeys()
  return [
    ready.kind,
    ready.database,
    ready.schemaVersion,
    ready.encrypted,
    report.upToDate,
    activity.active7d,
    purged.users,
    legacy === null ? '-' : legacy.code,
    moved.moved,
    sealed.sealed + opened.opened,
    rotated.kid,
    copied.users,
    keys.kid,
  ].join(' ')
}

// One meaning, one name: ready() says where the database is; the inspection report is another type.
export async function distinct(): Promise<void> {
  // @ts-expect-error ready() resolves to a DatabaseInfo, which has no path (DatabaseStatus has)
  void (await db.ready()).path
  // @ts-expect-error inspectDatabase() reports a DatabaseStatus, which has no kind
  void inspectDatabase('/tmp/hoot-mcp.db').kind
}

// loadKeys() is synchronous: a KeysInfo, never a promise.
export const local: KeysInfo = loadKeys({ keyDir: '/tmp/keys' })
// @ts-expect-error the shared key set is db.loadKeys(); loadKeys takes no database
loadKeys({ database: db })

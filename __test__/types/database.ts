// Compiled by types.test.mjs with `tsc --strict`: the transfer-code calls of the example server
// (examples/express/server.mjs), as written there, on a Database from openDatabase().
import { openDatabase, verifyToken } from 'hoot-core'
import type { Database, TransferCode } from 'hoot-core'

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

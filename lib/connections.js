// UserConnections: the live MCP clients of a Hoot backend, kept per user and then per server, the
// replacement for NodeConnectionPool's map keyed by server id alone (in which any browser could
// list, use or disconnect another's authenticated connection). Bounded per user and in total,
// least recently used first; idle connections are closed. Time is a parameter (`now`, ms).
// Pure JavaScript: a client is anything with an async close().
'use strict'

class UserConnections {
  constructor({ perUser = 20, total = 1000, idleMs = 30 * 60 * 1000 } = {}) {
    Object.assign(this, { perUser, total, idleMs })
    this.byUser = new Map() // userId -> Map(serverId -> { client, usedAt })
    this.count = 0
  }

  /** The user's client for `serverId`, marked as used; undefined without creating anything. */
  get(userId, serverId, now = Date.now()) {
    const entry = this.byUser.get(userId)?.get(serverId)
    if (entry) entry.usedAt = now
    return entry?.client
  }

  /** Keeps `client` as the user's connection to `serverId`, closing what it replaces or evicts. */
  async set(userId, serverId, client, now = Date.now()) {
    await this.delete(userId, serverId)
    await this.evictIdle(now)
    const mine = this.byUser.get(userId) ?? new Map()
    while (mine.size >= this.perUser) await this.#closeLeastRecent([[userId, mine]])
    while (this.count >= this.total) await this.#closeLeastRecent(this.byUser)
    mine.set(serverId, { client, usedAt: now })
    this.byUser.set(userId, mine)
    this.count++
  }

  /** Closes and forgets the user's connection to `serverId`; true if there was one. */
  async delete(userId, serverId) {
    const mine = this.byUser.get(userId)
    const entry = mine?.get(serverId)
    if (!entry) return false
    mine.delete(serverId)
    this.count--
    if (mine.size === 0) this.byUser.delete(userId)
    await entry.client.close()
    return true
  }

  /** Closes every connection unused for `idleMs`. */
  async evictIdle(now = Date.now()) {
    for (const [userId, mine] of [...this.byUser]) {
      for (const [serverId, entry] of [...mine]) {
        if (now - entry.usedAt >= this.idleMs) await this.delete(userId, serverId)
      }
    }
  }

  /** Closes the least recently used connection among `users` (pairs of user id and their map). */
  async #closeLeastRecent(users) {
    let oldest
    for (const [userId, mine] of users) {
      for (const [serverId, entry] of mine)
        if (!oldest || entry.usedAt < oldest.usedAt) oldest = { userId, serverId, usedAt: entry.usedAt }
    }
    if (oldest) await this.delete(oldest.userId, oldest.serverId)
  }

  /** The server ids the user has a live connection to, sorted (Hoot's /mcp/connections). */
  servers(userId) {
    return [...(this.byUser.get(userId)?.keys() ?? [])].sort()
  }

  /** Users with at least one connection. */
  get users() {
    return this.byUser.size
  }

  async closeAll() {
    for (const [userId, mine] of [...this.byUser])
      for (const serverId of [...mine.keys()]) await this.delete(userId, serverId)
  }
}

module.exports = { UserConnections }

// UserConnections: the live MCP clients of a Hoot backend, kept per user and then per server, the
// replacement for NodeConnectionPool's map keyed by server id alone (in which any browser could
// list, use or disconnect another's authenticated connection). Bounded per user and in total,
// least recently used first; idle connections are closed. Time is a parameter (`now`, ms).
// Pure JavaScript: a client is anything with a close() (sync or async).
//
// Every change to the maps happens synchronously, before the first await, and the clients taken
// out are closed afterwards: two calls running at once (two connects of one server) can never
// both insert, leave a client unclosed, or put the count out of step with the maps.
'use strict'

const { rangeError } = require('./errors.js')

class UserConnections {
  constructor({ perUser = 20, total = 1000, idleMs = 30 * 60 * 1000 } = {}) {
    for (const [name, value] of Object.entries({ perUser, total, idleMs })) {
      if (!Number.isInteger(value) || value < 1) {
        throw rangeError(`opts.${name}`, `must be a whole number of at least 1. Received ${value}`)
      }
    }
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
    const closing = []
    const replaced = this.#take(userId, serverId)
    if (replaced) closing.push(replaced)
    closing.push(...this.#takeIdle(now))
    const mine = this.byUser.get(userId) ?? new Map()
    while (mine.size >= this.perUser) closing.push(this.#takeLeastRecent([[userId, mine]]))
    while (this.count >= this.total) closing.push(this.#takeLeastRecent(this.byUser))
    mine.set(serverId, { client, usedAt: now })
    this.byUser.set(userId, mine)
    this.count++
    await closeAll(closing)
  }

  /** Closes and forgets the user's connection to `serverId`; true if there was one. */
  async delete(userId, serverId) {
    const client = this.#take(userId, serverId)
    if (!client) return false
    await closeAll([client])
    return true
  }

  /** Closes every connection unused for `idleMs`. */
  async evictIdle(now = Date.now()) {
    await closeAll(this.#takeIdle(now))
  }

  /** The server ids the user has a live connection to, sorted (Hoot's /mcp/connections). */
  servers(userId) {
    return [...(this.byUser.get(userId)?.keys() ?? [])].sort()
  }

  /** Users with at least one connection. */
  get users() {
    return this.byUser.size
  }

  /** Closes every connection. */
  async closeAll() {
    const closing = []
    for (const [userId, mine] of [...this.byUser])
      for (const serverId of [...mine.keys()]) closing.push(this.#take(userId, serverId))
    await closeAll(closing)
  }

  /** Removes the user's connection to `serverId` from the maps and returns its client. */
  #take(userId, serverId) {
    const mine = this.byUser.get(userId)
    const entry = mine?.get(serverId)
    if (!entry) return undefined
    mine.delete(serverId)
    this.count--
    if (mine.size === 0) this.byUser.delete(userId)
    return entry.client
  }

  #takeIdle(now) {
    const idle = []
    for (const [userId, mine] of [...this.byUser]) {
      for (const [serverId, entry] of [...mine]) {
        if (now - entry.usedAt >= this.idleMs) idle.push(this.#take(userId, serverId))
      }
    }
    return idle
  }

  /** Removes the least recently used connection among `users` (pairs of user id and map). */
  #takeLeastRecent(users) {
    let oldest
    for (const [userId, mine] of users) {
      for (const [serverId, entry] of mine) {
        if (!oldest || entry.usedAt < oldest.usedAt) oldest = { userId, serverId, usedAt: entry.usedAt }
      }
    }
    return this.#take(oldest.userId, oldest.serverId)
  }
}

/** Closes each client; one that fails to close does not keep the others open. */
async function closeAll(clients) {
  await Promise.allSettled(clients.map(async (client) => client.close()))
}

module.exports = { UserConnections }

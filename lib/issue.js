// issueTokenAsync's promise. The native half reads the arguments on the calling thread and throws
// there, like issueToken, whatever went wrong: a coded error, or the caller's own exception from a
// getter or Proxy trap, which may be any value (a string, undefined, a Symbol). Turning the throw
// into a rejection here keeps that value exactly as thrown, which N-API cannot carry to a later
// tick for primitives, and keeps the promise that nothing throws synchronously.
'use strict'

const native = require('./native.js')

function issueTokenAsync(userId, opts) {
  try {
    return native.issueTokenAsync(userId, opts)
  } catch (error) {
    return Promise.reject(error)
  }
}

module.exports = { issueTokenAsync }

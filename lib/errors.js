// The Node-style argument errors of the hand-written modules, worded as Node and the Rust core
// (src/error.rs) word theirs: `The "userId" argument ...`, `The "opts.dbPath" property ...`, with
// Node's codes. Pure JavaScript and free of the addon, since lib/provider.js (the addon-free
// `hoot-core/provider`) uses it too. A received value is named by its type, never quoted, so no
// token or secret passed by mistake ends up in a message.
'use strict'

/** `opts.dbPath` is a property, `userId` an argument: Node words the two differently. */
const noun = (name) => (name.includes('.') ? 'property' : 'argument')

function received(value) {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (Array.isArray(value)) return 'an instance of Array'
  if (typeof value === 'function') return 'function'
  if (typeof value === 'number' || typeof value === 'boolean') return `type ${typeof value} (${value})`
  return typeof value === 'object' ? 'an instance of Object' : `type ${typeof value}`
}

/** A TypeError, code ERR_INVALID_ARG_TYPE: `name` is not `expected` ("of type string"). */
function typeError(name, expected, value) {
  const error = new TypeError(`The "${name}" ${noun(name)} must be ${expected}. Received ${received(value)}`)
  error.code = 'ERR_INVALID_ARG_TYPE'
  return error
}

/** A TypeError, code ERR_INVALID_ARG_VALUE: `name` has the right type and an unusable value. */
function valueError(name, reason) {
  const error = new TypeError(`The "${name}" ${noun(name)} ${reason}`)
  error.code = 'ERR_INVALID_ARG_VALUE'
  return error
}

/** A RangeError, code ERR_INVALID_ARG_VALUE: `name` is a number outside its range (as the core's). */
function rangeError(name, reason) {
  const error = new RangeError(`The "${name}" ${noun(name)} ${reason}`)
  error.code = 'ERR_INVALID_ARG_VALUE'
  return error
}

/** A TypeError, code ERR_INVALID_ARG_VALUE, for a call that has no meaning on this object (`message` says why). */
function unusable(message) {
  const error = new TypeError(message)
  error.code = 'ERR_INVALID_ARG_VALUE'
  return error
}

module.exports = { typeError, valueError, rangeError, unusable }

// onEvent(listener): the process's security events, for an audit log. The core reports each event
// where it happens (src/events.rs), on whichever thread, with no secret in any field: a user id is
// `userHash`, a short keyed hash ($HOOT_EVENT_KEY, else random per process). The native side hands
// this module's channel an array of the events' JSON texts at a time (src/binding/telemetry.rs);
// this file parses them and calls each listener in order. Listening never keeps the process alive,
// so what is still queued when the event loop empties (a script's last call) is handed over then,
// on 'beforeExit', and at 'exit' for a process that ends by process.exit().
//
// A listener that throws does not stop the others or the core: its error becomes a process warning
// (`process.emitWarning`), as an audit log that fails must not fail a request.
'use strict'

const native = require('./native.js')
const { typeError } = require('./errors.js')

const listeners = new Set()
/** This module's native channel while it has listeners. */
let channel

function dispatch(texts) {
  // The listeners as the batch starts: one added by a listener gets the events after this batch.
  const now = [...listeners]
  for (const text of texts) {
    const event = JSON.parse(text)
    for (const listener of now) {
      if (!listeners.has(listener)) continue
      try {
        listener(event)
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error)
        process.emitWarning(`A listener given to onEvent threw on a ${event.type} event (the others got it): ${why}`, {
          type: 'HootCoreWarning',
          code: 'ERR_HOOT_EVENT_LISTENER',
        })
      }
    }
  }
}

/**
 * Hands the listeners every event queued for them now, at once: for a process about to exit, and
 * for tests, which then need not wait for the event loop's next turn.
 */
function flushEvents() {
  if (channel !== undefined) dispatch(native.eventsTake(channel))
}

let exitHooked = false

/**
 * Calls `listener(event)` for every security event of this process from now on, after the call
 * that caused it. Returns a function that stops it.
 */
function onEvent(listener) {
  if (typeof listener !== 'function') throw typeError('listener', 'of type function', listener)
  // A function already listening is wrapped, so the returned stop removes this registration only.
  const registered = listeners.has(listener) ? (event) => listener(event) : listener
  if (channel === undefined) channel = native.eventsListen(dispatch)
  if (!exitHooked) {
    exitHooked = true
    process.on('beforeExit', flushEvents)
    process.on('exit', flushEvents)
  }
  listeners.add(registered)
  let stopped = false
  return function stop() {
    if (stopped) return
    stopped = true
    listeners.delete(registered)
    if (listeners.size === 0 && channel !== undefined) {
      native.eventsStop(channel)
      channel = undefined
    }
  }
}

module.exports = { onEvent, flushEvents }

// The JavaScript side's counters, for lib/metrics.js: what happens in this file's callers and never
// reaches native code (a refresh shared in this process, a request resent with newer tokens).
// Pure JavaScript, free of the addon, since lib/refresh.js (of the addon-free `hoot-core/provider`)
// counts here. Label values are the callers' constants, never a value from a request.
'use strict'

/** `family -> Map(labelValue -> count)`. */
const families = new Map()

/** Adds one to `family`'s count for `value` (a constant of the caller's). */
function count(family, value) {
  let counts = families.get(family)
  if (counts === undefined) families.set(family, (counts = new Map()))
  counts.set(value, (counts.get(value) ?? 0) + 1)
}

/** The counts of `family`, as `[labelValue, count]` pairs. */
function counts(family) {
  return [...(families.get(family) ?? [])]
}

module.exports = { count, counts }

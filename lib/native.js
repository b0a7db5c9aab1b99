// The napi-generated loader (binding.js), whose "Cannot find native binding" becomes an error that
// names the platform package it looked for and the command that installs it (lib/platform.js).
// Every hand-written module reaches the native functions through here.
'use strict'

try {
  module.exports = require('./binding.js')
} catch (error) {
  // An explicit NAPI_RS_NATIVE_LIBRARY_PATH failed on its own terms; napi's message says which.
  const noBinding = /^(Cannot find|Failed to load) native binding/.test(String(error && error.message))
  if (!noBinding || process.env.NAPI_RS_NATIVE_LIBRARY_PATH) throw error
  // Required only here, so a load that works reads nothing more than the loader does.
  throw require('./platform.js').missingBindingError(error)
}

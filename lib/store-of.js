// The key under which hoot-core's own DatabaseAdapter (lib/adapter.js) hands createOAuthProvider
// (lib/provider.js) its user-bound store, which also keeps discovery state and the OAuth state.
// A registry symbol, so no Hoot adapter method can collide with it; a module of its own, pure
// JavaScript, so the addon-free provider and the adapter share it without either entry exporting it.
'use strict'

exports.STORE_OF = Symbol.for('hoot-core.adapter.storeOf')

// What a store's credentials are keyed by in this process (lib/refresh.js): one database and user.
// A hoot-core UserStore has it; another store is keyed by its own identity.
exports.CREDENTIAL_KEY = Symbol.for('hoot-core.store.credentialKey')

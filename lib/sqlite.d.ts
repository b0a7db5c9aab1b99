// Types of `hoot-core/sqlite` (lib/sqlite.js), hand-written: its value exports are exactly
// lib/sqlite.js's (__test__/types.test.mjs compares them), each declared in lib/binding.d.ts,
// which napi generates from the Rust doc comments.

export {
  activitySummary,
  cacheFavicon,
  cleanupExpiredVerifiers,
  closeDatabase,
  decryptDatabase,
  encryptDatabase,
  getCachedFavicon,
  inspectDatabase,
  legacyTransferCode,
  migrateDatabase,
  moveUserData,
  OAuthStore,
  purgeInactiveUsers,
  redeemTransferCode,
  revokeUserTokens,
  userIdForAccount,
} from './binding'
export type {
  ActivitySummary,
  DatabaseStatus,
  EncryptionReport,
  EncryptionStatus,
  LegacyTransferCode,
  MigrationReport,
  MoveReport,
  PurgeReport,
  RedeemedTransfer,
  StoreOptions,
  TransferCode,
} from './binding'

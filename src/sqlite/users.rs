//! The anonymous session's life on SQLite: `touch`, `activity_summary` and
//! `purge_inactive_users` are `crate::store`'s, over `super::backend`'s SQL.

pub use super::backend::{activity_summary, purge_inactive_users};
pub use crate::store::users::{inactive_days, ActivitySummary, PurgeReport, TOUCH_INTERVAL_SECONDS};

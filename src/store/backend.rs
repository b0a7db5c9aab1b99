//! What a backend gives the store: a few primitives, each one statement or one transaction, in
//! its own SQL. Every rule (which ids and values are valid, what is sealed, how long a verifier
//! or a code lives, what a MAC covers, when a redemption is throttled) stays above, in
//! `crate::store`, written once for both backends.
//!
//! The primitives are futures. PostgreSQL's wait on the network; SQLite's are ready when made
//! (the work is done by the call, under the file's connection lock), so the synchronous
//! `OAuthStore` drives them with `now`, and nothing is written twice (rust-postgres's `postgres`
//! crate is likewise a blocking facade over one async core).

#![warn(missing_docs)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::identity::{CodeRow, MoveReport, OnConflict, Redeemed};
use super::tables::{AUTHORIZATION_STATES_TABLE, DISCOVERY_TABLE};
use super::users::{ActivitySummary, PurgeReport};
use crate::error::HootError;
use crate::sealing::KeyRing;
use crate::secret::StoreSecret;

/// A primitive's answer: a future that may borrow its arguments.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, HootError>> + Send + 'a>>;

/// An answer already known (SQLite's: the work was done when the call was made).
pub fn done<'a, T: Send + 'a>(result: Result<T, HootError>) -> Call<'a, T> {
    Box::pin(std::future::ready(result))
}

/// Runs a future that is ready at once (a SQLite backend's) to its end on this thread. A future
/// that waits is a bug in the backend, reported as `ERR_HOOT_INTERNAL` rather than a hang.
pub fn now<T>(call: impl Future<Output = Result<T, HootError>>) -> Result<T, HootError> {
    let mut call = std::pin::pin!(call);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match call.as_mut().poll(&mut context) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => Err(HootError::Internal("a synchronous store call waited".into())),
    }
}

/// Where each kind of per-user value lives: one row per user and server in its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The OAuth client registration (JSON).
    ClientInformation,
    /// The OAuth tokens (JSON).
    Tokens,
    /// The PKCE code verifier (text), dated.
    Verifier,
    /// The MCP SDK's discovery state (JSON), dated.
    Discovery,
    /// The OAuth `state` handed out with the verifier (text), dated.
    AuthorizationState,
    /// The server's config, for reconnecting (JSON), dated.
    ServerConfig,
}

impl Slot {
    /// The table.
    pub fn table(self) -> &'static str {
        match self {
            Slot::ClientInformation => "oauth_client_info",
            Slot::Tokens => "oauth_tokens",
            Slot::Verifier => "oauth_verifiers",
            Slot::Discovery => DISCOVERY_TABLE,
            Slot::AuthorizationState => AUTHORIZATION_STATES_TABLE,
            Slot::ServerConfig => "server_configs",
        }
    }

    /// The value's column (Hoot's names).
    pub fn column(self) -> &'static str {
        match self {
            Slot::ClientInformation => "client_info",
            Slot::Tokens => "tokens",
            Slot::Verifier => "verifier",
            Slot::Discovery | Slot::AuthorizationState => "state",
            Slot::ServerConfig => "config",
        }
    }

    /// Whether the table has a `created_at` column, written with the value.
    pub fn dated(self) -> bool {
        !matches!(self, Slot::ClientInformation | Slot::Tokens)
    }

    /// Whether the value is sealed when the database is encrypted. The OAuth `state` is not: it is
    /// compared, never handed back, and it lives ten minutes.
    pub fn sealed(self) -> bool {
        self != Slot::AuthorizationState
    }

    /// Whether each write gives the row a new `version` (a random number, so a version once
    /// replaced never comes back): the credentials a provider compares before deleting them.
    pub fn versioned(self) -> bool {
        matches!(self, Slot::ClientInformation | Slot::Tokens)
    }
}

/// A version no write makes: the version of a row written without one (by Hoot's own code, or by
/// a hoot-core before schema 3).
pub const UNVERSIONED: i64 = 0;

/// A transfer code's row as written: MACs only, never the code.
#[derive(Debug, Clone)]
pub struct NewCode {
    /// `code_hash` of the code's symbols.
    pub hash: String,
    /// When it was made.
    pub created_at: i64,
    /// When it stops redeeming.
    pub expires_at: i64,
    /// The `iat` of the credential it was made with (a revocation after it ends the code).
    pub derived_from: i64,
    /// `code_row_mac` binding the row to its user, `derived_from` and `expires_at`.
    pub mac: String,
}

/// What a redemption asks the backend to do, in one transaction that no other redemption
/// interleaves with (so the failure counts it reads are the counts).
pub struct Redemption<'a> {
    /// `code_hash` of the code's symbols (`None`: not a code at all, a failure).
    pub hash: Option<String>,
    /// The source's MAC, when the server named one.
    pub source: Option<String>,
    /// The start of the current throttle window.
    pub window: i64,
    /// Refuses outright, with the seconds until the window ends, given the failure counts (in all,
    /// and of the source).
    pub throttled: &'a (dyn Fn(i64, Option<i64>) -> Option<i64> + Send + Sync),
    /// The code row's user and what it derives from, if the row verifies and is unexpired.
    pub verified: &'a (dyn Fn(CodeRow) -> Option<(String, i64)> + Send + Sync),
    /// For a legacy user's code, the user its data moves into (`None`: such a code is refused
    /// without being used up).
    pub into: Option<String>,
}

/// How a redemption ended.
#[derive(Debug)]
pub enum Redeem {
    /// The code was good: the new device is this user (for a legacy code, what moved).
    Redeemed(Redeemed),
    /// Unknown, expired, used, unverifiable or ended by a revocation (counted when a guess).
    Refused,
    /// Too many failures in the window: retry after this many seconds.
    Throttled(i64),
    /// A legacy user's code and no `into`: rolled back, the code stays usable.
    NeedsTarget,
}

/// A storage backend: the SQL of the store, and nothing else.
pub trait Backend: Send + Sync + 'static {
    /// Which backend this is, for the metrics' `backend` label.
    fn kind(&self) -> crate::metrics::BackendKind;

    /// What the process's memories (the touch memory) key this database by; never shared by two
    /// databases, and never a secret (no password).
    fn place(&self) -> String;

    /// The user's stored text in `slot` for `server` (as stored: maybe sealed); with `since`, only
    /// if written at or after it.
    fn read<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str, since: Option<i64>) -> Call<'a, Option<String>>;

    /// The keys to open a value sealed under `key_id` with.
    fn opening_keys<'a>(&'a self, key_id: &'a str) -> Call<'a, Arc<KeyRing>>;

    /// The user's stored text in a versioned slot for `server` (as stored: maybe sealed) and its
    /// version (`UNVERSIONED` for a row written without one), in one read.
    fn read_versioned<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str) -> Call<'a, Option<(String, i64)>>;

    /// Writes (replacing) the user's `text` in `slot` for `server`, dated `now` when the slot is
    /// dated, sealed when `slot.sealed()` and the database is encrypted: whether it is is read
    /// inside the write's own transaction, so no encryption change falls in between.
    fn write<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str, text: &'a str, now: i64) -> Call<'a, ()>;

    /// Removes and returns the user's value in `slot` for `server`, with when it was written: one
    /// statement, so two processes never both get it.
    fn take<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str) -> Call<'a, Option<(String, i64)>>;

    /// Deletes the user's rows in `tables` (for `server`, or all of them, then with the rows a
    /// migration kept aside for the user), in one transaction; returns how many. A table named in
    /// `expected` (a versioned slot's) loses its row only while the row has that version.
    fn delete<'a>(
        &'a self,
        user: &'a str,
        tables: &'a [&'static str],
        server: Option<&'a str>,
        expected: &'a [(&'static str, i64)],
    ) -> Call<'a, u64>;

    /// Claims the refresh of the user's credential for `server` for `holder` until `until` (ms),
    /// unless another holder's claim lasts past `now` (ms): one statement, so of several holders
    /// (threads, processes, replicas) one gets it. Returns whether `holder` has it.
    fn claim_refresh<'a>(
        &'a self,
        user: &'a str,
        server: &'a str,
        holder: &'a str,
        now: i64,
        until: i64,
    ) -> Call<'a, bool>;

    /// Ends `holder`'s claim on the refresh of the user's credential for `server`, if it has it.
    fn release_refresh<'a>(&'a self, user: &'a str, server: &'a str, holder: &'a str) -> Call<'a, ()>;

    /// The server ids the user has any state for, sorted by byte.
    fn servers<'a>(&'a self, user: &'a str) -> Call<'a, Vec<String>>;

    /// Records that the user is active at `now` (first seen kept, last seen raised).
    fn touch<'a>(&'a self, user: &'a str, now: i64) -> Call<'a, ()>;

    /// The secret transfer codes and account links are MACed under.
    fn store_secret(&self) -> Call<'_, Arc<StoreSecret>>;

    /// Replaces the user's transfer code by `code`, in one transaction.
    fn save_transfer_code<'a>(&'a self, user: &'a str, code: NewCode) -> Call<'a, ()>;

    /// Links `account` to `user` with `mac`, unless a link that `genuine(owner, mac)` accepts
    /// already names another user; in one transaction. Returns whether the account is the user's.
    fn link_account<'a>(
        &'a self,
        account: &'a str,
        user: &'a str,
        mac: &'a str,
        now: i64,
        genuine: &'a (dyn Fn(&str, Option<&str>) -> bool + Send + Sync),
    ) -> Call<'a, bool>;

    /// Removes the link of `account` to `user`; returns whether there was one.
    fn unlink_account<'a>(&'a self, account: &'a str, user: &'a str) -> Call<'a, bool>;

    /// The user `account` is linked to and the link's MAC, as stored.
    fn account_owner<'a>(&'a self, account: &'a str) -> Call<'a, Option<(String, Option<String>)>>;

    /// Revokes the user's tokens issued before `before` (never lowering an earlier revocation)
    /// and drops their transfer code, in one transaction.
    fn revoke<'a>(&'a self, user: &'a str, before: i64) -> Call<'a, ()>;

    /// Runs a redemption (see `Redemption`); a code whose user was revoked after what it derives
    /// from is refused and used up.
    fn redeem<'a>(&'a self, redemption: Redemption<'a>) -> Call<'a, Redeem>;

    /// Moves every row of `from` to `to` in one transaction (see `store::ops::move_user_data`);
    /// with `OnConflict::Fail` and a conflict, changes nothing.
    fn move_user_data<'a>(&'a self, from: &'a str, to: &'a str, on_conflict: OnConflict) -> Call<'a, MoveReport>;

    /// The legacy user a migration made, if it still has data.
    fn legacy_user(&self) -> Call<'_, Option<String>>;

    /// Deletes every user's verifiers written before `before`; returns how many.
    fn delete_verifiers_before(&self, before: i64) -> Call<'_, u64>;

    /// The favicon cached for `server_url` after `fresh_after` (`Some(None)`: "no favicon").
    fn cached_favicon<'a>(
        &'a self,
        server_url: &'a str,
        oauth_logo_uri: Option<&'a str>,
        fresh_after: i64,
    ) -> Call<'a, Option<Option<String>>>;

    /// Caches a favicon lookup for `server_url` at `now`.
    fn cache_favicon<'a>(
        &'a self,
        server_url: &'a str,
        favicon_url: Option<&'a str>,
        oauth_logo_uri: Option<&'a str>,
        now: i64,
    ) -> Call<'a, ()>;

    /// The activity counts at `now`.
    fn activity_summary(&self, now: i64) -> Call<'_, ActivitySummary>;

    /// Removes the data of every user last active before `cutoff` (see `store::ops::purge`), in
    /// one transaction; a dry run changes nothing.
    fn purge(&self, cutoff: i64, dry_run: bool, now: i64) -> Call<'_, PurgeReport>;
}

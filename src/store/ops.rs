//! The operations on a whole database, whatever the backend: revocation, redeeming transfer
//! codes, account lookup, moving a user's data, legacy adoption, activity, purge, verifier
//! cleanup and the favicon cache. Each checks its arguments and applies its rules here, then asks
//! the backend for one transaction.

#![warn(missing_docs)]

use super::backend::{Backend, Redeem, Redemption};
use super::identity::{
    account_verifies, check_source, check_user_id, code_hash, code_symbols, source_mac, throttled, MoveReport,
    OnConflict, Redeemed, FAILURE_WINDOW_SECONDS,
};
use super::users::{ActivitySummary, PurgeReport};
use super::{check_id, is_store_user_id, UserStore, FAVICON_TTL_SECONDS, MAX_VALUE_BYTES, USER_ID_FORMS};
use crate::error::HootError;
use crate::metrics::timed;
use crate::{events, store_timing};
use std::sync::Arc;

/// Revokes every token of `user_id` issued before `now + 1` ("forget me", a stolen device): this
/// process refuses them at once, every process sharing the database within its poll interval, and
/// the user's pending transfer code goes in the same transaction. Returns the time before which
/// tokens are refused.
pub async fn revoke_user_tokens<B: Backend + ?Sized>(backend: &B, user_id: &str, now: i64) -> Result<i64, HootError> {
    if !is_store_user_id(user_id) {
        return Err(HootError::invalid_user_id(user_id, USER_ID_FORMS));
    }
    let user_id = user_id.to_ascii_lowercase();
    let before = now + 1;
    timed(store_timing!("revokeUserTokens", backend.kind()), backend.revoke(&user_id, before)).await?;
    crate::revocation::learn(&user_id, before);
    events::emit("tokens_revoked", |e| {
        e.hashed("userHash", &user_id).set("before", before).set("backend", backend.kind().label());
    });
    Ok(before)
}

/// Redeems a transfer code at `now`: single use (the lookup is the delete), refused when unknown,
/// expired, used, unverifiable (a row no server made) or ended by a revocation of the user's
/// tokens issued after what the code derives from (read in the same transaction, so a code made
/// on another process just before the revocation reached it is refused too). Failures are
/// throttled across processes: `MAX_FAILURES_PER_WINDOW` per `FAILURE_WINDOW_SECONDS` in all, and
/// per `source` (the client's address, stored as a MAC) `MAX_FAILURES_PER_SOURCE`, of which only
/// that many count in the global limit. A legacy user's code moves that user's data into `into`
/// (the redeeming browser's user), keeping `into`'s own state where both have a server.
pub async fn redeem_transfer_code<B: Backend + ?Sized>(
    backend: &B,
    code: &str,
    into: Option<&str>,
    source: Option<&str>,
    now: i64,
) -> Result<Redeemed, HootError> {
    if let Some(into) = into {
        // The browser that redeems: a UUID, so never the legacy user itself (whose data the move
        // would otherwise drop as its own conflicts).
        if !crate::ids::is_valid_user_id(into) {
            return Err(HootError::invalid_user_id(into, "a UUID v4 (the redeeming browser's verified user)"));
        }
    }
    if let Some(source) = source {
        check_source(source)?;
    }
    let secret = backend.store_secret().await?;
    let symbols = code_symbols(code);
    let window = now - now.rem_euclid(FAILURE_WINDOW_SECONDS);
    let throttle = |global: i64, source: Option<i64>| throttled(global, source, window, now);
    let verified = |row: super::identity::CodeRow| {
        let symbols = symbols.as_deref()?;
        row.verified(&secret, symbols, now)
    };
    let redemption = Redemption {
        hash: symbols.as_deref().map(|s| code_hash(&secret, s)),
        source: source.map(|s| source_mac(&secret, s)),
        window,
        throttled: &throttle,
        verified: &verified,
        into: into.map(str::to_ascii_lowercase),
    };
    let backend_label = backend.kind().label();
    timed(store_timing!("redeemTransferCode", backend.kind()), async {
        match backend.redeem(redemption).await? {
            Redeem::Redeemed(redeemed) => {
                events::emit("transfer_code_redeemed", |e| {
                    e.hashed("userHash", &redeemed.user_id)
                        .set("legacy", redeemed.moved.is_some())
                        .set("backend", backend_label);
                });
                Ok(redeemed)
            }
            Redeem::Refused => {
                events::emit("transfer_code_refused", |e| {
                    e.set("backend", backend_label);
                });
                Err(HootError::TransferCode)
            }
            Redeem::Throttled(retry_after) => {
                events::emit("transfer_code_throttled", |e| {
                    e.set("retryAfterSeconds", retry_after)
                        .set("source", source.is_some())
                        .set("backend", backend_label);
                });
                Err(HootError::TransferThrottled { retry_after })
            }
            Redeem::NeedsTarget => Err(HootError::arg_value(
                "opts.intoUserId",
                "is needed for a legacy user's code: the data moves into the redeeming browser's user",
            )),
        }
    })
    .await
}

/// The user an account is linked to; a row whose MAC does not verify (planted by someone who can
/// write the database but has not the store secret) is no link.
pub async fn user_id_for_account<B: Backend + ?Sized>(
    backend: &B,
    account_id: &str,
) -> Result<Option<String>, HootError> {
    check_id("accountId", account_id)?;
    let secret = backend.store_secret().await?;
    let row = timed(store_timing!("userIdForAccount", backend.kind()), backend.account_owner(account_id)).await?;
    Ok(row.filter(|(user, mac)| account_verifies(&secret, account_id, user, mac.as_deref())).map(|(user, _)| user))
}

/// Moves every row of `from` to `to` in one transaction and empties `from` (its pending transfer
/// code is dropped; activity merges: earliest first, latest last seen). Accounts move too, with a
/// MAC for their new user; sealed values are sealed again for `to`.
pub async fn move_user_data<B: Backend + ?Sized>(
    backend: &B,
    from: &str,
    to: &str,
    on_conflict: OnConflict,
) -> Result<MoveReport, HootError> {
    check_user_id(from)?;
    check_user_id(to)?;
    let (from, to) = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
    if from == to {
        return Err(HootError::arg_value("toUserId", "must differ from fromUserId"));
    }
    let report =
        timed(store_timing!("moveUserData", backend.kind()), backend.move_user_data(&from, &to, on_conflict)).await?;
    if on_conflict == OnConflict::Fail && report.conflicts > 0 {
        return Err(HootError::arg_value(
            "opts.onConflict",
            format!(
                "is 'fail', and both users have state for {} server(s); nothing was moved. \
                 Pass 'keep-target' or 'take-source'",
                report.conflicts
            ),
        ));
    }
    events::emit("user_moved", |e| {
        e.hashed("fromUserHash", &from)
            .hashed("toUserHash", &to)
            .set("moved", report.moved)
            .set("replaced", report.replaced)
            .set("dropped", report.dropped)
            .set("backend", backend.kind().label());
    });
    Ok(report)
}

/// A transfer code for the legacy user, if the database holds legacy data: (user, code, expiry).
/// It derives from `now`: only an operator makes one (`adopt-legacy`).
pub async fn legacy_transfer_code<B: Backend>(
    backend: &Arc<B>,
    ttl: i64,
    now: i64,
) -> Result<Option<(String, String, i64)>, HootError> {
    let Some(legacy) = backend.legacy_user().await? else { return Ok(None) };
    let (code, expires_at) = UserStore::new(Arc::clone(backend), &legacy)?.create_transfer_code(ttl, now, now).await?;
    Ok(Some((legacy, code, expires_at)))
}

/// The activity counts at `now`: counts only, never an id.
pub async fn activity_summary<B: Backend + ?Sized>(backend: &B, now: i64) -> Result<ActivitySummary, HootError> {
    timed(store_timing!("activitySummary", backend.kind()), backend.activity_summary(now)).await
}

/// Removes every row of each user whose last activity is more than `days` days before `now`, in
/// one transaction (a crash leaves each user whole or gone). A user with data but no activity
/// row (data from before activity was recorded) is never purged by the run that first sees it:
/// that run records them as active now, so they go only after `days` more days without a
/// `touch`. A legacy user is never purged. A dry run counts the same and changes nothing.
pub async fn purge_inactive_users<B: Backend + ?Sized>(
    backend: &B,
    days: i64,
    dry_run: bool,
    now: i64,
) -> Result<PurgeReport, HootError> {
    let report =
        timed(store_timing!("purgeInactiveUsers", backend.kind()), backend.purge(now - days * 86_400, dry_run, now))
            .await?;
    if !report.dry_run {
        events::emit("users_purged", |e| {
            e.set("users", report.users)
                .set("rows", report.rows)
                .set("inactiveDays", days)
                .set("backend", backend.kind().label());
        });
    }
    Ok(report)
}

/// Deletes every user's verifiers older than `max_age` seconds at `now`; returns how many.
pub async fn cleanup_expired_verifiers<B: Backend + ?Sized>(
    backend: &B,
    max_age: i64,
    now: i64,
) -> Result<u64, HootError> {
    timed(store_timing!("cleanupExpiredVerifiers", backend.kind()), backend.delete_verifiers_before(now - max_age))
        .await
}

/// Hoot's favicon cache lookup: `None` when nothing fresh is cached, `Some(None)` when "no
/// favicon" was cached, `Some(Some(url))` otherwise.
pub async fn cached_favicon<B: Backend + ?Sized>(
    backend: &B,
    server_url: &str,
    oauth_logo_uri: Option<&str>,
    now: i64,
) -> Result<Option<Option<String>>, HootError> {
    check_id("serverUrl", server_url)?;
    let fresh_after = now - FAVICON_TTL_SECONDS;
    timed(
        store_timing!("cachedFavicon", backend.kind()),
        backend.cached_favicon(server_url, oauth_logo_uri, fresh_after),
    )
    .await
}

/// Caches a favicon lookup for `server_url` at `now` (`None`: the lookup found no favicon).
pub async fn cache_favicon<B: Backend + ?Sized>(
    backend: &B,
    server_url: &str,
    favicon_url: Option<&str>,
    oauth_logo_uri: Option<&str>,
    now: i64,
) -> Result<(), HootError> {
    check_id("serverUrl", server_url)?;
    for (name, value) in [("faviconUrl", favicon_url), ("oauthLogoUri", oauth_logo_uri)] {
        if value.is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
            return Err(HootError::out_of_range(name, format!("must be at most {MAX_VALUE_BYTES} bytes")));
        }
    }
    let write = backend.cache_favicon(server_url, favicon_url, oauth_logo_uri, now);
    timed(store_timing!("cacheFavicon", backend.kind()), write).await
}

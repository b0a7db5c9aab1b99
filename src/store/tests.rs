//! The store's contract: what every backend must do, written once against the `Backend` trait.
//! `sqlite::tests` runs each check on a SQLite file, and `pg::tests` on a PostgreSQL database of
//! its own when `HOOT_TEST_POSTGRES_URL` is set (CI sets it): `contract_tests!` names them all, so
//! a check added here runs on both.

use std::sync::Arc;

use super::backend::Backend;
use super::identity::{self, MoveReport, OnConflict};
use super::users::{ActivitySummary, PurgeReport, TOUCH_INTERVAL_SECONDS};
use super::{ops, CredentialScope, Expected, JsonObject, UserStore, MAX_ID_BYTES, VERIFIER_TTL_SECONDS};
use crate::error::HootError;

/// A fixed "now" (seconds), in 2027.
pub const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;
pub const ALICE: &str = "3b241101-e2bb-4255-8caf-4136c566a962";
pub const BOB: &str = "9c5b94b1-35ad-49bb-b118-8e8fc24abf80";
const CAROL: &str = "0f9d4b7a-2c3e-4f5a-8b6c-7d8e9f0a1b2c";

type Outcome = Result<(), HootError>;

fn json(text: &str) -> JsonObject {
    JsonObject::new(text.to_string(), "value").unwrap_or_else(|e| panic!("{text} is not a JSON object: {e}"))
}

fn user<B: Backend>(db: &Arc<B>, id: &str) -> Result<UserStore<B>, HootError> {
    UserStore::new(Arc::clone(db), id)
}

fn code<T: std::fmt::Debug>(result: Result<T, HootError>) -> Result<T, &'static str> {
    result.map_err(|e| e.code())
}

/// Names every contract check, for a backend's test module to run them all with `$run`.
macro_rules! contract_tests {
    ($run:ident) => {
        $run!(
            every_method_round_trips,
            verifiers_expire_after_ten_minutes,
            users_never_see_each_others_rows,
            bad_values_are_refused_before_anything_is_written,
            favicons_are_shared_with_a_day_of_ttl,
            discovery_state_is_cleared_by_its_scopes,
            an_authorization_state_is_accepted_once_within_ten_minutes,
            touch_writes_once_per_interval_and_the_summary_counts_without_ids,
            purge_removes_inactive_users_only_and_adopts_untracked_ones,
            forgetting_a_user_removes_their_activity_and_revokes_on_request,
            a_transfer_code_is_typable_single_use_and_expires,
            failed_redemptions_are_throttled_per_window_and_per_source,
            a_revocation_ends_the_codes_made_before_it,
            move_user_data_merges_by_the_chosen_rule_and_empties_the_source,
            a_legacy_users_code_moves_its_data_into_the_redeeming_user,
            an_account_belongs_to_one_user,
            invalidation_compares_the_version_it_read,
            one_holder_claims_a_refresh_until_release_or_lease_end
        );
    };
}
pub(crate) use contract_tests;

pub async fn every_method_round_trips<B: Backend>(db: Arc<B>) -> Outcome {
    let s = user(&db, &ALICE.to_uppercase())?;
    assert_eq!(s.user_id(), ALICE, "one spelling per user");
    assert_eq!(s.tokens("srv").await?, None);
    s.save_tokens("srv", &json(r#"{"access_token":"a"}"#)).await?;
    s.save_client_information("srv", &json(r#"{"client_id":"c"}"#)).await?;
    s.save_code_verifier("srv", "verifier-1", NOW).await?;
    s.save_server_config("cfg-only", &json(r#"{"url":"https://mcp.example"}"#), NOW).await?;
    assert_eq!(s.tokens("srv").await?.as_deref(), Some(r#"{"access_token":"a"}"#));
    assert_eq!(s.client_information("srv").await?.as_deref(), Some(r#"{"client_id":"c"}"#));
    assert_eq!(s.code_verifier("srv", NOW).await?.as_deref(), Some("verifier-1"));
    assert_eq!(s.server_config("cfg-only").await?.as_deref(), Some(r#"{"url":"https://mcp.example"}"#));
    assert_eq!(s.servers().await?, ["cfg-only", "srv"]);
    s.save_tokens("srv", &json(r#"{"access_token":"b"}"#)).await?;
    assert_eq!(s.tokens("srv").await?.as_deref(), Some(r#"{"access_token":"b"}"#), "saving again replaces");
    assert_eq!(s.invalidate_credentials("srv", CredentialScope::Tokens).await?, 1);
    assert_eq!(s.tokens("srv").await?, None);
    assert!(s.client_information("srv").await?.is_some());
    s.save_server_config("srv", &json("{}"), NOW).await?;
    assert_eq!(s.invalidate_credentials("srv", CredentialScope::All).await?, 2);
    assert_eq!(s.server_config("srv").await?.as_deref(), Some("{}"), "a config is not a credential");
    assert_eq!(s.delete_server_config("srv").await?, 1);
    let nasty = "x' OR '1'='1'; DROP TABLE oauth_tokens; --";
    s.save_tokens(nasty, &json("{}")).await?;
    assert_eq!(s.servers().await?, ["cfg-only", nasty], "ids are bound, never spliced; sorted by byte");
    assert_eq!(s.delete_all(None).await?, 2);
    assert!(s.servers().await?.is_empty());
    Ok(())
}

/// The refresh race's fix at the store: tokens another holder saved after a read survive that
/// reader's invalidation; the version read deletes them only while they are still stored.
pub async fn invalidation_compares_the_version_it_read<B: Backend>(db: Arc<B>) -> Outcome {
    let s = user(&db, ALICE)?;
    s.save_tokens("srv", &json(r#"{"refresh_token":"r1"}"#)).await?;
    s.save_client_information("srv", &json(r#"{"client_id":"c1"}"#)).await?;
    let (text, read) = s.tokens_versioned("srv").await?.ok_or(HootError::Internal("no tokens".into()))?;
    assert_eq!(text, r#"{"refresh_token":"r1"}"#);
    assert!(read % 2 == 1 && read < 1 << 53, "a written version is odd and fits a JS number: {read}");
    // Another holder refreshes: the same user's tokens, saved again, get a new version.
    s.save_tokens("srv", &json(r#"{"refresh_token":"r2"}"#)).await?;
    let (_, winner) = s.tokens_versioned("srv").await?.ok_or(HootError::Internal("no tokens".into()))?;
    assert_ne!(winner, read);
    let stale = Expected { tokens: Some(read), client_information: None };
    assert_eq!(s.invalidate_credentials_if("srv", CredentialScope::Tokens, stale).await?, 0);
    assert_eq!(s.tokens("srv").await?.as_deref(), Some(r#"{"refresh_token":"r2"}"#), "the winner's tokens survive");
    // 'all' with stale versions still clears what has no version (the verifier), not the rest.
    s.save_code_verifier("srv", "v", NOW).await?;
    let (_, client) = s.client_information_versioned("srv").await?.ok_or(HootError::Internal("no client".into()))?;
    let both_stale = Expected { tokens: Some(read), client_information: Some(client + 2) };
    assert_eq!(s.invalidate_credentials_if("srv", CredentialScope::All, both_stale).await?, 1);
    assert!(s.tokens("srv").await?.is_some() && s.client_information("srv").await?.is_some());
    assert_eq!(s.code_verifier("srv", NOW).await?, None);
    let current = Expected { tokens: Some(winner), client_information: Some(client) };
    assert_eq!(s.invalidate_credentials_if("srv", CredentialScope::All, current).await?, 2);
    assert_eq!(s.tokens("srv").await?, None);
    assert_eq!(s.client_information("srv").await?, None);
    // Another user's row with the same version is not this user's.
    let bob = user(&db, BOB)?;
    bob.save_tokens("srv", &json("{}")).await?;
    let (_, bobs) = bob.tokens_versioned("srv").await?.ok_or(HootError::Internal("no tokens".into()))?;
    let aimed = Expected { tokens: Some(bobs), client_information: None };
    assert_eq!(s.invalidate_credentials_if("srv", CredentialScope::Tokens, aimed).await?, 0);
    assert!(bob.tokens("srv").await?.is_some());
    Ok(())
}

/// One holder at a time refreshes a credential: a claim is refused while another's lasts, taken
/// over once it has ended (a holder that died), and given back by its holder alone.
pub async fn one_holder_claims_a_refresh_until_release_or_lease_end<B: Backend>(db: Arc<B>) -> Outcome {
    let (s, bob) = (user(&db, ALICE)?, user(&db, BOB)?);
    let ms = NOW * 1000;
    assert!(s.claim_refresh("srv", "h1", ms, 1000).await?);
    assert!(!s.claim_refresh("srv", "h2", ms + 999, 1000).await?, "h1's claim lasts");
    assert!(s.claim_refresh("srv", "h1", ms + 10, 1000).await?, "its holder may renew it");
    assert!(!s.claim_refresh("srv", "h3", ms, 1000).await?);
    assert!(s.claim_refresh("other", "h2", ms, 1000).await?, "one claim per server");
    assert!(bob.claim_refresh("srv", "h2", ms, 1000).await?, "and per user");
    s.release_refresh("srv", "h2").await?;
    assert!(!s.claim_refresh("srv", "h2", ms + 20, 1000).await?, "only the holder releases");
    assert!(s.claim_refresh("srv", "h2", ms + 1010, 1000).await?, "an ended claim is taken over");
    s.release_refresh("srv", "h2").await?;
    assert!(s.claim_refresh("srv", "h4", ms + 1011, 1000).await?, "a released claim is free");
    assert_eq!(code(s.claim_refresh("srv", "h5", ms, 0).await), Err("ERR_INVALID_ARG_VALUE"));
    assert_eq!(code(s.claim_refresh("srv", "", ms, 10).await), Err("ERR_INVALID_ARG_VALUE"));
    // Forgetting the user forgets their claims.
    s.delete_all(None).await?;
    assert!(s.claim_refresh("srv", "h6", ms + 1012, 1000).await?);
    Ok(())
}

pub async fn verifiers_expire_after_ten_minutes<B: Backend>(db: Arc<B>) -> Outcome {
    let s = user(&db, ALICE)?;
    s.save_code_verifier("srv", "v", NOW).await?;
    assert_eq!(s.code_verifier("srv", NOW + VERIFIER_TTL_SECONDS).await?.as_deref(), Some("v"));
    assert_eq!(s.code_verifier("srv", NOW + VERIFIER_TTL_SECONDS + 1).await?, None);
    assert_eq!(ops::cleanup_expired_verifiers(&*db, 600, NOW + 600).await?, 0);
    assert_eq!(ops::cleanup_expired_verifiers(&*db, 600, NOW + 601).await?, 1);
    Ok(())
}

pub async fn users_never_see_each_others_rows<B: Backend>(db: Arc<B>) -> Outcome {
    let (alice, bob) = (user(&db, ALICE)?, user(&db, BOB)?);
    alice.save_tokens("shared", &json(r#"{"who":"alice"}"#)).await?;
    bob.save_tokens("shared", &json(r#"{"who":"bob"}"#)).await?;
    bob.save_code_verifier("bob-only", "v", NOW).await?;
    assert_eq!(alice.tokens("shared").await?.as_deref(), Some(r#"{"who":"alice"}"#));
    assert_eq!(alice.code_verifier("bob-only", NOW).await?, None);
    assert_eq!(alice.servers().await?, ["shared"]);
    assert_eq!(alice.invalidate_credentials("bob-only", CredentialScope::All).await?, 0);
    assert_eq!(alice.delete_all(None).await?, 1);
    assert_eq!(bob.tokens("shared").await?.as_deref(), Some(r#"{"who":"bob"}"#));
    assert_eq!(bob.servers().await?, ["bob-only", "shared"]);
    Ok(())
}

pub async fn bad_values_are_refused_before_anything_is_written<B: Backend>(db: Arc<B>) -> Outcome {
    assert_eq!(user(&db, "not-a-user").err().map(|e| e.code()), Some("ERR_INVALID_USER_ID"));
    let s = user(&db, ALICE)?;
    assert_eq!(code(s.save_tokens("", &json("{}")).await), Err("ERR_INVALID_ARG_VALUE"));
    assert_eq!(code(s.save_code_verifier("srv", "", NOW).await), Err("ERR_INVALID_ARG_VALUE"));
    let sealed_looking = s.save_code_verifier("srv", "hoot-sealed:1:k:x", NOW).await;
    assert_eq!(code(sealed_looking), Err("ERR_INVALID_ARG_VALUE"));
    assert_eq!(code(s.tokens(&"s".repeat(MAX_ID_BYTES + 1)).await), Err("ERR_INVALID_ARG_VALUE"));
    assert_eq!(code(s.save_authorization_state("srv", "", NOW).await), Err("ERR_INVALID_ARG_VALUE"));
    assert_eq!(code(s.link_account("", NOW).await), Err("ERR_INVALID_ARG_VALUE"));
    assert_eq!(
        code(s.save_tokens("a\0b", &json("{}")).await),
        Err("ERR_INVALID_ARG_VALUE"),
        "NUL: PostgreSQL's text has none"
    );
    assert_eq!(code(s.save_code_verifier("srv", "v\0", NOW).await), Err("ERR_INVALID_ARG_VALUE"));
    assert_eq!(code(s.save_authorization_state("srv", "s\0", NOW).await), Err("ERR_INVALID_ARG_VALUE"));
    assert_eq!(code(s.link_account("acc\0", NOW).await), Err("ERR_INVALID_ARG_VALUE"));
    assert_eq!(code(ops::cache_favicon(&*db, "", None, None, NOW).await), Err("ERR_INVALID_ARG_VALUE"));
    assert_eq!(code(ops::revoke_user_tokens(&*db, "nobody", NOW).await), Err("ERR_INVALID_USER_ID"));
    assert!(s.servers().await?.is_empty());
    Ok(())
}

pub async fn favicons_are_shared_with_a_day_of_ttl<B: Backend>(db: Arc<B>) -> Outcome {
    let db = &*db;
    assert_eq!(ops::cached_favicon(db, "https://a", None, NOW).await?, None, "nothing cached");
    ops::cache_favicon(db, "https://a", None, None, NOW).await?;
    assert_eq!(ops::cached_favicon(db, "https://a", None, NOW).await?, Some(None), "cached: no favicon");
    ops::cache_favicon(db, "https://b", Some("https://b/favicon.ico"), Some("https://b/logo"), NOW).await?;
    let b = Some(Some("https://b/favicon.ico".to_string()));
    assert_eq!(ops::cached_favicon(db, "https://b", Some("https://b/logo"), NOW + DAY - 1).await?, b);
    assert_eq!(ops::cached_favicon(db, "https://b", None, NOW).await?, None, "Hoot's logo-uri rule");
    assert_eq!(ops::cached_favicon(db, "https://b", Some("https://b/logo"), NOW + DAY).await?, None, "24 h TTL");
    Ok(())
}

pub async fn discovery_state_is_cleared_by_its_scopes<B: Backend>(db: Arc<B>) -> Outcome {
    let (alice, bob) = (user(&db, ALICE)?, user(&db, BOB)?);
    let state = json(r#"{"authorizationServerUrl":"https://as.example"}"#);
    alice.save_discovery_state("srv", &state, NOW).await?;
    assert_eq!(alice.discovery_state("srv").await?.as_deref(), Some(state.as_str()));
    assert_eq!(bob.discovery_state("srv").await?, None);
    for scope in [CredentialScope::Client, CredentialScope::Tokens, CredentialScope::Verifier] {
        alice.invalidate_credentials("srv", scope).await?;
        assert!(alice.discovery_state("srv").await?.is_some(), "{scope:?} leaves it");
    }
    alice.invalidate_credentials("srv", CredentialScope::Discovery).await?;
    assert_eq!(alice.discovery_state("srv").await?, None);
    alice.save_discovery_state("srv", &state, NOW).await?;
    alice.invalidate_credentials("srv", CredentialScope::All).await?;
    assert_eq!(alice.discovery_state("srv").await?, None);
    Ok(())
}

pub async fn an_authorization_state_is_accepted_once_within_ten_minutes<B: Backend>(db: Arc<B>) -> Outcome {
    let (alice, bob) = (user(&db, ALICE)?, user(&db, BOB)?);
    alice.save_authorization_state("srv", "s-1", NOW).await?;
    assert!(!bob.consume_authorization_state("srv", "s-1", NOW).await?, "another user");
    assert!(!alice.consume_authorization_state("other", "s-1", NOW).await?, "another server");
    assert!(alice.consume_authorization_state("srv", "s-1", NOW + 1).await?);
    assert!(!alice.consume_authorization_state("srv", "s-1", NOW + 2).await?, "replayed");
    alice.save_authorization_state("srv", "s-2", NOW).await?;
    assert!(!alice.consume_authorization_state("srv", "forged", NOW).await?);
    assert!(!alice.consume_authorization_state("srv", "s-2", NOW).await?, "a failed check used it up");
    alice.save_authorization_state("srv", "s-3", NOW).await?;
    assert!(!alice.consume_authorization_state("srv", "s-3", NOW + VERIFIER_TTL_SECONDS + 1).await?, "expired");
    alice.save_authorization_state("srv", "s-4", NOW).await?;
    alice.invalidate_credentials("srv", CredentialScope::Verifier).await?;
    assert!(!alice.consume_authorization_state("srv", "s-4", NOW).await?, "it goes with the verifier");
    Ok(())
}

pub async fn touch_writes_once_per_interval_and_the_summary_counts_without_ids<B: Backend>(db: Arc<B>) -> Outcome {
    let (alice, bob) = (user(&db, ALICE)?, user(&db, BOB)?);
    assert!(alice.touch(NOW - 10 * DAY, TOUCH_INTERVAL_SECONDS).await?, "the first call writes");
    assert!(!alice.touch(NOW - 10 * DAY + 60, TOUCH_INTERVAL_SECONDS).await?, "within the hour: no write");
    assert!(alice.touch(NOW - 10 * DAY + 3600, TOUCH_INTERVAL_SECONDS).await?);
    assert!(bob.touch(NOW - 2 * DAY, TOUCH_INTERVAL_SECONDS).await?);
    assert!(alice.touch(NOW - 100, TOUCH_INTERVAL_SECONDS).await?);
    user(&db, CAROL)?.save_tokens("srv", &json("{}")).await?; // data, no activity row
    let summary = ops::activity_summary(&*db, NOW).await?;
    assert_eq!(summary, ActivitySummary { users: 3, active_1d: 1, active_7d: 2, active_30d: 2, untracked: 1 });
    Ok(())
}

pub async fn purge_removes_inactive_users_only_and_adopts_untracked_ones<B: Backend>(db: Arc<B>) -> Outcome {
    let (alice, bob, carol) = (user(&db, ALICE)?, user(&db, BOB)?, user(&db, CAROL)?);
    for s in [&alice, &bob, &carol] {
        s.save_tokens("srv", &json("{}")).await?;
        s.save_client_information("srv", &json("{}")).await?;
        s.save_server_config("srv", &json("{}"), NOW).await?;
        s.save_discovery_state("srv", &json("{}"), NOW).await?;
    }
    alice.touch(NOW - 91 * DAY, 1).await?; // inactive for 91 days
    bob.touch(NOW - 89 * DAY, 1).await?; // inside the window; carol has data and no activity
    let dry = ops::purge_inactive_users(&*db, 90, true, NOW).await?;
    assert_eq!(dry, PurgeReport { users: 1, rows: 4, adopted: 1, dry_run: true });
    assert!(alice.tokens("srv").await?.is_some(), "a dry run changes nothing");
    assert_eq!(ops::activity_summary(&*db, NOW).await?.untracked, 1, "not even the adoption");
    let done = ops::purge_inactive_users(&*db, 90, false, NOW).await?;
    assert_eq!(done, PurgeReport { users: 1, rows: 4, adopted: 1, dry_run: false });
    assert!(alice.servers().await?.is_empty(), "alice is gone, in every table");
    assert!(bob.tokens("srv").await?.is_some() && carol.tokens("srv").await?.is_some());
    let later = ops::purge_inactive_users(&*db, 90, false, NOW + 91 * DAY).await?;
    assert_eq!((later.users, later.adopted), (2, 0), "carol, adopted at NOW, goes 90 days later with bob");
    assert_eq!(ops::activity_summary(&*db, NOW).await?.users, 0);
    Ok(())
}

pub async fn forgetting_a_user_removes_their_activity_and_revokes_on_request<B: Backend>(db: Arc<B>) -> Outcome {
    let alice = user(&db, ALICE)?;
    alice.touch(NOW, TOUCH_INTERVAL_SECONDS).await?;
    alice.save_tokens("srv", &json("{}")).await?;
    alice.create_transfer_code(600, NOW, NOW).await?;
    assert_eq!(alice.delete_all(None).await?, 3, "tokens, the code and the activity row");
    assert!(alice.touch(NOW + 1, TOUCH_INTERVAL_SECONDS).await?, "the next touch writes");
    let (code, _) = alice.create_transfer_code(600, NOW + 1, NOW + 1).await?;
    alice.delete_all(Some(NOW + 2)).await?;
    let redeemed = ops::redeem_transfer_code(&*db, &code, None, None, NOW + 3).await;
    assert_eq!(code_of(redeemed), Err("ERR_HOOT_TRANSFER_CODE"), "forgotten and revoked");
    assert_eq!(crate::revocation::revoked_before(ALICE).map(|t| t >= NOW + 3), Some(true));
    Ok(())
}

fn code_of<T: std::fmt::Debug>(result: Result<T, HootError>) -> Result<T, &'static str> {
    code(result)
}

pub async fn a_transfer_code_is_typable_single_use_and_expires<B: Backend>(db: Arc<B>) -> Outcome {
    let alice = user(&db, ALICE)?;
    let (made, expires_at) = alice.create_transfer_code(600, NOW, NOW).await?;
    assert_eq!(expires_at, NOW + 600);
    assert_eq!(made.len(), 14);
    assert!(made.split('-').all(|g| g.len() == 4 && g.bytes().all(|b| identity::CODE_ALPHABET.contains(&b))));
    let typed = made.to_lowercase().replace('-', " ");
    let redeemed = ops::redeem_transfer_code(&*db, &typed, None, None, NOW + 1).await?;
    assert_eq!(redeemed, identity::Redeemed { user_id: ALICE.into(), moved: None });
    assert_eq!(code(ops::redeem_transfer_code(&*db, &made, None, None, NOW + 2).await), Err("ERR_HOOT_TRANSFER_CODE"));
    let (late, _) = alice.create_transfer_code(600, NOW, NOW).await?;
    let expired = ops::redeem_transfer_code(&*db, &late, None, None, NOW + 600).await;
    assert_eq!(code(expired), Err("ERR_HOOT_TRANSFER_CODE"), "expired");
    let (first, _) = alice.create_transfer_code(600, NOW, NOW).await?;
    let (second, _) = alice.create_transfer_code(600, NOW, NOW).await?;
    let replaced = ops::redeem_transfer_code(&*db, &first, None, None, NOW).await;
    assert_eq!(code(replaced), Err("ERR_HOOT_TRANSFER_CODE"), "a new code replaces the old");
    assert_eq!(ops::redeem_transfer_code(&*db, &second, None, None, NOW).await?.user_id, ALICE);
    Ok(())
}

pub async fn failed_redemptions_are_throttled_per_window_and_per_source<B: Backend>(db: Arc<B>) -> Outcome {
    let alice = user(&db, ALICE)?;
    let window = NOW - NOW % identity::FAILURE_WINDOW_SECONDS;
    let (good, _) = alice.create_transfer_code(600, window, window).await?;
    for _ in 0..identity::MAX_FAILURES_PER_SOURCE {
        let wrong = ops::redeem_transfer_code(&*db, "2222-2222-2222", None, Some("10.0.0.1"), window + 1).await;
        assert_eq!(code(wrong), Err("ERR_HOOT_TRANSFER_CODE"));
    }
    let guesser = ops::redeem_transfer_code(&*db, &good, None, Some("10.0.0.1"), window + 2).await;
    assert_eq!(code(guesser), Err("ERR_HOOT_TRANSFER_THROTTLED"), "that source is refused, even the right code");
    let other = ops::redeem_transfer_code(&*db, &good, None, Some("10.0.0.2"), window + 2).await?;
    assert_eq!(other.user_id, ALICE, "another source is not, and the refusal did not use the code up");
    for _ in identity::MAX_FAILURES_PER_SOURCE..identity::MAX_FAILURES_PER_WINDOW {
        let wrong = ops::redeem_transfer_code(&*db, "2222-2222-2222", None, None, window + 3).await;
        assert_eq!(code(wrong), Err("ERR_HOOT_TRANSFER_CODE"));
    }
    let (fresh, _) = alice.create_transfer_code(600, window, window + 4).await?;
    let refused = ops::redeem_transfer_code(&*db, &fresh, None, None, window + 100).await;
    assert!(refused.as_ref().is_err_and(|e| e.to_string().contains("500 seconds")), "{refused:?}");
    let next = window + identity::FAILURE_WINDOW_SECONDS;
    assert_eq!(ops::redeem_transfer_code(&*db, &fresh, None, None, next).await?.user_id, ALICE, "next window");
    Ok(())
}

pub async fn a_revocation_ends_the_codes_made_before_it<B: Backend>(db: Arc<B>) -> Outcome {
    let carol = user(&db, CAROL)?;
    let (stolen, _) = carol.create_transfer_code(600, NOW - 60, NOW).await?;
    assert_eq!(ops::revoke_user_tokens(&*db, CAROL, NOW).await?, NOW + 1);
    assert_eq!(
        code(ops::redeem_transfer_code(&*db, &stolen, None, None, NOW + 1).await),
        Err("ERR_HOOT_TRANSFER_CODE")
    );
    // A code made by a token issued in the revocation's second (dated at its end) still works.
    let (fresh, _) = carol.create_transfer_code(600, NOW + 1, NOW).await?;
    assert_eq!(ops::redeem_transfer_code(&*db, &fresh, None, None, NOW + 1).await?.user_id, CAROL);
    Ok(())
}

pub async fn move_user_data_merges_by_the_chosen_rule_and_empties_the_source<B: Backend>(db: Arc<B>) -> Outcome {
    let (alice, bob) = (user(&db, ALICE)?, user(&db, BOB)?);
    alice.save_tokens("shared", &json(r#"{"who":"alice"}"#)).await?;
    alice.save_tokens("mine", &json(r#"{"who":"alice"}"#)).await?;
    alice.link_account("github|1", NOW).await?;
    bob.save_tokens("shared", &json(r#"{"who":"bob"}"#)).await?;
    let refused = ops::move_user_data(&*db, ALICE, BOB, OnConflict::Fail).await;
    assert_eq!(code(refused), Err("ERR_INVALID_ARG_VALUE"));
    assert!(alice.tokens("mine").await?.is_some(), "a refused move changes nothing");
    let report = ops::move_user_data(&*db, ALICE, BOB, OnConflict::KeepTarget).await?;
    assert_eq!(report, MoveReport { moved: 2, replaced: 0, dropped: 1, conflicts: 1 });
    assert_eq!(bob.tokens("shared").await?.as_deref(), Some(r#"{"who":"bob"}"#));
    assert_eq!(bob.tokens("mine").await?.as_deref(), Some(r#"{"who":"alice"}"#));
    assert!(alice.servers().await?.is_empty(), "the source is empty");
    assert_eq!(ops::user_id_for_account(&*db, "github|1").await?.as_deref(), Some(BOB), "the link moved, re-MACed");
    bob.save_client_information("x", &json(r#"{"client_id":"B"}"#)).await?;
    alice.save_client_information("x", &json(r#"{"client_id":"A"}"#)).await?;
    alice.save_tokens("x", &json(r#"{"for":"A"}"#)).await?;
    let took = ops::move_user_data(&*db, ALICE, BOB, OnConflict::TakeSource).await?;
    assert_eq!((took.conflicts, took.replaced, took.moved), (1, 1, 2), "a server's rows move together");
    assert_eq!(bob.client_information("x").await?.as_deref(), Some(r#"{"client_id":"A"}"#));
    let same = ops::move_user_data(&*db, BOB, &BOB.to_uppercase(), OnConflict::Fail).await;
    assert_eq!(code(same), Err("ERR_INVALID_ARG_VALUE"));
    Ok(())
}

pub async fn a_legacy_users_code_moves_its_data_into_the_redeeming_user<B: Backend>(db: Arc<B>) -> Outcome {
    let legacy = user(&db, "legacy-user-1700000000000")?;
    for server in ["s0", "s1"] {
        legacy.save_tokens(server, &json("{}")).await?;
        legacy.save_client_information(server, &json("{}")).await?;
    }
    let (_, made, _) =
        ops::legacy_transfer_code(&db, 600, NOW).await?.ok_or_else(|| HootError::Internal("no legacy user".into()))?;
    let without = ops::redeem_transfer_code(&*db, &made, None, None, NOW).await;
    assert_eq!(code(without), Err("ERR_INVALID_ARG_VALUE"), "a legacy code needs the redeeming user");
    let itself = ops::redeem_transfer_code(&*db, &made, Some(legacy.user_id()), None, NOW).await;
    assert_eq!(code(itself), Err("ERR_INVALID_USER_ID"), "never into itself");
    ops::purge_inactive_users(&*db, 1, false, NOW).await?;
    ops::purge_inactive_users(&*db, 1, false, NOW + 10 * DAY).await?;
    assert_eq!(legacy.servers().await?.len(), 2, "legacy data is never purged");
    let redeemed = ops::redeem_transfer_code(&*db, &made, Some(ALICE), None, NOW).await?;
    assert_eq!(redeemed.user_id, ALICE, "the code was still good after the refusals above");
    assert_eq!(redeemed.moved.map(|m| m.moved), Some(4));
    assert_eq!(user(&db, ALICE)?.servers().await?, ["s0", "s1"]);
    assert_eq!(ops::legacy_transfer_code(&db, 600, NOW).await?, None, "nothing left to adopt");
    Ok(())
}

pub async fn an_account_belongs_to_one_user<B: Backend>(db: Arc<B>) -> Outcome {
    let (alice, bob) = (user(&db, ALICE)?, user(&db, BOB)?);
    alice.link_account("google|42", NOW).await?;
    alice.link_account("google|42", NOW + 1).await?; // again: nothing changes
    alice.link_account("github|7", NOW).await?;
    assert_eq!(code(bob.link_account("google|42", NOW).await), Err("ERR_INVALID_ARG_VALUE"));
    assert_eq!(ops::user_id_for_account(&*db, "google|42").await?.as_deref(), Some(ALICE));
    assert!(!bob.unlink_account("google|42").await?, "not bob's to unlink");
    assert!(alice.unlink_account("google|42").await?);
    assert_eq!(ops::user_id_for_account(&*db, "google|42").await?, None);
    bob.link_account("google|42", NOW).await?;
    assert_eq!(alice.delete_all(None).await?, 1, "forgetting alice unlinks github|7");
    assert_eq!(ops::user_id_for_account(&*db, "github|7").await?, None);
    Ok(())
}

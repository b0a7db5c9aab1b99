//! One user's store over any backend: `OAuthStore`'s methods, each rule written here once. Every
//! primitive it calls binds the user id it was made with, so no call can forget the tenant.

#![warn(missing_docs)]

use std::sync::Arc;

use super::backend::{Backend, NewCode, Slot};
use super::identity::{account_mac, account_verifies, code_hash, code_row_mac, code_symbols, new_code};
use super::{
    check_id, is_store_user_id, CredentialScope, JsonObject, USER_ID_FORMS, USER_TABLES, VERIFIER_TTL_SECONDS,
};
use crate::error::HootError;
use crate::metrics::{timed, CounterSite};
use crate::{events, sealing, store_timing};

/// The versions a conditional invalidation expects (`None`: whatever is stored goes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expected {
    /// The tokens' version.
    pub tokens: Option<i64>,
    /// The client registration's version.
    pub client_information: Option<i64>,
}

/// One user's view of one database.
#[derive(Debug)]
pub struct UserStore<B: ?Sized> {
    backend: Arc<B>,
    user_id: String,
}

impl<B: ?Sized> Clone for UserStore<B> {
    fn clone(&self) -> Self {
        UserStore { backend: Arc::clone(&self.backend), user_id: self.user_id.clone() }
    }
}

impl<B: Backend> UserStore<B> {
    /// The store of `user_id` (checked; a UUID is kept lower-case whatever case it came in, so
    /// one browser secret is one tenant) on `backend`.
    pub fn new(backend: Arc<B>, user_id: &str) -> Result<Self, HootError> {
        if !is_store_user_id(user_id) {
            return Err(HootError::invalid_user_id(user_id, USER_ID_FORMS));
        }
        Ok(UserStore { backend, user_id: user_id.to_ascii_lowercase() })
    }

    /// The user every call is scoped to.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The database.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    /// The value in `slot` for `server_id` (opened when sealed); with `since`, only if written at
    /// or after it.
    async fn read(&self, slot: Slot, server_id: &str, since: Option<i64>) -> Result<Option<String>, HootError> {
        crate::test_panic(server_id);
        check_id("serverId", server_id)?;
        let Some(text) = self.backend.read(&self.user_id, slot, server_id, since).await? else { return Ok(None) };
        match sealing::sealed_with(&text) {
            None => Ok(Some(text)),
            Some(key_id) => {
                let keys = self.backend.opening_keys(key_id).await?;
                keys.open(slot.table(), &self.user_id, server_id, &text).map(Some)
            }
        }
    }

    /// The value in a versioned slot for `server_id` (opened when sealed) and its version.
    async fn read_versioned(&self, slot: Slot, server_id: &str) -> Result<Option<(String, i64)>, HootError> {
        crate::test_panic(server_id);
        check_id("serverId", server_id)?;
        let Some((text, version)) = self.backend.read_versioned(&self.user_id, slot, server_id).await? else {
            return Ok(None);
        };
        match sealing::sealed_with(&text) {
            None => Ok(Some((text, version))),
            Some(key_id) => {
                let keys = self.backend.opening_keys(key_id).await?;
                Ok(Some((keys.open(slot.table(), &self.user_id, server_id, &text)?, version)))
            }
        }
    }

    async fn write(&self, slot: Slot, server_id: &str, text: &str, now: i64) -> Result<(), HootError> {
        check_id("serverId", server_id)?;
        self.backend.write(&self.user_id, slot, server_id, text, now).await
    }

    /// The OAuth client registration (JSON text), if any.
    pub async fn client_information(&self, server_id: &str) -> Result<Option<String>, HootError> {
        timed(store_timing!("clientInformation", self.backend.kind()), async {
            self.read(Slot::ClientInformation, server_id, None).await
        })
        .await
    }

    /// The OAuth client registration (JSON text) and its version, if any: what
    /// `invalidate_credentials_if` compares.
    pub async fn client_information_versioned(&self, server_id: &str) -> Result<Option<(String, i64)>, HootError> {
        timed(store_timing!("clientInformationVersioned", self.backend.kind()), async {
            self.read_versioned(Slot::ClientInformation, server_id).await
        })
        .await
    }

    /// Saves the OAuth client registration for `server_id`, replacing any.
    pub async fn save_client_information(&self, server_id: &str, info: &JsonObject) -> Result<(), HootError> {
        timed(store_timing!("saveClientInformation", self.backend.kind()), async {
            self.write(Slot::ClientInformation, server_id, info.as_str(), 0).await
        })
        .await
    }

    /// The OAuth tokens (JSON text), if any.
    pub async fn tokens(&self, server_id: &str) -> Result<Option<String>, HootError> {
        timed(store_timing!("tokens", self.backend.kind()), async { self.read(Slot::Tokens, server_id, None).await })
            .await
    }

    /// The OAuth tokens (JSON text) and their version, if any: what `invalidate_credentials_if`
    /// compares.
    pub async fn tokens_versioned(&self, server_id: &str) -> Result<Option<(String, i64)>, HootError> {
        timed(store_timing!("tokensVersioned", self.backend.kind()), async {
            self.read_versioned(Slot::Tokens, server_id).await
        })
        .await
    }

    /// Saves the OAuth tokens for `server_id`, replacing any.
    pub async fn save_tokens(&self, server_id: &str, tokens: &JsonObject) -> Result<(), HootError> {
        timed(store_timing!("saveTokens", self.backend.kind()), async {
            // Undated: the table has no `created_at`.
            self.write(Slot::Tokens, server_id, tokens.as_str(), 0).await
        })
        .await
    }

    /// The PKCE verifier saved for `server_id`, unless it is older than ten minutes at `now`.
    pub async fn code_verifier(&self, server_id: &str, now: i64) -> Result<Option<String>, HootError> {
        timed(store_timing!("codeVerifier", self.backend.kind()), async {
            self.read(Slot::Verifier, server_id, Some(now - VERIFIER_TTL_SECONDS)).await
        })
        .await
    }

    /// Saves the PKCE verifier for `server_id` at `now`, replacing any.
    pub async fn save_code_verifier(&self, server_id: &str, verifier: &str, now: i64) -> Result<(), HootError> {
        timed(store_timing!("saveCodeVerifier", self.backend.kind()), async {
            check_id("serverId", server_id)?;
            check_id("verifier", verifier)?;
            if verifier.starts_with(sealing::PREFIX) {
                return Err(HootError::arg_value("verifier", "must not look like a sealed value (hoot-sealed:1:...)"));
            }
            self.write(Slot::Verifier, server_id, verifier, now).await
        })
        .await
    }

    /// The MCP SDK's discovery state (JSON text) saved for `server_id`, if any.
    pub async fn discovery_state(&self, server_id: &str) -> Result<Option<String>, HootError> {
        timed(store_timing!("discoveryState", self.backend.kind()), async {
            self.read(Slot::Discovery, server_id, None).await
        })
        .await
    }

    /// Saves the MCP SDK's discovery state for `server_id` at `now`, replacing any. It lasts
    /// until invalidated (`'discovery'` or `'all'`): it describes the server, not a flow.
    pub async fn save_discovery_state(&self, server_id: &str, state: &JsonObject, now: i64) -> Result<(), HootError> {
        timed(store_timing!("saveDiscoveryState", self.backend.kind()), async {
            self.write(Slot::Discovery, server_id, state.as_str(), now).await
        })
        .await
    }

    /// Saves the OAuth `state` parameter of the authorization starting now for `server_id`,
    /// replacing any: one authorization per user and server at a time, as with the verifier.
    pub async fn save_authorization_state(&self, server_id: &str, state: &str, now: i64) -> Result<(), HootError> {
        timed(store_timing!("saveAuthorizationState", self.backend.kind()), async {
            check_id("serverId", server_id)?;
            check_id("state", state)?;
            self.write(Slot::AuthorizationState, server_id, state, now).await
        })
        .await
    }

    /// Whether `state` is the one saved for `server_id` within the last ten minutes at `now`. The
    /// saved state is removed by the check, whatever its outcome (single use, even across
    /// processes: the delete and the read are one statement), and compared in constant time.
    pub async fn consume_authorization_state(&self, server_id: &str, state: &str, now: i64) -> Result<bool, HootError> {
        timed(store_timing!("consumeAuthorizationState", self.backend.kind()), async {
            check_id("serverId", server_id)?;
            let saved = self.backend.take(&self.user_id, Slot::AuthorizationState, server_id).await?;
            Ok(saved.is_some_and(|(saved, created_at)| {
                let fresh = created_at >= now - VERIFIER_TTL_SECONDS && created_at <= now + 60;
                let same =
                    aws_lc_rs::constant_time::verify_slices_are_equal(saved.as_bytes(), state.as_bytes()).is_ok();
                same & fresh
            }))
        })
        .await
    }

    /// Removes this user's credentials for `server_id` in the given scope, in one transaction.
    pub async fn invalidate_credentials(&self, server_id: &str, scope: CredentialScope) -> Result<u64, HootError> {
        self.invalidate_credentials_if(server_id, scope, Expected::default()).await
    }

    /// `invalidate_credentials`, except that the tokens (and the client registration) go only
    /// while they are still the version `expected` names: a provider passes the versions it read,
    /// so credentials another holder saved since survive. In one transaction.
    pub async fn invalidate_credentials_if(
        &self,
        server_id: &str,
        scope: CredentialScope,
        expected: Expected,
    ) -> Result<u64, HootError> {
        timed(store_timing!("invalidateCredentials", self.backend.kind()), async {
            check_id("serverId", server_id)?;
            let versions: Vec<(&'static str, i64)> = [
                (Slot::Tokens.table(), expected.tokens),
                (Slot::ClientInformation.table(), expected.client_information),
            ]
            .into_iter()
            .filter_map(|(table, version)| version.map(|v| (table, v)))
            .collect();
            self.backend.delete(&self.user_id, scope.tables(), Some(server_id), &versions).await
        })
        .await
    }

    /// Claims the refresh of this user's credential for `server_id` for `holder` (an id the
    /// caller made, unique to this attempt) for `lease_ms` from `now_ms`, unless another holder's
    /// claim is still live. Returns whether `holder` has it. A holder that dies keeps it only
    /// until the lease ends.
    pub async fn claim_refresh(
        &self,
        server_id: &str,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, HootError> {
        timed(store_timing!("claimRefresh", self.backend.kind()), async {
            check_id("serverId", server_id)?;
            check_id("holder", holder)?;
            if !(1..=super::MAX_REFRESH_LEASE_MS).contains(&lease_ms) {
                return Err(HootError::out_of_range(
                    "opts.leaseMs",
                    format!("must be from 1 to {}. Received {lease_ms}", super::MAX_REFRESH_LEASE_MS),
                ));
            }
            static CLAIMS: CounterSite<2> = CounterSite::new("refresh_claim", ("", ""), "outcome");
            let claimed =
                self.backend.claim_refresh(&self.user_id, server_id, holder, now_ms, now_ms + lease_ms).await?;
            match claimed {
                true => CLAIMS.get(0, "claimed").add(1),
                false => CLAIMS.get(1, "held_elsewhere").add(1),
            }
            Ok(claimed)
        })
        .await
    }

    /// Ends `holder`'s claim on the refresh for `server_id` (nothing if it has none).
    pub async fn release_refresh(&self, server_id: &str, holder: &str) -> Result<(), HootError> {
        timed(store_timing!("releaseRefresh", self.backend.kind()), async {
            check_id("serverId", server_id)?;
            check_id("holder", holder)?;
            self.backend.release_refresh(&self.user_id, server_id, holder).await
        })
        .await
    }

    /// The server config (JSON text), if any.
    pub async fn server_config(&self, server_id: &str) -> Result<Option<String>, HootError> {
        timed(store_timing!("serverConfig", self.backend.kind()), async {
            self.read(Slot::ServerConfig, server_id, None).await
        })
        .await
    }

    /// Saves the config of `server_id` (for reconnecting) at `now`, replacing any.
    pub async fn save_server_config(&self, server_id: &str, config: &JsonObject, now: i64) -> Result<(), HootError> {
        timed(store_timing!("saveServerConfig", self.backend.kind()), async {
            self.write(Slot::ServerConfig, server_id, config.as_str(), now).await
        })
        .await
    }

    /// Removes the config of `server_id`; returns the rows removed.
    pub async fn delete_server_config(&self, server_id: &str) -> Result<u64, HootError> {
        timed(store_timing!("deleteServerConfig", self.backend.kind()), async {
            check_id("serverId", server_id)?;
            self.backend.delete(&self.user_id, &["server_configs"], Some(server_id), &[]).await
        })
        .await
    }

    /// Server ids with any stored state for this user, sorted.
    pub async fn servers(&self) -> Result<Vec<String>, HootError> {
        timed(store_timing!("servers", self.backend.kind()), async { self.backend.servers(&self.user_id).await }).await
    }

    fn touch_key(&self) -> String {
        format!("{}\0{}", self.backend.place(), self.user_id)
    }

    /// Records that this user is active at `now`: at most one write per `interval` seconds per
    /// user and database in this process (the first call always writes). Returns whether it wrote.
    pub async fn touch(&self, now: i64, interval: i64) -> Result<bool, HootError> {
        let key = self.touch_key();
        if crate::touch::touched_recently(&key, now, interval) {
            return Ok(false);
        }
        // Timed only when it writes: the calls answered from memory are no store call.
        timed(store_timing!("touch", self.backend.kind()), self.backend.touch(&self.user_id, now)).await?;
        crate::touch::note_touched(key, now);
        Ok(true)
    }

    /// Forgets this user: every row in every per-user table and the activity row, in one
    /// transaction. With `revoke_at`, their tokens issued before then are revoked first (if the
    /// delete then fails, they are already refused: a revocation is not user data). Returns the
    /// rows removed.
    pub async fn delete_all(&self, revoke_at: Option<i64>) -> Result<u64, HootError> {
        timed(store_timing!("deleteAll", self.backend.kind()), async {
            if let Some(now) = revoke_at {
                super::ops::revoke_user_tokens(&*self.backend, &self.user_id, now).await?;
            }
            let tables: Vec<&str> = USER_TABLES.iter().copied().chain([super::tables::USERS_TABLE]).collect();
            let removed = self.backend.delete(&self.user_id, &tables, None, &[]).await?;
            crate::touch::forget_touched(&self.touch_key());
            events::emit("user_deleted", |e| {
                e.hashed("userHash", &self.user_id)
                    .set("rows", removed)
                    .set("revoked", revoke_at.is_some())
                    .set("backend", self.backend.kind().label());
            });
            Ok(removed)
        })
        .await
    }

    /// A one-time code for moving this user to another device, valid `ttl` seconds from `now`;
    /// it replaces any code this user had. Only MACs are stored (`code_hash`, `code_row_mac`).
    /// `derived_from` (see `identity::derived_from`) is when the credential it was made with was
    /// issued: a revocation after it ends the code. Returns the code and its expiry.
    pub async fn create_transfer_code(
        &self,
        ttl: i64,
        derived_from: i64,
        now: i64,
    ) -> Result<(String, i64), HootError> {
        timed(store_timing!("createTransferCode", self.backend.kind()), async {
            let code = new_code()?;
            let symbols =
                code_symbols(&code).ok_or_else(|| HootError::Internal("a new transfer code did not parse".into()))?;
            let secret = self.backend.store_secret().await?;
            let expires_at = now + ttl;
            let row = NewCode {
                hash: code_hash(&secret, &symbols),
                created_at: now,
                expires_at,
                derived_from,
                mac: code_row_mac(&secret, &symbols, &self.user_id, derived_from, expires_at),
            };
            self.backend.save_transfer_code(&self.user_id, row).await?;
            events::emit("transfer_code_created", |e| {
                e.hashed("userHash", &self.user_id)
                    .set("expiresAt", expires_at)
                    .set("backend", self.backend.kind().label());
            });
            Ok((code, expires_at))
        })
        .await
    }

    /// Links `account_id` (any identity provider's, opaque) to this user. One account belongs to
    /// one user: an account linked to another user is refused (unlink it there first). A row no
    /// server made (its MAC does not verify) counts as no link, and is replaced.
    pub async fn link_account(&self, account_id: &str, now: i64) -> Result<(), HootError> {
        timed(store_timing!("linkAccount", self.backend.kind()), async {
            check_id("accountId", account_id)?;
            let secret = self.backend.store_secret().await?;
            let mac = account_mac(&secret, account_id, &self.user_id);
            let genuine = |owner: &str, stored: Option<&str>| account_verifies(&secret, account_id, owner, stored);
            match self.backend.link_account(account_id, &self.user_id, &mac, now, &genuine).await? {
                true => {
                    events::emit("account_linked", |e| {
                        e.hashed("userHash", &self.user_id)
                            .hashed("accountHash", account_id)
                            .set("backend", self.backend.kind().label());
                    });
                    Ok(())
                }
                false => Err(HootError::arg_value(
                    "accountId",
                    "is already linked to another user: unlink it from that user first",
                )),
            }
        })
        .await
    }

    /// Unlinks `account_id` from this user; true if it was linked to them.
    pub async fn unlink_account(&self, account_id: &str) -> Result<bool, HootError> {
        timed(store_timing!("unlinkAccount", self.backend.kind()), async {
            check_id("accountId", account_id)?;
            let unlinked = self.backend.unlink_account(account_id, &self.user_id).await?;
            if unlinked {
                events::emit("account_unlinked", |e| {
                    e.hashed("userHash", &self.user_id)
                        .hashed("accountHash", account_id)
                        .set("backend", self.backend.kind().label());
                });
            }
            Ok(unlinked)
        })
        .await
    }
}

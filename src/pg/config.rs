//! A `postgres://` URL and the pool options, read into what tokio-postgres and deadpool take. The
//! URL is tokio-postgres's own syntax, with libpq's `sslmode` values it lacks (`verify-ca`,
//! `verify-full`) and `sslrootcert` taken out first and served by rustls here.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};

use crate::error::HootError;

/// Connections a pool keeps at most, unless `poolSize` says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 10;
/// How long opening a connection (or waiting for a free one) may take, unless `connectTimeoutMs`
/// says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement may run on the server, unless `statementTimeoutMs` says otherwise.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a process reads the key set's version and new revocations, unless `pollIntervalMs`
/// says otherwise: a rotation or a revocation made by another replica takes effect within it.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Whether `location` names a PostgreSQL database (`postgres://` or `postgresql://`) rather than a
/// SQLite file.
pub fn is_postgres_url(location: &str) -> bool {
    let lower = location.get(..13).unwrap_or(location).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// The options of `openDatabase(url, opts)` as the caller gave them (`None`: the default).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PgOptions {
    /// `poolSize`.
    pub pool_size: Option<f64>,
    /// `connectTimeoutMs`.
    pub connect_timeout_ms: Option<f64>,
    /// `statementTimeoutMs`.
    pub statement_timeout_ms: Option<f64>,
    /// `pollIntervalMs`.
    pub poll_interval_ms: Option<f64>,
}

/// The checked options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgSettings {
    /// Connections at most.
    pub pool_size: usize,
    /// Opening a connection, or waiting for one from the pool.
    pub connect_timeout: Duration,
    /// One statement on the server.
    pub statement_timeout: Duration,
    /// Reading the key set's version and new revocations.
    pub poll_interval: Duration,
}

impl PgSettings {
    /// How long a call may take in all before it fails: a connection, then its statements. The
    /// client-side bound, for a server that stops answering without closing the connection.
    pub fn call_timeout(&self) -> Duration {
        self.connect_timeout + self.statement_timeout
    }
}

fn whole(name: &str, value: Option<f64>, min: f64, max: f64, default: u64) -> Result<u64, HootError> {
    match value {
        None => Ok(default),
        Some(v) if v.fract() == 0.0 && v >= min && v <= max => Ok(v as u64),
        Some(_) => Err(HootError::out_of_range(name, format!("must be a whole number from {min} to {max}"))),
    }
}

impl PgOptions {
    /// The options with their defaults, each checked against its range.
    pub fn settings(&self) -> Result<PgSettings, HootError> {
        let ms = |d: Duration| d.as_millis() as u64;
        Ok(PgSettings {
            pool_size: whole("opts.poolSize", self.pool_size, 1.0, 1000.0, DEFAULT_POOL_SIZE as u64)? as usize,
            connect_timeout: Duration::from_millis(whole(
                "opts.connectTimeoutMs",
                self.connect_timeout_ms,
                1.0,
                600_000.0,
                ms(DEFAULT_CONNECT_TIMEOUT),
            )?),
            statement_timeout: Duration::from_millis(whole(
                "opts.statementTimeoutMs",
                self.statement_timeout_ms,
                1.0,
                3_600_000.0,
                ms(DEFAULT_STATEMENT_TIMEOUT),
            )?),
            poll_interval: Duration::from_millis(whole(
                "opts.pollIntervalMs",
                self.poll_interval_ms,
                10.0,
                3_600_000.0,
                ms(DEFAULT_POLL_INTERVAL),
            )?),
        })
    }
}

/// How the connection is protected, as libpq's `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// `disable`: plain TCP.
    Disable,
    /// `prefer` (libpq's default): TLS when the server offers it, unverified.
    Prefer,
    /// `require`: TLS or nothing, the certificate unverified (libpq's meaning).
    Require,
    /// `verify-ca`: TLS with a certificate that chains to a trusted root, for any host name.
    VerifyCa,
    /// `verify-full`: TLS with a trusted certificate for the host connected to.
    VerifyFull,
}

/// A parsed URL: the driver's config, the TLS mode, and where the trusted roots come from.
#[derive(Debug, Clone)]
pub struct Target {
    /// tokio-postgres's config, `sslmode` set from `tls`.
    pub config: tokio_postgres::Config,
    /// The TLS mode.
    pub tls: Tls,
    /// `sslrootcert`: a PEM file of trusted roots (else the Mozilla roots webpki-roots carries).
    pub root_cert: Option<String>,
}

impl Target {
    /// `PostgreSQL at host:port/db`, for messages: never the user name or the password.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = self.config.get_ports().get(i).or(self.config.get_ports().first()).copied().unwrap_or(5432);
                match host {
                    Host::Tcp(name) => format!("{name}:{port}"),
                    #[cfg(unix)]
                    Host::Unix(path) => format!("{}:{port}", path.display()),
                }
            })
            .collect();
        let hosts = if hosts.is_empty() { "localhost:5432".to_string() } else { hosts.join(",") };
        format!("PostgreSQL at {hosts}/{}", self.config.get_dbname().unwrap_or("(default database)"))
    }
}

fn bad_url(reason: impl Into<String>) -> HootError {
    HootError::arg_value("url", reason)
}

/// Reads a `postgres://` URL. The message of a bad one never repeats it (it may hold a password).
pub fn parse_url(url: &str) -> Result<Target, HootError> {
    if !is_postgres_url(url) {
        return Err(bad_url("must start with postgres:// or postgresql://"));
    }
    // The query starts at the first `?` after the user info: a password may hold a `?` of its own
    // (tokio-postgres reads the user info up to its last `@`), and taking that one for the query
    // would leave the real `sslmode` unread.
    let authority = url.find("://").map_or(0, |i| i + 3);
    let after_user = url[authority..].rfind('@').map_or(authority, |i| authority + i + 1);
    let (base, query) = match url[after_user..].find('?') {
        Some(i) => (&url[..after_user + i], &url[after_user + i + 1..]),
        None => (url, ""),
    };
    let mut tls = Tls::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                tls = match value {
                    "disable" => Tls::Disable,
                    "allow" | "prefer" => Tls::Prefer,
                    "require" => Tls::Require,
                    "verify-ca" => Tls::VerifyCa,
                    "verify-full" => Tls::VerifyFull,
                    _ => {
                        return Err(bad_url(
                            "has an unknown sslmode (use disable, prefer, require, verify-ca or verify-full)",
                        ))
                    }
                }
            }
            "sslrootcert" => root_cert = Some(percent_decoded(value)?),
            _ => kept.push(pair),
        }
    }
    // libpq: `require` with a root certificate checks the chain, as `verify-ca`.
    if tls == Tls::Require && root_cert.is_some() {
        tls = Tls::VerifyCa;
    }
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    let mut config = tokio_postgres::Config::from_str(&rest)
        .map_err(|e| bad_url(format!("is not a PostgreSQL connection URL ({})", url_problem(&e))))?;
    config.ssl_mode(match tls {
        Tls::Disable => SslMode::Disable,
        Tls::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    Ok(Target { config, tls, root_cert })
}

/// tokio-postgres's reason, which names the option but never its value.
fn url_problem(e: &tokio_postgres::Error) -> String {
    let text = e.to_string();
    text.strip_prefix("invalid connection string: ").unwrap_or(&text).to_string()
}

fn percent_decoded(value: &str) -> Result<String, HootError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| bad_url("has a bad %-escape in sslrootcert"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad_url("has an sslrootcert that is not UTF-8"))
}

/// Accepts any certificate (libpq's `prefer` and `require`), but still checks the handshake's
/// signatures, so the session is encrypted to whoever holds the certificate's key.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must reach a trusted root; the name in the certificate is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(TlsError::InvalidCertificate(CertificateError::NotValidForName))
            | Err(TlsError::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn roots(root_cert: Option<&str>) -> Result<RootCertStore, HootError> {
    let mut store = RootCertStore::empty();
    match root_cert {
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let unreadable = |e: &dyn std::fmt::Display| {
                HootError::Db(format!("Cannot read sslrootcert {path}: {e} (it must be a PEM file of CA certificates)"))
            };
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))?;
            for cert in certs {
                store.add(cert.map_err(|e| unreadable(&e))?).map_err(|e| unreadable(&e))?;
            }
            if store.is_empty() {
                return Err(unreadable(&"no certificate in it"));
            }
        }
    }
    Ok(store)
}

/// The rustls client for `target`'s TLS mode, on aws-lc-rs.
pub fn tls_connector(target: &Target) -> Result<tokio_postgres_rustls::MakeRustlsConnect, HootError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| HootError::Internal(format!("TLS set-up failed: {e}")))?;
    let verified = |store: RootCertStore| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider))
            .build()
            .map_err(|e| HootError::Db(format!("Cannot use the trusted roots for PostgreSQL's TLS: {e}")))
    };
    let config = match target.tls {
        Tls::Disable | Tls::Prefer | Tls::Require => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(Unverified(provider))).with_no_client_auth()
        }
        Tls::VerifyCa => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(verified(roots(target.root_cert.as_deref())?)?)))
            .with_no_client_auth(),
        Tls::VerifyFull => {
            builder.with_webpki_verifier(verified(roots(target.root_cert.as_deref())?)?).with_no_client_auth()
        }
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_read_with_libpq_sslmodes_and_described_without_its_credentials() -> Result<(), HootError> {
        let target = parse_url("postgres://alice:s3cret@db.example:6543/hoot?sslmode=verify-full&application_name=x")?;
        assert_eq!(target.tls, Tls::VerifyFull);
        assert_eq!(target.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(target.config.get_application_name(), Some("x"));
        let shown = target.describe();
        assert_eq!(shown, "PostgreSQL at db.example:6543/hoot");
        assert!(!shown.contains("s3cret") && !shown.contains("alice"));
        assert_eq!(parse_url("postgresql://h/d")?.tls, Tls::Prefer);
        assert_eq!(parse_url("postgres://h/d?sslmode=disable")?.tls, Tls::Disable);
        let rooted = parse_url("postgres://h/d?sslmode=verify-ca&sslrootcert=%2Ftmp%2Fca.pem")?;
        assert_eq!((rooted.tls, rooted.root_cert.as_deref()), (Tls::VerifyCa, Some("/tmp/ca.pem")));
        // A `?` in the password is not the query: the sslmode after it is still read.
        let tricky = parse_url("postgres://u:p?sslmode=disable@h/d?sslmode=verify-full")?;
        assert_eq!(tricky.tls, Tls::VerifyFull);
        assert_eq!(tricky.config.get_password(), Some(&b"p?sslmode=disable"[..]));
        assert_eq!(parse_url("postgres://h/d?sslmode=require&sslrootcert=ca.pem")?.tls, Tls::VerifyCa, "as libpq");
        Ok(())
    }

    #[test]
    fn a_bad_url_or_option_is_refused_without_repeating_the_url() {
        for bad in ["mysql://h/d", "postgres://u:pw@h/d?sslmode=sometimes", "postgres://u:pw@h/d?nonsense=1"] {
            let e = parse_url(bad).err().map(|e| (e.code(), e.to_string()));
            let (code, message) = e.unwrap_or_default();
            assert_eq!(code, "ERR_INVALID_ARG_VALUE", "{bad}");
            assert!(!message.contains("pw"), "{message}");
        }
        assert!(is_postgres_url("POSTGRES://x") && !is_postgres_url("/tmp/postgres://x") && !is_postgres_url(""));
        let too_big = PgOptions { pool_size: Some(0.0), ..PgOptions::default() }.settings();
        assert_eq!(too_big.err().map(|e| e.code()), Some("ERR_INVALID_ARG_VALUE"));
        let defaults = PgOptions::default().settings().ok();
        assert_eq!(defaults.map(|s| (s.pool_size, s.call_timeout())), Some((10, Duration::from_secs(15))));
    }
}

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
///
/// The URL is split by a WHATWG URL parser (the `url` crate), not by hand nor by tokio-postgres's
/// own parser, which both take the user info up to the last `@` of the whole URL: an `@` later in
/// the query (`application_name=hoot@prod`) then swallowed the query, and with it `sslmode`. Here
/// the user info ends where the authority does, so a `?`, `@`, `/` or `#` in a password must be
/// %-encoded (as in any URL); a URL that does not parse is refused rather than guessed at.
pub fn parse_url(url: &str) -> Result<Target, HootError> {
    if !is_postgres_url(url) {
        return Err(bad_url("must start with postgres:// or postgresql://"));
    }
    let parsed = url::Url::parse(url).map_err(|e| {
        bad_url(format!("is not a valid URL ({e}; %-encode any ?, @, /, # or : in the user name or password)"))
    })?;
    if parsed.fragment().is_some() {
        return Err(bad_url("has a #fragment (%-encode a # in the password as %23)"));
    }
    // Each setting once, the URL's parts first and the query's after, replacing them (as libpq:
    // `?host=/run/postgresql` or `?port=` win over the authority's). tokio-postgres then reads them
    // as key='value' pairs: its own names and checks.
    let mut settings: Vec<(String, String)> = Vec::new();
    let mut set = |key: &str, value: String| match settings.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => settings.push((key.to_string(), value)),
    };
    let user = decoded_text(parsed.username(), "user name")?;
    if !user.is_empty() {
        set("user", user);
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(name)) => decoded_text(name, "host")?,
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => String::new(),
    };
    if !host.is_empty() {
        set("host", host); // libpq's list `h1,h2` is kept whole: tokio-postgres splits it
    }
    if let Some(port) = parsed.port() {
        set("port", port.to_string());
    }
    let dbname = decoded_text(parsed.path().strip_prefix('/').unwrap_or(parsed.path()), "database name")?;
    if !dbname.is_empty() {
        set("dbname", dbname);
    }
    let mut tls = Tls::Prefer;
    let mut root_cert = None;
    let mut query_password = false;
    // `+` is a plus, as in libpq, not a space as in an HTML form: no form decoding here.
    for pair in parsed.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decoded_text(key, "parameter name")?;
        let value = decoded_text(value, "parameter value")?;
        match key.as_str() {
            "sslmode" => {
                tls = match value.as_str() {
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
            "sslrootcert" => root_cert = Some(value),
            _ if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                return Err(bad_url("has a parameter name that is not a word"))
            }
            _ => {
                query_password |= key == "password";
                set(&key, value);
            }
        }
    }
    let text: String = settings
        .iter()
        .map(|(key, value)| format!("{key}='{}' ", value.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect();
    let mut config = tokio_postgres::Config::from_str(&text)
        .map_err(|e| bad_url(format!("is not a PostgreSQL connection URL ({})", url_problem(&e))))?;
    // The URL's password may be any bytes once decoded: set as bytes, not through the text.
    if let (Some(password), false) = (parsed.password(), query_password) {
        config.password(percent_encoding::percent_decode_str(password).collect::<Vec<u8>>());
    }
    // libpq: `require` with a root certificate checks the chain, as `verify-ca`.
    if tls == Tls::Require && root_cert.is_some() {
        tls = Tls::VerifyCa;
    }
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

/// A %-decoded part of the URL, which must be UTF-8.
fn decoded_text(value: &str, what: &str) -> Result<String, HootError> {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| bad_url(format!("has a {what} that is not UTF-8 once %-decoded")))
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

/// The most an `sslrootcert` file may hold: far more than any bundle of CA certificates (the
/// whole Mozilla set is about 200 KB as PEM), and little enough to read at once.
pub const MAX_ROOT_CERT_BYTES: u64 = 4 * 1024 * 1024;

/// Reads the `sslrootcert` file as key files are read: a regular file only (a FIFO or a device is
/// refused without blocking, `private_fs::open_regular`) of at most `MAX_ROOT_CERT_BYTES`.
fn read_root_cert(path: &str) -> Result<Vec<u8>, HootError> {
    use std::io::Read;
    let unreadable = |e: &dyn std::fmt::Display| {
        HootError::Db(format!("Cannot read sslrootcert {path}: {e} (it must be a PEM file of CA certificates)"))
    };
    let (file, meta) = crate::private_fs::open_regular(std::path::Path::new(path)).map_err(|e| unreadable(&e))?;
    if meta.len() > MAX_ROOT_CERT_BYTES {
        return Err(unreadable(&format!("it is larger than {MAX_ROOT_CERT_BYTES} bytes")));
    }
    let mut pem = Vec::new();
    // Bounded even if the file grows between the check and the read.
    file.take(MAX_ROOT_CERT_BYTES + 1).read_to_end(&mut pem).map_err(|e| unreadable(&e))?;
    if pem.len() as u64 > MAX_ROOT_CERT_BYTES {
        return Err(unreadable(&format!("it is larger than {MAX_ROOT_CERT_BYTES} bytes")));
    }
    Ok(pem)
}

fn roots(root_cert: Option<&str>) -> Result<RootCertStore, HootError> {
    let mut store = RootCertStore::empty();
    match root_cert {
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let unreadable = |e: &dyn std::fmt::Display| {
                HootError::Db(format!("Cannot read sslrootcert {path}: {e} (it must be a PEM file of CA certificates)"))
            };
            let pem = read_root_cert(path)?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                store.add(cert.map_err(|e| unreadable(&e))?).map_err(|e| unreadable(&e))?;
            }
            if store.is_empty() {
                return Err(unreadable(&"no certificate in it"));
            }
        }
    }
    Ok(store)
}

/// The rustls client for `target`'s TLS mode, on aws-lc-rs. Reads `sslrootcert`: call it off
/// the JS thread (`LazyTls` does, on the first connection).
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

/// The TLS client of a pool, made on its first connection rather than when the database is
/// opened: `openDatabase()` runs on the JS thread, and reading `sslrootcert` there would stall
/// every request behind a slow disk. A failure is not kept: the next connection reads the file
/// again, so fixing it needs no restart. Each connection attempt is bounded by the pool's
/// timeouts, so even a read that blocked would fail the call, not hang it.
#[derive(Clone)]
pub struct LazyTls {
    target: Arc<Target>,
    made: Arc<std::sync::Mutex<Option<tokio_postgres_rustls::MakeRustlsConnect>>>,
}

impl LazyTls {
    /// The connector for `target`, nothing read yet.
    pub fn new(target: &Target) -> Self {
        LazyTls { target: Arc::new(target.clone()), made: Arc::new(std::sync::Mutex::new(None)) }
    }
}

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for LazyTls
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Stream;
    type TlsConnect = <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::TlsConnect;
    type Error = HootError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, HootError> {
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        let connector = match made.as_mut() {
            Some(connector) => connector,
            None => made.insert(tls_connector(&self.target)?),
        };
        match tokio_postgres::tls::MakeTlsConnect::<S>::make_tls_connect(connector, domain) {
            Ok(connect) => Ok(connect),
            Err(never) => match never {},
        }
    }
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
        // Reserved characters in the password are %-encoded, as in any URL, and decoded once.
        let encoded = parse_url("postgres://u:p%3Fsslmode%3Ddisable%40x@h/d?sslmode=verify-full")?;
        assert_eq!(encoded.tls, Tls::VerifyFull);
        assert_eq!(encoded.config.get_password(), Some(&b"p?sslmode=disable@x"[..]));
        assert_eq!(encoded.config.get_user(), Some("u"));
        assert_eq!(parse_url("postgres://h/d?sslmode=require&sslrootcert=ca.pem")?.tls, Tls::VerifyCa, "as libpq");
        Ok(())
    }

    #[test]
    fn an_at_sign_or_question_mark_in_the_query_never_drops_sslmode() -> Result<(), HootError> {
        // tokio-postgres (and the split by hand before it) took the user info up to the last `@`
        // of the whole URL: this one lost its query, and `require` silently became `prefer`.
        let target = parse_url("postgres://h/d?application_name=hoot@prod&sslmode=require")?;
        assert_eq!(target.tls, Tls::Require);
        assert_eq!(target.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(target.config.get_application_name(), Some("hoot@prod"));
        let target = parse_url("postgres://alice:pw@h:6543/d?application_name=a@b?c&sslmode=verify-full")?;
        assert_eq!((target.tls, target.config.get_application_name()), (Tls::VerifyFull, Some("a@b?c")));
        assert_eq!(target.config.get_user(), Some("alice"));
        assert_eq!(target.config.get_ports(), [6543]);
        assert_eq!(target.describe(), "PostgreSQL at h:6543/d");
        // libpq's reading of the rest: `+` is a plus, the query's host and port win, lists of hosts.
        let target = parse_url("postgres:///d?host=%2Frun%2Fpostgresql&application_name=a+b&options=-c%20x%3Dy")?;
        assert_eq!(target.config.get_application_name(), Some("a+b"));
        assert_eq!(target.config.get_options(), Some("-c x=y"));
        assert!(matches!(target.config.get_hosts(), [Host::Unix(p)] if p.to_str() == Some("/run/postgresql")));
        let target = parse_url("postgres://u@h1,h2/d?port=5433,5434")?;
        assert_eq!(target.describe(), "PostgreSQL at h1:5433,h2:5434/d");
        let target = parse_url("postgres://[::1]:5433/d")?;
        assert_eq!(target.describe(), "PostgreSQL at ::1:5433/d");
        let target = parse_url("postgres://h/d?application_name=it%27s%5C")?;
        assert_eq!(target.config.get_application_name(), Some("it's\\"));
        Ok(())
    }

    #[test]
    fn a_url_a_parser_cannot_split_is_refused_not_guessed_at() {
        // An unencoded `?` or `#` in a password ends the authority: refused, never read as a query.
        for bad in [
            "postgres://u:p?sslmode=disable@h/d?sslmode=verify-full",
            "postgres://u:pw#x@h/d",
            "postgres://u:pw@h/d#frag",
            "postgres://u:pw@h:notaport/d",
            "postgres://u:pw@h/d?bad%20name=1",
            "postgres://u:pw@h/d?application_name=%FF",
        ] {
            let e = parse_url(bad).err().map(|e| (e.code(), e.to_string())).unwrap_or_default();
            assert_eq!(e.0, "ERR_INVALID_ARG_VALUE", "{bad}");
            assert!(!e.1.contains("pw") && !e.1.contains("sslmode=disable"), "{}", e.1);
        }
    }

    #[cfg(unix)]
    #[test]
    fn sslrootcert_is_read_only_from_a_regular_file_of_bounded_size() -> crate::tests::TestResult {
        let dir = crate::tests::temp_dir("sslrootcert");
        let fifo = dir.join("ca.pem");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes())?;
        // SAFETY: `c_path` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let big = dir.join("big.pem");
        std::fs::File::create(&big)?.set_len(MAX_ROOT_CERT_BYTES + 1)?;
        for path in [fifo.to_str().unwrap_or_default(), "/dev/zero", big.to_str().unwrap_or_default()] {
            // Returns at once (no blocking open of the FIFO, no endless read of /dev/zero).
            let e = read_root_cert(path).err().ok_or("read")?;
            assert_eq!(e.code(), "ERR_HOOT_DB", "{path}");
            assert!(e.to_string().contains("not a regular file") || e.to_string().contains("larger than"), "{e}");
        }
        // Nothing is read when the database is opened: only on its first connection.
        let target = parse_url(&format!("postgres://h/d?sslmode=verify-full&sslrootcert={}", fifo.display()))?;
        let mut lazy = LazyTls::new(&target);
        let made = tokio_postgres::tls::MakeTlsConnect::<tokio_postgres::Socket>::make_tls_connect(&mut lazy, "h");
        assert_eq!(made.err().map(|e| e.code()), Some("ERR_HOOT_DB"));
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

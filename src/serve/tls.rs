//! TLS on the main listener: the certificate and key from `--tls-cert` and `--tls-key` (PEM),
//! kept behind an `ArcSwap` that rustls reads on every new handshake, and reloaded when the
//! files change or on SIGHUP.
//!
//! A reload swaps the certificate for handshakes that start afterwards; connections already
//! established keep the session they negotiated and are not touched. A pair that does not
//! load (a file half written, a key that does not match yet) is logged and the certificate in
//! service stays; the files are tried again on every poll until they load.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::TlsFiles;
use crate::shutdown::Shutdown;

/// ALPN protocols offered, in the server's order of preference (RFC 7301).
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Which of the two files an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PemFile {
    Cert,
    Key,
}

/// Why a certificate and key pair cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsError {
    Unreadable {
        file: PemFile,
        reason: String,
    },
    NotPem {
        file: PemFile,
        reason: String,
    },
    NoCertificate,
    NoKey,
    /// The crypto provider refuses the key (an unsupported algorithm or a corrupt encoding).
    UnusableKey(String),
    /// The first certificate, the server's own, does not parse.
    BadCertificate(String),
    /// The key is not the private half of the certificate's public key.
    KeyMismatch,
}

impl TlsError {
    /// The file to fix: the key file for a key that does not match its certificate.
    pub fn file(&self) -> PemFile {
        match self {
            TlsError::Unreadable { file, .. } | TlsError::NotPem { file, .. } => *file,
            TlsError::NoCertificate | TlsError::BadCertificate(_) => PemFile::Cert,
            TlsError::NoKey | TlsError::UnusableKey(_) | TlsError::KeyMismatch => PemFile::Key,
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Unreadable { reason, .. } => write!(f, "cannot be read: {reason}"),
            TlsError::NotPem { reason, .. } => write!(f, "is not valid PEM: {reason}"),
            TlsError::NoCertificate => f.write_str("holds no PEM certificate (BEGIN CERTIFICATE)"),
            TlsError::NoKey => f.write_str("holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"),
            TlsError::UnusableKey(reason) => write!(f, "holds a private key that cannot be used: {reason}"),
            TlsError::BadCertificate(reason) => write!(f, "holds a certificate that cannot be parsed: {reason}"),
            TlsError::KeyMismatch => f.write_str("is not the private key of the certificate in --tls-cert"),
        }
    }
}

impl std::error::Error for TlsError {}

/// TLS for the main listener: the certificate store, how often its files are checked, and how
/// long a handshake may take. Cloning shares the store.
#[derive(Clone)]
pub struct Tls {
    certificates: Arc<Certificates>,
    /// How often the files are checked for change.
    pub poll: Duration,
    /// SECURITY: a client that opens a connection and does not finish the handshake is dropped
    /// after this long, so stalled handshakes cannot pile up.
    pub handshake_timeout: Duration,
}

impl Tls {
    /// Loads the pair the configuration names, or says which file is wrong and why.
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let certificates = Certificates::load(files.cert.clone(), files.key.clone())?;
        Ok(Tls { certificates: Arc::new(certificates), poll: files.poll, handshake_timeout: files.handshake_timeout })
    }

    /// The file `--tls-cert` named.
    pub fn cert_path(&self) -> &Path {
        &self.certificates.cert
    }

    /// The file `--tls-key` named.
    pub fn key_path(&self) -> &Path {
        &self.certificates.key
    }

    /// The certificate new handshakes present.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.certificates.current.load_full()
    }

    /// The rustls configuration: TLS 1.3 and 1.2 only, ALPN `h2` then `http/1.1`, the
    /// certificate chosen per handshake from the store.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let versions: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.certificates.provider))
            .with_protocol_versions(versions)
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(self.certificates.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Reads the files again now (SIGHUP), whether or not they look changed, and logs the
    /// outcome. On failure the certificate in service stays.
    pub async fn reload(&self) -> Result<(), TlsError> {
        let certificates = Arc::clone(&self.certificates);
        match tokio::task::spawn_blocking(move || certificates.reload(Attempt::Asked)).await {
            // An attempt asked for always has an outcome.
            Ok(outcome) => outcome.unwrap_or(Ok(())),
            // Only a panic while reading, which swapped nothing: the certificate stays.
            Err(e) => {
                crate::error!("TLS certificate reload failed: {e}");
                Ok(())
            }
        }
    }

    /// Checks the files every [`Tls::poll`] until shutdown and reloads them when they change.
    pub async fn watch(self, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tick.tick() => {}
            }
            let certificates = Arc::clone(&self.certificates);
            // File system calls block; off the runtime's threads, as with `--threads 1` there
            // is only one.
            let _ = tokio::task::spawn_blocking(move || certificates.reload(Attempt::Polled)).await;
        }
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.certificates.cert)
            .field("key", &self.certificates.key)
            .field("poll", &self.poll)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

/// Why the files are read: asked for (SIGHUP), which always tries them, or a poll, which
/// tries them only when they changed or are failing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Asked,
    Polled,
}

/// The certificate in service and what is known about its files.
struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    files: Mutex<Files>,
}

/// The state of the files as last seen.
struct Files {
    /// The files the certificate in service was loaded from.
    loaded: Stamp,
    /// Set while the files on disk do not load: what they looked like at the last attempt. A
    /// failure is logged when this changes, so a broken pair is logged once per change of the
    /// files, not once per poll.
    failed: Option<Stamp>,
}

impl Certificates {
    fn load(cert: PathBuf, key: PathBuf) -> Result<Certificates, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = Stamp::of(&cert, &key);
        let certified = load_pair(&cert, &key, &provider)?;
        Ok(Certificates {
            cert,
            key,
            provider,
            current: ArcSwap::from_pointee(certified),
            files: Mutex::new(Files { loaded, failed: None }),
        })
    }

    /// Loads the files when asked, when they changed since the last load, or while they are
    /// failing; swaps the certificate when they load. `None` when nothing was tried.
    fn reload(&self, attempt: Attempt) -> Option<Result<(), TlsError>> {
        // A poisoned lock means a panic mid-reload; the stamps are still meaningful.
        let mut files = self.files.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Stamped before reading: a write that lands after the read changes the stamp, so the
        // next poll sees it.
        let stamp = Stamp::of(&self.cert, &self.key);
        if attempt == Attempt::Polled && files.failed.is_none() && stamp == files.loaded {
            return None;
        }
        match load_pair(&self.cert, &self.key, &self.provider) {
            Ok(certified) => {
                self.current.store(Arc::new(certified));
                files.loaded = stamp;
                files.failed = None;
                crate::info!("TLS certificate reloaded from {}", self.cert.display());
                Some(Ok(()))
            }
            Err(e) => {
                if attempt == Attempt::Asked || files.failed != Some(stamp) {
                    let path = match e.file() {
                        PemFile::Cert => &self.cert,
                        PemFile::Key => &self.key,
                    };
                    crate::warn!(
                        "TLS certificate not reloaded: {} {e}; the current certificate stays in service",
                        path.display()
                    );
                }
                files.failed = Some(stamp);
                Some(Err(e))
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates").field("cert", &self.cert).field("key", &self.key).finish()
    }
}

/// What a file looked like: enough to notice a rewrite, a replacement by rename (a new inode,
/// as Kubernetes does when it updates a mounted secret) or a removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    cert: Option<FileStamp>,
    key: Option<FileStamp>,
}

impl Stamp {
    fn of(cert: &Path, key: &Path) -> Stamp {
        Stamp { cert: file_stamp(cert), key: file_stamp(key) }
    }
}

fn file_stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp { modified: meta.modified().ok(), len: meta.len(), inode: meta.ino() })
}

/// Reads and checks a pair: the certificate chain (the server's certificate first), a private
/// key the provider can sign with, and the two belonging together.
fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read =
        |path: &Path, file| std::fs::read(path).map_err(|e| TlsError::Unreadable { file, reason: e.to_string() });
    let (cert_pem, key_pem) = (read(cert, PemFile::Cert)?, read(key, PemFile::Key)?);
    let chain = parse_chain(&cert_pem)?;
    let key = parse_key(&key_pem)?;
    let signer = provider.key_provider.load_private_key(key).map_err(|e| TlsError::UnusableKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        // Unknown: the key cannot tell its public half; the handshake will show.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch),
        Err(e) => Err(TlsError::BadCertificate(e.to_string())),
    }
}

/// Every `CERTIFICATE` section, in order; other sections are skipped.
fn parse_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::NotPem { file: PemFile::Cert, reason: pem_reason(&e) })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(chain)
}

/// The first private key section, of any of the three encodings; a file holding both the
/// certificate and the key works for both flags.
fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoKey),
        Err(e) => Err(TlsError::NotPem { file: PemFile::Key, reason: pem_reason(&e) }),
    }
}

/// The parser's error in words: its own `Display` prints the markers as byte lists.
fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { end_marker } => {
            format!("no \"-----END {}-----\" line (a file cut short?)", String::from_utf8_lossy(end_marker))
        }
        Error::IllegalSectionStart { line } => format!("malformed line {:?}", String::from_utf8_lossy(line)),
        Error::Base64Decode(reason) => format!("bad base64 ({reason})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_problems_name_the_file() {
        assert_eq!(parse_chain(b"").unwrap_err(), TlsError::NoCertificate);
        let key_only = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(parse_chain(key_only).unwrap_err(), TlsError::NoCertificate);
        let cut = parse_chain(b"-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap_err();
        assert!(matches!(cut, TlsError::NotPem { file: PemFile::Cert, .. }), "{cut:?}");
        let cert_only = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(parse_key(cert_only).unwrap_err(), TlsError::NoKey);
        assert_eq!(TlsError::KeyMismatch.file(), PemFile::Key);
        assert_eq!(TlsError::BadCertificate("x".into()).file(), PemFile::Cert);
    }

    /// A pair written to two files in the temporary directory.
    fn write_pair(name: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir();
        let paths = (
            dir.join(format!("mcp-auth-edge-unit-{}-{name}-cert.pem", std::process::id())),
            dir.join(format!("mcp-auth-edge-unit-{}-{name}-key.pem", std::process::id())),
        );
        std::fs::write(&paths.0, cert).unwrap();
        std::fs::write(&paths.1, key).unwrap();
        paths
    }

    fn self_signed() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn polls_reload_changed_files_and_retry_failing_ones() {
        let ((cert_a, key_a), (cert_b, key_b)) = (self_signed(), self_signed());
        let (cert, key) = write_pair("poll", &cert_a, &key_a);
        let certificates = Certificates::load(cert.clone(), key.clone()).unwrap();
        assert_eq!(certificates.reload(Attempt::Polled), None, "unchanged files are not read");

        // Half replaced: refused, and tried again at every poll while it stays broken. (A
        // trailing newline changes the length: rewritten within the same clock tick, the
        // modification time may not change.)
        std::fs::write(&key, format!("{key_b}\n")).unwrap();
        assert_eq!(certificates.reload(Attempt::Polled), Some(Err(TlsError::KeyMismatch)));
        assert_eq!(certificates.reload(Attempt::Polled), Some(Err(TlsError::KeyMismatch)));
        let served = certificates.current.load_full().cert[0].clone();
        assert_eq!(
            served.as_ref(),
            rustls::pki_types::CertificateDer::from_pem_slice(cert_a.as_bytes()).unwrap().as_ref()
        );

        // Completed: in service, and quiet again.
        std::fs::write(&cert, &cert_b).unwrap();
        assert_eq!(certificates.reload(Attempt::Polled), Some(Ok(())));
        assert_eq!(certificates.reload(Attempt::Polled), None);
        let served = certificates.current.load_full().cert[0].clone();
        assert_eq!(
            served.as_ref(),
            rustls::pki_types::CertificateDer::from_pem_slice(cert_b.as_bytes()).unwrap().as_ref()
        );
        // Forced, as on SIGHUP, even though nothing changed.
        assert_eq!(certificates.reload(Attempt::Asked), Some(Ok(())));
        let _ = (std::fs::remove_file(cert), std::fs::remove_file(key));
    }

    #[test]
    fn missing_files_are_unreadable() {
        let provider = rustls::crypto::ring::default_provider();
        let e = load_pair(Path::new("/nonexistent/cert.pem"), Path::new("/nonexistent/key.pem"), &provider);
        assert!(matches!(e, Err(TlsError::Unreadable { file: PemFile::Cert, .. })), "{e:?}");
    }
}

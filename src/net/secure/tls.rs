//! TLS on luna's own loop: rustls is sans-IO, so the stream feeds it the
//! bytes its socket read and writes out the records it produces. No second
//! runtime, no blocking.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection};

/// TLS settings of a listener or connection, as a script gives them.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Our certificate chain (PEM): required to listen, optional to connect (client certificate).
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM).
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) that verify the peer: the server's (required to
    /// connect) or the clients' (to listen with client certificates).
    pub ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host connected to).
    pub server_name: Option<String>,
    /// Listening: refuse clients without a certificate signed by `ca`.
    pub require_client_cert: bool,
}

/// A ready TLS configuration for one side.
#[derive(Clone)]
pub enum TlsConfig {
    /// Accepting side.
    Server(Arc<ServerConfig>),
    /// Connecting side, with the name to verify.
    Client(Arc<ClientConfig>, ServerName<'static>),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} file {}: {e}", path.display()))
}

fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_file(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM in the {what} file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in the {what} file {}", path.display()));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_file("key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("no usable private key in {}: {e}", path.display()))
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    for cert in certificates("CA", path)? {
        store
            .add(cert)
            .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
    }
    Ok(Arc::new(store))
}

fn chain_and_key(
    options: &TlsOptions,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
    match (&options.cert, &options.key) {
        (Some(cert), Some(key)) => Ok(Some((certificates("certificate", cert)?, private_key(key)?))),
        (None, None) => Ok(None),
        _ => Err("tls: cert and key go together".into()),
    }
}

impl TlsConfig {
    /// The configuration of a listener.
    pub fn server(options: &TlsOptions) -> Result<TlsConfig, String> {
        let Some((chain, key)) = chain_and_key(options)? else {
            return Err("tls: a listener needs cert and key".into());
        };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?;
        let builder = match &options.ca {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
                let verifier = if options.require_client_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("tls: {e}"))?)
            }
            None if options.require_client_cert => {
                return Err("tls: require_client_cert needs a ca to verify client certificates".into());
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| format!("tls: the certificate and key do not fit: {e}"))?;
        Ok(TlsConfig::Server(Arc::new(config)))
    }

    /// The configuration of a connection to `host`.
    pub fn client(options: &TlsOptions, host: &str) -> Result<TlsConfig, String> {
        let Some(ca) = &options.ca else {
            return Err("tls: a connection needs a ca to verify the server".into());
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_root_certificates(roots(ca)?);
        let config = match chain_and_key(options)? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls: the client certificate and key do not fit: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        let name = options.server_name.clone().unwrap_or_else(|| host.to_string());
        let name = ServerName::try_from(name.clone()).map_err(|_| format!("tls: bad server name '{name}'"))?;
        Ok(TlsConfig::Client(Arc::new(config), name))
    }
}

/// The TLS state of one stream.
pub struct TlsSession {
    conn: Connection,
}

/// Bytes of plaintext moved into rustls at a time.
const PLAIN_CHUNK: usize = 64 << 10;

impl TlsSession {
    /// A session for one new connection.
    pub fn new(config: &TlsConfig) -> Result<TlsSession, String> {
        let conn = match config {
            TlsConfig::Server(config) => {
                Connection::Server(ServerConnection::new(Arc::clone(config)).map_err(|e| format!("tls: {e}"))?)
            }
            TlsConfig::Client(config, name) => Connection::Client(
                ClientConnection::new(Arc::clone(config), name.clone()).map_err(|e| format!("tls: {e}"))?,
            ),
        };
        Ok(TlsSession { conn })
    }

    /// Feeds bytes read from the socket and appends the plaintext they carry
    /// to `plain`. Ok(true) when the peer closed the TLS session.
    pub fn receive(&mut self, mut raw: &[u8], plain: &mut Vec<u8>) -> Result<bool, String> {
        let mut closed = false;
        // Never hand read_tls an empty reader: it takes that for end of file.
        while !raw.is_empty() {
            self.conn.read_tls(&mut raw).map_err(|e| format!("tls: {e}"))?;
            if let Err(error) = self.conn.process_new_packets() {
                let hint = match error {
                    rustls::Error::InvalidMessage(_) if self.conn.is_handshaking() => {
                        " (the peer does not speak TLS: a plaintext client on a TLS port?)"
                    }
                    _ => "",
                };
                return Err(format!("tls: {error}{hint}"));
            }
            closed |= self.drain_plaintext(plain)?;
        }
        Ok(closed)
    }

    fn drain_plaintext(&mut self, plain: &mut Vec<u8>) -> Result<bool, String> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            match self.conn.reader().read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => plain.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(format!("tls: {e}")),
            }
        }
    }

    /// True until the TLS handshake is complete.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// True while rustls holds records to write.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Writes pending records to `socket`, then moves plaintext from `plain`
    /// in and writes it, until everything is out or the socket is full.
    /// Returns how many plaintext bytes rustls took (even when the write
    /// stopped early) and how the write ended.
    pub fn write(&mut self, socket: &mut dyn Write, plain: &[u8]) -> (usize, io::Result<()>) {
        let mut taken = 0;
        loop {
            while self.conn.wants_write() {
                match self.conn.write_tls(socket) {
                    Ok(0) => return (taken, Err(io::ErrorKind::WriteZero.into())),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return (taken, Err(e)),
                }
            }
            // Plaintext waits until the handshake is done (rustls would only buffer it).
            if taken == plain.len() || self.conn.is_handshaking() {
                return (taken, Ok(()));
            }
            let end = plain.len().min(taken + PLAIN_CHUNK);
            match self.conn.writer().write(&plain[taken..end]) {
                Ok(n) => taken += n,
                Err(e) => return (taken, Err(e)),
            }
        }
    }

    /// Queues a close_notify alert (written by the next [`TlsSession::write`]).
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }
}

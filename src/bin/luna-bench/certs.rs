//! Certificates for the TLS figures (W2.tls, W3.tls), made at run time with
//! rcgen into the bench's temp dir: a CA and a server certificate for
//! 127.0.0.1 signed by it. Nothing is committed, nothing outlives the run.

use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// Writes `ca.pem`, `server.pem` and `server.key` into `dir`.
pub fn generate(dir: &Path) -> Result<()> {
    let ca_key = KeyPair::generate().context("CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "luna-bench CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).context("self-sign the CA")?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().context("server key")?;
    let mut server =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).context("server params")?;
    server.distinguished_name.push(DnType::CommonName, "luna-bench server");
    let cert = server.signed_by(&key, &issuer).context("sign the server certificate")?;

    for (name, text) in [
        ("ca.pem", ca_cert.pem()),
        ("server.pem", cert.pem()),
        ("server.key", key.serialize_pem()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

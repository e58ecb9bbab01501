//! Certificates made at test time (rcgen), written as PEM files into a test's
//! temp dir: nothing secret is committed.
//!
//! - `ca.pem`: the CA every good certificate is signed by;
//! - `server.pem`/`server.key`: for "localhost" and 127.0.0.1, signed by the CA;
//! - `client.pem`/`client.key`: a client certificate signed by the CA;
//! - `other-ca.pem`: a second, unrelated CA; `stranger.pem`/`stranger.key`:
//!   a client certificate signed by it;
//! - `expired.pem`/`expired.key`: a server certificate signed by the CA whose
//!   validity ended in the past.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};

/// Paths of the generated files.
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    /// The path of one generated file (e.g. "server.pem").
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().expect("utf-8 path").to_string()
    }
}

struct Authority {
    issuer: Issuer<'static, KeyPair>,
}

fn authority(name: &str) -> (Authority, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("self-signed CA");
    (
        Authority {
            issuer: Issuer::new(params, key),
        },
        cert.pem(),
    )
}

/// A leaf certificate signed by `ca`: (certificate PEM, key PEM).
fn leaf(ca: &Authority, name: &str, usage: ExtendedKeyUsagePurpose, expired: bool) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, &ca.issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

/// Generates every certificate into `dir`.
pub fn generate(dir: &Path) -> Certs {
    let (ca, ca_pem) = authority("luna test CA");
    let (other, other_pem) = authority("an unrelated CA");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write PEM");
    write("ca.pem", &ca_pem);
    write("other-ca.pem", &other_pem);
    for (name, authority, usage, expired) in [
        ("server", &ca, ExtendedKeyUsagePurpose::ServerAuth, false),
        ("client", &ca, ExtendedKeyUsagePurpose::ClientAuth, false),
        ("stranger", &other, ExtendedKeyUsagePurpose::ClientAuth, false),
        ("expired", &ca, ExtendedKeyUsagePurpose::ServerAuth, true),
    ] {
        let (cert, key) = leaf(authority, name, usage, expired);
        write(&format!("{name}.pem"), &cert);
        write(&format!("{name}.key"), &key);
    }
    Certs { dir: dir.to_path_buf() }
}

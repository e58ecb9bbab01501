//! The cluster-secret handshake of docs/protocol.md section 10, written from
//! that page with the hmac and sha2 crates, for tests that play a peer that
//! knows the secret, replays what it saw, or knows nothing at all.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::wire::{self, Value};

pub const HELLO: u8 = 7;
pub const PROOF: u8 = 8;
pub const AUTH_FAILED: u8 = 9;
/// Role byte of the side that connected.
pub const CONNECTOR: u8 = 1;
/// Role byte of the side that accepted.
pub const ACCEPTOR: u8 = 2;

/// A Hello frame: version 1, `role`, the 32-byte nonce.
pub fn hello(role: u8, nonce: &[u8; 32]) -> Vec<u8> {
    let mut header = vec![1, role];
    header.extend_from_slice(nonce);
    wire::frame(HELLO, &header, &[])
}

/// HMAC-SHA256(secret, "luna-auth-v1" || role || connector nonce || acceptor nonce).
pub fn tag(secret: &[u8], role: u8, connector: &[u8], acceptor: &[u8]) -> Vec<u8> {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    mac.update(b"luna-auth-v1");
    mac.update(&[role]);
    mac.update(connector);
    mac.update(acceptor);
    mac.finalize().into_bytes().to_vec()
}

/// A Proof frame.
pub fn proof(tag: &[u8]) -> Vec<u8> {
    wire::frame(PROOF, tag, &[])
}

/// A nonce that differs per call (tests need freshness, not secrecy).
pub fn nonce(seed: u8) -> [u8; 32] {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_be_bytes();
    let mut nonce = [seed; 32];
    nonce[..16].copy_from_slice(&time);
    nonce
}

/// A raw connection to a luna listener that has a secret.
pub struct SecretLink {
    pub stream: TcpStream,
    /// Exactly the bytes this side sent during the handshake (Hello + Proof).
    pub sent: Vec<u8>,
}

impl SecretLink {
    /// Connects to `address` and runs the connector's side of the handshake
    /// with `secret`: Ok once the acceptor's proof checked out, Err with what
    /// went wrong otherwise.
    pub fn connect(address: &str, secret: &[u8]) -> Result<SecretLink, String> {
        let mut stream = TcpStream::connect(address).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.set_nodelay(true).unwrap();
        let own = nonce(0xc1);
        let mut sent = hello(CONNECTOR, &own);
        stream.write_all(&sent).map_err(|e| format!("send hello: {e}"))?;
        let (kind, body) = wire::read_frame(&mut stream).map_err(|e| format!("read hello: {e}"))?;
        if kind != HELLO || body.len() != 34 || body[0] != 1 || body[1] != ACCEPTOR {
            return Err(format!("expected the acceptor's hello, got kind {kind} {body:?}"));
        }
        let peer = &body[2..];
        let mine = proof(&tag(secret, CONNECTOR, &own, peer));
        stream.write_all(&mine).map_err(|e| format!("send proof: {e}"))?;
        sent.extend_from_slice(&mine);
        let (kind, body) = wire::read_frame(&mut stream).map_err(|e| format!("read proof: {e}"))?;
        match kind {
            PROOF if body == tag(secret, ACCEPTOR, &own, peer) => Ok(SecretLink { stream, sent }),
            PROOF => Err("the acceptor's proof is wrong".into()),
            AUTH_FAILED => Err(format!("refused: {}", String::from_utf8_lossy(&body))),
            other => Err(format!("expected a proof, got kind {other}")),
        }
    }

    /// Sends a Call frame.
    pub fn call(&mut self, args: &[Value]) {
        self.stream.write_all(&wire::call_frame(args)).expect("call");
    }

    /// The next Call frame's arguments, skipping `@pong`.
    pub fn next_call(&mut self) -> Vec<Value> {
        loop {
            let (kind, body) = wire::read_frame(&mut self.stream).expect("read a frame");
            if kind == wire::CALL {
                let args = wire::decode(&body);
                if args.first().and_then(Value::as_str) != Some("@pong") {
                    return args;
                }
            }
        }
    }
}

/// Every frame a peer sends until it closes the link (or 20 s pass): (kind, body).
pub fn frames_until_closed(stream: &mut TcpStream) -> (Vec<(u8, Vec<u8>)>, bool) {
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut bytes = Vec::new();
    let closed = loop {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let mut frames = Vec::new();
    let mut reader = &bytes[..];
    while let Ok(frame) = wire::read_frame(&mut reader) {
        frames.push(frame);
    }
    (frames, closed)
}

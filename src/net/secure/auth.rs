//! The cluster-secret handshake: both ends prove they know a shared secret
//! before anything else crosses the link (docs/protocol.md, "Authentication").
//!
//! Each side sends a `Hello` frame with a fresh random nonce as soon as the
//! connection is up. On the peer's `Hello` it answers with a `Proof`:
//! HMAC-SHA256 under the secret over a label, its own role and both nonces
//! (the connecting side's first). A link is authenticated once the peer's
//! proof checks out (compared in constant time). Fresh nonces on both sides
//! make a recorded exchange useless on another link, and the role in the MAC
//! stops a peer from reflecting our own proof back at us.

use std::fmt;
use std::sync::Arc;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::net::frame::{self, Kind};

type HmacSha256 = hmac::Hmac<Sha256>;

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of a proof (an HMAC-SHA256 tag).
pub const PROOF_LEN: usize = 32;
/// Version byte of the handshake described here.
pub const VERSION: u8 = 1;
/// Label mixed into every proof, so a tag made for something else never fits.
const LABEL: &[u8] = b"luna-auth-v1";
/// Longest refusal reason sent to a peer.
const MAX_REASON: usize = 200;

/// A shared secret; its bytes never show in `Debug` output.
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret from its bytes; None when empty (an empty secret would prove nothing).
    pub fn new(bytes: &[u8]) -> Option<Secret> {
        (!bytes.is_empty()).then(|| Secret(bytes.to_vec()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Which end of the link we are; part of every proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// The side that connected.
    Connector = 1,
    /// The side that accepted.
    Acceptor = 2,
}

impl Role {
    fn peer(self) -> Role {
        match self {
            Role::Connector => Role::Acceptor,
            Role::Acceptor => Role::Connector,
        }
    }
}

/// Why a handshake failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// A handshake frame was malformed or out of order.
    Protocol(&'static str),
    /// The peer's proof does not match: it does not know the secret.
    BadProof,
    /// The peer refused our proof, with its reason.
    Refused(String),
    /// Something other than a handshake frame arrived before the link was authenticated.
    Unauthenticated,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Protocol(why) => write!(f, "bad handshake ({why})"),
            AuthError::BadProof => f.write_str("the peer's proof is wrong (a different secret?)"),
            AuthError::Refused(reason) => write!(f, "the peer refused our proof ({reason})"),
            AuthError::Unauthenticated => f.write_str("the peer sent messages without authenticating"),
        }
    }
}

/// Where a handshake stands after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for more handshake frames.
    Continue,
    /// The peer proved the secret: the link is authenticated.
    Done,
}

/// One side of the handshake on one link.
pub struct Handshake {
    role: Role,
    secret: Arc<Secret>,
    own_nonce: [u8; NONCE_LEN],
    peer_nonce: Option<[u8; NONCE_LEN]>,
}

impl Handshake {
    /// Starts a handshake; appends our `Hello` frame to `out`.
    pub fn start(role: Role, secret: Arc<Secret>, out: &mut Vec<u8>) -> Result<Handshake, getrandom::Error> {
        let mut own_nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut own_nonce)?;
        let start = frame::begin(out, Kind::Hello);
        out.push(VERSION);
        out.push(role as u8);
        out.extend_from_slice(&own_nonce);
        frame::finish(out, start);
        Ok(Handshake {
            role,
            secret,
            own_nonce,
            peer_nonce: None,
        })
    }

    /// Handles one frame body (kind byte first) that arrived before the link
    /// was authenticated; appends what to answer (our proof) to `out`.
    pub fn on_frame(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<Progress, AuthError> {
        let (&kind, rest) = body.split_first().ok_or(AuthError::Protocol("empty frame"))?;
        match kind {
            k if k == Kind::Hello as u8 => {
                let [version, role, nonce @ ..] = rest else {
                    return Err(AuthError::Protocol("short hello"));
                };
                if *version != VERSION {
                    return Err(AuthError::Protocol("unknown handshake version"));
                }
                if *role != self.role.peer() as u8 {
                    return Err(AuthError::Protocol("the peer claims our own role"));
                }
                let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| AuthError::Protocol("bad hello length"))?;
                if self.peer_nonce.is_some() {
                    return Err(AuthError::Protocol("a second hello"));
                }
                self.peer_nonce = Some(nonce);
                let tag = self.mac(self.role).finalize().into_bytes();
                let start = frame::begin(out, Kind::Proof);
                out.extend_from_slice(&tag);
                frame::finish(out, start);
                Ok(Progress::Continue)
            }
            k if k == Kind::Proof as u8 => {
                if self.peer_nonce.is_none() {
                    return Err(AuthError::Protocol("a proof before the hello"));
                }
                if rest.len() != PROOF_LEN {
                    return Err(AuthError::Protocol("bad proof length"));
                }
                // verify_slice compares in constant time.
                self.mac(self.role.peer())
                    .verify_slice(rest)
                    .map_err(|_| AuthError::BadProof)?;
                Ok(Progress::Done)
            }
            k if k == Kind::AuthFailed as u8 => Err(AuthError::Refused(String::from_utf8_lossy(rest).into_owned())),
            _ => Err(AuthError::Unauthenticated),
        }
    }

    /// The MAC of `role` over both nonces (the connector's first).
    fn mac(&self, role: Role) -> HmacSha256 {
        let peer_nonce = self.peer_nonce.unwrap_or([0; NONCE_LEN]);
        let (connector, acceptor) = match self.role {
            Role::Connector => (&self.own_nonce, &peer_nonce),
            Role::Acceptor => (&peer_nonce, &self.own_nonce),
        };
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.secret.0).expect("HMAC takes keys of any length");
        mac.update(LABEL);
        mac.update(&[role as u8]);
        mac.update(connector);
        mac.update(acceptor);
        mac
    }
}

/// Appends an `AuthFailed` frame telling the peer why it was refused.
pub fn push_refusal(out: &mut Vec<u8>, reason: &str) {
    let start = frame::begin(out, Kind::AuthFailed);
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&reason.as_bytes()[..end]);
    frame::finish(out, start);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Arc<Secret> {
        Arc::new(Secret::new(text.as_bytes()).unwrap())
    }

    /// The frame bodies in `bytes` (prefixes removed).
    fn bodies(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            out.push(bytes[at + 4..at + 4 + len].to_vec());
            at += 4 + len;
        }
        out
    }

    struct Side {
        handshake: Handshake,
        hello: Vec<u8>,
    }

    fn side(role: Role, key: &str) -> Side {
        let mut hello = Vec::new();
        let handshake = Handshake::start(role, secret(key), &mut hello).unwrap();
        Side {
            handshake,
            hello: bodies(&hello).remove(0),
        }
    }

    /// Runs a whole exchange; returns what each side concluded.
    fn exchange(a: &str, b: &str) -> (Result<Progress, AuthError>, Result<Progress, AuthError>) {
        let mut connector = side(Role::Connector, a);
        let mut acceptor = side(Role::Acceptor, b);
        let mut to_acceptor = Vec::new();
        let mut to_connector = Vec::new();
        connector.handshake.on_frame(&acceptor.hello, &mut to_acceptor).unwrap();
        acceptor
            .handshake
            .on_frame(&connector.hello, &mut to_connector)
            .unwrap();
        let at_acceptor = acceptor.handshake.on_frame(&bodies(&to_acceptor)[0], &mut Vec::new());
        let at_connector = connector.handshake.on_frame(&bodies(&to_connector)[0], &mut Vec::new());
        (at_connector, at_acceptor)
    }

    #[test]
    fn the_same_secret_authenticates_both_ways() {
        assert_eq!(exchange("s3cret", "s3cret"), (Ok(Progress::Done), Ok(Progress::Done)));
    }

    #[test]
    fn a_different_secret_fails_on_both_sides() {
        assert_eq!(
            exchange("s3cret", "other"),
            (Err(AuthError::BadProof), Err(AuthError::BadProof))
        );
    }

    #[test]
    fn a_recorded_proof_is_useless_on_another_link() {
        // Record a connector's proof on one link...
        let mut connector = side(Role::Connector, "k");
        let first = side(Role::Acceptor, "k");
        let mut recorded = Vec::new();
        connector.handshake.on_frame(&first.hello, &mut recorded).unwrap();
        // ...and replay its hello and proof to a fresh acceptor.
        let mut fresh = side(Role::Acceptor, "k");
        fresh.handshake.on_frame(&connector.hello, &mut Vec::new()).unwrap();
        assert_eq!(
            fresh.handshake.on_frame(&bodies(&recorded)[0], &mut Vec::new()),
            Err(AuthError::BadProof)
        );
    }

    #[test]
    fn a_reflected_proof_is_refused() {
        let mut acceptor = side(Role::Acceptor, "k");
        let mut connector = side(Role::Connector, "k");
        let mut acceptor_proof = Vec::new();
        acceptor
            .handshake
            .on_frame(&connector.hello, &mut acceptor_proof)
            .unwrap();
        // An attacker plays the connector: it echoes the acceptor's own proof back.
        let mut attacker_out = Vec::new();
        connector
            .handshake
            .on_frame(&acceptor.hello, &mut attacker_out)
            .unwrap();
        assert_eq!(
            acceptor
                .handshake
                .on_frame(&bodies(&acceptor_proof)[0], &mut Vec::new()),
            Err(AuthError::BadProof)
        );
        // And a hello claiming the acceptor's role is refused outright.
        let mut other = side(Role::Acceptor, "k");
        assert!(matches!(
            other.handshake.on_frame(&acceptor.hello, &mut Vec::new()),
            Err(AuthError::Protocol(_))
        ));
    }

    #[test]
    fn the_tags_of_the_documented_example() {
        // docs/protocol.md section 10: secret "k", nonces 32 x c1 and 32 x a2.
        let handshake = Handshake {
            role: Role::Connector,
            secret: secret("k"),
            own_nonce: [0xc1; NONCE_LEN],
            peer_nonce: Some([0xa2; NONCE_LEN]),
        };
        let hex = |role| {
            let tag = handshake.mac(role).finalize().into_bytes();
            tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        assert_eq!(
            hex(Role::Connector),
            "0b31c043a025dce94201ac206e0fd4cd406eedc2846e1ffdde0c1ebb2640578e"
        );
        assert_eq!(
            hex(Role::Acceptor),
            "d78d105f84c0be085d6d5c7ddccc26c39a46b3ca343bd4230907593c7b112577"
        );
    }

    #[test]
    fn anything_but_the_handshake_first_is_refused() {
        let mut acceptor = side(Role::Acceptor, "k");
        assert_eq!(
            acceptor.handshake.on_frame(&[Kind::Call as u8, 0x90], &mut Vec::new()),
            Err(AuthError::Unauthenticated)
        );
        assert!(matches!(
            acceptor.handshake.on_frame(&[Kind::Proof as u8; 33], &mut Vec::new()),
            Err(AuthError::Protocol(_))
        ));
        let mut refusal = Vec::new();
        push_refusal(&mut refusal, "bad proof");
        assert_eq!(
            acceptor.handshake.on_frame(&bodies(&refusal)[0], &mut Vec::new()),
            Err(AuthError::Refused("bad proof".into()))
        );
        assert!(Secret::new(b"").is_none());
    }
}

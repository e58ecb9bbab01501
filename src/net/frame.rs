//! Frames on the wire: a 4-byte big-endian body length, then the body.
//!
//! A body starts with a kind byte. `Call` and `Deliver` carry a MessagePack
//! payload; `Forward` asks a router to pass its payload on; `ForwardError` is
//! a router's report that it could not; `Cancel` tells a router to forget a
//! tracked call. The layout is documented in `docs/protocol.md`.

use std::fmt;

use super::NetError;

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;
/// Room a body may take beyond the payload for its kind and routing header.
pub const MAX_HEADER_LEN: usize = 32;

/// What a frame body carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A message for the receiving process.
    Call = 1,
    /// A message for a router to forward.
    Forward = 2,
    /// A message a router forwarded to this process.
    Deliver = 3,
    /// A router's report of a forward it could not deliver.
    ForwardError = 4,
    /// Tells a router that a tracked call was given up by its caller.
    Cancel = 5,
    /// A router's list of the services a tracked broadcast reached.
    Routed = 6,
    /// Secret handshake: version, role and a fresh nonce.
    Hello = 7,
    /// Secret handshake: the sender's HMAC over both nonces.
    Proof = 8,
    /// Secret handshake: the peer was refused, with a reason.
    AuthFailed = 9,
    /// A message for every subscriber of a topic (and, retained, for later ones).
    Publish = 10,
}

/// How a router picks the receivers of a forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// One service by id.
    Target = 1,
    /// The group's master.
    Master = 2,
    /// Any node of the group.
    Random = 3,
    /// Every node of the group.
    Broadcast = 4,
    /// The node picked by a key.
    Hash = 5,
}

impl Mode {
    fn from_u8(byte: u8) -> Option<Mode> {
        Some(match byte {
            1 => Mode::Target,
            2 => Mode::Master,
            3 => Mode::Random,
            4 => Mode::Broadcast,
            5 => Mode::Hash,
            _ => return None,
        })
    }

    /// The mode of a name scripts use (`"hash"`...).
    pub fn from_name(name: impl AsRef<[u8]>) -> Option<Mode> {
        let name = name.as_ref();
        [Mode::Target, Mode::Master, Mode::Random, Mode::Broadcast, Mode::Hash]
            .into_iter()
            .find(|mode| mode.name().as_bytes() == name)
    }

    /// The name scripts see in `on_forward_error`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Target => "target",
            Mode::Master => "master",
            Mode::Random => "random",
            Mode::Broadcast => "broadcast",
            Mode::Hash => "hash",
        }
    }
}

/// Why a router could not deliver a forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ForwardFailure {
    /// No live node matches (unknown target, empty group, no master, all slots zero).
    NoRoute = 1,
    /// The chosen receiver has too much unsent output.
    SendBufferFull = 2,
    /// The receiver of a tracked call went away before answering.
    ConnectionLost = 3,
    /// The caller has as many calls tracked by the router as it may.
    TooManyCalls = 4,
}

impl ForwardFailure {
    fn from_u8(byte: u8) -> Option<ForwardFailure> {
        Some(match byte {
            1 => ForwardFailure::NoRoute,
            2 => ForwardFailure::SendBufferFull,
            3 => ForwardFailure::ConnectionLost,
            4 => ForwardFailure::TooManyCalls,
            _ => return None,
        })
    }

    /// The error string scripts see.
    pub fn name(self) -> &'static str {
        match self {
            ForwardFailure::NoRoute => "no-route",
            ForwardFailure::SendBufferFull => "send-buffer-full",
            ForwardFailure::ConnectionLost => "connection-lost",
            ForwardFailure::TooManyCalls => "too-many-calls",
        }
    }
}

/// The routing header of a `Forward` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// How receivers are chosen.
    pub mode: Mode,
    /// A service id for `Target`, a group for the other modes.
    pub target: u32,
    /// The hash key (only meaningful for `Hash`).
    pub key: u64,
    /// Non-zero for a call whose answer the router should track.
    pub session: u32,
    /// True when this forward is the answer to a tracked call.
    pub is_reply: bool,
}

impl Route {
    /// A forward that is not an answer: one-way (session 0) or a tracked call.
    pub fn new(mode: Mode, target: u32, key: u64, session: u32) -> Route {
        Route {
            mode,
            target,
            key,
            session,
            is_reply: false,
        }
    }
}

/// A parsed frame body, borrowing the payload.
#[derive(Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// A message for this process.
    Call(&'a [u8]),
    /// A message to route.
    Forward(Route, &'a [u8]),
    /// A routed message for this process.
    Deliver(&'a [u8]),
    /// A forward that failed, with the original payload.
    ForwardError(ForwardFailure, Route, &'a [u8]),
    /// A caller gave up on a tracked call.
    Cancel(u32),
    /// The service ids (4 bytes each) a tracked broadcast reached.
    Routed(u32, &'a [u8]),
    /// A frame of the secret handshake (the whole body, kind byte first).
    Handshake(&'a [u8]),
    /// A message to publish on a topic, kept as the topic's latest when `retain`.
    Publish {
        /// Keep it for subscribers that come later.
        retain: bool,
        /// The topic name.
        topic: &'a [u8],
        /// The message, passed on undecoded.
        payload: &'a [u8],
    },
}

/// Why bytes from a peer are not a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The declared length is beyond the package size.
    TooLarge(usize),
    /// The bytes do not follow the format.
    Bad(&'static str),
}

impl FrameError {
    /// The error string of the stream API.
    pub fn code(&self) -> NetError {
        match self {
            FrameError::TooLarge(_) => NetError::PackageTooLarge,
            FrameError::Bad(_) => NetError::BadPackage,
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge(len) => write!(f, "package-too-large ({len} bytes)"),
            FrameError::Bad(why) => write!(f, "bad-package ({why})"),
        }
    }
}

/// Length of the first complete frame in `buf` (prefix included), if any.
/// `Err` when the prefix is already invalid: the stream must be closed.
pub fn complete_len(buf: &[u8], max_payload: usize) -> Result<Option<usize>, FrameError> {
    let Some(body_len) = declared_len(buf) else {
        return Ok(None);
    };
    if body_len == 0 {
        return Err(FrameError::Bad("empty frame"));
    }
    if body_len > max_payload.saturating_add(MAX_HEADER_LEN) {
        return Err(FrameError::TooLarge(body_len));
    }
    let total = PREFIX_LEN + body_len;
    Ok((buf.len() >= total).then_some(total))
}

/// The body length a prefix declares, once the prefix is complete.
pub fn declared_len(buf: &[u8]) -> Option<usize> {
    let prefix: [u8; PREFIX_LEN] = buf.get(..PREFIX_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(prefix) as usize)
}

/// Parses a body (the bytes after the prefix).
pub fn parse_body(body: &[u8]) -> Result<Body<'_>, FrameError> {
    let (&kind, rest) = body.split_first().ok_or(FrameError::Bad("empty frame"))?;
    match kind {
        k if k == Kind::Call as u8 => Ok(Body::Call(rest)),
        k if k == Kind::Deliver as u8 => Ok(Body::Deliver(rest)),
        k if k == Kind::Forward as u8 => {
            let (route, payload) = parse_route(rest)?;
            Ok(Body::Forward(route, payload))
        }
        k if k == Kind::ForwardError as u8 => {
            let (&code, rest) = rest.split_first().ok_or(FrameError::Bad("short header"))?;
            let failure = ForwardFailure::from_u8(code).ok_or(FrameError::Bad("unknown error code"))?;
            let (route, payload) = parse_route(rest)?;
            Ok(Body::ForwardError(failure, route, payload))
        }
        k if k == Kind::Cancel as u8 => {
            let session = read_u32(rest, 0).ok_or(FrameError::Bad("short header"))?;
            Ok(Body::Cancel(session))
        }
        k if k == Kind::Routed as u8 => {
            let session = read_u32(rest, 0).ok_or(FrameError::Bad("short header"))?;
            let ids = &rest[4..];
            if ids.len() % 4 != 0 {
                return Err(FrameError::Bad("bad service id list"));
            }
            Ok(Body::Routed(session, ids))
        }
        k if (Kind::Hello as u8..=Kind::AuthFailed as u8).contains(&k) => Ok(Body::Handshake(body)),
        k if k == Kind::Publish as u8 => {
            const SHORT: FrameError = FrameError::Bad("short header");
            let flags = *rest.first().ok_or(SHORT)?;
            let topic_len = usize::from(*rest.get(1).ok_or(SHORT)?);
            let topic = rest.get(2..2 + topic_len).ok_or(SHORT)?;
            if topic.is_empty() {
                return Err(FrameError::Bad("empty topic"));
            }
            Ok(Body::Publish {
                retain: flags & FLAG_RETAIN != 0,
                topic,
                payload: &rest[2 + topic_len..],
            })
        }
        _ => Err(FrameError::Bad("unknown frame kind")),
    }
}

const FLAG_REPLY: u8 = 1;
const FLAG_RETAIN: u8 = 1;

// Route header: mode u8, flags u8, session u32, target u32, then key u64 for Hash.
fn parse_route(rest: &[u8]) -> Result<(Route, &[u8]), FrameError> {
    const SHORT: FrameError = FrameError::Bad("short header");
    let mode = Mode::from_u8(*rest.first().ok_or(SHORT)?).ok_or(FrameError::Bad("unknown forward mode"))?;
    let flags = *rest.get(1).ok_or(SHORT)?;
    let session = read_u32(rest, 2).ok_or(SHORT)?;
    let target = read_u32(rest, 6).ok_or(SHORT)?;
    let (key, header_len) = if mode == Mode::Hash {
        let bytes: [u8; 8] = rest.get(10..18).ok_or(SHORT)?.try_into().map_err(|_| SHORT)?;
        (u64::from_be_bytes(bytes), 18)
    } else {
        (0, 10)
    };
    let route = Route {
        mode,
        target,
        key,
        session,
        is_reply: flags & FLAG_REPLY != 0,
    };
    Ok((route, &rest[header_len..]))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Starts a frame of `kind` in `out`; returns where it starts, for [`finish`].
pub fn begin(out: &mut Vec<u8>, kind: Kind) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, kind as u8]);
    start
}

/// Writes a route header after [`begin`] with `Kind::Forward` or `Kind::ForwardError`.
pub fn push_route(out: &mut Vec<u8>, route: &Route) {
    out.push(route.mode as u8);
    out.push(if route.is_reply { FLAG_REPLY } else { 0 });
    out.extend_from_slice(&route.session.to_be_bytes());
    out.extend_from_slice(&route.target.to_be_bytes());
    if route.mode == Mode::Hash {
        out.extend_from_slice(&route.key.to_be_bytes());
    }
}

/// Patches the length prefix of the frame begun at `start`; returns the frame's size.
pub fn finish(out: &mut [u8], start: usize) -> usize {
    let total = out.len() - start;
    let body_len = (total - PREFIX_LEN) as u32;
    out[start..start + PREFIX_LEN].copy_from_slice(&body_len.to_be_bytes());
    total
}

/// Appends a whole frame of `kind` around an already encoded payload.
pub fn push_with_payload(out: &mut Vec<u8>, kind: Kind, payload: &[u8]) -> usize {
    let start = begin(out, kind);
    out.extend_from_slice(payload);
    finish(out, start)
}

/// Appends a `ForwardError` frame that returns `payload` to its sender.
pub fn push_forward_error(out: &mut Vec<u8>, failure: ForwardFailure, route: &Route, payload: &[u8]) -> usize {
    let start = begin(out, Kind::ForwardError);
    out.push(failure as u8);
    push_route(out, route);
    out.extend_from_slice(payload);
    finish(out, start)
}

/// Appends a `Cancel` frame for a tracked session.
pub fn push_cancel(out: &mut Vec<u8>, session: u32) -> usize {
    let start = begin(out, Kind::Cancel);
    out.extend_from_slice(&session.to_be_bytes());
    finish(out, start)
}

/// Appends a `Routed` frame listing the service ids a tracked broadcast reached.
pub fn push_routed(out: &mut Vec<u8>, session: u32, ids: impl Iterator<Item = u32>) -> usize {
    let start = begin(out, Kind::Routed);
    out.extend_from_slice(&session.to_be_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_be_bytes());
    }
    finish(out, start)
}

/// What follows a frame's kind byte, before its payload.
#[derive(Clone, Copy, Debug)]
pub enum Header<'a> {
    /// Nothing (Call, Deliver, Cancel...).
    None,
    /// A route header (Forward).
    Route(&'a Route),
    /// A publish header (Publish): retain flag and topic.
    Publish {
        /// Keep it for later subscribers.
        retain: bool,
        /// The topic (1 to 255 bytes).
        topic: &'a [u8],
    },
}

impl Header<'_> {
    /// Appends the header's bytes.
    pub fn push(self, out: &mut Vec<u8>) {
        match self {
            Header::None => {}
            Header::Route(route) => push_route(out, route),
            Header::Publish { retain, topic } => push_publish_header(out, retain, topic),
        }
    }
}

/// Writes a `Publish` header after [`begin`] with `Kind::Publish`; the topic is at most 255 bytes.
pub fn push_publish_header(out: &mut Vec<u8>, retain: bool, topic: &[u8]) {
    debug_assert!(!topic.is_empty() && topic.len() <= 255);
    out.push(if retain { FLAG_RETAIN } else { 0 });
    out.push(topic.len() as u8);
    out.extend_from_slice(topic);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_round_trip() {
        let mut out = Vec::new();
        let start = begin(&mut out, Kind::Publish);
        push_publish_header(&mut out, true, b"scores");
        out.extend_from_slice(b"\x91\x01");
        finish(&mut out, start);
        assert_eq!(
            parse_body(body(&out)),
            Ok(Body::Publish {
                retain: true,
                topic: b"scores",
                payload: b"\x91\x01"
            })
        );
        assert_eq!(parse_body(&[10, 0, 5, b'a']), Err(FrameError::Bad("short header")));
        assert_eq!(parse_body(&[10, 0, 0]), Err(FrameError::Bad("empty topic")));
    }

    fn body(frame: &[u8]) -> &[u8] {
        &frame[PREFIX_LEN..]
    }

    #[test]
    fn call_round_trip() {
        let mut out = Vec::new();
        let size = push_with_payload(&mut out, Kind::Call, b"\x91\xa1x");
        assert_eq!(size, out.len());
        assert_eq!(complete_len(&out, 100), Ok(Some(out.len())));
        assert_eq!(parse_body(body(&out)), Ok(Body::Call(&b"\x91\xa1x"[..])));
    }

    #[test]
    fn partial_frames_wait() {
        let mut out = Vec::new();
        push_with_payload(&mut out, Kind::Call, b"\x90");
        for cut in 0..out.len() {
            assert_eq!(complete_len(&out[..cut], 100), Ok(None));
        }
    }

    #[test]
    fn forward_headers_round_trip() {
        for mode in [Mode::Target, Mode::Master, Mode::Random, Mode::Broadcast, Mode::Hash] {
            let route = Route {
                mode,
                target: 0x0002_0001,
                key: if mode == Mode::Hash { u64::MAX - 7 } else { 0 },
                session: 77,
                is_reply: mode == Mode::Target,
            };
            let mut out = Vec::new();
            let start = begin(&mut out, Kind::Forward);
            push_route(&mut out, &route);
            out.extend_from_slice(b"\x90");
            finish(&mut out, start);
            assert_eq!(parse_body(body(&out)), Ok(Body::Forward(route, &b"\x90"[..])));
        }
    }

    #[test]
    fn forward_error_round_trip() {
        let route = Route {
            mode: Mode::Master,
            target: 3,
            key: 0,
            session: 9,
            is_reply: false,
        };
        let mut out = Vec::new();
        push_forward_error(&mut out, ForwardFailure::NoRoute, &route, b"\x91\x01");
        assert_eq!(
            parse_body(body(&out)),
            Ok(Body::ForwardError(ForwardFailure::NoRoute, route, &b"\x91\x01"[..]))
        );
    }

    #[test]
    fn cancel_round_trip() {
        let mut out = Vec::new();
        push_cancel(&mut out, 1234);
        assert_eq!(parse_body(body(&out)), Ok(Body::Cancel(1234)));
    }

    #[test]
    fn routed_round_trip() {
        let mut out = Vec::new();
        push_routed(&mut out, 7, [0x0002_0001, 0x0002_0003].into_iter());
        assert_eq!(
            parse_body(body(&out)),
            Ok(Body::Routed(7, &[0, 2, 0, 1, 0, 2, 0, 3][..]))
        );
        assert_eq!(
            parse_body(&[6, 0, 0, 0, 1, 9]),
            Err(FrameError::Bad("bad service id list"))
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(complete_len(&[0, 0, 0, 0], 10), Err(FrameError::Bad("empty frame")));
        assert!(matches!(
            complete_len(&[0xff, 0xff, 0xff, 0xff], 1 << 20),
            Err(FrameError::TooLarge(_))
        ));
        assert_eq!(parse_body(&[99]), Err(FrameError::Bad("unknown frame kind")));
        assert_eq!(
            parse_body(&[Kind::Forward as u8, 1, 0]),
            Err(FrameError::Bad("short header"))
        );
        assert_eq!(
            parse_body(&[Kind::Forward as u8, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(FrameError::Bad("unknown forward mode"))
        );
        assert_eq!(
            parse_body(&[Kind::Cancel as u8, 1]),
            Err(FrameError::Bad("short header"))
        );
    }
}

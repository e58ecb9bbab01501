//! Raw luna frames (docs/protocol.md) for tests that play a foreign or
//! hostile peer: a 4-byte big-endian body length, a kind byte, a header
//! and a MessagePack payload.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use rmpv::Value;

pub const CALL: u8 = 1;
pub const FORWARD: u8 = 2;
pub const DELIVER: u8 = 3;
pub const FORWARD_ERROR: u8 = 4;

/// Forward mode 1: one service by id.
pub const MODE_TARGET: u8 = 1;

/// `group << 16 | index`.
pub fn service_id(group: u32, index: u32) -> u32 {
    (group << 16) | index
}

/// The MessagePack bytes of an argument list.
pub fn payload(args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &Value::Array(args.to_vec())).expect("encode");
    out
}

/// A whole frame: length prefix, kind, header, payload.
pub fn frame(kind: u8, header: &[u8], payload: &[u8]) -> Vec<u8> {
    let body = 1 + header.len() + payload.len();
    let mut out = Vec::with_capacity(4 + body);
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    out
}

/// A Call frame of an already encoded payload (or of any bytes at all).
pub fn call_bytes(payload: &[u8]) -> Vec<u8> {
    frame(CALL, &[], payload)
}

/// The MessagePack amplification payload of issue 17: `91`, then 32 nested
/// array 32 (`dd`) or map 32 (`df`) headers, each claiming every byte left
/// after it (half of them for a map, two bytes per entry), then `00` filler.
pub fn amplification_payload(size: usize, map: bool) -> Vec<u8> {
    let mut out = vec![0x91u8];
    for _ in 0..32 {
        let left = (size - out.len() - 5) as u32;
        out.push(if map { 0xdf } else { 0xdd });
        out.extend_from_slice(&(if map { left / 2 } else { left }).to_be_bytes());
    }
    out.resize(size, 0);
    out
}

/// A plain socket to a luna listener on 127.0.0.1, reads bounded by the deadline.
pub fn connect_raw(port: u16) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(super::DEADLINE)).unwrap();
    socket
}

/// A Call frame carrying `args`.
pub fn call_frame(args: &[Value]) -> Vec<u8> {
    call_bytes(&payload(args))
}

/// A Forward frame in target mode; a non-zero `session` asks the router to track the call.
pub fn forward_target_frame(session: u32, target: u32, payload: &[u8]) -> Vec<u8> {
    let mut header = vec![MODE_TARGET, 0];
    header.extend_from_slice(&session.to_be_bytes());
    header.extend_from_slice(&target.to_be_bytes());
    frame(FORWARD, &header, payload)
}

/// Reads one frame: (kind, bytes after the kind byte).
pub fn read_frame(reader: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut prefix = [0u8; 4];
    reader.read_exact(&mut prefix)?;
    let length = u32::from_be_bytes(prefix) as usize;
    if length == 0 {
        return Err(std::io::Error::other("empty frame"));
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let kind = body[0];
    body.remove(0);
    Ok((kind, body))
}

/// Decodes a Call or Deliver payload into its arguments.
pub fn decode(payload: &[u8]) -> Vec<Value> {
    match rmpv::decode::read_value(&mut &payload[..]).expect("decode payload") {
        Value::Array(items) => items,
        other => panic!("payload is not an array: {other:?}"),
    }
}

/// What a raw client received.
#[derive(Default)]
pub struct Counts {
    /// Deliver frames (messages routed to this client's ids).
    pub delivers: AtomicU64,
    /// ForwardError frames (forwards the router reported as failed).
    pub forward_errors: AtomicU64,
    /// Call frames other than `@pong`.
    pub calls: AtomicU64,
    /// Set once the connection was closed by the peer.
    pub closed: AtomicBool,
    /// The Call messages other than `@pong`, decoded.
    pub messages: Mutex<Vec<Vec<Value>>>,
}

/// A raw connection to a router that keeps reading (counting what arrives)
/// and pings every 200 ms so the router's idle timeout does not close it.
pub struct RawClient {
    writer: Arc<Mutex<TcpStream>>,
    control: TcpStream,
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl RawClient {
    /// Connects to `address` ("ip:port").
    pub fn connect(address: &str) -> RawClient {
        let stream = TcpStream::connect(address).expect("raw connect");
        stream.set_nodelay(true).unwrap();
        stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let reader = stream.try_clone().unwrap();
        let control = stream.try_clone().unwrap();
        let writer = Arc::new(Mutex::new(stream));
        let counts: Arc<Counts> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let reading = {
            let counts = counts.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::with_capacity(1 << 16, reader);
                while let Ok((kind, body)) = read_frame(&mut reader) {
                    match kind {
                        DELIVER => {
                            counts.delivers.fetch_add(1, Ordering::SeqCst);
                        }
                        FORWARD_ERROR => {
                            counts.forward_errors.fetch_add(1, Ordering::SeqCst);
                        }
                        CALL => {
                            let args = decode(&body);
                            if args.first().and_then(Value::as_str) != Some("@pong") {
                                counts.calls.fetch_add(1, Ordering::SeqCst);
                                counts.messages.lock().unwrap().push(args);
                            }
                        }
                        _ => {}
                    }
                }
                counts.closed.store(true, Ordering::SeqCst);
            })
        };
        let pinging = {
            let (writer, stop) = (writer.clone(), stop.clone());
            let ping = call_frame(&[Value::from("@ping")]);
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    // Not a wait: pacing, one ping every 200 ms (checking for the stop meanwhile).
                    for _ in 0..10 {
                        std::thread::sleep(Duration::from_millis(20));
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                    }
                    if writer.lock().unwrap().write_all(&ping).is_err() {
                        return;
                    }
                }
            })
        };
        RawClient {
            writer,
            control,
            counts,
            stop,
            threads: vec![reading, pinging],
        }
    }

    /// Writes bytes (whole frames, or anything a hostile peer would send).
    pub fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.lock().unwrap().write_all(bytes)
    }

    /// Sends a Call frame.
    pub fn call(&self, args: &[Value]) {
        self.send(&call_frame(args)).expect("raw call");
    }

    /// The Call messages received so far (`@pong` left out).
    pub fn messages(&self) -> Vec<Vec<Value>> {
        self.counts.messages.lock().unwrap().clone()
    }

    pub fn delivers(&self) -> u64 {
        self.counts.delivers.load(Ordering::SeqCst)
    }

    pub fn forward_errors(&self) -> u64 {
        self.counts.forward_errors.load(Ordering::SeqCst)
    }

    pub fn closed(&self) -> bool {
        self.counts.closed.load(Ordering::SeqCst)
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.control.shutdown(Shutdown::Both);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

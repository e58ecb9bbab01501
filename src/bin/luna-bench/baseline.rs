//! The no-Lua baseline: the same frames (4-byte big-endian body length, kind
//! byte 1 = Call, MessagePack array payload) over blocking std sockets with
//! TCP_NODELAY, one thread per connection direction. Each mode runs as a
//! child process of this binary so it can be pinned like the luna processes.
//!
//! - `--baseline-server`: echo server; decodes each payload and encodes the
//!   reply (as a luna `on_call` that does `stream.call(msg, i, p)` would).
//! - `--baseline-client PORT INFLIGHT WARMUP_MS DURATION_MS`: keeps INFLIGHT
//!   messages `("echo", i, "hello")` outstanding; prints `result <replies/s> <n> <ns>`.
//! - `--baseline-relay UPSTREAM_PORT`: raw relay; each accepted connection
//!   gets its own upstream connection and two threads that read frames and
//!   write the complete ones to the other side.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const PREFIX: usize = 4;
const KIND_CALL: u8 = 1;
const READ_CHUNK: usize = 64 << 10;

/// Appends one Call frame carrying `("echo", i, "hello")`.
pub fn push_echo_frame(out: &mut Vec<u8>, i: u64) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, KIND_CALL]);
    rmp::encode::write_array_len(out, 3).expect("vec write");
    rmp::encode::write_str(out, "echo").expect("vec write");
    rmp::encode::write_uint(out, i).expect("vec write");
    rmp::encode::write_str(out, "hello").expect("vec write");
    let body = (out.len() - start - PREFIX) as u32;
    out[start..start + PREFIX].copy_from_slice(&body.to_be_bytes());
}

/// Calls `each(body)` for every complete frame at the front of `buf`;
/// returns the bytes consumed.
fn for_each_frame(buf: &[u8], mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<usize> {
    let mut at = 0;
    while buf.len() - at >= PREFIX {
        let len = u32::from_be_bytes(buf[at..at + PREFIX].try_into().expect("4 bytes")) as usize;
        if len == 0 || len > 16 << 20 {
            bail!("bad frame length {len}");
        }
        if buf.len() - at - PREFIX < len {
            break;
        }
        each(&buf[at + PREFIX..at + PREFIX + len])?;
        at += PREFIX + len;
    }
    Ok(at)
}

/// A frame reader over a blocking stream that keeps partial frames.
struct Frames {
    buf: Vec<u8>,
    start: usize,
}

impl Frames {
    fn new() -> Frames {
        Frames {
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
        }
    }

    /// Reads once (blocking) and hands every complete frame body to `each`.
    /// Returns false at end of stream.
    fn read(&mut self, stream: &mut TcpStream, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<bool> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let n = match stream.read(&mut self.buf[old..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e.into()),
        };
        self.buf.truncate(old + n);
        if n == 0 {
            return Ok(false);
        }
        self.start = for_each_frame(&self.buf, &mut each)?;
        Ok(true)
    }
}

/// `--baseline-server`: prints `port <n>`, echoes forever.
pub fn server() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("port {}", listener.local_addr()?.port());
    for stream in listener.incoming() {
        let stream = stream?;
        std::thread::spawn(move || {
            if let Err(e) = serve(stream) {
                eprintln!("baseline server: {e:#}");
            }
        });
    }
    Ok(())
}

fn serve(mut stream: TcpStream) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut frames = Frames::new();
    let mut out = Vec::with_capacity(READ_CHUNK);
    loop {
        out.clear();
        let open = frames.read(&mut stream, |body| {
            if body[0] != KIND_CALL {
                bail!("unexpected frame kind {}", body[0]);
            }
            let mut payload = &body[1..];
            let value = rmpv::decode::read_value_ref(&mut payload).context("decode")?;
            let start = out.len();
            out.extend_from_slice(&[0, 0, 0, 0, KIND_CALL]);
            rmpv::encode::write_value_ref(&mut out, &value).context("encode")?;
            let len = (out.len() - start - PREFIX) as u32;
            out[start..start + PREFIX].copy_from_slice(&len.to_be_bytes());
            Ok(())
        })?;
        if !open {
            return Ok(());
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
        }
    }
}

/// `--baseline-client`: the W1/W2 load generator without Lua.
pub fn client(port: u16, inflight: usize, warmup: Duration, duration: Duration) -> Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context("connect")?;
    stream.set_nodelay(true)?;
    let mut out = Vec::with_capacity(READ_CHUNK);
    let mut next: u64 = 0;
    for _ in 0..inflight {
        next += 1;
        push_echo_frame(&mut out, next);
    }
    stream.write_all(&out)?;
    let mut frames = Frames::new();
    let mut count: u64 = 0;
    let begin = Instant::now();
    let mut mark: Option<(Instant, u64)> = None;
    loop {
        out.clear();
        let mut replies = 0u64;
        let open = frames.read(&mut stream, |body| {
            let mut payload = &body[1..];
            let value = rmpv::decode::read_value_ref(&mut payload).context("decode reply")?;
            match value {
                rmpv::ValueRef::Array(items) if items.len() == 3 => {}
                other => bail!("unexpected reply {other:?}"),
            }
            replies += 1;
            Ok(())
        })?;
        if !open {
            bail!("server closed the connection");
        }
        count += replies;
        let now = Instant::now();
        match mark {
            None if now - begin >= warmup => mark = Some((now, count)),
            Some((t0, c0)) if now - t0 >= duration => {
                let elapsed = now - t0;
                let n = count - c0;
                println!(
                    "result {:.1} {n} {}",
                    n as f64 / elapsed.as_secs_f64(),
                    elapsed.as_nanos()
                );
                return Ok(());
            }
            _ => {}
        }
        for _ in 0..replies {
            next += 1;
            push_echo_frame(&mut out, next);
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
        }
    }
}

/// `--baseline-relay`: prints `port <n>`, relays each connection to `upstream`.
pub fn relay(upstream: u16) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("port {}", listener.local_addr()?.port());
    for down in listener.incoming() {
        let down = down?;
        let up = TcpStream::connect(("127.0.0.1", upstream)).context("connect upstream")?;
        down.set_nodelay(true)?;
        up.set_nodelay(true)?;
        let (down2, up2) = (down.try_clone()?, up.try_clone()?);
        std::thread::spawn(move || pump(down, up));
        std::thread::spawn(move || pump(up2, down2));
    }
    Ok(())
}

/// Reads frames from `from` and writes every complete one to `to`.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut frames = Frames::new();
    let mut out = Vec::with_capacity(READ_CHUNK);
    loop {
        out.clear();
        match frames.read(&mut from, |frame_body| {
            out.extend_from_slice(&(frame_body.len() as u32).to_be_bytes());
            out.extend_from_slice(frame_body);
            Ok(())
        }) {
            Ok(true) => {}
            _ => break,
        }
        if !out.is_empty() && to.write_all(&out).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

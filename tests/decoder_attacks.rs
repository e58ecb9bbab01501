//! The two remote attacks of issue 17, against the real binary: a
//! MessagePack frame whose nested tables claim the same bytes again and
//! again (memory amplification), and a Redis reply nested deep enough to
//! overflow a recursive parser's stack.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::wire::{amplification_payload, call_bytes, connect_raw};
use common::{Luna, eventually, test_script};

/// The echo server of tests/scripts/common/echo_server.lua (at most 100
/// streams); returns it and its port.
fn echo_server() -> (Luna, u16) {
    let mut server = Luna::start(&test_script("common/echo_server.lua"), &["100"]);
    let port = server.value("port").parse().unwrap();
    (server, port)
}

/// tests/scripts/decoder_attacks/redis_client.lua against the Redis port `port`.
fn redis_client(port: u16) -> Luna {
    Luna::start(&test_script("decoder_attacks/redis_client.lua"), &[&port.to_string()])
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_memory(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmHWM:")
}

/// Sends ("ping", n) and checks the echo comes back.
fn echo(socket: &mut TcpStream, n: u8) {
    socket
        .write_all(&call_bytes(&[0x92, 0xa4, b'p', b'i', b'n', b'g', n]))
        .unwrap();
    let mut prefix = [0u8; 4];
    socket.read_exact(&mut prefix).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    socket.read_exact(&mut body).unwrap();
    assert_eq!(
        body,
        [1, 0x93, 0xa4, b'e', b'c', b'h', b'o', 0xa4, b'p', b'i', b'n', b'g', n]
    );
}

#[test]
fn amplification_frames_are_closed_without_allocating_gigabytes() {
    let (mut server, port) = echo_server();
    let mut good = connect_raw(port);
    echo(&mut good, 1);
    let baseline = peak_memory(server.pid());
    for map in [false, true] {
        let mut bad = connect_raw(port);
        // The socket may be reset while we still write: the server closes it early.
        let _ = bad.write_all(&call_bytes(&amplification_payload(4 << 20, map)));
        server.expect("error bad-package");
        let mut rest = Vec::new();
        match bad.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "map {map}"),
        }
        echo(&mut good, 2);
        let grown = peak_memory(server.pid()).saturating_sub(baseline);
        assert!(grown < 64 << 20, "map {map}: peak memory grew by {} MiB", grown >> 20);
    }
    assert!(server.stderr().contains("truncated message"), "{}", server.stderr());
    assert!(server.child.try_wait().unwrap().is_none(), "luna is still running");
}

/// A line of /proc/<pid>/status in bytes (`VmHWM`, `VmData`...).
fn proc_status_bytes(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with(key)).expect(key);
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn length_prefixes_alone_do_not_reserve_what_they_declare() {
    let (server, port) = echo_server();
    let mut good = connect_raw(port);
    echo(&mut good, 1);
    let before = proc_status_bytes(server.pid(), "VmData:");
    // Each declares a 16 MiB Call and sends its first bytes in pieces, so
    // that later reads find the prefix already buffered.
    let mut peers: Vec<TcpStream> = (0..40).map(|_| connect_raw(port)).collect();
    let prefix = ((16u32 << 20) + 1).to_be_bytes();
    for piece in [&prefix[..], &[1u8, 0x91][..], &[0xc0][..]] {
        for peer in &mut peers {
            peer.write_all(piece).unwrap();
        }
        // Not a wait: pacing, so that each piece arrives in a read of its own.
        std::thread::sleep(Duration::from_millis(100));
    }
    echo(&mut good, 2);
    let grown = proc_status_bytes(server.pid(), "VmData:").saturating_sub(before);
    assert!(grown < 64 << 20, "40 partial frames reserved {} MiB", grown >> 20);
    drop(peers);
    echo(&mut good, 3);
}

/// A fake Redis server: the first connection answers its first command with
/// the pieces of `first_reply`, 300 ms apart; every other command gets
/// `+PONG`. Returns the port and the count of connections accepted so far.
fn fake_redis(first_reply: Vec<Vec<u8>>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(socket) = socket else { return };
            let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let first_reply = first_reply.clone();
            std::thread::spawn(move || serve(socket, number == 1, &first_reply));
        }
    });
    (port, accepted)
}

/// Answers each complete command (an array of bulk strings) on `socket`.
fn serve(mut socket: TcpStream, first: bool, first_reply: &[Vec<u8>]) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut answered = 0usize;
    loop {
        let read = match socket.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..read]);
        while let Some(len) = command_len(&pending) {
            pending.drain(..len);
            let pong = [b"+PONG\r\n".to_vec()];
            let reply = if first && answered == 0 { first_reply } else { &pong[..] };
            answered += 1;
            for (at, piece) in reply.iter().enumerate() {
                if at > 0 {
                    // Not a wait: pacing, so that the client reads a partial reply.
                    std::thread::sleep(Duration::from_millis(300));
                }
                if socket.write_all(piece).is_err() {
                    return;
                }
            }
        }
    }
}

/// Length of the first complete command in `buf`, if any.
fn command_len(buf: &[u8]) -> Option<usize> {
    fn line(buf: &[u8], at: usize) -> Option<(usize, usize)> {
        let end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
        Some((n, end + 2))
    }
    let (count, mut at) = line(buf, 0)?;
    for _ in 0..count {
        let (len, next) = line(buf, at)?;
        at = next + len + 2;
        if at > buf.len() {
            return None;
        }
    }
    Some(at)
}

#[test]
fn a_deeply_nested_redis_reply_closes_that_link_and_the_client_reconnects() {
    let mut nested = b"*1\r\n".repeat(50_000);
    nested.extend_from_slice(b":1\r\n");
    let (port, accepted) = fake_redis(vec![nested]);
    let mut luna = redis_client(port);
    luna.expect_err("reply nested deeper than 32 levels");
    luna.expect("ready");
    assert_eq!(luna.value("ping"), "PONG");
    eventually("a second connection", || {
        (accepted.load(Ordering::SeqCst) >= 2).then_some(())
    });
    assert!(luna.child.try_wait().unwrap().is_none(), "luna is still running");
    assert!(luna.stderr().contains("bad-package"), "{}", luna.stderr());
    // Nothing to wait for: a late crash would show as an exit in this window.
    assert!(
        luna.wait_exit_within(Duration::from_millis(100)).is_none(),
        "luna is still running"
    );
}

#[test]
fn a_partial_redis_reply_is_not_read_as_a_length_prefix() {
    // "$100" read as a frame prefix would be a 607 MB body.
    let mut bulk = b"$100000\r\n".to_vec();
    bulk.extend_from_slice(&[b'x'; 50_000]);
    let mut rest = vec![b'x'; 50_000];
    rest.extend_from_slice(b"\r\n");
    let (port, accepted) = fake_redis(vec![bulk, rest]);
    let mut luna = redis_client(port);
    // Measured as soon as luna connected: what reading the reply reserves
    // (its first piece included) counts as growth.
    eventually("a connection", || (accepted.load(Ordering::SeqCst) >= 1).then_some(()));
    let before = proc_status_bytes(luna.pid(), "VmPeak:");
    luna.expect("ready");
    assert_eq!(luna.value("ping"), "PONG");
    let grown = proc_status_bytes(luna.pid(), "VmPeak:").saturating_sub(before);
    assert!(grown < 64 << 20, "a 100 kB reply reserved {} MiB", grown >> 20);
}

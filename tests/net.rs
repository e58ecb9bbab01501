//! The network core (README "Sockets"): streams, framing, limits and errors.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::wire::{self, connect_raw};
use common::{Dir, Luna, test_script};

/// Starts `tests/scripts/net/<name>.lua <args...>`.
fn net_script(name: &str, args: &[&str]) -> Luna {
    Luna::start(&test_script(&format!("net/{name}.lua")), args)
}

/// Starts the client script `name` connected to `port`.
fn start_client(name: &str, port: u16) -> Luna {
    net_script(name, &[&port.to_string()])
}

/// Starts tests/scripts/common/echo_server.lua with `args`; returns it and its port.
fn start_echo_server(args: &[&str]) -> (Luna, u16) {
    let mut server = Luna::start(&test_script("common/echo_server.lua"), args);
    let port = server.value("port").parse().unwrap();
    (server, port)
}

#[test]
fn echo_across_two_processes() {
    let (_server, port) = start_echo_server(&[]);
    let mut client = start_client("echo_client", port);
    client.expect("connect ok");
    client.expect("types\tnumber\t127.0.0.1\ttrue");
    client.expect("all replies");
    assert!(client.wait_exit().success(), "{}", client.stderr());
}

#[test]
fn every_value_kind_round_trips_exactly() {
    let (_server, port) = start_echo_server(&[]);
    for seed in ["1", "2", "3"] {
        let mut client = net_script("round_trip", &[&port.to_string(), seed]);
        client.expect("checked 500");
        assert!(client.wait_exit().success(), "{}", client.stderr());
        assert!(
            !client.stdout().iter().any(|l| l.contains("mismatch")),
            "{:?}",
            client.stdout()
        );
    }
}

#[test]
fn unsendable_values_fail_with_what_and_where_and_send_nothing() {
    let (_server, port) = start_echo_server(&[]);
    let mut client = start_client("unsendable", port);
    let lines: Vec<String> = (0..5).map(|_| client.expect("refused")).collect();
    assert!(
        lines[0].contains("cannot send a function (argument #2)"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("cannot send a thread (argument #2, at .items[3].bad)"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("cycle") && lines[2].contains(".self"), "{}", lines[2]);
    assert!(lines[3].contains("deeper than 32"), "{}", lines[3]);
    assert!(lines[4].contains("cannot send a userdata"), "{}", lines[4]);
    client.expect("first reply after");
    assert!(client.wait_exit().success());
}

#[test]
fn ten_mib_message() {
    let (_server, port) = start_echo_server(&[]);
    let mut client = start_client("ten_mib", port);
    client.expect("got back\tbig\t10485760\ttrue");
    assert!(client.wait_exit().success());
}

#[test]
fn thousand_concurrent_connections() {
    let (mut server, port) = start_echo_server(&[]);
    let mut client = start_client("thousand_clients", port);
    client.expect("all connected");
    client.expect("all replied");
    assert!(client.wait_exit().success(), "{}", client.stderr());
    // The server saw 1000 peers leave.
    for _ in 0..1000 {
        server.expect("error connection-lost");
    }
}

#[test]
fn connect_errors_refused_unresolvable_timeout_and_bad_params() {
    // A port nobody listens on: bind one, note it, close it.
    let refused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A listener whose accept queue is full: further SYNs are dropped, so connects hang.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    full.listen(0).unwrap();
    let full_port = full.local_addr().unwrap().as_socket().unwrap().port();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = TcpStream::connect_timeout(
            &format!("127.0.0.1:{full_port}").parse().unwrap(),
            Duration::from_millis(200),
        ) {
            fillers.push(s);
        }
    }
    let mut client = net_script("connect_errors", &[&refused_port.to_string(), &full_port.to_string()]);
    client.expect("badport immediate invalid-param");
    client.expect("badhost immediate invalid-param");
    let out = || client.stdout().join("\n");
    for expected in [
        "refused connect-failed",
        "unresolvable addr-error",
        "timeout timeout",
        "seed on_error connect-failed",
    ] {
        common::eventually(expected, || out().contains(expected).then_some(()));
    }
    drop(fillers);
}

#[test]
fn idle_timeout_closes_a_silent_stream() {
    let (_server, port) = start_echo_server(&[]);
    let mut client = start_client("idle_timeout", port);
    client.expect("closed timeout after>=450 true");
    assert!(client.wait_exit().success());
}

#[test]
fn send_buffer_full_against_a_reader_that_never_reads() {
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    // The accepted socket is the thread's result: held open, never read,
    // until the test joins the thread at its end.
    let holder = std::thread::spawn(move || sink.accept().unwrap().0);
    let mut client = start_client("send_buffer_full", port);
    client.expect("call refused send-buffer-full");
    client.expect("on_error send-buffer-full");
    client.expect("then call says\tnil\tclosed");
    assert!(client.wait_exit().success());
    drop(client);
    drop(holder.join());
}

/// A frame with no header: length prefix, kind, then `payload` as it is.
fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    wire::frame(kind, &[], payload)
}

/// Reads one frame from a raw socket; returns its kind and payload.
fn read_frame(socket: &mut TcpStream) -> (u8, rmpv::Value) {
    let (kind, payload) = wire::read_frame(socket).unwrap();
    (kind, rmpv::decode::read_value(&mut &payload[..]).unwrap())
}

fn assert_served(port: u16) {
    let mut good = connect_raw(port);
    good.write_all(&frame(1, &wire::payload(&["still".into(), 1.into()])))
        .unwrap();
    let (kind, value) = read_frame(&mut good);
    assert_eq!(kind, 1);
    assert_eq!(value, rmpv::Value::Array(vec!["echo".into(), "still".into(), 1.into()]));
}

#[test]
fn malformed_input_closes_only_that_stream() {
    let (mut server, port) = start_echo_server(&[]);
    let mut too_deep = vec![0x91u8]; // the argument array
    too_deep.extend(std::iter::repeat_n(0x91u8, 40));
    too_deep.push(0x01);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage prefix",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            "error package-too-large",
        ),
        (
            "huge length",
            vec![0x7f, 0xff, 0xff, 0xff, 1, 0x90],
            "error package-too-large",
        ),
        ("zero length", vec![0, 0, 0, 0], "error bad-package"),
        ("unknown kind", frame(99, &[0x90]), "error bad-package"),
        (
            "a secret handshake on a link without one",
            frame(7, &[1, 1]),
            "error auth-failed",
        ),
        ("not msgpack", frame(1, &[0xc1, 0xc1]), "error bad-package"),
        (
            "truncated msgpack",
            frame(1, &[0x92, 0xa5, b'h', b'i']),
            "error bad-package",
        ),
        ("too deep", frame(1, &too_deep), "error bad-package"),
        ("not an array", frame(1, &[0xa1, b'x']), "error bad-package"),
        ("trailing bytes", frame(1, &[0x91, 0x01, 0x02]), "error bad-package"),
    ];
    for (what, bytes, expected) in cases {
        let mut bad = connect_raw(port);
        // A healthy connection made before the bad one must survive it too.
        let mut bystander = connect_raw(port);
        bad.write_all(&bytes).unwrap();
        // Other streams of earlier cases close too: wait for this case's error.
        let line = server.expect(expected);
        assert_eq!(line, expected, "case {what}");
        // The bad stream was closed by the server.
        let mut rest = Vec::new();
        bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match bad.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "case {what}"),
        }
        bystander.write_all(&frame(1, &wire::payload(&["ok".into()]))).unwrap();
        assert_eq!(
            read_frame(&mut bystander).1,
            rmpv::Value::Array(vec!["echo".into(), "ok".into()]),
            "case {what}"
        );
        assert_served(port);
    }
    // A frame cut short by a closing peer loses nothing else.
    let mut half = connect_raw(port);
    half.write_all(&frame(1, &wire::payload(&["x".into()]))[..5]).unwrap();
    drop(half);
    server.expect("error connection-lost");
    assert_served(port);
}

#[test]
fn graceful_stop_delivers_everything_already_sent() {
    let mut receiver = net_script("receiver", &[]);
    let port = receiver.value("port");
    let mut sender = net_script("sender", &[&port]);
    sender.expect("sent");
    sender.signal(libc::SIGTERM);
    assert_eq!(sender.wait_exit().code(), Some(0));
    receiver.expect("received 5000 bytes 20480000 then connection-lost");
}

#[test]
fn close_flushes_queued_output_first() {
    let (mut server, port) = start_echo_server(&[]);
    let mut client = start_client("close_flushes", port);
    client.expect("after close\tnil\tclosed");
    assert!(client.wait_exit().success());
    server.expect("last words 1000000");
    server.expect("error connection-lost");
}

#[test]
fn max_fd_is_enforced_on_connect_and_accept() {
    let (_server, port) = start_echo_server(&[]);
    // A manager bounded to two streams: the third connect is refused at once,
    // and closing one makes room again.
    let mut client = start_client("max_fd_client", port);
    client.expect("third\tnil\ttoo-many-connection");
    client.expect("after close\ttrue");

    // A server with max_fd 3: its listener and two streams.
    let (mut server, port) = start_echo_server(&["3"]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_raw(port);
        // An answer proves the server accepted this one.
        stream.write_all(&frame(1, &wire::payload(&["hi".into()]))).unwrap();
        read_frame(&mut stream);
        held.push(stream);
    }
    // The third is accepted by the kernel, then closed by luna and counted.
    let mut third = connect_raw(port);
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    match third.read(&mut buf) {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the refused connection should be closed, got {other:?}"),
    }
    server.expect_err("too-many-connection");
}

#[test]
fn sockets_nobody_references_stay_open_and_keep_their_callbacks() {
    // README "Sockets": dropping every reference closes nothing (the seeds closed
    // collected objects, which cut live links in routers that kept only tokens).
    let (mut server, port) = start_echo_server(&[]);
    let mut client = start_client("unreferenced", port);
    client.expect("dropped connected");
    client.expect("still flowing true");
    client.expect("probe ok");
    client.expect("accepted got hello");
    assert!(
        !server.stderr().contains("connection-lost") && !server.stdout().iter().any(|l| l.contains("error")),
        "the unreferenced stream was closed:\n{}",
        server.stderr()
    );
    server.signal(libc::SIGTERM);
    server.wait_exit();
}

#[test]
fn nested_wait_is_an_error_and_the_loop_goes_on() {
    let mut luna = net_script("nested_wait", &[]);
    let line = luna.expect("nested");
    assert!(line.contains("false") && line.contains("already running"), "{line}");
    assert!(luna.wait_exit().success());
}

#[test]
fn peer_closing_while_we_write_never_kills_the_process() {
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (socket, _) = sink.accept().unwrap();
        drop(socket); // close at once: later writes hit a reset socket (EPIPE)
    });
    let mut client = start_client("peer_closing", port);
    client.expect("error connection-lost");
    assert_eq!(client.wait_exit().code(), Some(0));
}

#[test]
fn a_peer_that_half_closes_still_gets_its_replies() {
    let (mut server, port) = start_echo_server(&[]);
    let big = "b".repeat(4 << 20);
    let mut raw = connect_raw(port);
    raw.write_all(&frame(1, &wire::payload(&["small".into()]))).unwrap();
    raw.write_all(&frame(1, &wire::payload(&[big.as_str().into()])))
        .unwrap();
    raw.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(
        read_frame(&mut raw).1,
        rmpv::Value::Array(vec!["echo".into(), "small".into()])
    );
    assert_eq!(
        read_frame(&mut raw).1,
        rmpv::Value::Array(vec!["echo".into(), big.as_str().into()])
    );
    server.expect("error connection-lost");
    let mut rest = Vec::new();
    assert_eq!(raw.read_to_end(&mut rest).unwrap(), 0, "closed after the replies");
}

#[test]
fn raw_streams_carry_bytes_both_ways() {
    let dir = Dir::new();
    let script = test_script("net/raw_echo.lua");
    let (code, stdout, stderr) = common::run_to_end(dir.dir.path(), &[script.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("raw client has write true, call false"), "{stdout}");
    assert!(
        stdout.contains("connect ok") && stdout.contains("raw round trip ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad framing invalid-param | options (argument #3): framing must be"),
        "{stdout}"
    );
}

//! The network core (SPEC section 3): streams, framing, limits and errors.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Dir, Luna};

/// A server that echoes every message back as ("echo", msg, ...), and
/// reports errors and accepts on stdout.
const ECHO_SERVER: &str = r#"
    local mgr = luna.create_socket_mgr(tonumber(luna.args[1]) or 2000)
    listener = assert(mgr.listen("127.0.0.1", 0))
    streams = {}
    local accepted = 0
    listener.on_accept = function(stream)
        accepted = accepted + 1
        streams[stream.token] = stream
        stream.on_call = function(msg, ...)
            if msg == "quit" then luna_quit_flag = true return end
            local n, err = stream.call("echo", msg, ...)
            if not n then print("reply failed " .. err) end
        end
        stream.on_error = function(err)
            print("error " .. err)
            streams[stream.token] = nil
        end
    end
    function on_start() print("port " .. listener.port) end
"#;

/// Starts a client whose script is `body` after a preamble that connects
/// the global `stream` to `port`.
fn start_client(dir: &Dir, port: u16, body: &str) -> Luna {
    let script = dir.write(
        "client.lua",
        &format!(
            "local mgr = luna.create_socket_mgr(10)\nstream = mgr.connect(\"127.0.0.1\", tonumber(luna.args[1]), 2000)\n{body}"
        ),
    );
    Luna::start(&script, &[&port.to_string()])
}

fn start_echo_server(dir: &Dir) -> (Luna, u16) {
    let script = dir.write("server.lua", ECHO_SERVER);
    let mut server = Luna::start(&script, &[]);
    let port = server.value("port").parse().unwrap();
    (server, port)
}

#[test]
fn echo_across_two_processes() {
    let dir = Dir::new();
    let (_server, port) = start_echo_server(&dir);
    let mut client = start_client(
        &dir,
        port,
        r#"
        stream.count = 0 -- objects take extra fields
        stream.on_connect = function(result)
            print("connect " .. result)
            print("types", type(stream.token), stream.ip, stream.port == tonumber(luna.args[1]))
            for i = 1, 100 do assert(stream.call("ping", i, "hello")) end
        end
        stream.on_call = function(kind, msg, i, text)
            stream.count = stream.count + 1
            assert(kind == "echo" and msg == "ping" and i == stream.count and text == "hello")
            if stream.count == 100 then print("all replies"); luna_quit_flag = true end
        end
        "#,
    );
    client.expect("connect ok");
    client.expect("types\tnumber\t127.0.0.1\ttrue");
    client.expect("all replies");
    assert!(client.wait_exit().success(), "{}", client.stderr());
}

/// A random value generator and deep comparison, shared by the round-trip tests.
const VALUES_LIB: &str = r#"
local M = _ENV -- import returns this file's environment
local seed = tonumber(luna.args[2]) or 1
local function rand(n) -- deterministic LCG, 1..n
    seed = (seed * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
    return (seed >> 33) % n + 1
end
local function random_bytes()
    local t = {}
    for i = 1, rand(12) - 1 do t[i] = string.char(rand(256) - 1) end
    return table.concat(t)
end
local scalars = {
    function() return rand(2) == 1 end,
    function() return rand(1000) - 500 end,
    function() return math.maxinteger - rand(3) + 1 end,
    function() return math.mininteger + rand(3) - 1 end,
    function() return (rand(1000) - 500) / 7 end,
    function() return rand(100) + 0.0 end, -- integral float stays float
    function() return -0.0 end,
    function() return 1e300 * rand(2) end,
    function() return random_bytes() end,
    function() return "unicode ✓ " .. rand(9) end,
}
function M.value(depth)
    local kind = rand(depth > 4 and 10 or 14)
    if kind <= 10 then return scalars[kind]() end
    local t = {}
    if kind == 11 then -- sequence
        for i = 1, rand(6) do t[i] = M.value(depth + 1) end
    elseif kind == 12 then -- map with assorted keys
        for _ = 1, rand(5) do
            local keys = { random_bytes(), rand(100), rand(100) + 0.5, rand(2) == 1 }
            local k = keys[rand(4)]
            t[k] = M.value(depth + 1)
        end
    elseif kind == 13 then -- holed
        for i = 1, rand(6) do if rand(2) == 1 then t[i * 2] = M.value(depth + 1) end end
        t[1] = "first"
    else -- mixed
        for i = 1, rand(4) do t[i] = M.value(depth + 1) end
        t.name = M.value(depth + 1)
    end
    return t
end
function M.equal(a, b)
    if type(a) ~= type(b) then return false end
    if type(a) == "number" then
        return math.type(a) == math.type(b) and (a == b or (a ~= a and b ~= b))
            and (a ~= 0 or 1 / a == 1 / b)
    end
    if type(a) ~= "table" then return a == b end
    for k, v in pairs(a) do if not M.equal(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
end
"#;

#[test]
fn every_value_kind_round_trips_exactly() {
    let dir = Dir::new();
    let (_server, port) = start_echo_server(&dir);
    dir.write("values.lua", VALUES_LIB);
    let client = dir.write(
        "client.lua",
        r#"
        local V = import("values.lua")
        local mgr = luna.create_socket_mgr(10)
        stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
        local sent, received, rounds = {}, 0, 500
        stream.on_connect = function(result)
            assert(result == "ok")
            -- Fixed cases first: nil inside and at the end of argument lists.
            sent[1] = table.pack(nil, 1, nil)
            sent[2] = table.pack("x", nil, nil, nil)
            sent[3] = table.pack({ 1, nil, 3 }, { [1] = "a", [3] = "c" }, {}, { n = 1, 10, 20 })
            sent[4] = table.pack(1, 1.0, -1, 0.5, math.maxinteger, math.mininteger, "\0\255\128")
            for i = 5, rounds do
                local args = { n = 0 }
                for j = 1, (i % 5) + 1 do args[j] = V.value(1); args.n = j end
                sent[i] = args
            end
            for i = 1, rounds do assert(stream.call(table.unpack(sent[i], 1, sent[i].n))) end
        end
        stream.on_call = function(kind, ...)
            received = received + 1
            local expected = sent[received]
            local got = table.pack(...)
            if got.n ~= expected.n then print("count mismatch at " .. received) end
            for j = 1, expected.n do
                if not V.equal(expected[j], got[j]) then print("value mismatch at " .. received .. " arg " .. j) end
            end
            if received == rounds then print("checked " .. rounds); luna_quit_flag = true end
        end
        "#,
    );
    for seed in ["1", "2", "3"] {
        let mut client = Luna::start(&client, &[&port.to_string(), seed]);
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
    let dir = Dir::new();
    let (_server, port) = start_echo_server(&dir);
    let mut client = start_client(
        &dir,
        port,
        r#"
        stream.on_connect = function()
            local cyclic = {}; cyclic.self = cyclic
            local deep = {}; local t = deep
            for _ = 1, 40 do t.next = {}; t = t.next end
            local cases = {
                { "f", print },
                { "t", { items = { 1, 2, { bad = coroutine.create(print) } } } },
                { "c", cyclic },
                { "d", deep },
                { "u", io.stdout },
            }
            for _, case in ipairs(cases) do
                local n, err = stream.call(table.unpack(case))
                print("refused", n, err)
            end
            -- Nothing was queued: the next message is the first the server sees.
            stream.call("after")
        end
        stream.on_call = function(kind, msg)
            print("first reply " .. msg)
            luna_quit_flag = true
        end
        "#,
    );
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
    let dir = Dir::new();
    let (_server, port) = start_echo_server(&dir);
    let mut client = start_client(
        &dir,
        port,
        r#"
        local blob = string.rep("0123456789abcdef", 10 * 1024 * 1024 // 16)
        stream.on_connect = function() print("queued", stream.call("big", blob, #blob)) end
        stream.on_call = function(kind, msg, data, len)
            print("got back", msg, len, data == blob)
            luna_quit_flag = true
        end
        "#,
    );
    client.expect("got back\tbig\t10485760\ttrue");
    assert!(client.wait_exit().success());
}

#[test]
fn thousand_concurrent_connections() {
    let dir = Dir::new();
    let (mut server, port) = start_echo_server(&dir);
    let client = dir.write(
        "client.lua",
        r#"
        local mgr = luna.create_socket_mgr(2000)
        local port = tonumber(luna.args[1])
        streams = {}
        local connected, replied = 0, 0
        for i = 1, 1000 do
            local s = assert(mgr.connect("127.0.0.1", port, 10000))
            streams[i] = s
            s.on_connect = function(result)
                assert(result == "ok", result)
                connected = connected + 1
                if connected == 1000 then
                    print("all connected")
                    for j, t in ipairs(streams) do t.call("hi", j) end
                end
            end
            s.on_call = function(kind, msg, j)
                assert(j == i)
                replied = replied + 1
                if replied == 1000 then print("all replied"); luna_quit_flag = true end
            end
            s.on_error = function(err) print("client error " .. err) end
        end
        "#,
    );
    let mut client = Luna::start(&client, &[&port.to_string()]);
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
    let dir = Dir::new();
    let client = dir.write(
        "client.lua",
        r#"
        local mgr = luna.create_socket_mgr(10)
        local refused, full = tonumber(luna.args[1]), tonumber(luna.args[2])
        streams = {}
        local function try(name, host, port, timeout)
            local s, err = mgr.connect(host, port, timeout)
            if not s then print(name .. " immediate " .. err) return end
            streams[name] = s
            s.on_connect = function(result) print(name .. " " .. result) end
        end
        try("refused", "127.0.0.1", refused, 2000)
        try("unresolvable", "no-such-host.invalid", 80, 5000)
        try("timeout", "127.0.0.1", full, 300)
        try("badport", "127.0.0.1", 70000, 100)
        try("badhost", 42, 80, 100)
        -- The seed spelling: on_error reports the failure when on_connect is absent.
        local s = mgr.connect("127.0.0.1", refused, 2000)
        streams.seed = s
        s.on_error = function(err) print("seed on_error " .. err) end
        luna.timer(3000, function() luna_quit_flag = true end)
        "#,
    );
    let mut client = Luna::start(&client, &[&refused_port.to_string(), &full_port.to_string()]);
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
    let dir = Dir::new();
    let (_server, port) = start_echo_server(&dir);
    let mut client = start_client(
        &dir,
        port,
        r#"
        local t0
        stream.on_connect = function()
            stream.set_timeout(200)
            t0 = luna.get_time_ms()
            -- Traffic keeps it alive for a while.
            for i = 1, 3 do luna.timer(i * 100, function() stream.call("keepalive") end) end
        end
        stream.on_call = function() end
        stream.on_error = function(err)
            print("closed " .. err .. " after>=450 " .. tostring(luna.get_time_ms() - t0 >= 450))
            luna_quit_flag = true
        end
        "#,
    );
    client.expect("closed timeout after>=450 true");
    assert!(client.wait_exit().success());
}

#[test]
fn send_buffer_full_against_a_reader_that_never_reads() {
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let (socket, _) = sink.accept().unwrap();
        std::thread::sleep(Duration::from_secs(15));
        drop(socket);
    });
    let dir = Dir::new();
    let mut client = start_client(
        &dir,
        port,
        r#"
        local chunk = string.rep("x", 64 * 1024)
        local sent = 0
        stream.on_connect = function()
            stream.set_send_buffer_size(1024 * 1024)
            local function pump()
                for _ = 1, 8 do
                    local n, err = stream.call("data", chunk)
                    if not n then print("call refused " .. err .. " after " .. sent) return end
                    sent = sent + 1
                end
                luna.timer(1, pump)
            end
            pump()
        end
        stream.on_error = function(err)
            print("on_error " .. err)
            print("then call says", stream.call("more"))
            luna_quit_flag = true
        end
        "#,
    );
    client.expect("call refused send-buffer-full");
    client.expect("on_error send-buffer-full");
    client.expect("then call says\tnil\tclosed");
    assert!(client.wait_exit().success());
    drop(client);
    let _ = holder;
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

fn msgpack(values: &[rmpv::Value]) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &rmpv::Value::Array(values.to_vec())).unwrap();
    out
}

/// Reads one frame from a raw socket; returns its kind and payload.
fn read_frame(socket: &mut TcpStream) -> (u8, rmpv::Value) {
    let mut prefix = [0u8; 4];
    socket.read_exact(&mut prefix).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    socket.read_exact(&mut body).unwrap();
    (body[0], rmpv::decode::read_value(&mut &body[1..]).unwrap())
}

fn raw_client(port: u16) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(common::DEADLINE)).unwrap();
    socket
}

fn assert_served(port: u16) {
    let mut good = raw_client(port);
    good.write_all(&frame(1, &msgpack(&["still".into(), 1.into()])))
        .unwrap();
    let (kind, value) = read_frame(&mut good);
    assert_eq!(kind, 1);
    assert_eq!(value, rmpv::Value::Array(vec!["echo".into(), "still".into(), 1.into()]));
}

#[test]
fn malformed_input_closes_only_that_stream() {
    let dir = Dir::new();
    let (mut server, port) = start_echo_server(&dir);
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
        let mut bad = raw_client(port);
        // A healthy connection made before the bad one must survive it too.
        let mut bystander = raw_client(port);
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
        bystander.write_all(&frame(1, &msgpack(&["ok".into()]))).unwrap();
        assert_eq!(
            read_frame(&mut bystander).1,
            rmpv::Value::Array(vec!["echo".into(), "ok".into()]),
            "case {what}"
        );
        assert_served(port);
    }
    // A frame cut short by a closing peer loses nothing else.
    let mut half = raw_client(port);
    half.write_all(&frame(1, &msgpack(&["x".into()]))[..5]).unwrap();
    drop(half);
    server.expect("error connection-lost");
    assert_served(port);
}

#[test]
fn graceful_stop_delivers_everything_already_sent() {
    let dir = Dir::new();
    let receiver = dir.write(
        "receiver.lua",
        r#"
        local mgr = luna.create_socket_mgr(10)
        listener = mgr.listen("127.0.0.1", 0)
        local count, bytes = 0, 0
        listener.on_accept = function(stream)
            held = stream
            stream.on_call = function(msg, i, data)
                count = count + 1
                bytes = bytes + #data
                assert(i == count, "out of order")
            end
            stream.on_error = function(err) print("received " .. count .. " bytes " .. bytes .. " then " .. err) end
        end
        print("port " .. listener.port)
        "#,
    );
    let mut receiver = Luna::start(&receiver, &[]);
    let port = receiver.value("port");
    let sender = dir.write(
        "sender.lua",
        r#"
        local mgr = luna.create_socket_mgr(10)
        stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
        stream.on_connect = function()
            local chunk = string.rep("z", 4096)
            for i = 1, 5000 do assert(stream.call("data", i, chunk)) end
            print("sent")
        end
        "#,
    );
    let mut sender = Luna::start(&sender, &[&port]);
    sender.expect("sent");
    sender.signal(libc::SIGTERM);
    assert_eq!(sender.wait_exit().code(), Some(0));
    receiver.expect("received 5000 bytes 20480000 then connection-lost");
}

#[test]
fn close_flushes_queued_output_first() {
    let dir = Dir::new();
    let (mut server, port) = start_echo_server(&dir);
    let mut client = start_client(
        &dir,
        port,
        r#"
        stream.on_connect = function()
            stream.call("last words", string.rep("w", 1000000))
            stream.close()
            print("after close", stream.call("too late"))
            luna.timer(200, function() luna_quit_flag = true end)
        end
        "#,
    );
    client.expect("after close\tnil\tclosed");
    assert!(client.wait_exit().success());
    server.expect("error connection-lost");
}

#[test]
fn max_fd_is_enforced_on_connect_and_accept() {
    let dir = Dir::new();
    let (_server, port) = start_echo_server(&dir);
    // A manager bounded to two streams: the third connect is refused at once,
    // and closing one makes room again.
    let client = dir.write(
        "client.lua",
        r#"
        local mgr = luna.create_socket_mgr(2)
        local port = tonumber(luna.args[1])
        a = mgr.connect("127.0.0.1", port, 2000)
        b = mgr.connect("127.0.0.1", port, 2000)
        print("third", mgr.connect("127.0.0.1", port, 2000))
        b.close()
        c = mgr.connect("127.0.0.1", port, 2000)
        print("after close", c ~= nil)
        "#,
    );
    let mut client = Luna::start(&client, &[&port.to_string()]);
    client.expect("third\tnil\ttoo-many-connection");
    client.expect("after close\ttrue");

    // A server with max_fd 3: its listener and two streams.
    let script = dir.write("small_server.lua", ECHO_SERVER);
    let mut server = Luna::start(&script, &["3"]);
    let port: u16 = server.value("port").parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = raw_client(port);
        // An answer proves the server accepted this one.
        stream.write_all(&frame(1, &msgpack(&["hi".into()]))).unwrap();
        read_frame(&mut stream);
        held.push(stream);
    }
    // The third is accepted by the kernel, then closed by luna and counted.
    let mut third = raw_client(port);
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
    // SPEC section 3: dropping every reference closes nothing (the seeds closed
    // collected objects, which cut live links in routers that kept only tokens).
    let dir = Dir::new();
    let (mut server, port) = start_echo_server(&dir);
    let client = dir.write(
        "client.lua",
        r#"
        local mgr = luna.create_socket_mgr(10)
        do
            -- A ping-pong whose only references are the stream's own fields.
            local dropped = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
            dropped.on_connect = function() print("dropped connected"); dropped.call("n", 1) end
            dropped.on_call = function(echo, msg, n) pongs = n; dropped.call("n", n + 1) end
        end
        luna.timer(300, function()
            collectgarbage()
            collectgarbage()
            before = pongs
            luna.timer(200, function() print("still flowing " .. tostring(pongs > before)) end)
        end)
        do
            local l = mgr.listen("127.0.0.1", 0)
            l.on_accept = function(stream)
                stream.on_call = function(msg) print("accepted got " .. msg) end
            end
            lport = l.port
        end
        luna.timer(800, function()
            collectgarbage()
            collectgarbage()
            local probe = mgr.connect("127.0.0.1", lport, 1000)
            keep = probe
            probe.on_connect = function(r) print("probe " .. r); probe.call("hello") end
        end)
        "#,
    );
    let mut client = Luna::start(&client, &[&port.to_string()]);
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
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        local mgr = luna.create_socket_mgr(10)
        function on_start()
            luna.timer(1, function()
                local ok, err = pcall(mgr.wait, 10)
                print("nested", ok, err)
                luna_quit_flag = true
            end)
        end
        "#,
    );
    let mut luna = Luna::start(&script, &[]);
    let line = luna.expect("nested");
    assert!(line.contains("false") && line.contains("already running"), "{line}");
    assert!(luna.wait_exit().success());
}

#[test]
fn peer_closing_while_we_write_never_kills_the_process() {
    let dir = Dir::new();
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (socket, _) = sink.accept().unwrap();
        drop(socket); // close at once: later writes hit a reset socket (EPIPE)
    });
    let mut client = start_client(
        &dir,
        port,
        r#"
        stream.on_connect = function()
            luna.interval(5, function() stream.call("x", string.rep("y", 10000)) end)
        end
        stream.on_error = function(err) print("error " .. err); luna.timer(50, function() luna_quit_flag = true end) end
        "#,
    );
    client.expect("error connection-lost");
    assert_eq!(client.wait_exit().code(), Some(0));
}

#[test]
fn a_peer_that_half_closes_still_gets_its_replies() {
    let dir = Dir::new();
    let (mut server, port) = start_echo_server(&dir);
    let big = "b".repeat(4 << 20);
    let mut raw = raw_client(port);
    raw.write_all(&frame(1, &msgpack(&["small".into()]))).unwrap();
    raw.write_all(&frame(1, &msgpack(&[big.as_str().into()]))).unwrap();
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
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/net/raw_echo.lua");
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

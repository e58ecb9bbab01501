//! The metrics endpoint and the debug console (issue 13), end to end with the
//! real binary: `--metrics` scraped by Python's urllib and checked with
//! prometheus_client's parser (several scrapers at once, oversized and bad
//! requests), `--console` driven over TCP (every command, clients at once, a
//! client that never reads, the loopback rule and `auth` with
//! LUNA_CLUSTER_SECRET). Scripts live in tests/scripts/ops/.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{DEADLINE, Luna, luna_bin, test_script};

fn script(name: &str) -> String {
    test_script(&format!("ops/{name}")).display().to_string()
}

fn scripts_dir() -> std::path::PathBuf {
    test_script("ops")
}

/// The port at the end of `prefix` in a log line (`... metrics on http://127.0.0.1:PORT/metrics`).
fn port_after(line: &str, prefix: &str) -> u16 {
    let at = line.find(prefix).unwrap_or_else(|| panic!("no {prefix:?} in {line:?}")) + prefix.len();
    let digits: String = line[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no port in {line:?}"))
}

/// Starts a service with `flags`, waits for "ready"; returns it with the port logged after `prefix`.
fn start(flags: &[&str], entry: &str, prefix: &str, env: &[(&str, &str)]) -> (Luna, u16) {
    let entry = script(entry);
    let mut args: Vec<&str> = flags.to_vec();
    args.push(&entry);
    let mut luna = Luna::start_with(&scripts_dir(), &args, env);
    let line = luna.expect_err(prefix);
    let port = port_after(&line, prefix);
    luna.expect("ready");
    (luna, port)
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    stream
}

/// Everything the peer sends until it closes (a reset counts as the end).
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => break,
            Err(error) => panic!("reading until the peer closes: {error} after {} bytes", bytes.len()),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One HTTP exchange on a fresh connection: the whole response.
fn http(port: u16, request: &[u8]) -> String {
    let mut stream = connect(port);
    stream.write_all(request).expect("send request");
    read_to_close(&mut stream)
}

// ---------------------------------------------------------------- metrics

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    common::require_python_module("prometheus_client.parser", "prometheus_client");
    let (mut luna, port) = start(
        &["--metrics", "127.0.0.1:0"],
        "metrics_service.lua",
        "metrics on http://127.0.0.1:",
        &[],
    );

    // Several requests open at once, completed in reverse order: the loop
    // serves each as its request ends, none waits for another.
    let mut open: Vec<TcpStream> = (0..5).map(|_| connect(port)).collect();
    for stream in &mut open {
        stream.write_all(b"GET /metrics HTTP/1.1\r\n").expect("first half");
    }
    for stream in open.iter_mut().rev() {
        stream.write_all(b"Host: test\r\n\r\n").expect("second half");
        let response = read_to_close(stream);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("\nluna_uptime_seconds "), "{response}");
    }

    // An oversized request head is refused and closed; a bad one gets 400.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20_000));
    let response = http(port, &huge);
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    luna.expect_err("larger than 8192 bytes: refused");
    let response = http(port, b"HELLO\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    let response = http(port, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    assert!(
        response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("\r\n\r\n"),
        "{response}"
    );

    // A real HTTP client and the reference parser; the process kept serving.
    let output = Command::new("python3")
        .arg(script("scrape.py"))
        .arg(port.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("scrape ok"),
        "scrape.py failed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- luna stderr ---\n{}",
        luna.stderr()
    );
    assert!(luna.child.try_wait().expect("try_wait").is_none(), "luna exited");
    assert!(!luna.stderr().contains(" ERROR "), "{}", luna.stderr());
}

#[test]
fn endpoints_that_cannot_open_stop_the_start() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let address = format!("127.0.0.1:{port}");
    let entry = script("console_service.lua");
    for flag in ["--metrics", "--console"] {
        let (code, stdout, stderr) = common::run_to_end(&scripts_dir(), &[flag, &address, &entry]);
        assert_eq!(code, 1, "{flag}: {stderr}");
        assert!(stderr.contains(&format!("{flag} {address}: cannot")), "{stderr}");
        assert!(!stdout.contains("ready"), "on_start ran: {stdout}");
    }
    let (code, _, stderr) = common::run_to_end(&scripts_dir(), &["--metrics", "nowhere", &entry]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--metrics") && stderr.contains("HOST:PORT"), "{stderr}");
}

// ---------------------------------------------------------------- console

const PROMPT: &str = "luna> ";

/// A console client: sends lines, reads each response up to the prompt.
struct Console {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Console {
    /// Connects and reads the greeting (returned) up to the first prompt.
    fn open(port: u16) -> (Console, String) {
        let mut console = Console {
            stream: connect(port),
            pending: Vec::new(),
        };
        let banner = console.response();
        (console, banner)
    }

    fn local_port(&self) -> u16 {
        self.stream.local_addr().expect("local addr").port()
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).expect("send to the console");
    }

    /// The text before the next prompt (the prompt starts a line).
    fn response(&mut self) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let found = (0..self.pending.len()).find(|&at| {
                self.pending[at..].starts_with(PROMPT.as_bytes()) && (at == 0 || self.pending[at - 1] == b'\n')
            });
            if let Some(at) = found {
                let text = String::from_utf8_lossy(&self.pending[..at]).into_owned();
                self.pending.drain(..at + PROMPT.len());
                return text;
            }
            assert!(
                Instant::now() < end,
                "no prompt; got {:?}",
                String::from_utf8_lossy(&self.pending)
            );
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("console closed; got {:?}", String::from_utf8_lossy(&self.pending)),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(error) => panic!("reading the console: {error}"),
            }
        }
    }

    fn command(&mut self, line: &str) -> String {
        self.send(&format!("{line}\n"));
        self.response()
    }

    /// What is left until the console closes the connection.
    fn rest(&mut self) -> String {
        let mut text = String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned();
        text.push_str(&read_to_close(&mut self.stream));
        text
    }
}

/// Starts console_service.lua with `--console HOST:0`.
fn start_console(env: &[(&str, &str)], host: &str) -> (Luna, u16) {
    let address = format!("{host}:0");
    let logged = format!("console on {host}:");
    start(&["--console", &address], "console_service.lua", &logged, env)
}

#[test]
fn console_commands() {
    let (mut luna, port) = start_console(&[], "127.0.0.1");
    let (mut console, banner) = Console::open(port);
    assert!(banner.starts_with("luna console: pid "), "{banner}");
    assert!(banner.contains("console_service.lua"), "{banner}");

    let help = console.command("help");
    for name in [
        "help", "stats", "mem", "gc", "reload", "conns", "timers", "eval", "quit",
    ] {
        assert!(
            help.contains(&format!("\n  {name} ")),
            "{name} missing from help:\n{help}"
        );
    }
    let stats = console.command("stats");
    assert!(stats.starts_with("uptime "), "{stats}");
    assert!(stats.contains("manager 1 (console): open=2 max_fd=17"), "{stats}");
    // The script never loaded luna.rpc (trace ids live in luna.trace): nothing to show.
    assert!(stats.contains("rpc: not loaded"), "{stats}");
    let mem = console.command("mem");
    assert!(mem.starts_with("lua memory ") && mem.contains("\nresident "), "{mem}");
    let gc = console.command("gc");
    assert!(gc.starts_with("lua memory ") && gc.contains("(freed "), "{gc}");

    // eval: expressions, several results, tables, the entry's globals, statements, print.
    assert_eq!(console.command("eval 1 + 1"), "2\n");
    assert_eq!(console.command("eval ticks >= 0, 'x', nil"), "true\tx\tnil\n");
    assert_eq!(
        console.command("eval {1, 'two', k = {v = true}}"),
        "{ 1, \"two\", k = { v = true } }\n"
    );
    assert_eq!(console.command("eval answer = 40 + 2"), "");
    assert_eq!(console.command("eval print('answer is', answer)"), "answer is\t42\n");
    assert_eq!(console.command("eval luna.sleep(50); return 'slept'"), "slept\n");
    let error = console.command("eval error('boom')");
    assert!(error.starts_with("error: console:1: boom\nstack traceback:"), "{error}");
    assert!(
        !error.contains("console.lua"),
        "the console's own frames are noise:\n{error}"
    );
    let error = console.command("eval x = = 1");
    assert!(error.starts_with("error: console:1: "), "{error}");
    let error = console.command("eval");
    assert!(error.starts_with("error: eval needs some Lua"), "{error}");
    // Runaway code is stopped at the limit instead of freezing the process;
    // code that never comes back frees the console at the limit.
    assert_eq!(console.command("eval require('luna.console').eval_limit_ms = 300"), "");
    let error = console.command("eval while true do end");
    assert!(
        error.starts_with("error: console:1: eval stopped: still running after 300 ms"),
        "{error}"
    );
    let error = console.command("eval coroutine.yield()");
    assert_eq!(
        error,
        "error: eval still waiting after 300 ms (it goes on without this console)\n"
    );

    let conns = console.command("conns");
    let me = format!("127.0.0.1:{}", console.local_port());
    assert!(
        conns.lines().any(|l| l.contains(&me) && l.contains(" open ")),
        "{me} not in:\n{conns}"
    );
    assert!(conns.contains(" listener "), "{conns}");
    let timers = console.command("timers");
    assert!(
        timers.contains("every 50 ms") && timers.contains("console_service.lua:"),
        "{timers}"
    );
    let reload = console.command("reload");
    assert!(reload.ends_with("reloaded\n"), "{reload}");

    assert_eq!(
        console.command("frobnicate now"),
        "error: unknown command 'frobnicate' (try help)\n"
    );
    assert_eq!(console.command(""), "");
    assert_eq!(console.command("  "), "");

    console.send("quit\n");
    assert_eq!(console.rest(), "bye\n");
    // Errors in eval did not hurt the process: it still ticks.
    luna.expect("tick ");
    assert!(luna.child.try_wait().expect("try_wait").is_none(), "luna exited");
}

#[test]
fn console_serves_clients_at_once() {
    let (_luna, port) = start_console(&[], "127.0.0.1");
    let (mut slow, _) = Console::open(port);
    let (mut quick, _) = Console::open(port);
    // A waits in an eval; B is answered meanwhile; then A gets its answer.
    slow.send("eval luna.sleep(300); return 'slow done'\n");
    assert_eq!(quick.command("eval 6 * 7"), "42\n");
    assert_eq!(slow.response(), "slow done\n");
    // Lines sent together are answered in order, each after its prompt.
    slow.send("eval luna.sleep(20); return 1\neval 2\nnope\n");
    assert_eq!(slow.response(), "1\n");
    assert_eq!(slow.response(), "2\n");
    assert_eq!(slow.response(), "error: unknown command 'nope' (try help)\n");
    assert_eq!(quick.command("eval 'still here'"), "still here\n");
}

#[test]
fn console_client_that_never_reads_is_closed() {
    let (mut luna, port) = start_console(&[], "127.0.0.1");
    let (mut stuck, _) = Console::open(port);
    let stuck_port = stuck.local_port();
    // ~30 MB of answers to a client that reads nothing.
    let lines = "eval string.rep('x', 100000)\n".repeat(300);
    stuck.send(&lines);
    luna.expect_err(&format!("console 127.0.0.1:{stuck_port}: closed: send-buffer-full"));

    // The loop goes on: another client is served and the ticker keeps ticking.
    let (mut other, _) = Console::open(port);
    let ticks: u64 = other.command("eval ticks").trim().parse().expect("ticks");
    luna.expect(&format!("tick {}", ticks + 3));
    assert_eq!(other.command("eval 'fine'"), "fine\n");
    // The stuck client gets what was queued, then the end of the connection.
    let rest = stuck.rest();
    assert!(rest.len() < 30_000_000, "all of it was kept: {} bytes", rest.len());
    // A line longer than 64 KiB is refused and closes that client only.
    let (mut long, _) = Console::open(port);
    long.send(&format!("eval '{}'\n", "y".repeat(70_000)));
    let rest = long.rest();
    assert!(rest.contains("error: line too long"), "{rest}");
    assert_eq!(other.command("eval 1"), "1\n");
}

#[test]
fn console_refuses_a_public_address_without_a_secret() {
    let output = Command::new(luna_bin())
        .args(["--console", "0.0.0.0:0", &script("console_service.lua")])
        .current_dir(scripts_dir())
        .env_remove("LUNA_CLUSTER_SECRET")
        .stdin(Stdio::null())
        .output()
        .expect("run luna");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--console 0.0.0.0:0: cannot open the console: refusing a non-loopback address")
            && stderr.contains("LUNA_CLUSTER_SECRET"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("ready"));
}

#[test]
fn console_with_a_secret_asks_for_it() {
    let secret = "console-test-secret";
    let (mut luna, port) = start_console(&[("LUNA_CLUSTER_SECRET", secret)], "0.0.0.0");
    assert!(
        luna.stderr().contains("(clients must authenticate)"),
        "{}",
        luna.stderr()
    );
    // Says nothing: closed after the authentication deadline (checked last).
    let (mut silent, banner) = Console::open(port);
    assert!(
        banner.contains("authentication required: send `auth SECRET`"),
        "{banner}"
    );

    let (mut client, _) = Console::open(port);
    let peer = format!("console 127.0.0.1:{}", client.local_port());
    assert_eq!(
        client.command("stats"),
        "error: authentication required (send: auth SECRET)\n"
    );
    assert_eq!(client.command("auth not-it"), "error: wrong secret\n");
    luna.expect_err(&format!("{peer}: wrong secret (try 1 of 3)"));
    assert_eq!(client.command(&format!("auth {secret}")), "ok\n");
    assert_eq!(client.command("eval 1 + 1"), "2\n");
    assert!(client.command("stats").starts_with("uptime "));

    let (mut guesser, _) = Console::open(port);
    assert_eq!(guesser.command("auth a"), "error: wrong secret\n");
    assert_eq!(guesser.command("auth b"), "error: wrong secret\n");
    guesser.send(&format!("auth {secret}x\n"));
    assert_eq!(guesser.rest(), "error: wrong secret; too many tries\n");

    assert_eq!(silent.rest(), "error: no authentication in time\n");
    luna.expect_err("no authentication within 10000 ms: closed");
    assert!(!luna.stderr().contains(secret), "the secret was logged");
    assert_eq!(client.command("eval 'still in'"), "still in\n");
}

//! Securing links (issue 11): the cluster secret and TLS, on the shipped
//! router with luna.cluster nodes and on plain mgr.listen/mgr.connect links.
//!
//! The processes run the scripts of tests/scripts/security/*.lua (they print
//! machine-readable lines: `status <router> <state>`, `call ok <answer>`,
//! `connect <link> <result> <detail>`, `stats auth_failed=N ...`). Raw peers
//! written from docs/protocol.md section 10 (tests/common/secret.rs) play a
//! stranger, a replayer and a peer that stalls. Certificates are generated
//! at test time (tests/common/certs.rs). Tests wait for events with generous
//! deadlines and never assert speed.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use common::certs::{self, Certs};
use common::secret::{self, SecretLink};
use common::wire::{self, Value};
use common::{Dir, Luna, eventually, run_to_end_with};

const SECRET: &str = "correct horse battery staple";

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/security")
}

/// Starts `luna <script> <args...>` from tests/scripts/security with `env`.
fn start(script: &str, args: &[&str], env: &[(&str, &str)]) -> Luna {
    let mut all = vec![script];
    all.extend_from_slice(args);
    Luna::start_with(&scripts(), &all, env)
}

/// The shipped router (through router.lua, which adds `stats` lines) on a
/// free loopback port: (process, "ip:port").
fn router(args: &[&str], env: &[(&str, &str)]) -> (Luna, String) {
    let mut all = vec!["--listen", "127.0.0.1:0", "--heartbeat-ms", "200"];
    all.extend_from_slice(args);
    let mut luna = start("router.lua", &all, env);
    let address = luna.value("listening");
    (luna, address)
}

/// A luna.cluster node (node.lua) with id `id` and router `address`; not waited for.
fn node(id: &str, address: &str, env: &[(&str, &str)]) -> Luna {
    let mut all = vec![("ID", id), ("ROUTERS", address)];
    all.extend_from_slice(env);
    start("node.lua", &[], &all)
}

/// A node that is ready (registered with a live router).
fn ready_node(id: &str, address: &str, env: &[(&str, &str)]) -> Luna {
    let mut luna = node(id, address, env);
    luna.expect(&format!("ready {id}"));
    luna
}

/// server.lua with one listener per name: (process, name -> port).
fn server(names: &[&str], env: &[(String, String)]) -> (Luna, HashMap<String, String>) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut luna = start("server.lua", names, &env);
    let mut ports = HashMap::new();
    for name in names {
        let port = luna.value(&format!("port {name}"));
        ports.insert(name.to_string(), port);
    }
    (luna, ports)
}

/// links.lua with one connection per name.
fn links(names: &[&str], env: &[(String, String)]) -> Luna {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    start("links.lua", names, &env)
}

/// `(NAME_KEY, value)` pairs for server.lua and links.lua.
fn vars(name: &str, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(key, value)| (format!("{name}_{key}"), value.to_string()))
        .collect()
}

/// A counter of the newest `stats` line of a process (0 before the first).
fn stat(luna: &Luna, name: &str) -> u64 {
    luna.stdout()
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix("stats "))
        .and_then(|line| {
            line.split_whitespace()
                .filter_map(|field| field.split_once('='))
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.parse().expect("a number"))
        })
        .unwrap_or(0)
}

/// Waits until a counter of a process reaches `at_least`.
fn wait_stat(luna: &Luna, name: &str, at_least: u64) {
    eventually(&format!("stats {name} >= {at_least}"), || {
        (stat(luna, name) >= at_least).then_some(())
    });
}

/// Waits for a stdout line starting with `prefix`, anywhere in the output
/// so far (unlike `expect`, whatever was matched before), and returns the rest.
fn find(luna: &Luna, prefix: &str) -> String {
    eventually(&format!("a line {prefix:?}"), || {
        luna.stdout()
            .iter()
            .find_map(|line| line.strip_prefix(prefix).map(|rest| rest.trim().to_string()))
    })
}

/// Stderr lines containing `pattern`.
fn log_lines(luna: &Luna, pattern: &str) -> Vec<String> {
    luna.stderr()
        .lines()
        .filter(|line| line.contains(pattern))
        .map(str::to_string)
        .collect()
}

/// Waits until at least `at_least` stderr lines contain `pattern` (the log
/// is written by a background thread, after the stdout lines that follow
/// it), and returns them.
fn wait_log(luna: &Luna, pattern: &str, at_least: usize) -> Vec<String> {
    eventually(&format!("{at_least} log lines with {pattern:?}"), || {
        let lines = log_lines(luna, pattern);
        (lines.len() >= at_least).then_some(lines)
    })
}

/// Certificates in a fresh temp dir (kept alive by the returned Dir).
fn certificates() -> (Dir, Certs) {
    let dir = Dir::new();
    let certs = certs::generate(dir.dir.path());
    (dir, certs)
}

fn service_id(name: &str) -> Value {
    let (group, index) = name.split_once('.').unwrap();
    Value::from(wire::service_id(group.parse().unwrap(), index.parse().unwrap()))
}

// ------------------------------------------------------------ the secret

#[test]
fn the_right_secret_lets_services_and_clients_through_a_router() {
    let (router, address) = router(&[], &[("LUNA_CLUSTER_SECRET", SECRET)]);
    // The service takes the secret from the environment, the client from cluster.start{ secret = ... }.
    let mut service = ready_node("2.1", &address, &[("LUNA_CLUSTER_SECRET", SECRET)]);
    let mut client = ready_node("9.1", &address, &[("SECRET", SECRET), ("CALL", "2.1")]);
    client.expect("call ok 2.1");
    service.expect("served ");
    assert_eq!(stat(&router, "auth_failed"), 0, "router stdout: {:?}", router.stdout());
    assert!(log_lines(&client, "auth-failed").is_empty(), "{}", client.stderr());
    assert!(
        log_lines(&router, "WARN").is_empty(),
        "router stderr:\n{}",
        router.stderr()
    );
}

/// A node refused with auth-failed: reported in routers_status and to
/// on_router_error, logged once although it keeps retrying (the router
/// counts every attempt), and never registered.
fn refused_node_reports_once(router: &Luna, address: &str, refused: &mut Luna) {
    refused.expect(&format!("router_error {address} auth-failed"));
    refused.expect(&format!("status {address} auth-failed"));
    wait_log(refused, "auth-failed", 1);
    // It retries with backoff: the router sees attempt after attempt.
    let attempts = stat(router, "auth_failed");
    wait_stat(router, "auth_failed", attempts.max(1) + 3);
    let lines = log_lines(refused, "auth-failed");
    assert_eq!(
        lines.len(),
        1,
        "auth-failed must be logged once per change, not per attempt:\n{}",
        refused.stderr()
    );
    assert!(
        lines[0].contains(&format!("router {address} refused us: auth-failed")),
        "{lines:?}"
    );
    assert_eq!(
        refused
            .stdout()
            .iter()
            .filter(|l| l.starts_with("router_error"))
            .count(),
        1,
        "on_router_error once per change: {:?}",
        refused.stdout()
    );
    assert!(!refused.stdout().iter().any(|l| l.starts_with("ready")));
}

/// The router's side of a refused link: logged with the peer's address
/// (127.0.0.1:port) and the reason (`whys[0]`, or one of the others on
/// some attempts), counted, and nothing registered.
fn router_refused(router: &Luna, whys: &[&str]) {
    wait_log(router, whys[0], 1);
    for line in log_lines(router, "auth-failed") {
        assert!(line.contains("(127.0.0.1:"), "no peer address in {line:?}");
        assert!(
            whys.iter().any(|why| line.contains(why)),
            "expected {whys:?} in {line:?}"
        );
    }
    assert!(
        log_lines(router, "registered from").is_empty(),
        "router stderr:\n{}",
        router.stderr()
    );
}

#[test]
fn a_wrong_secret_is_refused_on_both_sides() {
    let (router, address) = router(&[], &[("LUNA_CLUSTER_SECRET", SECRET)]);
    let mut wrong = node("2.1", &address, &[("LUNA_CLUSTER_SECRET", "not the secret")]);
    refused_node_reports_once(&router, &address, &mut wrong);
    let detail = wrong
        .last_value(&format!("router_error {address} auth-failed"))
        .unwrap();
    assert!(detail.contains("proof is wrong"), "detail: {detail}");
    router_refused(&router, &["proof is wrong"]);
    // The router goes on serving everyone else.
    let good = ready_node("2.2", &address, &[("LUNA_CLUSTER_SECRET", SECRET)]);
    find(&good, &format!("status {address} live"));
}

#[test]
fn a_service_without_the_secret_is_refused_on_both_sides() {
    let (router, address) = router(&[], &[("LUNA_CLUSTER_SECRET", SECRET)]);
    let mut none = node("2.1", &address, &[]);
    refused_node_reports_once(&router, &address, &mut none);
    // Its @register arrived before any handshake: refused, never applied.
    // (Had the router's Hello reached it before it registered, it would have
    // closed the link first.)
    router_refused(
        &router,
        &[
            "without authenticating",
            "the peer closed the link during the secret handshake",
        ],
    );
}

#[test]
fn a_router_without_the_secret_is_refused_by_the_service() {
    let (router, address) = router(&[], &[]);
    let mut service = node("2.1", &address, &[("LUNA_CLUSTER_SECRET", SECRET)]);
    refused_node_reports_once(&router, &address, &mut service);
    router_refused(&router, &["the peer wants a cluster secret handshake"]);
}

/// What a refused peer receives: the router's Hello (and Proof, sent in
/// answer to a Hello), then AuthFailed, and nothing else: no @registered, no
/// @pong, no Deliver.
fn only_the_handshake_and_a_refusal(frames: &[(u8, Vec<u8>)]) {
    let kinds: Vec<u8> = frames.iter().map(|(kind, _)| *kind).collect();
    assert!(
        kinds == [secret::HELLO, secret::AUTH_FAILED] || kinds == [secret::HELLO, secret::PROOF, secret::AUTH_FAILED],
        "frames: {frames:?}"
    );
}

#[test]
fn a_replayed_handshake_is_refused_and_its_register_never_applied() {
    let (router, address) = router(&[], &[("LUNA_CLUSTER_SECRET", SECRET)]);
    // A peer that knows the secret authenticates and records what it sent.
    let mut first = SecretLink::connect(&address, SECRET.as_bytes()).expect("the right secret authenticates");
    first.call(&[Value::from("@ping")]);
    first
        .stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let (kind, body) = wire::read_frame(&mut first.stream).unwrap();
    assert_eq!((kind, wire::decode(&body)), (wire::CALL, vec![Value::from("@pong")]));

    // Someone who captured those bytes replays them on a new link, then registers.
    let mut replay = TcpStream::connect(&address).unwrap();
    let mut bytes = first.sent.clone();
    bytes.extend(wire::call_frame(&[
        Value::from("@register"),
        service_id("5.1"),
        Value::from(false),
    ]));
    bytes.extend(wire::call_frame(&[Value::from("@ping")]));
    replay.write_all(&bytes).unwrap();
    let (frames, closed) = secret::frames_until_closed(&mut replay);
    assert!(closed, "the router must close a replayed handshake");
    only_the_handshake_and_a_refusal(&frames);
    wait_stat(&router, "auth_failed", 1);
    router_refused(&router, &["proof is wrong"]);

    // The id is free: an honest peer registers it.
    let mut honest = SecretLink::connect(&address, SECRET.as_bytes()).unwrap();
    honest.call(&[Value::from("@register"), service_id("5.1"), Value::from(false)]);
    assert_eq!(honest.next_call(), vec![Value::from("@registered"), service_id("5.1")]);
}

#[test]
fn an_unauthenticated_peer_cannot_register_or_forward() {
    let (router, address) = router(&[], &[("LUNA_CLUSTER_SECRET", SECRET)]);
    let holder = ready_node("2.1", &address, &[("LUNA_CLUSTER_SECRET", SECRET)]);
    let mut client = ready_node("9.1", &address, &[("LUNA_CLUSTER_SECRET", SECRET), ("CALL", "2.1")]);
    client.expect("call ok 2.1");

    let stranger_frames = || {
        let mut bytes = wire::call_frame(&[Value::from("@register"), service_id("2.1"), Value::from(true)]);
        bytes.extend(wire::call_frame(&[
            Value::from("@register"),
            service_id("2.2"),
            Value::from(false),
        ]));
        bytes.extend(wire::forward_target_frame(
            0,
            wire::service_id(2, 1),
            &wire::payload(&[Value::from("stranger")]),
        ));
        bytes.extend(wire::call_frame(&[Value::from("@ping")]));
        bytes
    };
    // One stranger sends its frames with no handshake at all, another after
    // a Hello and a made-up Proof.
    let mut plain = TcpStream::connect(&address).unwrap();
    plain.write_all(&stranger_frames()).unwrap();
    let mut guesser = TcpStream::connect(&address).unwrap();
    let mut bytes = secret::hello(secret::CONNECTOR, &secret::nonce(7));
    bytes.extend(secret::proof(&[0x5a; 32]));
    bytes.extend(stranger_frames());
    guesser.write_all(&bytes).unwrap();
    for stream in [&mut plain, &mut guesser] {
        let (frames, closed) = secret::frames_until_closed(stream);
        assert!(closed, "the router must close an unauthenticated peer");
        only_the_handshake_and_a_refusal(&frames);
    }
    wait_stat(&router, "auth_failed", 2);

    // The holder keeps its traffic: calls still reach it after the strangers were closed.
    let before: u64 = holder.last_value("served").map_or(0, |n| n.parse().unwrap());
    eventually("the holder serves more calls", || {
        let now: u64 = holder.last_value("served")?.parse().ok()?;
        (now >= before + 5).then_some(())
    });
    client.expect("call ok 2.1");
    assert!(
        !holder.stdout().iter().any(|line| line.starts_with("message")),
        "a stranger's forward was delivered: {:?}",
        holder.stdout()
    );
    let refusals = wait_log(&router, "auth-failed", 2);
    let registrations = wait_log(&router, "registered from", 2);
    assert_eq!(
        registrations.len(),
        2,
        "only the holder and the client register: {registrations:?}"
    );
    assert!(log_lines(&router, "gone").is_empty(), "{}", router.stderr());
    assert!(
        refusals.iter().any(|l| l.contains("without authenticating")),
        "{refusals:?}"
    );
    assert!(refusals.iter().any(|l| l.contains("proof is wrong")), "{refusals:?}");
}

#[test]
fn a_handshake_that_stalls_is_closed_at_its_deadline() {
    let (router, address) = router(&["--handshake-timeout-ms", "300"], &[("LUNA_CLUSTER_SECRET", SECRET)]);
    // One peer says Hello and then nothing; another says nothing at all.
    let mut hello_only = TcpStream::connect(&address).unwrap();
    hello_only
        .write_all(&secret::hello(secret::CONNECTOR, &secret::nonce(1)))
        .unwrap();
    let mut silent = TcpStream::connect(&address).unwrap();
    for stream in [&mut hello_only, &mut silent] {
        let (frames, closed) = secret::frames_until_closed(stream);
        assert!(closed, "a stalled handshake must be closed at its deadline");
        assert_eq!(frames.first().map(|f| f.0), Some(secret::HELLO));
    }
    wait_stat(&router, "auth_failed", 2);
    let lines = wait_log(&router, "did not finish within 300 ms", 2);
    assert_eq!(lines.len(), 2, "router stderr:\n{}", router.stderr());
    assert!(lines.iter().all(|l| l.contains("(127.0.0.1:")), "{lines:?}");

    // A TLS listener: a peer that never starts TLS is closed at the deadline too.
    let (_dir, certs) = certificates();
    let mut env = tls_listener("tls", &certs, "server");
    env.extend(vars("tls", &[("HANDSHAKE_MS", "300")]));
    let (server, ports) = server(&["tls"], &env);
    let mut silent = TcpStream::connect(format!("127.0.0.1:{}", ports["tls"])).unwrap();
    let (frames, closed) = secret::frames_until_closed(&mut silent);
    assert!(closed && frames.is_empty(), "{frames:?}");
    wait_stat(&server, "tls_failed", 1);
    wait_log(&server, "the TLS handshake did not finish within 300 ms", 1);
}

#[test]
fn the_router_warns_on_a_non_loopback_address_without_a_secret() {
    let mut open = start("router.lua", &["--listen", "0.0.0.0:0"], &[]);
    open.value("listening");
    open.expect_err("without a cluster secret");
    open.expect_err("router listening on");

    let mut secured = start(
        "router.lua",
        &["--listen", "0.0.0.0:0"],
        &[("LUNA_CLUSTER_SECRET", SECRET)],
    );
    secured.value("listening");
    // Log lines keep their order: a warning would come before this one.
    secured.expect_err("router listening on");
    assert!(
        log_lines(&secured, "without a cluster secret").is_empty(),
        "{}",
        secured.stderr()
    );

    // Secrets never come from the command line; the Redis password flag warns.
    let (code, _, stderr) = run_to_end_with(
        &scripts(),
        &["router.lua", "--listen", "127.0.0.1:0", "--secret", SECRET],
        &[],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("unknown argument --secret"), "{stderr}");
    let mut redis_flag = start(
        "router.lua",
        &["--listen", "127.0.0.1:0", "--redis-password", "hunter2"],
        &[],
    );
    redis_flag.expect_err("set LUNA_REDIS_PASSWORD instead");
}

#[test]
fn the_router_reads_its_secret_from_a_file() {
    let dir = Dir::new();
    // The first line is the secret; a Windows line end is not part of it.
    let file = dir.write("secret", &format!("{SECRET}\r\nthis line is ignored\n"));
    let file = file.to_str().unwrap();
    let (router, address) = router(&["--secret-file", file], &[]);
    let good = ready_node("2.1", &address, &[("LUNA_CLUSTER_SECRET", SECRET)]);
    find(&good, &format!("status {address} live"));
    let mut wrong = node("2.2", &address, &[("LUNA_CLUSTER_SECRET", "this line is ignored")]);
    refused_node_reports_once(&router, &address, &mut wrong);

    // A missing or empty secret file stops the router at start with a clear error.
    let empty = dir.write("empty", "\n");
    for (path, why) in [
        (dir.path("missing"), "cannot read the secret file"),
        (empty, "is empty"),
    ] {
        let (code, _, stderr) = run_to_end_with(
            &scripts(),
            &[
                "router.lua",
                "--listen",
                "127.0.0.1:0",
                "--secret-file",
                path.to_str().unwrap(),
            ],
            &[],
        );
        assert_ne!(code, 0, "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
}

#[test]
fn plain_sockets_take_the_secret_as_an_option() {
    let env: Vec<(String, String)> = vars("sec", &[("SECRET", SECRET)]);
    let (server, ports) = server(&["sec"], &env);
    let port = ports["sec"].as_str();
    let mut env = vars("right", &[("PORT", port), ("SECRET", SECRET)]);
    env.extend(vars("wrong", &[("PORT", port), ("SECRET", "wrong")]));
    env.extend(vars("none", &[("PORT", port)]));
    let mut client = links(&["right", "wrong", "none"], &env);
    find(&client, "connect right ok");
    let wrong = find(&client, "connect wrong ");
    assert!(
        wrong.starts_with("auth-failed") && wrong.contains("proof is wrong"),
        "{wrong}"
    );
    // A link without a secret is up at once (nothing to secure), then refused.
    find(&client, "connect none ok");
    find(&client, "error none auth-failed");
    wait_stat(&server, "auth_failed", 2);
    client.expect("reply right 3");
    assert_eq!(
        server.stdout().iter().filter(|l| l.starts_with("accepted")).count(),
        1,
        "only the right secret is accepted: {:?}",
        server.stdout()
    );
    // Bad options are refused by mgr.connect with a reason.
    let env = vars("notls", &[("PORT", port), ("CERT", "x.pem")]);
    let mut bad = links(&["notls"], &env);
    let line = bad.value("connect notls");
    assert!(line.starts_with("invalid-param options (argument #4): tls:"), "{line}");
}

// ------------------------------------------------------------------ TLS

/// The variables of a TLS listener with the test server certificate.
fn tls_listener(name: &str, certs: &Certs, cert: &str) -> Vec<(String, String)> {
    vars(
        name,
        &[
            ("CERT", &certs.path(&format!("{cert}.pem"))),
            ("KEY", &certs.path(&format!("{cert}.key"))),
        ],
    )
}

#[test]
fn tls_links_work_without_client_certificates() {
    let (_dir, certs) = certificates();
    let mut env = tls_listener("tls", &certs, "server");
    env.extend(tls_listener("both", &certs, "server"));
    env.extend(vars("both", &[("SECRET", SECRET)]));
    let (mut server, ports) = server(&["tls", "both"], &env);
    let ca = certs.path("ca.pem");
    let mut env = vars("good", &[("PORT", &ports["tls"]), ("CA", &ca)]);
    // The certificate names "localhost" too: checked with server_name.
    env.extend(vars(
        "named",
        &[("PORT", &ports["tls"]), ("CA", &ca), ("SERVER_NAME", "localhost")],
    ));
    // TLS and the secret together; and the secret wrong inside TLS.
    env.extend(vars(
        "both",
        &[("PORT", &ports["both"]), ("CA", &ca), ("SECRET", SECRET)],
    ));
    env.extend(vars(
        "both_wrong",
        &[("PORT", &ports["both"]), ("CA", &ca), ("SECRET", "wrong")],
    ));
    let mut client = links(&["good", "named", "both", "both_wrong"], &env);
    for name in ["good", "named", "both"] {
        client.expect(&format!("reply {name} 2"));
    }
    let line = find(&client, "connect both_wrong ");
    assert!(line.starts_with("auth-failed"), "{line}");
    server.expect("accepted tls");
    wait_stat(&server, "auth_failed", 1);
    assert_eq!(stat(&server, "tls_failed"), 0);
    client.expect("reply good 5");
}

#[test]
fn mutual_tls_requires_a_client_certificate_signed_by_the_ca() {
    let (_dir, certs) = certificates();
    let mut env = tls_listener("mtls", &certs, "server");
    env.extend(vars(
        "mtls",
        &[("CA", &certs.path("ca.pem")), ("REQUIRE_CLIENT_CERT", "1")],
    ));
    let (mut server, ports) = server(&["mtls"], &env);
    let port = ports["mtls"].as_str();
    let ca = certs.path("ca.pem");
    let mut env = vars(
        "with_cert",
        &[
            ("PORT", port),
            ("CA", &ca),
            ("CERT", &certs.path("client.pem")),
            ("KEY", &certs.path("client.key")),
        ],
    );
    env.extend(vars("without_cert", &[("PORT", port), ("CA", &ca)]));
    env.extend(vars(
        "stranger_cert",
        &[
            ("PORT", port),
            ("CA", &ca),
            ("CERT", &certs.path("stranger.pem")),
            ("KEY", &certs.path("stranger.key")),
        ],
    ));
    let mut client = links(&["with_cert", "without_cert", "stranger_cert"], &env);
    client.expect("reply with_cert 1");
    for name in ["without_cert", "stranger_cert"] {
        // TLS 1.3: the client finishes its handshake before the server checks
        // its certificate, so the refusal comes just after on_connect("ok").
        let line = eventually(&format!("{name} refused with tls-failed"), || {
            client.stdout().iter().find_map(|l| {
                let failed = l.starts_with(&format!("error {name} tls-failed"))
                    || l.starts_with(&format!("connect {name} tls-failed"));
                failed.then(|| l.clone())
            })
        });
        assert!(line.contains("received fatal alert"), "{line}");
    }
    wait_stat(&server, "tls_failed", 2);
    let refusals = wait_log(&server, "tls-failed", 2);
    assert_eq!(refusals.len(), 2, "{}", server.stderr());
    assert!(refusals.iter().all(|l| l.contains("(127.0.0.1:")), "{refusals:?}");
    assert!(refusals.iter().any(|l| l.contains("UnknownIssuer")), "{refusals:?}");
    server.expect("accepted mtls");
    assert_eq!(
        server.stdout().iter().filter(|l| l.starts_with("accepted")).count(),
        1,
        "{:?}",
        server.stdout()
    );
    let before: u64 = client.last_value("reply with_cert").unwrap().parse().unwrap();
    client.expect(&format!("reply with_cert {}", before + 2));
}

/// One bad TLS case: the client process runs a healthy TLS link `good` and
/// the bad link `bad` (its variables in `bad`), the server listeners `tls`
/// (the test certificate), `expired` and `plain`. The bad link fails alone:
/// returns the client's line about it; the good link and the server go on.
fn bad_tls_case(bad: &[(&str, &str)], target: &str) -> (String, Luna, Luna, Dir) {
    let (dir, certs) = certificates();
    let mut env = tls_listener("tls", &certs, "server");
    env.extend(tls_listener("expired", &certs, "expired"));
    let (server, ports) = server(&["tls", "expired", "plain"], &env);
    let mut env = vars("good", &[("PORT", &ports["tls"]), ("CA", &certs.path("ca.pem"))]);
    let mut bad: Vec<(String, String)> = bad
        .iter()
        .map(|(key, value)| (key.to_string(), value.replace("{certs}", certs.dir.to_str().unwrap())))
        .collect();
    bad.push(("PORT".into(), ports[target].clone()));
    env.extend(bad.into_iter().map(|(key, value)| (format!("bad_{key}"), value)));
    let mut client = links(&["good", "bad"], &env);
    client.expect("reply good 1");
    let line = eventually("the bad link fails", || {
        client
            .stdout()
            .iter()
            .find(|l| (l.starts_with("connect bad") && !l.starts_with("connect bad ok")) || l.starts_with("error bad"))
            .cloned()
    });
    // The healthy link of the same process keeps working after the failure.
    let before: u64 = client.last_value("reply good").unwrap().parse().unwrap();
    client.expect(&format!("reply good {}", before + 2));
    (line, client, server, dir)
}

#[test]
fn a_server_certificate_from_another_ca_fails_that_link_alone() {
    let (line, _client, server, _dir) = bad_tls_case(&[("CA", "{certs}/other-ca.pem")], "tls");
    assert!(line.starts_with("connect bad tls-failed"), "{line}");
    assert!(line.contains("invalid peer certificate: UnknownIssuer"), "{line}");
    wait_stat(&server, "tls_failed", 1);
    let refusals = wait_log(&server, "tls-failed", 1);
    assert!(refusals[0].contains("(127.0.0.1:"), "{refusals:?}");
}

#[test]
fn an_expired_server_certificate_fails_that_link_alone() {
    let (line, _client, server, _dir) = bad_tls_case(&[("CA", "{certs}/ca.pem")], "expired");
    assert!(line.starts_with("connect bad tls-failed"), "{line}");
    assert!(line.contains("expired"), "{line}");
    wait_stat(&server, "tls_failed", 1);
}

#[test]
fn a_wrong_server_name_fails_that_link_alone() {
    let (line, _client, server, _dir) =
        bad_tls_case(&[("CA", "{certs}/ca.pem"), ("SERVER_NAME", "other.example")], "tls");
    assert!(line.starts_with("connect bad tls-failed"), "{line}");
    assert!(line.contains("not valid for name"), "{line}");
    wait_stat(&server, "tls_failed", 1);
}

#[test]
fn a_plaintext_peer_on_a_tls_port_fails_that_link_alone() {
    let (line, client, server, _dir) = bad_tls_case(&[], "tls");
    // The plaintext client is up at once (it has nothing to secure); its
    // first frame is refused by the TLS side, which closes the link.
    assert!(
        line.starts_with("connect bad ok") || line.starts_with("error bad"),
        "{line}"
    );
    eventually("the plaintext link fails", || {
        client.stdout().iter().any(|l| l.starts_with("error bad")).then_some(())
    });
    wait_stat(&server, "tls_failed", 1);
    let refusals = wait_log(&server, "tls-failed", 1);
    assert!(
        refusals[0].contains("a plaintext client on a TLS port?"),
        "{refusals:?}"
    );
    assert!(refusals[0].contains("(127.0.0.1:"), "{refusals:?}");
}

#[test]
fn a_tls_peer_on_a_plaintext_port_fails_that_link_alone() {
    let (line, _client, server, _dir) = bad_tls_case(&[("CA", "{certs}/ca.pem")], "plain");
    assert!(line.starts_with("connect bad tls-failed"), "{line}");
    assert!(line.contains("during the TLS handshake"), "{line}");
    wait_stat(&server, "bad_packages", 1);
    let lines = wait_log(&server, "these are TLS bytes", 1);
    assert_eq!(lines.len(), 1, "{}", server.stderr());
    assert!(lines[0].contains("(127.0.0.1:"), "{lines:?}");
}

#[test]
fn tls_bad_options_are_refused_by_listen_and_connect() {
    let (_dir, certs) = certificates();
    let missing = certs.path("nothing.pem");
    let mut env = vars("nokey", &[("CERT", &certs.path("server.pem"))]);
    env.extend(vars(
        "badpem",
        &[("CERT", &missing), ("KEY", &certs.path("server.key"))],
    ));
    env.extend(vars(
        "mismatch",
        &[("CERT", &certs.path("server.pem")), ("KEY", &certs.path("client.key"))],
    ));
    env.extend(vars(
        "noca",
        &[
            ("CERT", &certs.path("server.pem")),
            ("KEY", &certs.path("server.key")),
            ("REQUIRE_CLIENT_CERT", "1"),
        ],
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut server = start("server.lua", &["nokey", "badpem", "mismatch", "noca"], &env);
    assert!(server.value("listen nokey").contains("cert and key go together"));
    let line = server.value("listen badpem");
    assert!(
        line.contains("cannot read the certificate file") && line.contains("nothing.pem"),
        "{line}"
    );
    assert!(server.value("listen mismatch").contains("do not fit"));
    assert!(server.value("listen noca").contains("needs a ca"));
}

// ----------------------------------------------- the router and the cluster

#[test]
fn router_and_cluster_nodes_talk_over_tls() {
    let (_dir, certs) = certificates();
    let (cert, key, ca) = (certs.path("server.pem"), certs.path("server.key"), certs.path("ca.pem"));
    let (router, address) = router(&["--tls-cert", &cert, "--tls-key", &key], &[]);
    let tls = [("TLS_CA", ca.as_str())];
    let _service = ready_node("2.1", &address, &tls);
    let mut client = ready_node("9.1", &address, &[("TLS_CA", &ca), ("CALL", "2.1")]);
    client.expect("call ok 2.1");

    // A node that trusts another CA is refused on its side...
    let mut doubter = node("2.2", &address, &[("TLS_CA", &certs.path("other-ca.pem"))]);
    doubter.expect(&format!("router_error {address} tls-failed"));
    doubter.expect(&format!("status {address} tls-failed"));
    let detail = doubter
        .last_value(&format!("router_error {address} tls-failed"))
        .unwrap();
    assert!(detail.contains("UnknownIssuer"), "{detail}");
    // ...and a plaintext node on the TLS port never gets in.
    let plain = node("2.3", &address, &[]);
    wait_stat(&router, "tls_failed", 3);
    assert!(!plain.stdout().iter().any(|l| l.starts_with("ready")));
    assert_eq!(wait_log(&doubter, "tls-failed", 1).len(), 1, "{}", doubter.stderr());
    let registrations = wait_log(&router, "registered from", 2);
    assert_eq!(registrations.len(), 2, "{registrations:?}");
    client.expect("call ok 2.1");
}

#[test]
fn a_router_with_mutual_tls_and_a_secret_takes_only_nodes_with_both() {
    let (_dir, certs) = certificates();
    let (cert, key, ca) = (certs.path("server.pem"), certs.path("server.key"), certs.path("ca.pem"));
    let (client_cert, client_key) = (certs.path("client.pem"), certs.path("client.key"));
    let (router, address) = router(
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-ca",
            &ca,
            "--tls-require-client-cert",
        ],
        &[("LUNA_CLUSTER_SECRET", SECRET)],
    );
    let full = [
        ("TLS_CA", ca.as_str()),
        ("TLS_CERT", client_cert.as_str()),
        ("TLS_KEY", client_key.as_str()),
        ("LUNA_CLUSTER_SECRET", SECRET),
    ];
    let _service = ready_node("2.1", &address, &full);
    let mut client_env = full.to_vec();
    client_env.push(("CALL", "2.1"));
    let mut client = ready_node("9.1", &address, &client_env);
    client.expect("call ok 2.1");

    // Without a client certificate: refused by TLS.
    let mut no_cert = node("2.2", &address, &[("TLS_CA", &ca), ("LUNA_CLUSTER_SECRET", SECRET)]);
    no_cert.expect(&format!("status {address} tls-failed"));
    // With the certificate but a wrong secret: refused by the handshake.
    let mut wrong_secret = full.to_vec();
    wrong_secret[3] = ("LUNA_CLUSTER_SECRET", "wrong");
    let mut no_secret = node("2.3", &address, &wrong_secret);
    no_secret.expect(&format!("status {address} auth-failed"));
    wait_stat(&router, "tls_failed", 1);
    wait_stat(&router, "auth_failed", 1);
    assert_eq!(wait_log(&router, "registered from", 2).len(), 2, "{}", router.stderr());
    client.expect("call ok 2.1");
}

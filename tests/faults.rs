//! Fault injection (issue 10): real routers, services and Redis, killed,
//! frozen, flooded, restarted and reloaded while traffic flows. Every test
//! counts what was sent, delivered and reported: delivered + reported = sent,
//! always, and nothing is reported where the contract says nothing is lost.
//!
//! The Lua of the processes is in tests/scripts/faults/*.lua; they print
//! machine-readable lines (`summary sent=.. delivered=.. reported=..`,
//! `ok <seq> <result>`, `err <seq> <error>`, `got <n>`, `via <router> <seq>`,
//! `stats name=value ...`, `promoted <id> <ms>`). The tests run one at a time
//! (they kill, freeze and flood processes on a small machine, and use short
//! heartbeats), with generous deadlines: they wait for events, never for speed.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::redis::Redis;
use common::wire::{self, RawClient, Value};
use common::{Dir, Luna, eventually, script_arg, start_router};

static SERIAL: Mutex<()> = Mutex::new(());

/// One fault test at a time: their heartbeats must not starve each other.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/faults")
}

/// Starts the shipped router on a free port with extra `args`: (process, "ip:port").
fn router(args: &[&str]) -> (Luna, String) {
    start_router(&scripts(), args)
}

/// The shipped router run by tests/scripts/common/router_stats.lua, which
/// adds `stats ...` lines.
fn stats_router(args: &[&str]) -> (Luna, String) {
    let script = script_arg("common/router_stats.lua");
    let mut all = vec![script.as_str(), "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut luna = Luna::start_in(&scripts(), &all);
    let address = luna.value("listening");
    (luna, address)
}

/// Starts `luna <script>` from tests/scripts/faults with environment `env`.
fn start(script: &str, env: &[(&str, &str)]) -> Luna {
    Luna::start_with(&scripts(), &[script], env)
}

/// Starts service.lua as `id` and waits until it is `ready`.
fn service(id: &str, env: &[(&str, &str)]) -> Luna {
    let mut all = vec![("ID", id)];
    all.extend_from_slice(env);
    let mut luna = start("service.lua", &all);
    luna.expect(&format!("ready {id}"));
    luna
}

/// Forwards a service counted (`got <n>`).
fn got(service: &Luna) -> u64 {
    service.last_value("got").map_or(0, |n| n.parse().unwrap())
}

/// The `name=value` fields of a line.
fn fields(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every `stats` line of a router_stats.lua router so far, parsed.
fn all_stats(router: &Luna) -> Vec<HashMap<String, String>> {
    router
        .stdout()
        .iter()
        .filter_map(|line| line.strip_prefix("stats "))
        .map(fields)
        .collect()
}

/// A counter of the newest stats line (panics naming it if the router lacks it).
fn stat(router: &Luna, name: &str) -> u64 {
    let stats = all_stats(router);
    let last = stats.last().expect("no stats line yet");
    let value = &last[name];
    value
        .parse()
        .unwrap_or_else(|_| panic!("the router's mgr.stats() has no counter {name:?} (got {value:?})"))
}

/// Waits for a stats line printed after the current ones (two more lines
/// than now: the next one may have been taken before the counter moved).
/// Counting, not `expect`: its cursor may still be at older lines.
fn fresh_stats(router: &mut Luna) {
    let now = all_stats(router).len();
    eventually("two fresh stats lines", || {
        (all_stats(router).len() >= now + 2).then_some(())
    });
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Polls `check` for up to `limit`; true once it held.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20)); // poll period of the wait for the condition
    }
}

/// The end-of-run accounting of client.lua.
#[derive(Debug)]
struct Summary {
    sent: u64,
    delivered: u64,
    reported: u64,
    errors: String,
}

/// One completed call of client.lua: sequence number and result or error.
struct Outcome {
    seq: u64,
    ok: bool,
    text: String,
}

/// A client.lua process and the file that stops it.
struct Client {
    luna: Luna,
    stop_file: PathBuf,
    _dir: Dir,
}

impl Client {
    /// Starts client.lua with `env` and waits until it is `ready`.
    fn start(env: &[(&str, &str)]) -> Client {
        let dir = Dir::new();
        let stop_file = dir.path("stop");
        let stop = stop_file.to_str().unwrap().to_string();
        let mut all = vec![("STOP_FILE", stop.as_str())];
        all.extend_from_slice(env);
        let mut luna = start("client.lua", &all);
        luna.expect("ready");
        Client {
            luna,
            stop_file,
            _dir: dir,
        }
    }

    /// Stops sending and returns the accounting once every call returned.
    fn stop(&mut self) -> Summary {
        std::fs::write(&self.stop_file, "stop").unwrap();
        self.summary()
    }

    /// Waits for the summary line (after COUNT messages or a stop).
    fn summary(&mut self) -> Summary {
        let line = self.luna.value("summary");
        let f = fields(&line);
        let number = |name: &str| f[name].parse::<u64>().unwrap();
        Summary {
            sent: number("sent"),
            delivered: number("delivered"),
            reported: number("reported"),
            errors: f["errors"].clone(),
        }
    }

    /// Completed calls, in the order they completed.
    fn outcomes(&self) -> Vec<Outcome> {
        self.luna
            .stdout()
            .iter()
            .filter_map(|line| {
                let (ok, rest) = if let Some(rest) = line.strip_prefix("ok ") {
                    (true, rest)
                } else {
                    (false, line.strip_prefix("err ")?)
                };
                let (seq, text) = rest.split_once(' ').unwrap_or((rest, ""));
                Some(Outcome {
                    seq: seq.parse().ok()?,
                    ok,
                    text: text.to_string(),
                })
            })
            .collect()
    }

    /// How many calls completed so far.
    fn completed(&self) -> usize {
        self.outcomes().len()
    }

    /// Waits until `more` calls completed after the first `mark`.
    fn wait_more(&self, mark: usize, more: usize) {
        eventually(&format!("{more} more completed calls"), || {
            (self.completed() >= mark + more).then_some(())
        });
    }

    /// Failed calls among those completed after the first `mark`.
    fn errors_since(&self, mark: usize) -> Vec<String> {
        self.outcomes()[mark..]
            .iter()
            .filter(|o| !o.ok)
            .map(|o| format!("call {}: {}", o.seq, o.text))
            .collect()
    }

    /// The router messages go through and the calls sent when it was picked.
    fn via(&self) -> Option<(String, u64)> {
        let value = self.luna.last_value("via")?;
        let (address, seq) = value.split_once(' ')?;
        Some((address.to_string(), seq.parse().ok()?))
    }
}

/// The accounting every test ends with.
fn assert_accounted(summary: &Summary, delivered: u64) {
    assert_eq!(
        delivered + summary.reported,
        summary.sent,
        "delivered + reported != sent: messages vanished without a report ({summary:?}, delivered {delivered})"
    );
}

// ---------------------------------------------------------------- 1. garbage collection

/// Issue item 1: the router keeps only tokens of its streams; the collector
/// (run by `--stats-ms 1`'s garbage) must not close them. 3,000 forwards,
/// every one delivered, none reported.
#[test]
fn garbage_collection_never_cuts_router_links() {
    let _serial = serial();
    let (_router, address) = router(&["--heartbeat-ms", "100", "--stats-ms", "1"]);
    let service = service("2.1", &[("ROUTERS", &address), ("GC_EVERY_MS", "5")]);
    let mut client = Client::start(&[
        ("ROUTERS", &address),
        ("MODE", "forward"),
        ("TARGET", "2.1"),
        ("EVERY_MS", "2"),
        ("BATCH", "2"),
        ("COUNT", "3000"),
        ("GC_EVERY_MS", "5"),
    ]);
    let summary = client.summary();
    assert_eq!(summary.sent, 3000);
    within(Duration::from_secs(10), || {
        got(&service) + summary.reported >= summary.sent
    });
    assert_accounted(&summary, got(&service));
    assert_eq!(
        summary.reported,
        0,
        "forwards failed while nothing was wrong: {summary:?}\n--- client ---\n{}",
        client.luna.stderr()
    );
}

/// Issue item 1: the README's Sockets example keeps no reference to the
/// accepted stream (nor here to the listener); collectgarbage() must not close either.
#[test]
fn sockets_example_survives_collectgarbage() {
    let _serial = serial();
    let mut server = start("sockets_gc.lua", &[]);
    let port: u16 = server.value("listening").parse().unwrap();
    let ask = |conn: &mut TcpStream, n: i64| -> Result<Vec<Value>, String> {
        conn.write_all(&wire::call_frame(&[Value::from("ping"), Value::from(n)]))
            .map_err(|e| format!("write: {e}"))?;
        let (kind, payload) = wire::read_frame(conn).map_err(|e| format!("read: {e}"))?;
        assert_eq!(kind, wire::CALL);
        Ok(wire::decode(&payload))
    };
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let expected = |n: i64| vec![Value::from("reply"), Value::from("ping"), Value::from(n)];
    assert_eq!(ask(&mut conn, 1).unwrap(), expected(1));
    // Full collections run every 20 ms; let at least 20 of them pass.
    server.expect("collected");
    server.expect("collected");
    server.expect("collected");
    let after = ask(&mut conn, 2);
    assert_eq!(
        after,
        Ok(expected(2)),
        "the accepted stream was closed by collectgarbage()\n--- server ---\n{}\n{}",
        server.stdout().join("\n"),
        server.stderr()
    );
    // The listener, referenced by nothing, still accepts.
    let mut second = TcpStream::connect(("127.0.0.1", port)).expect("the listener was closed by collectgarbage()");
    second.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(ask(&mut second, 3), Ok(expected(3)));
}

// ---------------------------------------------------------------- 2. Redis restarted empty

/// Issue item 2: Redis killed and restarted empty (three times) while a
/// client calls and another forwards through routers found by discovery: the
/// routers' keys are missing until they re-register, yet no call or forward
/// may fail (no `no-route`, nothing dropped).
#[test]
fn redis_restarted_empty_under_load_loses_nothing() {
    let _serial = serial();
    let mut redis = Redis::start(&[]);
    let redis_address = format!("127.0.0.1:{}", redis.port);
    let redis_port = redis.port.to_string();
    let router_args = [
        "--heartbeat-ms",
        "100",
        "--redis",
        &redis_address,
        "--prefix",
        "f",
        "--ttl-ms",
        "600",
    ];
    let _first = router(&router_args);
    let _second = router(&router_args);
    let discovery: [(&str, &str); 4] = [
        ("REDIS_PORT", &redis_port),
        ("TTL_MS", "600"),
        ("RESCAN_MS", "300"),
        ("LIVE", "2"),
    ];
    let service = service("2.1", &discovery);
    let mut caller = Client::start(&[&discovery[..], &[("ID", "9.1"), ("EVERY_MS", "2"), ("BATCH", "2")]].concat());
    let mut forwarder = Client::start(
        &[
            &discovery[..],
            &[("ID", "9.2"), ("MODE", "forward"), ("EVERY_MS", "2"), ("BATCH", "2")],
        ]
        .concat(),
    );
    caller.wait_more(0, 100);
    for round in 0..3 {
        redis.kill();
        // Not a wait: how long Redis stays down.
        std::thread::sleep(Duration::from_millis(400));
        redis.restart();
        eventually(&format!("both routers registered again after restart {round}"), || {
            (redis.cli(&["KEYS", "f:router:*"]).lines().count() == 2).then_some(())
        });
        // Not a wait: traffic flows for longer than a TTL and a few re-scans
        // with the keys back, the window in which a lost route would show.
        std::thread::sleep(Duration::from_millis(1200));
    }
    let calls = caller.stop();
    let forwards = forwarder.stop();
    within(Duration::from_secs(10), || {
        got(&service) + forwards.reported >= forwards.sent
    });
    assert_accounted(&calls, calls.delivered);
    assert_accounted(&forwards, got(&service));
    assert_eq!(calls.reported, 0, "calls failed across the Redis restarts: {calls:?}");
    assert_eq!(
        forwards.reported, 0,
        "forwards failed across the Redis restarts: {forwards:?}"
    );
}

// ---------------------------------------------------------------- 3. routers stopped and killed

/// Issue item 3: SIGSTOP the router a node sends through (two routers). The
/// kernel still accepts reconnects to it, but it must not be picked again
/// while frozen: after the failover no call fails for a window of several
/// heartbeats. After SIGCONT it is live and usable again.
#[test]
fn a_frozen_router_is_not_picked_again() {
    let _serial = serial();
    let mut first = router(&["--heartbeat-ms", "100"]);
    let mut second = router(&["--heartbeat-ms", "100"]);
    let routers = format!("{},{}", first.1, second.1);
    let _service = service("2.1", &[("ROUTERS", &routers), ("LIVE", "2")]);
    let mut client = Client::start(&[("ROUTERS", &routers), ("LIVE", "2"), ("TIMEOUT_MS", "1000")]);
    client.wait_more(0, 50);
    let (used, _) = client.via().expect("a router in use");
    let (frozen, other) = if used == first.1 {
        (&mut first, &mut second)
    } else {
        (&mut second, &mut first)
    };
    frozen.0.signal(libc::SIGSTOP);
    let failover = eventually("the node to send through the other router", || {
        client.via().filter(|(address, _)| *address == other.1)
    });
    let mark = client.luna.stdout().len();
    // Not a wait: the window of several dead-after periods (3 heartbeats) and
    // reconnects to the frozen router in which it must not be picked again.
    std::thread::sleep(Duration::from_secs(4));
    let flapped = client.luna.stdout()[mark..]
        .iter()
        .filter(|line| line.starts_with(&format!("via {} ", frozen.1)))
        .count();
    let failed: Vec<String> = client
        .outcomes()
        .iter()
        .filter(|o| !o.ok && o.seq > failover.1)
        .map(|o| format!("call {}: {}", o.seq, o.text))
        .collect();
    assert!(
        failed.is_empty() && flapped == 0,
        "the node went back to the frozen router {}: {} calls sent after the failover failed ({:?}), picked it again {} times",
        frozen.1,
        failed.len(),
        &failed[..failed.len().min(10)],
        flapped
    );
    // Thawed, it answers again: it becomes live, and it carries the traffic once the other one dies.
    let mark = client.luna.stdout().len();
    frozen.0.signal(libc::SIGCONT);
    eventually("both routers live again", || {
        client.luna.stdout()[mark..].iter().any(|l| l == "live 2").then_some(())
    });
    other.0.signal(libc::SIGKILL);
    other.0.wait_exit();
    let back = eventually("the node to send through the thawed router", || {
        client.via().filter(|(address, _)| *address == frozen.1)
    });
    eventually("calls through the thawed router", || {
        (client.outcomes().iter().filter(|o| o.ok && o.seq > back.1).count() >= 20).then_some(())
    });
    let summary = client.stop();
    assert_accounted(&summary, summary.delivered);
}

/// SIGKILL of the router a node uses, under load, with two routers: every
/// call returns a result or an error, and calls go on through the other router.
#[test]
fn a_killed_router_under_load_loses_no_call_silently() {
    let _serial = serial();
    let mut first = router(&["--heartbeat-ms", "100"]);
    let mut second = router(&["--heartbeat-ms", "100"]);
    let routers = format!("{},{}", first.1, second.1);
    let _service = service("2.1", &[("ROUTERS", &routers), ("LIVE", "2")]);
    let mut client = Client::start(&[("ROUTERS", &routers), ("LIVE", "2"), ("EVERY_MS", "2"), ("BATCH", "2")]);
    client.wait_more(0, 100);
    let (used, _) = client.via().expect("a router in use");
    let (killed, other) = if used == first.1 {
        (&mut first, &second)
    } else {
        (&mut second, &first)
    };
    killed.0.signal(libc::SIGKILL);
    killed.0.wait_exit();
    let failover = eventually("the node to send through the other router", || {
        client.via().filter(|(address, _)| *address == other.1)
    });
    eventually("calls through the other router", || {
        (client.outcomes().iter().filter(|o| o.ok && o.seq > failover.1).count() >= 100).then_some(())
    });
    let summary = client.stop();
    assert_accounted(&summary, summary.delivered);
    assert!(
        client.errors_since(0).iter().all(|e| !e.ends_with("timeout")),
        "a call through the killed router waited for its timeout instead of failing at once: {summary:?}"
    );
}

// ---------------------------------------------------------------- 4. duplicate ids

/// Issue item 4: a second process registering the id of a live service is
/// refused (`id-in-use`): the holder keeps all its traffic, and when the
/// duplicate leaves the holder's route stays. When the holder dies, a waiting
/// duplicate takes the id over.
#[test]
fn a_duplicate_id_is_refused_and_the_holder_keeps_its_traffic() {
    let _serial = serial();
    let (mut router, address) = router(&["--heartbeat-ms", "100"]);
    let mut holder = service("2.1", &[("ROUTERS", &address), ("TAG", "holder")]);
    let mut client = Client::start(&[("ROUTERS", &address)]);
    client.wait_more(0, 20);

    let in_use = format!("status {address} id-in-use");
    let mut duplicate = start("service.lua", &[("ID", "2.1"), ("ROUTERS", &address), ("TAG", "dup")]);
    // Refused (the contract), or registered over the holder (the bug).
    eventually("the duplicate's registration to be answered", || {
        duplicate
            .stdout()
            .iter()
            .any(|l| *l == in_use || l == "ready 2.1")
            .then_some(())
    });
    let mark = client.completed();
    client.wait_more(mark, 50);
    let stolen: Vec<String> = client.outcomes()[mark..]
        .iter()
        .filter(|o| !(o.ok && o.text == "holder"))
        .map(|o| {
            format!(
                "call {}: {} {}",
                o.seq,
                if o.ok { "answered by" } else { "failed:" },
                o.text
            )
        })
        .collect();
    assert!(
        stolen.is_empty(),
        "the duplicate took traffic of the live holder: {:?}",
        &stolen[..stolen.len().min(10)]
    );
    assert!(
        duplicate.stdout().contains(&in_use),
        "routers_status() of the duplicate does not say id-in-use: {:?}",
        duplicate.stdout()
    );
    duplicate.expect_err("refused 2.1: id-in-use");
    let line = router.expect_err("refused 2.1 from");
    assert!(line.contains("id-in-use"), "{line}");

    // The duplicate leaves: the holder's route must stay.
    duplicate.signal(libc::SIGKILL);
    duplicate.wait_exit();
    let mark = client.completed();
    client.wait_more(mark, 50);
    let errors = client.errors_since(mark);
    assert!(
        errors.is_empty(),
        "the duplicate's departure cut the holder's route: {:?}",
        &errors[..errors.len().min(10)]
    );

    // A waiting duplicate takes the id over once the holder dies.
    let mut heir = start("service.lua", &[("ID", "2.1"), ("ROUTERS", &address), ("TAG", "heir")]);
    heir.expect(&in_use);
    holder.signal(libc::SIGKILL);
    holder.wait_exit();
    heir.expect("ready 2.1");
    let mark = client.completed();
    eventually("calls answered by the heir", || {
        client.outcomes()[mark..]
            .iter()
            .any(|o| o.ok && o.text == "heir")
            .then_some(())
    });
    let summary = client.stop();
    assert_accounted(&summary, summary.delivered);
}

// ---------------------------------------------------------------- 5. master lease

/// Issue item 5: the lease holder reaches Redis through a proxy that freezes
/// (a partition: nothing is closed); the backup reaches Redis directly. The
/// holder must stop being master strictly before the backup becomes master.
#[test]
fn a_cut_off_lease_holder_demotes_before_the_backup_promotes() {
    let _serial = serial();
    let redis = Redis::start(&[]);
    let proxy = Proxy::start(redis.port);
    let (proxy_port, redis_port) = (proxy.port.to_string(), redis.port.to_string());
    let mut holder = start(
        "lease.lua",
        &[("ID", "3.1"), ("REDIS_PORT", &proxy_port), ("TTL_MS", "600")],
    );
    holder.expect("promoted 3.1");
    let mut backup = start(
        "lease.lua",
        &[("ID", "3.2"), ("REDIS_PORT", &redis_port), ("TTL_MS", "600")],
    );
    backup.expect("started 3.2");
    // Not a wait: the backup must not promote itself during this window.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        !backup.stdout().iter().any(|l| l.starts_with("promoted")),
        "two masters before any fault"
    );

    proxy.freeze();
    let promoted: i64 = backup.value("promoted 3.2").parse().unwrap();
    let demoted = holder.value("demoted 3.1");
    let demoted: i64 = demoted.split(' ').next().unwrap().parse().unwrap();
    assert!(
        demoted < promoted,
        "two masters at once: the cut-off holder demoted at {demoted} ms, {} ms after the backup was promoted at {promoted} ms",
        demoted - promoted
    );

    // Back in touch, the old holder does not contest the backup's lease.
    proxy.thaw();
    // Not a wait: the old holder must not take the lease back in this window.
    std::thread::sleep(Duration::from_millis(1500));
    let promotions = holder.stdout().iter().filter(|l| l.starts_with("promoted")).count();
    assert_eq!(
        promotions,
        1,
        "the old holder took the lease back: {:?}",
        holder.stdout()
    );
    assert!(
        !backup.stdout().iter().any(|l| l.starts_with("demoted")),
        "{:?}",
        backup.stdout()
    );
    assert_eq!(redis.cli(&["GET", "f:lease:match"]), "3.2");
}

// ---------------------------------------------------------------- 6. one client against everyone

/// Issue item 6: one connection floods the router with 1.1 M tracked calls
/// to a callee that never answers (past the per-connection cap, default
/// 65536; past the old process-wide cap too). Calls past the cap fail back
/// to the flooder (`too-many-calls`), and another caller whose callee is
/// SIGKILLed still gets `connection-lost` at once.
#[test]
fn a_flood_of_tracked_calls_does_not_blind_the_router() {
    let _serial = serial();
    const FLOOD: u32 = 1_100_000;
    let (mut router, address) = stats_router(&[]);
    let callee = RawClient::connect(&address);
    let callee_id = wire::service_id(5, 1);
    callee.call(&[Value::from("@register"), Value::from(callee_id), Value::from(false)]);
    eventually("the raw callee registered", || {
        callee
            .messages()
            .iter()
            .any(|m| m[0].as_str() == Some("@registered"))
            .then_some(())
    });
    let mut victim_service = service("6.1", &[("ROUTERS", &address)]);

    let flooder = RawClient::connect(&address);
    let payload = wire::payload(&[Value::from("never")]);
    let mut batch = Vec::new();
    for session in 1..=FLOOD {
        batch.extend_from_slice(&wire::forward_target_frame(session, callee_id, &payload));
        if batch.len() >= 1 << 20 || session == FLOOD {
            flooder.send(&batch).expect("flood");
            batch.clear();
        }
    }
    let settled = within(Duration::from_secs(60), || {
        callee.delivers() + flooder.forward_errors() >= u64::from(FLOOD)
    });
    assert!(
        settled,
        "flood not accounted for: {} delivered + {} reported of {FLOOD}",
        callee.delivers(),
        flooder.forward_errors()
    );

    // Another caller's call is still tracked: its callee dies, it hears at once.
    let mut victim = Client::start(&[
        ("ID", "9.2"),
        ("ROUTERS", &address),
        ("TARGET", "6.1"),
        ("METHOD", "sleep"),
        ("ARG", "15000"),
        ("COUNT", "1"),
        ("TIMEOUT_MS", "12000"),
    ]);
    victim_service.expect("sleeping 15000");
    let killed = Instant::now();
    victim_service.signal(libc::SIGKILL);
    let line = victim.luna.expect("err 1 ");
    let waited = killed.elapsed();
    assert!(
        line == "err 1 connection-lost" && waited < Duration::from_secs(6),
        "after one connection's flood, another caller got {line:?} {waited:?} after its callee died (its timeout is 12 s)\n--- caller ---\n{}\n--- router ---\n{}",
        victim.luna.stderr(),
        router.stderr()
    );
    assert!(
        !victim.luna.stdout().iter().any(|l| l == "live 0"),
        "the caller lost its router link, so its connection-lost did not come from the router's tracking\n--- caller ---\n{}",
        victim.luna.stderr()
    );
    let summary = victim.summary();
    assert_accounted(&summary, summary.delivered);

    assert_eq!(
        callee.delivers() + flooder.forward_errors(),
        u64::from(FLOOD),
        "delivered + reported != sent"
    );
    assert!(
        flooder.forward_errors() > 0 && callee.delivers() <= 65536,
        "no per-connection cap: {} tracked calls delivered, {} refused",
        callee.delivers(),
        flooder.forward_errors()
    );
    fresh_stats(&mut router);
    assert!(stat(&router, "calls_refused") > 0);
}

/// Issue item 6: many connections each start a ~16 MiB frame and send part
/// of it. Past `--max-pending-input` the router closes the biggest
/// (`recv-buffer-full`, counted and logged), its memory stays bounded, and a
/// normal client keeps calling through it without a failure.
#[test]
fn a_flood_of_partial_frames_is_bounded() {
    let _serial = serial();
    const CAP: u64 = 32 << 20;
    const CONNECTIONS: usize = 24;
    const EACH: usize = 6 << 20;
    let cap = CAP.to_string();
    let (mut router, address) = stats_router(&["--max-pending-input", &cap]);
    let _service = service("2.1", &[("ROUTERS", &address), ("HEARTBEAT_MS", "200")]);
    let mut client = Client::start(&[("ROUTERS", &address), ("HEARTBEAT_MS", "200")]);
    client.wait_more(0, 20);
    let baseline = rss_kib(router.pid());

    let floods: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let mut conn = TcpStream::connect(&address).unwrap();
                conn.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut start = (16u32 << 20).to_be_bytes().to_vec();
                start.push(wire::CALL);
                let chunk = vec![0x90u8; 64 * 1024];
                let mut closed = conn.write_all(&start).is_err();
                let mut written = 0;
                while !closed && written < EACH {
                    closed = conn.write_all(&chunk).is_err();
                    written += chunk.len();
                }
                (conn, closed)
            })
        })
        .collect();
    let mut peak = 0;
    while floods.iter().any(|f| !f.is_finished()) {
        peak = peak.max(rss_kib(router.pid()));
        // Not a wait: the sampling period of the memory peak.
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut held = Vec::new();
    let mut closed = 0;
    for flood in floods {
        let (conn, was_closed) = flood.join().unwrap();
        if was_closed {
            closed += 1;
        } else {
            held.push(conn);
        }
    }
    // Not a wait: 400 ms more of samples, for memory the router takes late.
    for _ in 0..20 {
        peak = peak.max(rss_kib(router.pid()));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Connections the router closed after they finished writing.
    for conn in &mut held {
        conn.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut byte = [0u8; 1];
        let gone = match conn.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        if gone {
            closed += 1;
        }
    }
    fresh_stats(&mut router);
    let pushed_kib = (CONNECTIONS * EACH / 1024) as u64;
    assert!(
        peak < baseline + 3 * CAP / 1024,
        "the router held the partial frames: RSS {baseline} KiB -> {peak} KiB for {pushed_kib} KiB pushed (cap {CAP} bytes)"
    );
    assert!(closed > 0, "no partial-frame connection was closed");
    assert!(stat(&router, "recv_buffer_full") > 0);
    for stats in all_stats(&router) {
        let pending: u64 = stats["pending_input"].parse().expect("pending_input counter");
        assert!(pending <= CAP, "pending_input {pending} past the cap {CAP}");
    }
    assert!(
        router.stderr().contains("recv-buffer-full"),
        "recv-buffer-full not logged:\n{}",
        router.stderr()
    );
    let summary = client.stop();
    assert_accounted(&summary, summary.delivered);
    assert_eq!(
        summary.reported, 0,
        "a normal client's calls failed during the flood: {summary:?}"
    );
    drop(held);
}

/// Issue item 6: a frame trickled one byte at a time keeps the idle timeout
/// from firing; `--frame-timeout-ms` closes it anyway.
#[test]
fn a_trickled_frame_is_closed_after_the_frame_timeout() {
    let _serial = serial();
    // Idle timeout 3 s (3 heartbeats); a byte every 100 ms keeps it from firing.
    let (mut router, address) = stats_router(&["--heartbeat-ms", "1000", "--frame-timeout-ms", "500"]);
    let mut conn = TcpStream::connect(&address).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut start = 1000u32.to_be_bytes().to_vec();
    start.push(wire::CALL);
    conn.write_all(&start).unwrap();
    let began = Instant::now();
    let mut closed_after = None;
    let mut byte = [0u8; 1];
    // 80 bytes of the 1000 announced, one every 100 ms: the frame never completes.
    for _ in 0..80 {
        let closed = conn.write_all(&[0x90]).is_err()
            || match conn.read(&mut byte) {
                Ok(0) => true,
                Ok(_) => false,
                Err(error) => !matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            };
        if closed {
            closed_after = Some(began.elapsed());
            break;
        }
    }
    assert!(
        closed_after.is_some(),
        "a frame trickled for {:?} was never closed (--frame-timeout-ms 500)",
        began.elapsed()
    );
    fresh_stats(&mut router);
    assert!(stat(&router, "frame_timeouts") > 0);
}

/// Issue item 6: one connection registering far more ids than `--max-ids`
/// (default 4096) gets `@refused ... too-many-ids` for the rest.
#[test]
fn one_connection_cannot_register_unbounded_ids() {
    let _serial = serial();
    const IDS: u32 = 5000;
    let (mut router, address) = stats_router(&[]);
    let raw = RawClient::connect(&address);
    let mut frames = Vec::new();
    for index in 1..=IDS {
        frames.extend_from_slice(&wire::call_frame(&[
            Value::from("@register"),
            Value::from(wire::service_id(7, index)),
            Value::from(false),
        ]));
    }
    raw.send(&frames).unwrap();
    let answered = within(Duration::from_secs(20), || {
        raw.counts.calls.load(std::sync::atomic::Ordering::SeqCst) >= u64::from(IDS)
    });
    let messages = raw.messages();
    let registered = messages.iter().filter(|m| m[0].as_str() == Some("@registered")).count();
    let refused: Vec<&Vec<Value>> = messages.iter().filter(|m| m[0].as_str() == Some("@refused")).collect();
    assert!(answered, "{} of {IDS} registrations answered", messages.len());
    assert_eq!(registered + refused.len(), IDS as usize, "answers: {}", messages.len());
    assert_eq!(
        (registered, refused.len()),
        (4096, IDS as usize - 4096),
        "one connection holds {registered} ids"
    );
    assert!(
        refused
            .iter()
            .all(|m| m.get(2).and_then(Value::as_str) == Some("too-many-ids")),
        "{:?}",
        refused.first()
    );
    fresh_stats(&mut router);
    assert!(stat(&router, "ids_refused") > 0);
}

// ---------------------------------------------------------------- 7. hot reload of an entry

/// Waits for a second of the router's stats lines (one every 100 ms), then
/// checks that its `open` count was `expected` over the last eight.
fn open_stays(router: &mut Luna, expected: u64, what: &str) {
    fresh_stats(router);
    let from = all_stats(router).len();
    eventually("a second of stats lines", || {
        (all_stats(router).len() >= from + 10).then_some(())
    });
    fresh_stats(router);
    let stats = all_stats(router);
    let recent: Vec<&String> = stats[stats.len().saturating_sub(8)..]
        .iter()
        .map(|s| &s["open"])
        .collect();
    assert!(
        recent.iter().all(|open| **open == expected.to_string()),
        "{what}: the router's open sockets went from {expected} to {recent:?}"
    );
}

/// Issue item 7: an entry that calls cluster.start at its top level is
/// reloaded: still one node, one connection, and the new handlers answer.
#[test]
fn hot_reload_of_an_entry_keeps_one_node() {
    let _serial = serial();
    let (mut router, address) = stats_router(&["--heartbeat-ms", "100"]);
    let dir = Dir::new();
    let entry = dir.copy_script("entry.lua", "faults/reload_entry.lua");
    let original = std::fs::read_to_string(&entry).unwrap();
    let mut node = Luna::start_with(dir.dir.path(), &[entry.to_str().unwrap()], &[("ROUTERS", &address)]);
    node.expect("loaded v1");
    let mut client = Client::start(&[("ROUTERS", &address)]);
    client.wait_more(0, 5);
    fresh_stats(&mut router);
    let open = stat(&router, "open");

    std::fs::write(&entry, original.replace("\"v1\"", "\"v2\"")).unwrap();
    node.expect("loaded v2");
    let mark = client.completed();
    eventually("the reloaded handler to answer", || {
        client.outcomes()[mark..]
            .iter()
            .any(|o| o.ok && o.text == "v2")
            .then_some(())
    });
    open_stays(&mut router, open, "after a reload of the entry");
    let summary = client.stop();
    assert_accounted(&summary, summary.delivered);
    assert_eq!(summary.reported, 0, "{summary:?}");
}

/// Issue item 7 with the shipped example: saving examples/cluster/mail.lua
/// (`node = config.start_node(...)`) must not start a second node.
#[test]
fn hot_reload_of_the_example_mail_service_keeps_one_node() {
    let _serial = serial();
    // The example's node pings every second (its default): so does this router.
    let (mut router, address) = stats_router(&[]);
    fresh_stats(&mut router);
    let before = stat(&router, "open");
    let dir = Dir::new();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster");
    for file in ["mail.lua", "config.lua"] {
        dir.write(file, &std::fs::read_to_string(examples.join(file)).unwrap());
    }
    let mut mail = Luna::start_with(dir.dir.path(), &["mail.lua", "2.1"], &[("CLUSTER_ROUTERS", &address)]);
    eventually("the mail service connected", || {
        (stat(&router, "open") == before + 1).then_some(())
    });
    let text = std::fs::read_to_string(dir.path("mail.lua")).unwrap();
    std::fs::write(dir.path("mail.lua"), format!("{text}\n-- saved again\n")).unwrap();
    mail.expect_err("reloaded");
    open_stays(&mut router, before + 1, "after saving the example's entry");
}

// ---------------------------------------------------------------- 8. a callee dies mid-call

/// SIGKILL of a callee while 20 calls wait for it: each caller hears
/// `connection-lost` at once, none waits for its timeout.
#[test]
fn a_callee_killed_mid_call_reports_every_call() {
    let _serial = serial();
    let (_router, address) = router(&["--heartbeat-ms", "100"]);
    let mut callee = service("2.1", &[("ROUTERS", &address)]);
    let mut client = Client::start(&[
        ("ROUTERS", &address),
        ("METHOD", "sleep"),
        ("ARG", "15000"),
        ("BATCH", "20"),
        ("COUNT", "20"),
        ("TIMEOUT_MS", "12000"),
    ]);
    for _ in 0..20 {
        callee.expect("sleeping 15000");
    }
    let killed = Instant::now();
    callee.signal(libc::SIGKILL);
    let summary = client.summary();
    let waited = killed.elapsed();
    assert_accounted(&summary, summary.delivered);
    assert_eq!(
        (summary.sent, summary.reported, summary.errors.as_str()),
        (20, 20, "connection-lost=20"),
        "{summary:?}"
    );
    assert!(
        waited < Duration::from_secs(6),
        "the callers waited {waited:?} (timeout 12 s)"
    );
}

// ---------------------------------------------------------------- 9. rolling restart

/// Two services behind a router, a client calling continuously; SIGTERM
/// one (luna.cluster drains it), start it again, then the other: every call
/// returns a result, no error at all.
#[test]
fn a_rolling_restart_loses_no_call() {
    let _serial = serial();
    let (_router, address) = router(&["--heartbeat-ms", "100"]);
    let slow = [("ROUTERS", address.as_str()), ("SLOW_MS", "40")];
    let mut services: HashMap<&str, Luna> = HashMap::new();
    services.insert("2.1", service("2.1", &[&slow[..], &[("TAG", "2.1-a")]].concat()));
    services.insert("2.2", service("2.2", &[&slow[..], &[("TAG", "2.2-a")]].concat()));
    let mut client = Client::start(&[
        ("ROUTERS", &address),
        ("MODE", "random"),
        ("TARGET", "2"),
        ("METHOD", "slow"),
        ("EVERY_MS", "5"),
        ("TIMEOUT_MS", "5000"),
    ]);
    client.wait_more(0, 50);
    for id in ["2.1", "2.2"] {
        let mut old = services.remove(id).unwrap();
        old.signal(libc::SIGTERM);
        let status = old.wait_exit();
        assert!(
            status.success(),
            "{id} did not stop cleanly: {status:?}\n{}",
            old.stderr()
        );
        let tag = format!("{id}-b");
        services.insert(id, service(id, &[&slow[..], &[("TAG", tag.as_str())]].concat()));
        let mark = client.completed();
        eventually(&format!("calls answered by the restarted {id}"), || {
            client.outcomes()[mark..]
                .iter()
                .any(|o| o.ok && o.text == tag)
                .then_some(())
        });
    }
    let summary = client.stop();
    assert_accounted(&summary, summary.delivered);
    assert_eq!(
        summary.reported,
        0,
        "calls failed during the rolling restart: {summary:?} {:?}",
        client.errors_since(0).iter().take(10).collect::<Vec<_>>()
    );
}

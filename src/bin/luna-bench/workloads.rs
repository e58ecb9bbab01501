//! The workloads W1..W8 and W10 (W9 and the luna.cluster figures are in
//! cluster.rs): each starts its processes, measures, and returns
//! its figures. Every process is a [`Proc`], killed when it goes out of scope.

use std::cell::Cell;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cluster;
use crate::codec;
use crate::proc::{LunaExe, Pinning, Proc, TempDir, rss_bytes};

/// One reported number.
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub baseline: Option<f64>,
    pub note: Option<String>,
}

impl Figure {
    pub fn new(name: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit,
            baseline: None,
            note: None,
        }
    }

    pub fn baseline(mut self, baseline: f64) -> Figure {
        self.baseline = Some(baseline);
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = Some(note.into());
        self
    }

    /// value / baseline.
    pub fn ratio(&self) -> Option<f64> {
        self.baseline.filter(|b| *b > 0.0).map(|b| self.value / b)
    }
}

/// Formats a number with a precision fitting its size.
pub fn fmt_num(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

const ECHO_SERVER: &str = include_str!("../../../bench/scripts/echo_server.lua");
const CLIENT: &str = include_str!("../../../bench/scripts/client.lua");
const ROUTER: &str = include_str!("../../../bench/scripts/router.lua");
const SERVICE: &str = include_str!("../../../bench/scripts/service.lua");
const BROADCASTER: &str = include_str!("../../../bench/scripts/broadcaster.lua");
const IDLE_SERVER: &str = include_str!("../../../bench/scripts/idle_server.lua");
const RELOAD_MAIN: &str = include_str!("../../../bench/scripts/reload_main.lua");
const RPC_SERVER: &str = include_str!("../../../bench/scripts/rpc_server.lua");
const RPC_CLIENT: &str = include_str!("../../../bench/scripts/rpc_client.lua");
const RPC_TIMEOUTS: &str = include_str!("../../../bench/scripts/rpc_timeouts.lua");
const COMMON: &str = include_str!("../../../bench/scripts/common.lua");
const LOG_FILE: &str = include_str!("../../../bench/scripts/log_file.lua");
const LOG_BLOCKED: &str = include_str!("../../../bench/scripts/log_blocked.lua");
const CLUSTER_ROUTER: &str = include_str!("../../../bench/scripts/cluster_router.lua");
const CLUSTER_SERVICE: &str = include_str!("../../../bench/scripts/cluster_service.lua");
const CLUSTER_CLIENT: &str = include_str!("../../../bench/scripts/cluster_client.lua");
const FANOUT_SENDER: &str = include_str!("../../../bench/scripts/fanout_sender.lua");

/// Service ids used by the routed workloads.
const SERVICE_GROUP: u32 = 1;
const CLIENT_ID: u32 = 2 << 16 | 1;

fn service_id(group: u32, index: u32) -> u32 {
    group << 16 | index
}

/// Everything the workloads share.
pub struct Ctx {
    pub luna: LunaExe,
    pub me: PathBuf,
    pub dir: TempDir,
    pub quick: bool,
    pub warmup: Duration,
    pub duration: Duration,
    pub pinning: Pinning,
    /// Two CPUs to pin the W1 processes to, when there are two.
    pub cpus: Option<(usize, usize)>,
    /// The W1 luna figure with the W1 placement, reused by W5.
    pub w1_luna: Option<f64>,
    /// How the links of the luna processes started now are secured.
    pub security: Cell<Security>,
}

/// How the bench scripts secure their links (bench/scripts/common.lua reads
/// the environment the bench sets for each).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Security {
    /// Plain TCP, as in every other figure.
    Plain,
    /// The cluster-secret handshake on every link (LUNA_BENCH_SECRET).
    Secret,
    /// TLS on every link (LUNA_BENCH_TLS_DIR: ca.pem, server.pem, server.key).
    Tls,
}

/// The secret of the W2.secret and W3.secret runs (a benchmark, not a secret).
const BENCH_SECRET: &str = "luna-bench shared secret";

/// Which implementation serves a round-trip workload.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Luna,
    Baseline,
}

impl Ctx {
    /// Writes the bench scripts into the temp dir.
    pub fn write_scripts(&self) -> Result<()> {
        for (name, text) in [
            ("echo_server.lua", ECHO_SERVER),
            ("client.lua", CLIENT),
            ("router.lua", ROUTER),
            ("service.lua", SERVICE),
            ("broadcaster.lua", BROADCASTER),
            ("idle_server.lua", IDLE_SERVER),
            ("reload_main.lua", RELOAD_MAIN),
            ("rpc_server.lua", RPC_SERVER),
            ("rpc_client.lua", RPC_CLIENT),
            ("rpc_timeouts.lua", RPC_TIMEOUTS),
            ("common.lua", COMMON),
            ("log_file.lua", LOG_FILE),
            ("log_blocked.lua", LOG_BLOCKED),
            ("cluster_router.lua", CLUSTER_ROUTER),
            ("cluster_service.lua", CLUSTER_SERVICE),
            ("cluster_client.lua", CLUSTER_CLIENT),
            ("fanout_sender.lua", FANOUT_SENDER),
        ] {
            self.dir.write(name, text)?;
        }
        Ok(())
    }

    pub(crate) fn luna(&self, name: &str, script: &str, args: &[String], cpu: Option<usize>) -> Result<Proc> {
        let (program, full) = self.luna_command(&[], script, args);
        let env = match self.security.get() {
            Security::Plain => vec![],
            Security::Secret => vec![("LUNA_BENCH_SECRET".to_string(), BENCH_SECRET.to_string())],
            Security::Tls => vec![("LUNA_BENCH_TLS_DIR".to_string(), self.dir.0.display().to_string())],
        };
        Proc::spawn_env(name, &program, &full, cpu.map(|c| (c, self.pinning)), &self.dir.0, &env)
    }

    /// Runs `measure` with the links of the luna processes it starts secured per `security`.
    fn secured<T>(&self, security: Security, measure: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        self.security.set(security);
        let result = measure(self);
        self.security.set(Security::Plain);
        result
    }

    /// `measure` with `security` on against `measure` plain, alternately:
    /// a figure named `name` with the plain rate as its baseline.
    fn security_ratio(
        &mut self,
        name: &str,
        security: Security,
        note: &str,
        measure: impl Fn(&Self) -> Result<f64>,
    ) -> Result<Figure> {
        let (on, off) = self.alternate(|ctx| ctx.secured(security, &measure), &measure)?;
        Ok(Figure::new(name, on, "replies/s").baseline(off).note(note))
    }

    /// Program and arguments of `luna <flags...> <script> <args...>`.
    fn luna_command(&self, flags: &[&str], script: &str, args: &[String]) -> (PathBuf, Vec<String>) {
        let (program, mut full) = self.luna.program();
        full.extend(flags.iter().map(|f| f.to_string()));
        full.push(self.dir.0.join(script).display().to_string());
        full.extend_from_slice(args);
        (program, full)
    }

    fn baseline(&self, name: &str, args: &[String], cpu: Option<usize>) -> Result<Proc> {
        Proc::spawn(name, &self.me, args, cpu.map(|c| (c, self.pinning)), &self.dir.0)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.warmup + self.duration + Duration::from_secs(15)
    }

    pub(crate) fn ms(d: Duration) -> String {
        d.as_millis().max(1).to_string()
    }

    /// Starts an echo server (luna or baseline); returns it and its port.
    fn echo_server(&self, side: Side, cpu: Option<usize>) -> Result<(Proc, u16)> {
        let mut server = match side {
            Side::Luna => self.luna("luna echo server", "echo_server.lua", &[], cpu)?,
            Side::Baseline => self.baseline("baseline echo server", &["--baseline-server".into()], cpu)?,
        };
        let port = parse_port(&server.expect("port", Duration::from_secs(10))?)?;
        Ok((server, port))
    }

    /// Runs a client against `port` with `inflight` outstanding; replies/s.
    fn client(&self, side: Side, port: u16, inflight: usize, cpu: Option<usize>) -> Result<f64> {
        let args = vec![
            port.to_string(),
            inflight.to_string(),
            Self::ms(self.warmup),
            Self::ms(self.duration),
        ];
        let mut client = match side {
            Side::Luna => {
                let mut args = args;
                args.push("call".into());
                self.luna("luna client", "client.lua", &args, cpu)?
            }
            Side::Baseline => {
                let mut full = vec!["--baseline-client".to_string()];
                full.extend(args);
                self.baseline("baseline client", &full, cpu)?
            }
        };
        let rate = parse_rate(&client.expect("result", self.timeout())?)?;
        check_quiet(&mut client)?;
        Ok(rate)
    }

    /// Measures `a` and `b` alternately (five half-length samples each, one
    /// with --quick) and returns their medians: a ratio of two figures taken
    /// a minute apart on a noisy machine says more about the machine.
    pub(crate) fn alternate(
        &mut self,
        mut a: impl FnMut(&Self) -> Result<f64>,
        mut b: impl FnMut(&Self) -> Result<f64>,
    ) -> Result<(f64, f64)> {
        let rounds = if self.quick { 1 } else { 5 };
        let (warmup, duration) = (self.warmup, self.duration);
        if !self.quick {
            (self.warmup, self.duration) = (warmup / 2, duration / 2);
        }
        let (mut first, mut second) = (Vec::new(), Vec::new());
        let mut outcome = Ok(());
        for _ in 0..rounds {
            match (a(self), b(self)) {
                (Ok(x), Ok(y)) => {
                    first.push(x);
                    second.push(y);
                }
                (Err(error), _) | (_, Err(error)) => {
                    outcome = Err(error);
                    break;
                }
            }
        }
        (self.warmup, self.duration) = (warmup, duration);
        outcome?;
        Ok((median(&mut first), median(&mut second)))
    }

    /// An RPC server and a client with `coroutines` callers; calls/s.
    pub(crate) fn rpc_pair(&self, coroutines: usize, cpus: Option<(usize, usize)>) -> Result<f64> {
        let mut server = self.luna("luna rpc server", "rpc_server.lua", &[], cpus.map(|c| c.0))?;
        let port = parse_port(&server.expect("port", Duration::from_secs(10))?)?;
        let args = vec![
            port.to_string(),
            coroutines.to_string(),
            Self::ms(self.warmup),
            Self::ms(self.duration),
        ];
        let mut client = self.luna("luna rpc client", "rpc_client.lua", &args, cpus.map(|c| c.1))?;
        let rate = parse_rate(&client.expect("result", self.timeout())?)?;
        check_quiet(&mut client)?;
        check_quiet(&mut server)?;
        Ok(rate)
    }

    /// An echo server and a client on the given CPUs; replies/s.
    fn echo_pair(&self, side: Side, inflight: usize, cpus: Option<(usize, usize)>) -> Result<f64> {
        let (mut server, port) = self.echo_server(side, cpus.map(|c| c.0))?;
        let rate = self.client(side, port, inflight, cpus.map(|c| c.1))?;
        check_quiet(&mut server)?;
        Ok(rate)
    }
}

pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) fn parse_port(text: &str) -> Result<u16> {
    text.split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("bad port line `{text}`"))
}

fn parse_rate(text: &str) -> Result<f64> {
    text.split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("bad result line `{text}`"))
}

/// Fails when a process printed an `error` line or logged an error/warning.
pub(crate) fn check_quiet(proc: &mut Proc) -> Result<()> {
    let lines: Vec<String> = proc.drain().into_iter().filter(|l| l.starts_with("error")).collect();
    let problems = proc.stderr_problems();
    if !lines.is_empty() || !problems.is_empty() {
        bail!(
            "{} reported problems:\n    {}",
            proc.name,
            lines.into_iter().chain(problems).collect::<Vec<_>>().join("\n    ")
        );
    }
    Ok(())
}

/// Notes from a router: failed forwards and logged problems.
fn router_notes(router: &mut Proc) -> Result<()> {
    let lines = router.drain();
    let failed: Vec<&String> = lines.iter().filter(|l| l.starts_with("forward_failed")).collect();
    if let Some(last) = failed.last() {
        bail!("router counted failed forwards: {last}");
    }
    let mut router_lines = lines.clone();
    router_lines.retain(|l| l.starts_with("error"));
    router.other_lines = router_lines;
    check_quiet(router)
}

/// W1: one connection, one message in flight; round trips/s. The two
/// processes are pinned to different CPUs, then to the same CPU.
pub fn w1(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let (placement, label) = match ctx.cpus {
        Some(cpus) => (
            Some(cpus),
            format!("pinned to CPUs {} and {} ({})", cpus.0, cpus.1, ctx.pinning.name()),
        ),
        None => (None, "not pinned (fewer than 2 CPUs)".to_string()),
    };
    let (luna, base) = ctx.alternate(
        |ctx| ctx.echo_pair(Side::Luna, 1, placement),
        |ctx| ctx.echo_pair(Side::Baseline, 1, placement),
    )?;
    ctx.w1_luna = Some(luna);
    figures.push(Figure::new("W1", luna, "round-trips/s").baseline(base).note(label));
    if let Some((a, _)) = ctx.cpus {
        let (luna, base) = ctx.alternate(
            |ctx| ctx.echo_pair(Side::Luna, 1, Some((a, a))),
            |ctx| ctx.echo_pair(Side::Baseline, 1, Some((a, a))),
        )?;
        figures.push(
            Figure::new("W1.same_core", luna, "round-trips/s")
                .baseline(base)
                .note(format!("both on CPU {a}")),
        );
    }
    Ok(figures)
}

/// W2: one connection, 100 in flight; replies/s. W2.secret and W2.tls:
/// the same with the link secured, against plain, measured alternately.
pub fn w2(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let luna = ctx.echo_pair(Side::Luna, 100, None)?;
    let base = ctx.echo_pair(Side::Baseline, 100, None)?;
    let direct = |ctx: &Ctx| ctx.echo_pair(Side::Luna, 100, None);
    Ok(vec![
        Figure::new("W2", luna, "replies/s")
            .baseline(base)
            .note("100 in flight"),
        ctx.security_ratio(
            "W2.secret",
            Security::Secret,
            "cluster secret on the link vs off, measured alternately",
            direct,
        )?,
        ctx.security_ratio(
            "W2.tls",
            Security::Tls,
            "TLS 1.3 on the link vs plaintext, measured alternately",
            direct,
        )?,
    ])
}

/// W5: coroutine RPC (luna.rpc) over one stream: one call in flight (same
/// placement as W1, compared with W1's luna figure) and 100 coroutines in
/// flight (compared with W2's luna figure).
pub fn w5(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let placement = ctx.cpus;
    // One call in flight is compared with a W1 measured alternately with it,
    // so that the machine's drift between the two does not show as a ratio.
    let (one, w1) = ctx.alternate(
        |ctx| ctx.rpc_pair(1, placement),
        |ctx| ctx.echo_pair(Side::Luna, 1, placement),
    )?;
    // Likewise 100 calls in flight against W2, whose ratio is a target (issue 14).
    let (hundred, w2) = ctx.alternate(
        |ctx| ctx.rpc_pair(100, None),
        |ctx| ctx.echo_pair(Side::Luna, 100, None),
    )?;
    Ok(vec![
        Figure::new("W5", one, "calls/s")
            .baseline(w1)
            .note("1 call in flight vs luna W1, measured alternately"),
        Figure::new("W5.100", hundred, "calls/s")
            .baseline(w2)
            .note("100 coroutines in flight vs luna W2, measured alternately"),
        cluster::w5_routed(ctx)?,
        timeout_lateness(ctx)?,
    ])
}

/// W5.timeout: how late a call's 20 ms timeout fires (median µs), against
/// a luna.sleep of the same length in the same process.
fn timeout_lateness(ctx: &Ctx) -> Result<Figure> {
    let count = if ctx.quick { 10 } else { 100 };
    let mut proc = ctx.luna("luna rpc timeouts", "rpc_timeouts.lua", &[count.to_string()], None)?;
    let line = proc.expect("late", Duration::from_secs(60))?;
    let mut fields = line.split_whitespace().map(str::parse::<f64>);
    let (Some(Ok(call)), Some(Ok(sleep))) = (fields.next(), fields.next()) else {
        bail!("rpc_timeouts.lua printed {line:?}");
    };
    Ok(Figure::new("W5.timeout", call, "µs late")
        .baseline(sleep)
        .note("median lateness of a 20 ms call timeout vs luna.sleep(20)"))
}

/// Starts a luna router; returns it and its port.
fn router(ctx: &Ctx) -> Result<(Proc, u16)> {
    let mut router = ctx.luna("luna router", "router.lua", &[], None)?;
    let port = parse_port(&router.expect("port", Duration::from_secs(10))?)?;
    Ok((router, port))
}

/// Starts a service behind the router and waits until it is registered.
fn service(ctx: &Ctx, port: u16, id: u32, mode: &str, peer: u32) -> Result<Proc> {
    let args = vec![port.to_string(), id.to_string(), mode.to_string(), peer.to_string()];
    let mut service = ctx.luna(&format!("luna service {id:#x}"), "service.lua", &args, None)?;
    service.expect("ready", Duration::from_secs(10))?;
    Ok(service)
}

/// W3: client -> router -> service (forward_hash), service -> router ->
/// client (forward_target); 100 in flight; replies/s.
pub fn w3(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    // The routed figure and the direct one (W2) are taken alternately: the
    // target is a ratio between the two.
    let (luna, w2) = ctx.alternate(routed_rate, |ctx| ctx.echo_pair(Side::Luna, 100, None))?;
    let relay = relay_rate(ctx)?;
    Ok(vec![
        Figure::new("W3", luna, "replies/s")
            .baseline(relay)
            .note("baseline: raw Rust relay (blocking, 2 threads) in front of the Rust echo server"),
        Figure::new("W3.vs_W2", luna, "replies/s")
            .baseline(w2)
            .note("baseline: luna W2 (direct, no router), measured alternately"),
        ctx.security_ratio(
            "W3.secret",
            Security::Secret,
            "cluster secret on all 3 links vs off, measured alternately",
            routed_rate,
        )?,
        ctx.security_ratio(
            "W3.tls",
            Security::Tls,
            "TLS 1.3 on all 3 links vs plaintext, measured alternately",
            routed_rate,
        )?,
        cluster::w3_trace(ctx)?,
    ])
}

/// Client -> luna router -> service and back, 100 in flight; replies/s.
fn routed_rate(ctx: &Ctx) -> Result<f64> {
    let (mut router, port) = router(ctx)?;
    let mut svc = service(ctx, port, service_id(SERVICE_GROUP, 1), "echo", CLIENT_ID)?;
    let args = vec![
        port.to_string(),
        "100".to_string(),
        Ctx::ms(ctx.warmup),
        Ctx::ms(ctx.duration),
        "hash".to_string(),
        CLIENT_ID.to_string(),
        SERVICE_GROUP.to_string(),
    ];
    let mut client = ctx.luna("luna routed client", "client.lua", &args, None)?;
    let rate = parse_rate(&client.expect("result", ctx.timeout())?)?;
    std::thread::sleep(Duration::from_millis(250)); // let the router report failures
    check_quiet(&mut client)?;
    router_notes(&mut router)?;
    check_quiet(&mut svc)?;
    Ok(rate)
}

/// Rust client -> raw Rust relay -> Rust echo server, 100 in flight; replies/s.
fn relay_rate(ctx: &Ctx) -> Result<f64> {
    let (_server, server_port) = ctx.echo_server(Side::Baseline, None)?;
    let mut relay = ctx.baseline(
        "baseline relay",
        &["--baseline-relay".into(), server_port.to_string()],
        None,
    )?;
    let relay_port = parse_port(&relay.expect("port", Duration::from_secs(10))?)?;
    ctx.client(Side::Baseline, relay_port, 100, None)
}

/// W4: one sender, a router, 4 services; forward_broadcast; deliveries/s
/// counted at the services. W4.publish: publish fan-out (cluster.rs).
pub fn w4(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    const SERVICES: u32 = 4;
    const WINDOW: u32 = 1000;
    let (mut router, port) = router(ctx)?;
    let mut services = Vec::new();
    for index in 1..=SERVICES {
        services.push(service(
            ctx,
            port,
            service_id(SERVICE_GROUP, index),
            "count",
            CLIENT_ID,
        )?);
    }
    let args = vec![
        port.to_string(),
        CLIENT_ID.to_string(),
        SERVICE_GROUP.to_string(),
        SERVICES.to_string(),
        WINDOW.to_string(),
        Ctx::ms(ctx.warmup),
        Ctx::ms(ctx.duration),
    ];
    let mut sender = ctx.luna("luna broadcaster", "broadcaster.lua", &args, None)?;
    let mut total = 0.0;
    for svc in &mut services {
        let line = svc.expect("result", ctx.timeout())?;
        let mut parts = line.split_whitespace().map(|p| p.parse::<f64>());
        let (Some(Ok(count)), Some(Ok(ns))) = (parts.next(), parts.next()) else {
            bail!("bad result line `{line}` from {}", svc.name);
        };
        if ns <= 0.0 {
            bail!("{} measured no time", svc.name);
        }
        total += count * 1e9 / ns;
    }
    sender.expect("sent", Duration::from_secs(5))?;
    std::thread::sleep(Duration::from_millis(250));
    check_quiet(&mut sender)?;
    router_notes(&mut router)?;
    for svc in &mut services {
        check_quiet(svc)?;
    }
    drop((sender, router, services));
    Ok(vec![
        Figure::new("W4", total, "deliveries/s").note(format!(
            "{SERVICES} services, window {WINDOW} messages; = {} broadcasts/s",
            fmt_num(total / f64::from(SERVICES))
        )),
        cluster::w4_publish(ctx)?,
    ])
}

/// W6: idle connections to one luna process; RSS bytes per connection.
pub fn w6(ctx: &Ctx) -> Result<Vec<Figure>> {
    let wanted: u64 = if ctx.quick { 1000 } else { 10_000 };
    let limit = luna::cli::raise_fd_limit();
    let mut note = String::new();
    let count = if limit < wanted + 200 {
        let scaled = limit.saturating_sub(200) / 100 * 100;
        if scaled < 100 {
            bail!("RLIMIT_NOFILE is {limit}: too low for W6");
        }
        println!("note: W6: RLIMIT_NOFILE hard limit is {limit}; using {scaled} connections instead of {wanted}");
        note = format!("scaled down to {scaled} connections (RLIMIT_NOFILE {limit}); ");
        scaled
    } else {
        wanted
    };
    let mut server = ctx.luna("luna idle server", "idle_server.lua", &[count.to_string()], None)?;
    let port = parse_port(&server.expect("port", Duration::from_secs(10))?)?;
    wait_settled(&mut server, 0)?;
    let before = rss_bytes(server.pid())?;
    let mut conns = Vec::with_capacity(count as usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    while (conns.len() as u64) < count {
        let batch = (count - conns.len() as u64).min(500);
        for _ in 0..batch {
            conns.push(TcpStream::connect(("127.0.0.1", port)).context("connect")?);
        }
        // Let the server accept what is queued before the backlog fills.
        loop {
            let n: u64 = server
                .expect("count", Duration::from_secs(10))?
                .parse()
                .context("count line")?;
            if n >= conns.len() as u64 {
                break;
            }
            if Instant::now() > deadline {
                bail!("the server accepted only {n} of {} connections", conns.len());
            }
        }
    }
    wait_settled(&mut server, count)?;
    let after = rss_bytes(server.pid())?;
    check_quiet(&mut server)?;
    drop(conns);
    let per = (after as f64 - before as f64) / count as f64;
    note.push_str(&format!(
        "{count} connections; VmRSS {:.1} -> {:.1} MiB; user-space memory only (kernel socket buffers not in RSS)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    ));
    Ok(vec![Figure::new("W6", per, "bytes/conn").note(note)])
}

/// Waits for `settled <n>` from the idle server.
fn wait_settled(server: &mut Proc, n: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got: u64 = server.expect("settled", left)?.parse().context("settled line")?;
        if got == n {
            return Ok(());
        }
    }
}

/// W7: codec micro-benchmark.
pub fn w7(ctx: &Ctx) -> Result<Vec<Figure>> {
    let budget = if ctx.quick {
        Duration::from_millis(20)
    } else {
        Duration::from_millis(400)
    };
    let mut figures = Vec::new();
    for shape in codec::run(budget)? {
        let note = format!("{} bytes; baseline: rmpv::Value", shape.bytes);
        figures.push(
            Figure::new(format!("W7.encode_{}", shape.name), shape.encode_ns, "ns/op")
                .baseline(shape.rmpv_encode_ns)
                .note(note.clone()),
        );
        figures.push(
            Figure::new(format!("W7.decode_{}", shape.name), shape.decode_ns, "ns/op")
                .baseline(shape.rmpv_decode_ns)
                .note(note),
        );
    }
    Ok(figures)
}

/// W8: rewrite an imported module; latency from save to the new version
/// being printed by `on_reload`.
pub fn w8(ctx: &Ctx) -> Result<Vec<Figure>> {
    let rounds = if ctx.quick { 4 } else { 50 };
    let module = ctx.dir.write("version.lua", "version = 0\n")?;
    let temp = ctx.dir.0.join("version.lua.tmp");
    let mut proc = ctx.luna("luna reload", "reload_main.lua", &[], None)?;
    if proc.expect("version", Duration::from_secs(10))? != "0" {
        bail!("unexpected initial version");
    }
    // Give the watcher a moment to be registered before the first save.
    std::thread::sleep(Duration::from_millis(100));
    let mut latencies = Vec::with_capacity(rounds);
    let mut missed = 0;
    for round in 1..=rounds {
        let text = format!("-- written by luna-bench\nversion = {round}\n");
        let saved = if round % 2 == 1 {
            std::fs::write(&module, &text)?;
            Instant::now()
        } else {
            std::fs::write(&temp, &text)?;
            std::fs::rename(&temp, &module)?;
            Instant::now()
        };
        let want = round.to_string();
        let deadline = saved + Duration::from_secs(3);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match proc.wait_for("version", left)? {
                Some(v) if v == want => {
                    latencies.push(saved.elapsed().as_secs_f64() * 1e3);
                    break;
                }
                Some(_) => continue,
                None => {
                    missed += 1;
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    check_quiet(&mut proc)?;
    if latencies.is_empty() {
        bail!("no reload was seen in {rounds} saves");
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| latencies[((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1];
    let mut note = format!("{} saves (odd: write in place, even: write temp + rename)", rounds);
    if missed > 0 {
        note.push_str(&format!("; {missed} saves NOT reloaded within 3 s"));
        println!("warning: W8: {missed} of {rounds} saves were not reloaded within 3 s");
    }
    Ok(vec![
        Figure::new("W8.p50", pct(0.50), "ms").note(note.clone()),
        Figure::new("W8.p99", pct(0.99), "ms").note(note),
    ])
}

/// Lines W10.file logs per run.
fn w10_lines(ctx: &Ctx) -> u64 {
    if ctx.quick { 50_000 } else { 1_000_000 }
}

/// W10: logging. W10.file: lines/s a script logs into a `--log-file`, from
/// its first line until the process has exited (so the final flush is
/// counted), against a plain Rust loop writing the same lines through a
/// BufWriter; measured alternately. W10.blocked_p99: how late (p99) a 10 ms
/// timer fires while the script logs 100 lines per ms into a stderr pipe
/// that nobody reads, against the same script with those lines filtered out.
pub fn w10(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let lines = w10_lines(ctx);
    let mut dropped = 0;
    let (luna, base) = ctx.alternate(
        |ctx| {
            let (rate, lost) = log_file_rate(ctx)?;
            dropped += lost;
            Ok(rate)
        },
        |ctx| rust_log_rate(ctx, w10_lines(ctx)),
    )?;
    let mut note = format!("{lines} lines of about 70 bytes; baseline: Rust loop, BufWriter<File>");
    if dropped > 0 {
        note.push_str(&format!("; {dropped} lines dropped (queue full)"));
    }
    let mut figures = vec![Figure::new("W10.file", luna, "lines/s").baseline(base).note(note)];

    let per_ms = 100;
    let mut last = None;
    let (on, off) = ctx.alternate(
        |ctx| {
            let run = blocked_latency(ctx, "info", per_ms)?;
            let p99 = run.p99;
            last = Some(run);
            Ok(p99)
        },
        |ctx| blocked_latency(ctx, "error", per_ms).map(|r| r.p99),
    )?;
    let last = last.context("no W10.blocked run")?;
    figures.push(Figure::new("W10.blocked_p99", on, "ms").baseline(off).note(format!(
        "10 ms timer lateness, logging {per_ms} lines/ms into an unread stderr pipe; baseline: logging off; \
         last run: p50 {:.2} ms, max {:.2} ms, {} of {} lines dropped",
        last.p50, last.max, last.dropped, last.attempted
    )));
    Ok(figures)
}

/// One run of log_file.lua: (lines/s, lines dropped).
fn log_file_rate(ctx: &Ctx) -> Result<(f64, u64)> {
    let lines = w10_lines(ctx);
    let path = ctx.dir.0.join("w10.log");
    let _ = std::fs::remove_file(&path);
    let log_file = path.display().to_string();
    let (program, full) = ctx.luna_command(&["--log-file", &log_file], "log_file.lua", &[lines.to_string()]);
    let mut proc = Proc::spawn("luna log writer", &program, &full, None, &ctx.dir.0)?;
    proc.expect("start", Duration::from_secs(10))?;
    let started = Instant::now();
    let logged = proc.expect("logged", ctx.timeout())?;
    let status = proc.wait(ctx.timeout())?;
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("the log writer exited with {status}");
    }
    let dropped: u64 = logged
        .split_whitespace()
        .nth(2)
        .and_then(|d| d.parse().ok())
        .with_context(|| format!("bad logged line `{logged}`"))?;
    let text = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    let written = text
        .split(|&b| b == b'\n')
        .filter(|l| l.windows(11).any(|w| w == b"bench line "))
        .count() as u64;
    if written + dropped != lines {
        bail!("{written} lines in the log file and {dropped} dropped, of {lines} logged");
    }
    check_quiet(&mut proc)?;
    Ok((written as f64 / elapsed.as_secs_f64(), dropped))
}

/// The same lines as log_file.lua, formatted by luna's own formatter and
/// written by a plain loop through a BufWriter; lines/s.
fn rust_log_rate(ctx: &Ctx, lines: u64) -> Result<f64> {
    use luna::log::{Format, Level, format_line};
    use std::io::Write;
    let path = ctx.dir.0.join("w10-baseline.log");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let started = Instant::now();
    let mut line = Vec::new();
    for i in 1..=lines {
        line.clear();
        let message = format!("bench line {i} user=42 action=login ok");
        format_line(&mut line, Format::Text, Level::Info, None, &message);
        out.write_all(&line)?;
    }
    out.flush()?;
    drop(out);
    let rate = lines as f64 / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Ok(rate)
}

/// What log_blocked.lua reports.
struct Lateness {
    p50: f64,
    p99: f64,
    max: f64,
    attempted: u64,
    dropped: u64,
}

/// One run of log_blocked.lua at `level` with stderr never read.
fn blocked_latency(ctx: &Ctx, level: &str, per_ms: u32) -> Result<Lateness> {
    let args = vec![Ctx::ms(ctx.warmup), Ctx::ms(ctx.duration), per_ms.to_string()];
    let (program, full) = ctx.luna_command(&["--log-level", level], "log_blocked.lua", &args);
    let mut proc = Proc::spawn_unread_stderr("luna blocked logger", &program, &full, &ctx.dir.0)?;
    let line = proc.expect("result", ctx.timeout())?;
    let fields: Vec<f64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let [p50, p99, max, _samples, attempted, dropped] = fields[..] else {
        bail!("bad result line `{line}`");
    };
    Ok(Lateness {
        p50,
        p99,
        max,
        attempted: attempted as u64,
        dropped: dropped as u64,
    })
}

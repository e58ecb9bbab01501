//! The workloads on luna.cluster nodes behind the shipped router
//! (`luna.router`, through bench/scripts/cluster_router.lua): W9 (a router
//! with 1,000 services), W3.trace (trace ids on routed messages),
//! W4.publish (publish fan-out) and W5.routed (RPC through a router).

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::proc::{Proc, rss_bytes};
use crate::workloads::{Ctx, Figure, check_quiet, fmt_num, median, parse_port};

/// The group of the service nodes; the client or sender is CLIENT_ID.
const GROUP: u32 = 1;
const CLIENT_ID: u32 = 2 << 16 | 1;
/// Heartbeat of the routers: the cluster default.
const HEARTBEAT_MS: u32 = 1000;
/// The services' reconnect backoff (luna.cluster's default is 100 ms).
const BACKOFF_MIN_MS: u32 = 50;
/// Messages or calls in flight of the forward and RPC clients.
const INFLIGHT: u32 = 100;

/// How the service nodes are laid out: `procs` processes, each running
/// `nodes` luna.cluster nodes (one router link each) of `ids` ids each.
#[derive(Clone, Copy, Debug)]
struct Layout {
    procs: u32,
    nodes: u32,
    ids: u32,
}

impl Layout {
    /// One process, one node, one id.
    const ONE: Layout = Layout {
        procs: 1,
        nodes: 1,
        ids: 1,
    };

    fn total_ids(self) -> u32 {
        self.procs * self.nodes * self.ids
    }

    fn links(self) -> u32 {
        self.procs * self.nodes
    }

    fn describe(self) -> String {
        format!(
            "{} processes x {} nodes x {} ids ({} links, {} ids)",
            self.procs,
            self.nodes,
            self.ids,
            self.links(),
            self.total_ids()
        )
    }
}

/// A luna.router started by cluster_router.lua.
struct Router {
    proc: Proc,
    port: u16,
    /// The last `ids` count it printed.
    ids: Option<u32>,
}

impl Router {
    /// Starts a router on `port` (0: any free port).
    fn start(ctx: &Ctx, port: u16, heartbeat_ms: u32, settle: bool) -> Result<Router> {
        let mut args = vec![port.to_string(), heartbeat_ms.to_string()];
        if settle {
            args.push("settle".into());
        }
        let mut proc = ctx.luna("luna router (luna.router)", "cluster_router.lua", &args, None)?;
        let port = parse_port(&proc.expect("port", Duration::from_secs(10))?)?;
        Ok(Router { proc, port, ids: None })
    }

    /// Waits until the router has exactly `ids` ids registered (it prints
    /// the count when it changes, so a count seen earlier may be current).
    fn wait_ids(&mut self, ids: u32, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(line) = self.proc.wait_for("ids", Duration::ZERO)? {
                self.ids = Some(first_number(&line)? as u32);
            }
            if self.ids == Some(ids) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.proc.wait_for("ids", left)? {
                Some(line) => self.ids = Some(first_number(&line)? as u32),
                None => bail!(
                    "the router did not have {ids} ids registered within {timeout:?} (last count: {:?})",
                    self.ids
                ),
            }
        }
    }

    /// Fails when the router counted failed forwards or logged a problem.
    fn check(&mut self) -> Result<()> {
        let lines = self.proc.drain();
        if let Some(last) = lines.iter().rfind(|l| l.starts_with("forward_failed")) {
            bail!("the router counted failed forwards: {last}");
        }
        self.proc.other_lines = lines.into_iter().filter(|l| l.starts_with("error")).collect();
        check_quiet(&mut self.proc)
    }

    /// SIGKILLs the router and starts a new one on the same port; returns
    /// it, the time from its start until all `ids` were registered again,
    /// and how many starts failed to bind the port first.
    fn restart(self, ctx: &Ctx, ids: u32) -> Result<(Router, Duration, u32)> {
        let port = self.port;
        drop(self); // SIGKILL, then reaped: the port is free once this returns
        let mut failed_binds = 0;
        loop {
            let started = Instant::now();
            match Router::start(ctx, port, HEARTBEAT_MS, false) {
                Ok(mut router) => {
                    router.wait_ids(ids, Duration::from_secs(20))?;
                    return Ok((router, started.elapsed(), failed_binds));
                }
                // A service's reconnect may hold the port for a moment (a
                // connection to itself); try again a few times.
                Err(error) if failed_binds < 5 => {
                    failed_binds += 1;
                    if failed_binds == 5 {
                        return Err(error.context(format!("the router could not listen on port {port} again")));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// The first number of a line.
fn first_number(text: &str) -> Result<f64> {
    text.split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("bad line `{text}`"))
}

/// Starts the service processes of `layout` behind the router on `port`
/// and waits until every node is registered.
fn start_services(ctx: &Ctx, port: u16, layout: Layout, subscribe: bool) -> Result<Vec<Proc>> {
    let mut services = Vec::new();
    for p in 1..=layout.procs {
        let mut args = vec![
            port.to_string(),
            GROUP.to_string(),
            layout.procs.to_string(),
            p.to_string(),
            layout.nodes.to_string(),
            layout.ids.to_string(),
            CLIENT_ID.to_string(),
            BACKOFF_MIN_MS.to_string(),
        ];
        if subscribe {
            args.push("subscribe".into());
        }
        let name = format!("luna cluster services {p}");
        services.push(ctx.luna(&name, "cluster_service.lua", &args, None)?);
    }
    for service in &mut services {
        service.expect("ready", Duration::from_secs(30))?;
    }
    Ok(services)
}

/// Fails on an `error` line of a service, and on logged problems unless
/// the router was restarted (the services then warn that they lost it).
fn check_services(services: &mut [Proc], restarted: bool) -> Result<()> {
    for service in services {
        if restarted {
            let errors: Vec<String> = service.drain().into_iter().filter(|l| l.starts_with("error")).collect();
            if !errors.is_empty() {
                bail!("{} reported problems:\n    {}", service.name, errors.join("\n    "));
            }
        } else {
            check_quiet(service)?;
        }
    }
    Ok(())
}

/// Runs cluster_client.lua against the services of the router on `port`:
/// one rate per phase (answers/s, or calls/s for kind "rpc").
fn run_client(ctx: &Ctx, port: u16, kind: &str, targets: u32, phases: &[&str], trace: bool) -> Result<Vec<f64>> {
    let args = vec![
        port.to_string(),
        CLIENT_ID.to_string(),
        kind.to_string(),
        GROUP.to_string(),
        targets.to_string(),
        INFLIGHT.to_string(),
        Ctx::ms(ctx.warmup),
        Ctx::ms(ctx.duration),
        phases.join(","),
        if trace { "1" } else { "0" }.to_string(),
    ];
    let mut client = ctx.luna("luna cluster client", "cluster_client.lua", &args, None)?;
    let mut rates = Vec::new();
    for phase in phases {
        let line = client.expect("result", ctx.timeout())?;
        let mut fields = line.split_whitespace();
        if fields.next() != Some(phase) {
            bail!("the client printed `result {line}` for phase {phase}");
        }
        rates.push(first_number(&fields.collect::<Vec<_>>().join(" "))?);
    }
    client.wait(Duration::from_secs(5))?;
    check_quiet(&mut client)?;
    Ok(rates)
}

/// Runs fanout_sender.lua (`mode` broadcast or publish) to the services;
/// deliveries/s counted at the services between the sender's marks.
fn run_fanout(ctx: &Ctx, port: u16, mode: &str, services: &mut [Proc], window: u32) -> Result<f64> {
    let args = vec![
        port.to_string(),
        CLIENT_ID.to_string(),
        mode.to_string(),
        GROUP.to_string(),
        services.len().to_string(),
        window.to_string(),
        Ctx::ms(ctx.warmup),
        Ctx::ms(ctx.duration),
    ];
    let mut sender = ctx.luna("luna fan-out sender", "fanout_sender.lua", &args, None)?;
    let mut total = 0.0;
    for service in services.iter_mut() {
        total += first_number(&service.expect("result", ctx.timeout())?)?;
    }
    sender.expect("sent", Duration::from_secs(5))?;
    sender.wait(Duration::from_secs(5))?;
    check_quiet(&mut sender)?;
    Ok(total)
}

/// Runs `rounds` samples of a pair of figures (one call of `sample` gives
/// both) and returns the two medians.
fn median_pairs(rounds: usize, mut sample: impl FnMut(usize) -> Result<(f64, f64)>) -> Result<(f64, f64)> {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = sample(round)?;
        first.push(a);
        second.push(b);
    }
    Ok((median(&mut first), median(&mut second)))
}

/// Rounds of the alternated pairs: five (one with --quick), each with half
/// the warm-up and duration, as `Ctx::alternate` does.
fn pair_rounds(ctx: &mut Ctx) -> (usize, Duration, Duration) {
    let saved = (ctx.warmup, ctx.duration);
    if !ctx.quick {
        (ctx.warmup, ctx.duration) = (ctx.warmup / 2, ctx.duration / 2);
    }
    (if ctx.quick { 1 } else { 5 }, saved.0, saved.1)
}

/// W3.trace: W3 on luna.cluster nodes (client node -> router -> service
/// node with node.forward_hash, the service answers with
/// node.forward_target), with trace ids on (the client sets
/// rpc.tracing = true) against off. Both on the same router and service,
/// one after the other in an order that alternates between rounds.
pub fn w3_trace(ctx: &mut Ctx) -> Result<Figure> {
    let (rounds, warmup, duration) = pair_rounds(ctx);
    let result = median_pairs(rounds, |round| {
        let mut router = Router::start(ctx, 0, HEARTBEAT_MS, false)?;
        let mut services = start_services(ctx, router.port, Layout::ONE, false)?;
        let rate = |trace| run_client(ctx, router.port, "forward", 1, &["hash"], trace).map(|r| r[0]);
        let (on, off) = if round % 2 == 0 {
            let on = rate(true)?;
            (on, rate(false)?)
        } else {
            let off = rate(false)?;
            (rate(true)?, off)
        };
        router.check()?;
        check_services(&mut services, false)?;
        Ok((on, off))
    });
    (ctx.warmup, ctx.duration) = (warmup, duration);
    let (on, off) = result?;
    Ok(Figure::new("W3.trace", on, "replies/s").baseline(off).note(
        "luna.cluster nodes through luna.router, 100 in flight: trace ids on every message (rpc.tracing) vs off, \
         measured alternately on the same processes",
    ))
}

/// W4.publish: one sender, 100 subscribers (4 processes x 25 nodes, one
/// router link each) through one luna.router; node.publish against
/// node.forward_broadcast to the group of the same 100 nodes, one after the
/// other on the same processes in an order that alternates between rounds.
pub fn w4_publish(ctx: &mut Ctx) -> Result<Figure> {
    const WINDOW: u32 = 1000;
    let layout = Layout {
        procs: 4,
        nodes: 25,
        ids: 1,
    };
    let (rounds, warmup, duration) = pair_rounds(ctx);
    let result = median_pairs(rounds, |round| {
        let mut router = Router::start(ctx, 0, HEARTBEAT_MS, false)?;
        let mut services = start_services(ctx, router.port, layout, true)?;
        // The subscriptions follow the registrations on each link.
        std::thread::sleep(Duration::from_millis(100));
        let mut rate = |mode| run_fanout(ctx, router.port, mode, &mut services, WINDOW);
        let (publish, broadcast) = if round % 2 == 0 {
            let publish = rate("publish")?;
            (publish, rate("broadcast")?)
        } else {
            let broadcast = rate("broadcast")?;
            (rate("publish")?, broadcast)
        };
        router.check()?;
        check_services(&mut services, false)?;
        Ok((publish, broadcast))
    });
    (ctx.warmup, ctx.duration) = (warmup, duration);
    let (publish, broadcast) = result?;
    let subscribers = layout.links();
    Ok(Figure::new("W4.publish", publish, "deliveries/s").baseline(broadcast).note(format!(
        "{subscribers} subscribers ({}), window {WINDOW}: node.publish vs node.forward_broadcast to the same nodes, \
         alternately; = {} publishes/s",
        layout.describe(),
        fmt_num(publish / f64::from(subscribers))
    )))
}

/// W5.routed: luna.rpc calls through a luna.router (node.call_target, 100
/// coroutines) against direct calls on one stream (W5.100), alternately.
pub fn w5_routed(ctx: &mut Ctx) -> Result<Figure> {
    let routed = |ctx: &Ctx| -> Result<f64> {
        let mut router = Router::start(ctx, 0, HEARTBEAT_MS, false)?;
        let mut services = start_services(ctx, router.port, Layout::ONE, false)?;
        let rate = run_client(ctx, router.port, "rpc", 1, &["rpc"], false)?[0];
        router.check()?;
        check_services(&mut services, false)?;
        Ok(rate)
    };
    let (routed, direct) = ctx.alternate(routed, |ctx| ctx.rpc_pair(INFLIGHT as usize, None))?;
    Ok(Figure::new("W5.routed", routed, "calls/s").baseline(direct).note(
        "node.call_target through luna.router, 100 coroutines, vs rpc.call on a direct stream (W5.100), \
         measured alternately",
    ))
}

/// One W9 sample on one layout: what it measured.
#[derive(Default)]
struct W9Sample {
    /// Answers/s per forward mode (hash, target), if measured.
    forwards: Vec<f64>,
    /// Broadcast deliveries/s, if measured.
    broadcast: Option<f64>,
    /// Time until every id was registered again after a router restart (ms).
    reregister_ms: f64,
    /// Starts of the restarted router that could not bind the port at first.
    failed_binds: u32,
}

/// Starts a router and the services of `layout`; runs the forward client
/// (`phases`) and the broadcast sender if asked; then restarts the router
/// and times the re-registration.
fn w9_sample(ctx: &Ctx, layout: Layout, phases: &[&str], window: Option<u32>) -> Result<W9Sample> {
    let mut router = Router::start(ctx, 0, HEARTBEAT_MS, false)?;
    let mut services = start_services(ctx, router.port, layout, false)?;
    router.wait_ids(layout.total_ids(), Duration::from_secs(20))?;
    let mut sample = W9Sample::default();
    if !phases.is_empty() {
        sample.forwards = run_client(ctx, router.port, "forward", layout.total_ids(), phases, false)?;
    }
    if let Some(window) = window {
        sample.broadcast = Some(run_fanout(ctx, router.port, "broadcast", &mut services, window)?);
    }
    // The client or sender has quit: only the services' ids are left.
    router.wait_ids(layout.total_ids(), Duration::from_secs(10))?;
    router.check()?;
    check_services(&mut services, false)?;
    let (mut router, took, failed_binds) = router.restart(ctx, layout.total_ids())?;
    sample.reregister_ms = took.as_secs_f64() * 1e3;
    sample.failed_binds = failed_binds;
    router.check()?;
    check_services(&mut services, true)?;
    Ok(sample)
}

/// W9: one luna.router with 1,000 service ids. Three layouts, sampled in
/// turn (three rounds; one with --quick) with shorter phases than the
/// other workloads (0.2 s warm-up, 0.6 s measured):
/// - ids:   4 processes x 1 node x 250 ids (4 links): forwards in hash and
///   target mode, 100 in flight, and re-registration after a restart;
/// - links: 4 processes x 250 nodes x 1 id (1,000 links): broadcast,
///   forwards, re-registration;
/// - base:  4 processes x 1 node x 1 id: the same, the baseline of each.
///
/// Then the router's memory per registered id (bench-made links, no
/// luna processes besides the router).
pub fn w9(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let saved = (ctx.warmup, ctx.duration);
    if !ctx.quick {
        (ctx.warmup, ctx.duration) = (Duration::from_millis(200), Duration::from_millis(600));
    }
    let result = w9_rounds(ctx);
    (ctx.warmup, ctx.duration) = saved;
    let mut figures = result?;
    figures.push(memory_per_id(ctx)?);
    Ok(figures)
}

fn w9_rounds(ctx: &Ctx) -> Result<Vec<Figure>> {
    const FORWARDS: [&str; 2] = ["hash", "target"];
    let ids = Layout {
        procs: 4,
        nodes: 1,
        ids: 250,
    };
    let links = Layout {
        procs: 4,
        nodes: 250,
        ids: 1,
    };
    let base = Layout {
        procs: 4,
        nodes: 1,
        ids: 1,
    };
    // Broadcast windows: about 200k messages in flight either way.
    let (links_window, base_window) = (200, 1000);
    let rounds = if ctx.quick { 1 } else { 3 };
    let (mut by_ids, mut by_links, mut by_base) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // The order rotates so that no layout always runs first.
        for turn in 0..3 {
            match (round + turn) % 3 {
                0 => by_ids.push(w9_sample(ctx, ids, &FORWARDS, None)?),
                1 => by_links.push(w9_sample(ctx, links, &FORWARDS, Some(links_window))?),
                _ => by_base.push(w9_sample(ctx, base, &FORWARDS, Some(base_window))?),
            }
        }
    }
    let pick = |samples: &[W9Sample], f: &dyn Fn(&W9Sample) -> f64| {
        let mut values: Vec<f64> = samples.iter().map(f).collect();
        median(&mut values)
    };
    let forward = |samples: &[W9Sample], at: usize| pick(samples, &|s| s.forwards[at]);
    let rereg = |samples: &[W9Sample]| pick(samples, &|s| s.reregister_ms);
    let binds: u32 = by_ids
        .iter()
        .chain(&by_links)
        .chain(&by_base)
        .map(|s| s.failed_binds)
        .sum();
    let rounds_note = format!("median of {rounds} rounds, alternated with the 4-node baseline");
    let mut figures = Vec::new();
    for (at, mode) in FORWARDS.iter().enumerate() {
        figures.push(
            Figure::new(format!("W9.{mode}"), forward(&by_ids, at), "replies/s")
                .baseline(forward(&by_base, at))
                .note(format!(
                    "forward_{mode}, 100 in flight, to {}; baseline {}; {rounds_note}",
                    ids.describe(),
                    base.describe()
                )),
        );
    }
    for (at, mode) in FORWARDS.iter().enumerate() {
        figures.push(
            Figure::new(format!("W9.{mode}_links"), forward(&by_links, at), "replies/s")
                .baseline(forward(&by_base, at))
                .note(format!(
                    "forward_{mode}, 100 in flight, to {}; {rounds_note}",
                    links.describe()
                )),
        );
    }
    let broadcast = pick(&by_links, &|s| s.broadcast.unwrap_or(f64::NAN));
    figures.push(
        Figure::new("W9.broadcast", broadcast, "deliveries/s")
            .baseline(pick(&by_base, &|s| s.broadcast.unwrap_or(f64::NAN)))
            .note(format!(
                "node.forward_broadcast to {} (window {links_window}; = {} broadcasts/s); baseline: to 4 nodes \
                 (window {base_window}); {rounds_note}",
                links.describe(),
                fmt_num(broadcast / f64::from(links.links()))
            )),
    );
    let mut binds_note = String::new();
    if binds > 0 {
        binds_note = format!("; {binds} restarts could not bind the port at once (retried after 20 ms)");
    }
    figures.push(
        Figure::new("W9.reregister", rereg(&by_links), "ms")
            .baseline(rereg(&by_base))
            .note(format!(
                "SIGKILL the router, start it on the same port: time until all ids are registered; {}, \
                 backoff_min_ms {BACKOFF_MIN_MS}; baseline: 4 nodes{binds_note}",
                links.describe()
            )),
    );
    figures.push(
        Figure::new("W9.reregister_ids", rereg(&by_ids), "ms")
            .baseline(rereg(&by_base))
            .note(format!("the same with {}; baseline: 4 nodes", ids.describe())),
    );
    Ok(figures)
}

/// Appends one Call frame carrying `("@register", id)`.
fn push_register_frame(out: &mut Vec<u8>, id: u32) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, 1]);
    rmp::encode::write_array_len(out, 2).expect("vec write");
    rmp::encode::write_str(out, "@register").expect("vec write");
    rmp::encode::write_uint(out, u64::from(id)).expect("vec write");
    let body = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&body.to_be_bytes());
}

/// Waits for the router's `settled <ids> <open> <lua KiB>` line matching `ids` and `open`.
fn wait_settled(router: &mut Router, ids: u32, open: Option<u64>) -> Result<(u64, f64)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = router.proc.expect("settled", left)?;
        let fields: Vec<f64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        let [got_ids, got_open, lua_kib] = fields[..] else {
            bail!("bad settled line `{line}`");
        };
        if got_ids == f64::from(ids) && open.is_none_or(|o| got_open == o as f64) {
            return Ok((got_open as u64, lua_kib));
        }
    }
}

/// W9.mem_per_id: the router's VmRSS with 1,000 ids registered on 4 links
/// minus with the same 4 links and no ids, over 1,000; both after a full
/// GC. The bench opens the links and sends the `@register` frames itself.
fn memory_per_id(ctx: &Ctx) -> Result<Figure> {
    const LINKS: u32 = 4;
    const IDS: u32 = 1000;
    // A long heartbeat: the bench's links never ping.
    let mut router = Router::start(ctx, 0, 600_000, true)?;
    let (open, _) = wait_settled(&mut router, 0, None)?;
    let mut links = Vec::new();
    for _ in 0..LINKS {
        links.push(TcpStream::connect(("127.0.0.1", router.port)).context("connect to the router")?);
    }
    let (_, lua_before) = wait_settled(&mut router, 0, Some(open + u64::from(LINKS)))?;
    let before = rss_bytes(router.proc.pid())?;
    for (at, link) in links.iter_mut().enumerate() {
        let mut frames = Vec::new();
        let per_link = IDS / LINKS;
        for index in 1..=per_link {
            push_register_frame(&mut frames, GROUP << 16 | (at as u32 * per_link + index));
        }
        link.write_all(&frames).context("send registrations")?;
    }
    let (_, lua_after) = wait_settled(&mut router, IDS, None)?;
    let after = rss_bytes(router.proc.pid())?;
    router.check()?;
    drop(links);
    let per_id = (after as f64 - before as f64) / f64::from(IDS);
    Ok(Figure::new("W9.mem_per_id", per_id, "bytes/id").note(format!(
        "router VmRSS {:.2} -> {:.2} MiB for {IDS} ids on {LINKS} links (after a full GC); of which Lua heap \
         {:.0} -> {:.0} KiB = {:.0} bytes/id",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        lua_before,
        lua_after,
        (lua_after - lua_before) * 1024.0 / f64::from(IDS)
    )))
}

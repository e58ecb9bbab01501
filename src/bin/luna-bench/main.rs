//! `luna-bench`: the luna benchmark suite.
//!
//!     cargo run --release --bin luna-bench                # full run (< 4 min)
//!     cargo run --release --bin luna-bench -- --quick     # smoke run
//!     cargo run --release --bin luna-bench -- W1 W3       # some workloads
//!
//! It spawns the real `luna` binary (next to this executable) on Lua scripts
//! written to a temp dir (sources in `bench/scripts/`), all on 127.0.0.1 with
//! ephemeral ports, and prints one line per figure:
//!
//!     BENCH <workload> <value> <unit> [baseline=<value> ratio=<value/baseline>]
//!
//! then a table. See docs/benchmarks.md.

mod baseline;
mod certs;
mod cluster;
mod codec;
mod proc;
mod workloads;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use proc::{LunaExe, Pinning, TempDir};
use workloads::{Ctx, Figure, fmt_num};

const USAGE: &str = "\
usage: luna-bench [--quick] [--luna PATH] [W1 W2 ... W10]

  --quick      a fraction of a second per workload (smoke run)
  --luna PATH  the luna binary to bench (default: `luna` next to luna-bench)
  W1..W10      workloads to run (default: all)

  W1 ping-pong, W2 pipelined (also .secret and .tls: links secured vs plain),
  W3 routed (also .secret, .tls, and .trace: trace ids on vs off),
  W4 broadcast (also .publish: publish fan-out vs forward_broadcast),
  W5 RPC (also .routed: calls through a router vs direct),
  W6 memory per idle connection, W7 codec, W8 hot reload latency,
  W9 a router with 1,000 services (forwards, broadcast, re-registration
  after a restart, memory per id), W10 logging (lines/s into a file,
  loop latency with a blocked log pipe).
  Output: `BENCH <workload> <value> <unit> [baseline=<v> ratio=<value/baseline>]`.";

const ALL: [&str; 10] = ["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Internal modes: this binary as a luna process or as a baseline program.
    match args.first().map(String::as_str) {
        Some("--luna-runtime") => {
            let _ = luna::cli::raise_fd_limit();
            std::process::exit(luna::cli::main(args[1..].to_vec()));
        }
        Some(mode @ ("--baseline-server" | "--baseline-client" | "--baseline-relay")) => {
            let result = run_baseline(mode, &args[1..]);
            if let Err(e) = result {
                eprintln!("luna-bench {mode}: {e:#}");
                std::process::exit(1);
            }
            return;
        }
        _ => {}
    }
    match run(args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("luna-bench: {e:#}");
            std::process::exit(2);
        }
    }
}

fn run_baseline(mode: &str, args: &[String]) -> Result<()> {
    let num = |i: usize| -> Result<u64> {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("argument {} missing or not a number", i + 1))
    };
    match mode {
        "--baseline-server" => baseline::server(),
        "--baseline-client" => baseline::client(
            num(0)? as u16,
            num(1)? as usize,
            Duration::from_millis(num(2)?),
            Duration::from_millis(num(3)?),
        ),
        _ => baseline::relay(num(0)? as u16),
    }
}

/// The CPUs this process may use, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the set we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

fn run(args: Vec<String>) -> Result<bool> {
    let mut quick = false;
    let mut luna_path = None;
    let mut selected: Vec<&'static str> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--luna" => luna_path = Some(args.next().context("--luna needs a path")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(true);
            }
            other => match ALL.iter().find(|w| w.eq_ignore_ascii_case(other)) {
                Some(w) if !selected.contains(w) => selected.push(w),
                Some(_) => {}
                None => bail!("unknown argument `{other}`\n\n{USAGE}"),
            },
        }
    }
    if selected.is_empty() {
        selected = ALL.to_vec();
    }
    // In the order of ALL (W10 after W9).
    selected.sort_by_key(|w| ALL.iter().position(|a| a == w));

    proc::install_signal_cleanup()?;
    let (luna, note) = match luna_path {
        Some(path) => (LunaExe::Real(path.into()), None),
        None => LunaExe::locate()?,
    };
    let cpus = allowed_cpus();
    let pinning = Pinning::detect();
    let (warmup, duration) = if quick {
        (Duration::from_millis(50), Duration::from_millis(150))
    } else {
        (Duration::from_millis(500), Duration::from_millis(2000))
    };
    let mut ctx = Ctx {
        luna,
        me: std::env::current_exe()?,
        dir: TempDir::new()?,
        quick,
        warmup,
        duration,
        pinning,
        cpus: (cpus.len() >= 2).then(|| (cpus[0], cpus[1])),
        w1_luna: None,
        security: std::cell::Cell::new(workloads::Security::Plain),
    };
    ctx.write_scripts()?;
    certs::generate(&ctx.dir.0)?;

    println!(
        "luna-bench: {} mode; luna = {}; {} CPUs allowed ({:?}); {}",
        if quick { "quick" } else { "full" },
        ctx.luna.describe(),
        cpus.len(),
        cpus,
        machine()
    );
    if let Some(note) = note {
        println!("note: {note}");
    }

    let started = Instant::now();
    let mut all: Vec<(Figure, Option<String>)> = Vec::new();
    let mut ok = true;
    for w in selected {
        let t0 = Instant::now();
        let result = match w {
            "W1" => workloads::w1(&mut ctx),
            "W2" => workloads::w2(&mut ctx),
            "W3" => workloads::w3(&mut ctx),
            "W4" => workloads::w4(&mut ctx),
            "W5" => workloads::w5(&mut ctx),
            "W6" => workloads::w6(&ctx),
            "W7" => workloads::w7(&ctx),
            "W8" => workloads::w8(&ctx),
            "W9" => cluster::w9(&mut ctx),
            _ => workloads::w10(&mut ctx),
        };
        match result {
            Ok(figures) => {
                for figure in figures {
                    print_bench(&figure);
                    all.push((figure, None));
                }
            }
            Err(e) => {
                ok = false;
                let message = format!("{e:#}");
                println!("BENCH {w} failed: {}", message.replace('\n', "\n    "));
                all.push((
                    Figure::new(w, f64::NAN, "-"),
                    Some(format!("FAILED: {}", first_line(&message))),
                ));
            }
        }
        if !quick {
            println!("  ({w} took {:.1} s)", t0.elapsed().as_secs_f64());
        }
    }
    print_table(&all);
    println!("luna-bench: done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(ok)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn print_bench(figure: &Figure) {
    let mut line = format!("BENCH {} {} {}", figure.name, fmt_num(figure.value), figure.unit);
    if let (Some(baseline), Some(ratio)) = (figure.baseline, figure.ratio()) {
        line.push_str(&format!(" baseline={} ratio={ratio:.2}", fmt_num(baseline)));
    }
    println!("{line}");
}

fn print_table(rows: &[(Figure, Option<String>)]) {
    println!();
    println!(
        "{:<16} {:>12} {:<15} {:>12} {:>7}  note",
        "figure", "value", "unit", "baseline", "ratio"
    );
    println!("{}", "-".repeat(90));
    for (figure, failure) in rows {
        let value = if figure.value.is_nan() {
            "-".to_string()
        } else {
            fmt_num(figure.value)
        };
        let baseline = figure.baseline.map(fmt_num).unwrap_or_else(|| "-".into());
        let ratio = figure.ratio().map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into());
        let note = failure.as_deref().or(figure.note.as_deref()).unwrap_or("");
        println!(
            "{:<16} {:>12} {:<15} {:>12} {:>7}  {}",
            figure.name, value, figure.unit, baseline, ratio, note
        );
    }
    println!("ratio = value / baseline (throughput: higher is better; ns/op and ms: lower is better)");
}

/// `nproc` and the CPU model.
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{} online CPUs, {model}", proc::cpus_available())
}

//! Command-line parsing and dispatch.

use std::path::PathBuf;

use crate::log::{self, Format, Level};
use crate::lua::{self, Endpoint, Options};
use crate::pid_file;

const SHORT_USAGE: &str = "\
usage: luna [options] ENTRY.lua [args...]
       luna [options] -m MODULE [args...]     (e.g. luna -m luna.router --listen 127.0.0.1:7101)
       luna --check FILE.lua...
       luna --help";

const USAGE: &str = "\
usage: luna [options] ENTRY.lua [args...]
       luna [options] -m MODULE [args...]
       luna --check FILE.lua...

Runs ENTRY.lua as a service process: calls luna_entry(ENTRY.lua, args...),
which imports the entry, calls its on_start, loops (on_loop or the event
loop) until a quit signal, calls on_stop, flushes output and exits 0.
With -m, the entry is a module that `require` finds (built in, like
luna.router, or on package.path), from any directory.

options:
  -h, --help           show this help and exit
  -V, --version        show the version and exit
  -m MODULE            run MODULE as the entry; what follows is its args
      --check FILE...  compile each file without running it; exit 1 on error
      --stubs DIR      write the editor stubs (LuaLS/EmmyLua ---@meta files
                       of the whole luna API) into DIR and exit
      --log-level LVL  debug, info (default), warn or error (env LUNA_LOG_LEVEL)
      --log-file PATH  append log lines to PATH instead of stderr; SIGHUP
                       reopens it (log rotation) (env LUNA_LOG_FILE)
      --log-format F   text (default) or json: one JSON object per line
                       (env LUNA_LOG_FORMAT)
      --pid-file PATH  write the process id to PATH; removed at exit
      --runtime DIR    load the runtime Lua from DIR (env LUNA_RUNTIME)
      --metrics HOST:PORT
                       serve GET /metrics (Prometheus text format) there
      --console HOST:PORT
                       open the debug console there (nc HOST PORT; try help);
                       loopback only unless LUNA_CLUSTER_SECRET is set, and
                       then clients must send `auth SECRET` first
                       (a bare PORT means 127.0.0.1:PORT)

Everything after ENTRY.lua is passed to the script as luna.args.
With NOTIFY_SOCKET set (systemd Type=notify), luna sends READY=1 once
on_start has returned and STOPPING=1 when the loop ends.";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Print usage.
    Help,
    /// Print the version.
    Version,
    /// Compile these files.
    Check(Vec<String>),
    /// Print the short usage (no arguments at all).
    ShortUsage,
    /// Write the editor stubs into this directory.
    Stubs(PathBuf),
    /// Run an entry script.
    Run {
        entry: String,
        module: bool,
        args: Vec<String>,
        runtime_dir: Option<PathBuf>,
        log_level: Option<Level>,
        log_file: Option<PathBuf>,
        log_format: Format,
        pid_file: Option<PathBuf>,
        metrics: Option<Endpoint>,
        console: Option<Endpoint>,
    },
}

const LEVELS: &str = "debug, info, warn or error";

fn level_value(source: &str, text: &str) -> Result<Level, String> {
    Level::parse(text).ok_or_else(|| format!("{source}: unknown log level '{text}' (use {LEVELS})"))
}

fn format_value(source: &str, text: &str) -> Result<Format, String> {
    Format::parse(text).ok_or_else(|| format!("{source}: unknown log format '{text}' (use text or json)"))
}

/// `HOST:PORT`, `[IPV6]:PORT` or a bare `PORT` (127.0.0.1).
fn endpoint_value(flag: &str, text: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("{flag}: {why} in '{text}' (use HOST:PORT, e.g. 127.0.0.1:9100)");
    let (host, port) = match text.rsplit_once(':') {
        None => ("127.0.0.1", text),
        Some((host, port)) => {
            let host = match host.strip_prefix('[') {
                Some(inner) => inner.strip_suffix(']').ok_or_else(|| bad("unclosed '['"))?,
                None if host.contains(':') => return Err(bad("an IPv6 address needs brackets")),
                None => host,
            };
            (host, port)
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| bad("the port must be a number 0-65535"))?;
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

/// Parses arguments (without the program name), with defaults from the environment.
pub fn parse(args: Vec<String>) -> Result<Command, String> {
    parse_with_env(args, &|name| std::env::var(name).ok())
}

/// [`parse`] with the environment given as a lookup function (empty values count as unset).
pub fn parse_with_env(args: Vec<String>, env: &dyn Fn(&str) -> Option<String>) -> Result<Command, String> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let mut runtime_dir = env("LUNA_RUNTIME").map(PathBuf::from);
    let mut log_level = None;
    let mut log_file = env("LUNA_LOG_FILE").map(PathBuf::from);
    let mut log_format = None;
    let mut pid_file = None;
    let mut metrics = None;
    let mut console = None;
    if args.is_empty() {
        return Ok(Command::ShortUsage);
    }
    let mut module = false;
    let mut rest = args.into_iter();
    let entry = loop {
        let Some(arg) = rest.next() else {
            return Err("missing entry script".into());
        };
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline_value
                .clone()
                .or_else(|| rest.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--check" => {
                let files: Vec<String> = rest.collect();
                if files.is_empty() {
                    return Err("--check needs at least one file".into());
                }
                return Ok(Command::Check(files));
            }
            "--log-level" => log_level = Some(level_value("--log-level", &value("--log-level")?)?),
            "--log-file" => log_file = Some(PathBuf::from(value("--log-file")?)),
            "--log-format" => log_format = Some(format_value("--log-format", &value("--log-format")?)?),
            "--pid-file" => pid_file = Some(PathBuf::from(value("--pid-file")?)),
            "--runtime" => runtime_dir = Some(PathBuf::from(value("--runtime")?)),
            "--metrics" => metrics = Some(endpoint_value("--metrics", &value("--metrics")?)?),
            "--console" => console = Some(endpoint_value("--console", &value("--console")?)?),
            "--stubs" => return Ok(Command::Stubs(PathBuf::from(value("--stubs")?))),
            "-m" => {
                module = true;
                break value("-m")?;
            }
            "--" => break rest.next().ok_or("missing entry script")?,
            other if other.starts_with('-') && other.len() > 1 => return Err(unknown_option(other)),
            _ => break arg,
        }
    };
    // A flag wins over the environment, which is checked only when no flag is given.
    if log_level.is_none()
        && let Some(text) = env("LUNA_LOG_LEVEL")
    {
        log_level = Some(level_value("LUNA_LOG_LEVEL", &text)?);
    }
    let log_format = match (log_format, env("LUNA_LOG_FORMAT")) {
        (Some(format), _) => format,
        (None, Some(text)) => format_value("LUNA_LOG_FORMAT", &text)?,
        (None, None) => Format::Text,
    };
    Ok(Command::Run {
        entry,
        module,
        args: rest.collect(),
        runtime_dir,
        log_level,
        log_file,
        log_format,
        pid_file,
        metrics,
        console,
    })
}

/// Every option, for suggestions.
const OPTIONS: &[&str] = &[
    "--help",
    "--version",
    "--check",
    "--stubs",
    "--log-level",
    "--log-file",
    "--log-format",
    "--pid-file",
    "--runtime",
    "--metrics",
    "--console",
];

/// "unknown option", with the closest known option when one is close.
fn unknown_option(given: &str) -> String {
    let closest = OPTIONS
        .iter()
        .map(|option| (edit_distance(given, option), option))
        .min()
        .filter(|&(distance, _)| distance <= 2.max(given.len() / 4));
    match closest {
        Some((_, option)) => format!("unknown option '{given}' (did you mean {option}?)"),
        None => format!("unknown option '{given}' (see luna --help)"),
    }
}

/// Levenshtein distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Services hold many sockets: lifts the soft descriptor limit to the hard
/// one; returns the soft limit in force afterwards.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        limit.rlim_cur
    }
}

/// Runs the command line; returns the exit status.
pub fn main(args: Vec<String>) -> i32 {
    match parse(args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            0
        }
        Ok(Command::Version) => {
            println!("luna {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Command::Check(files)) => lua::check(&files),
        Ok(Command::ShortUsage) => {
            eprintln!("{SHORT_USAGE}");
            2
        }
        Ok(Command::Stubs(dir)) => match lua::write_stubs(&dir) {
            Ok(count) => {
                println!("wrote {count} stub files to {}", dir.display());
                0
            }
            Err(error) => {
                eprintln!("luna: cannot write the stubs to {}: {error}", dir.display());
                1
            }
        },
        Ok(Command::Run {
            entry,
            module,
            args,
            runtime_dir,
            log_level,
            log_file,
            log_format,
            pid_file,
            metrics,
            console,
        }) => {
            log::flush_on_exit();
            if let Some(level) = log_level {
                log::set_level(level);
            }
            log::set_format(log_format);
            if let Some(path) = &log_file
                && let Err(error) = log::set_file(path)
            {
                eprintln!("luna: cannot open the log file {}: {error}", path.display());
                return 1;
            }
            if let Some(path) = &pid_file
                && let Err(error) = pid_file::create(path)
            {
                let message = format!("cannot write the pid file {}: {error}", path.display());
                // In the log file for the record, on stderr for whoever started luna.
                if log::has_file() {
                    log::error(&message);
                    log::flush(log::EXIT_FLUSH_LIMIT);
                }
                eprintln!("luna: {message}");
                return 1;
            }
            let status = lua::run(&Options {
                entry,
                module,
                args,
                runtime_dir,
                metrics,
                console,
            });
            pid_file::remove();
            log::flush(log::EXIT_FLUSH_LIMIT);
            status
        }
        Err(message) => {
            eprintln!("luna: {message}\n\n{SHORT_USAGE}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entry_and_script_args() {
        let parsed = parse(args(&["--log-level", "warn", "main.lua", "--listen", "x"])).unwrap();
        match parsed {
            Command::Run {
                entry,
                args: script_args,
                log_level,
                ..
            } => {
                assert_eq!(entry, "main.lua");
                assert_eq!(script_args, args(&["--listen", "x"]));
                assert_eq!(log_level, Some(Level::Warn));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn flags() {
        assert_eq!(parse(args(&["--help"])), Ok(Command::Help));
        assert_eq!(parse(args(&["-V"])), Ok(Command::Version));
        assert_eq!(
            parse(args(&["--check", "a.lua", "b.lua"])),
            Ok(Command::Check(args(&["a.lua", "b.lua"])))
        );
        assert!(parse(args(&["--check"])).is_err());
        assert!(parse(args(&["--bogus"])).is_err());
        assert_eq!(parse(args(&[])), Ok(Command::ShortUsage));
        assert_eq!(
            parse(args(&["--log-levl", "x.lua"])),
            Err("unknown option '--log-levl' (did you mean --log-level?)".into())
        );
        assert_eq!(
            parse(args(&["--zzzzzzzz"])),
            Err("unknown option '--zzzzzzzz' (see luna --help)".into())
        );
        match parse(args(&["-m", "luna.router", "--listen", "x"])).unwrap() {
            Command::Run {
                entry, module, args: a, ..
            } => {
                assert_eq!((entry.as_str(), module), ("luna.router", true));
                assert_eq!(a, args(&["--listen", "x"]));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(parse(args(&["--stubs", "d"])), Ok(Command::Stubs(PathBuf::from("d"))));
        assert!(parse(args(&["--log-level=loud", "x.lua"])).is_err());
    }

    fn parse_env(list: &[&str], env: &[(&str, &str)]) -> Result<Command, String> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse_with_env(args(list), &|name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn log_and_pid_flags() {
        match parse_env(
            &[
                "--log-file",
                "/tmp/l.log",
                "--log-format=json",
                "--pid-file",
                "/tmp/p",
                "m.lua",
            ],
            &[],
        )
        .unwrap()
        {
            Command::Run {
                log_file,
                log_format,
                pid_file,
                log_level,
                ..
            } => {
                assert_eq!(log_file, Some(PathBuf::from("/tmp/l.log")));
                assert_eq!(log_format, Format::Json);
                assert_eq!(pid_file, Some(PathBuf::from("/tmp/p")));
                assert_eq!(log_level, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        let error = parse_env(&["--log-format", "xml", "m.lua"], &[]).unwrap_err();
        assert!(
            error.contains("--log-format") && error.contains("text or json"),
            "{error}"
        );
        assert!(parse_env(&["--log-file"], &[]).is_err());
    }

    #[test]
    fn log_environment() {
        let env = [
            ("LUNA_LOG_LEVEL", "warn"),
            ("LUNA_LOG_FILE", "/var/log/x.log"),
            ("LUNA_LOG_FORMAT", "json"),
        ];
        match parse_env(&["m.lua"], &env).unwrap() {
            Command::Run {
                log_level,
                log_file,
                log_format,
                ..
            } => {
                assert_eq!(log_level, Some(Level::Warn));
                assert_eq!(log_file, Some(PathBuf::from("/var/log/x.log")));
                assert_eq!(log_format, Format::Json);
            }
            other => panic!("unexpected {other:?}"),
        }
        let error = parse_env(&["m.lua"], &[("LUNA_LOG_LEVEL", "verbose")]).unwrap_err();
        assert!(
            error.contains("LUNA_LOG_LEVEL") && error.contains("'verbose'") && error.contains(LEVELS),
            "{error}"
        );
        let error = parse_env(&["m.lua"], &[("LUNA_LOG_FORMAT", "xml")]).unwrap_err();
        assert!(error.contains("LUNA_LOG_FORMAT"), "{error}");
        // The flag wins over the environment; an empty variable counts as unset.
        assert!(parse_env(&["--log-level", "info", "m.lua"], &[("LUNA_LOG_LEVEL", "verbose")]).is_ok());
        assert!(parse_env(&["m.lua"], &[("LUNA_LOG_LEVEL", "")]).is_ok());
        let error = parse_env(&["--log-level=loud", "m.lua"], &[]).unwrap_err();
        assert!(error.contains("--log-level") && error.contains("'loud'"), "{error}");
    }

    #[test]
    fn metrics_and_console_flags() {
        let endpoint = |host: &str, port| {
            Some(Endpoint {
                host: host.to_string(),
                port,
            })
        };
        match parse(args(&["--metrics", "0.0.0.0:9100", "--console=[::1]:0", "m.lua"])).unwrap() {
            Command::Run { metrics, console, .. } => {
                assert_eq!(metrics, endpoint("0.0.0.0", 9100));
                assert_eq!(console, endpoint("::1", 0));
            }
            other => panic!("unexpected {other:?}"),
        }
        match parse(args(&["--console", "7000", "m.lua"])).unwrap() {
            Command::Run { metrics, console, .. } => {
                assert_eq!(metrics, None);
                assert_eq!(console, endpoint("127.0.0.1", 7000));
            }
            other => panic!("unexpected {other:?}"),
        }
        for bad in [
            "localhost:http",
            "127.0.0.1:70000",
            ":9100",
            "::1:9100",
            "[::1:9100",
            "x",
        ] {
            let error = parse(args(&["--metrics", bad, "m.lua"])).unwrap_err();
            assert!(error.contains("--metrics") && error.contains(bad), "{error}");
        }
        assert!(parse(args(&["--console"])).is_err());
    }

    #[test]
    fn runtime_dir_flag() {
        match parse(args(&["--runtime=/tmp/rt", "main.lua"])).unwrap() {
            Command::Run { runtime_dir, .. } => assert_eq!(runtime_dir, Some(PathBuf::from("/tmp/rt"))),
            other => panic!("unexpected {other:?}"),
        }
    }
}

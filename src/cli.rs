//! Command-line parsing and dispatch.

use std::path::PathBuf;

use crate::log::{self, Level};
use crate::lua::{self, Options};

const USAGE: &str = "\
usage: luna [options] ENTRY.lua [args...]
       luna --check FILE.lua...

Runs ENTRY.lua as a service process: calls luna_entry(ENTRY.lua, args...),
which imports the entry, calls its on_start, loops (on_loop or the event
loop) until a quit signal, calls on_stop, flushes output and exits 0.

options:
  -h, --help           show this help and exit
  -V, --version        show the version and exit
      --check FILE...  compile each file without running it; exit 1 on error
      --log-level LVL  debug, info (default), warn or error (env LUNA_LOG_LEVEL)
      --runtime DIR    load the runtime Lua from DIR (env LUNA_RUNTIME)

Everything after ENTRY.lua is passed to the script as luna.args.";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Print usage.
    Help,
    /// Print the version.
    Version,
    /// Compile these files.
    Check(Vec<String>),
    /// Run an entry script.
    Run {
        entry: String,
        args: Vec<String>,
        runtime_dir: Option<PathBuf>,
        log_level: Option<Level>,
    },
}

/// Parses arguments (without the program name).
pub fn parse(args: Vec<String>) -> Result<Command, String> {
    let mut runtime_dir = std::env::var_os("LUNA_RUNTIME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut log_level = None;
    let mut rest = args.into_iter();
    while let Some(arg) = rest.next() {
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
            "--log-level" => {
                let text = value("--log-level")?;
                log_level = Some(Level::parse(&text).ok_or_else(|| format!("unknown log level '{text}'"))?);
            }
            "--runtime" => runtime_dir = Some(PathBuf::from(value("--runtime")?)),
            "--" => {
                let entry = rest.next().ok_or("missing entry script")?;
                return Ok(Command::Run {
                    entry,
                    args: rest.collect(),
                    runtime_dir,
                    log_level,
                });
            }
            other if other.starts_with('-') && other.len() > 1 => return Err(format!("unknown option '{other}'")),
            _ => {
                return Ok(Command::Run {
                    entry: arg,
                    args: rest.collect(),
                    runtime_dir,
                    log_level,
                });
            }
        }
    }
    Err("missing entry script".into())
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
    if let Some(level) = std::env::var("LUNA_LOG_LEVEL").ok().as_deref().and_then(Level::parse) {
        log::set_level(level);
    }
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
        Ok(Command::Run {
            entry,
            args,
            runtime_dir,
            log_level,
        }) => {
            if let Some(level) = log_level {
                log::set_level(level);
            }
            lua::run(&Options {
                entry,
                args,
                runtime_dir,
            })
        }
        Err(message) => {
            eprintln!("luna: {message}\n\n{USAGE}");
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
        assert!(parse(args(&[])).is_err());
        assert!(parse(args(&["--log-level=loud", "x.lua"])).is_err());
    }

    #[test]
    fn runtime_dir_flag() {
        match parse(args(&["--runtime=/tmp/rt", "main.lua"])).unwrap() {
            Command::Run { runtime_dir, .. } => assert_eq!(runtime_dir, Some(PathBuf::from("/tmp/rt"))),
            other => panic!("unexpected {other:?}"),
        }
    }
}

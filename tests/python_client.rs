//! A client in another language talks to a luna service using only
//! docs/protocol.md: `tests/python/luna_client.py` (stdlib + `msgpack`)
//! sends calls and forwards to a luna echo service and checks every reply;
//! then the same against an echo service that listens with a cluster secret,
//! the client running the handshake of section 10 (written from the page).

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Luna, test_script};

/// How long the Python client may take.
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);

/// Runs the client to its end (killing it after the deadline): (success, stdout, stderr).
fn run_client(client: &Path, port: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut child = Command::new("python3")
        .arg(client)
        .args(["127.0.0.1", port])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let readers: Vec<_> = [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ]
    .into_iter()
    .map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    })
    .collect();
    let end = Instant::now() + CLIENT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20)); // poll period of the wait for the exit
    };
    let mut texts = readers.into_iter().map(|reader| reader.join().unwrap_or_default());
    let stdout = texts.next().unwrap_or_default();
    let mut stderr = texts.next().unwrap_or_default();
    if status.is_none() {
        stderr.push_str(&format!("\n(killed: still running after {CLIENT_DEADLINE:?})"));
    }
    (status.is_some_and(|s| s.success()), stdout, stderr)
}

#[test]
fn python_client_talks_to_a_luna_service() {
    common::require_python_module("msgpack", "msgpack");
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/luna_client.py");
    assert!(client.is_file(), "missing {}", client.display());

    let mut luna = Luna::start(&test_script("python_client/echo.lua"), &[]);
    let port = luna.value("port");

    let (ok, stdout, stderr) = run_client(&client, &port, &[]);
    assert!(
        ok,
        "the Python client failed\n--- python stdout ---\n{stdout}\n--- python stderr ---\n{stderr}\n--- luna stderr ---\n{}",
        luna.stderr()
    );
    assert!(
        stdout.contains("all checks passed"),
        "unexpected client output:\n{stdout}"
    );

    // The service is still alive and answered everything; the only stream it
    // closed for bad input is the one that sent garbage.
    assert!(luna.child.try_wait().expect("try_wait").is_none(), "luna exited");
    let log = luna.stderr();
    assert_eq!(log.matches("closing stream").count(), 1, "luna stderr:\n{log}");
    assert!(!log.contains(" ERROR "), "luna logged an error:\n{log}");
}

#[test]
fn python_client_authenticates_with_the_cluster_secret() {
    common::require_python_module("msgpack", "msgpack");
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/luna_client.py");
    let secret = "a secret \u{2713} shared by luna and python";
    let script = test_script("python_client/echo.lua");
    let mut luna = Luna::start_with(
        script.parent().unwrap(),
        &[script.to_str().unwrap()],
        &[("ECHO_SECRET", secret)],
    );
    let port = luna.value("port");

    let (ok, stdout, stderr) = run_client(&client, &port, &[("LUNA_SECRET", secret)]);
    assert!(
        ok,
        "the Python client failed\n--- python stdout ---\n{stdout}\n--- python stderr ---\n{stderr}\n--- luna stderr ---\n{}",
        luna.stderr()
    );
    for check in [
        "ok   secret handshake",
        "wrong secret and no handshake refused",
        "all checks passed",
    ] {
        assert!(stdout.contains(check), "no {check:?} in the client output:\n{stdout}");
    }
    assert!(luna.child.try_wait().expect("try_wait").is_none(), "luna exited");
    // Three streams were closed: the garbage one, the wrong secret and the one without a handshake.
    for why in ["bad-package", "proof is wrong", "without authenticating"] {
        luna.expect_err(why);
    }
    let log = luna.stderr();
    assert_eq!(log.matches("closing stream").count(), 3, "luna stderr:\n{log}");
    assert!(!log.contains(" ERROR "), "luna logged an error:\n{log}");
}

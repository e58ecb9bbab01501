//! A private redis-server per test, on a free loopback port.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Child,
    pub port: u16,
    args: Vec<String>,
}

/// A redis-server on loopback `port` that keeps nothing on disk.
fn server(port: u16, args: &[String]) -> Child {
    let port = port.to_string();
    Command::new("redis-server")
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    /// Starts redis-server with extra arguments (e.g. `--requirepass x`).
    pub fn start(extra: &[&str]) -> Redis {
        if Command::new("redis-server").arg("--version").output().is_err() {
            panic!("redis-server is missing: run `apt-get install -y redis-server` (bash .ci/run installs it)");
        }
        for _ in 0..5 {
            let port = free_port();
            let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            if let Some(redis) = Self::spawn(port, args) {
                return redis;
            }
        }
        panic!("could not start redis-server");
    }

    fn spawn(port: u16, args: Vec<String>) -> Option<Redis> {
        let child = server(port, &args);
        let mut redis = Redis { child, port, args };
        if redis.wait_ready() { Some(redis) } else { None }
    }

    fn wait_ready(&mut self) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // port taken, most likely
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20)); // poll period of the wait for the port
        }
        false
    }

    /// SIGKILLs the server.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            self.child = server(self.port, &self.args);
            if self.wait_ready() {
                return;
            }
            assert!(
                Instant::now() < end,
                "redis-server did not restart on port {}",
                self.port
            );
            // The port may still be held by the killed server: pause before trying again.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a command with redis-cli and returns its output (trimmed).
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string()]);
        if let Some(at) = self.args.iter().position(|a| a == "--requirepass") {
            command.args(["-a", &self.args[at + 1], "--no-auth-warning"]);
        }
        let output = command.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

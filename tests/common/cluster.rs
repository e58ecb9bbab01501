//! A test cluster: router processes (the ready router script) and service
//! processes started from one service script, plus client nodes. Scripts
//! run where they are, under tests/scripts/, in the cluster's directory.
//!
//! A client is a head script (under tests/scripts/) that starts the node and
//! ends by running the file named by CLIENT_BODY in its own environment:
//! `CLIENT_BODY=<body> luna <head> <id> <router>...`.

use std::collections::HashMap;
use std::path::Path;

use super::{Dir, Luna, script_arg, start_router};

pub struct Cluster {
    pub dir: Dir,
    pub routers: Vec<(Luna, String)>,
    pub services: HashMap<String, Luna>,
    service_script: String,
    service_env: Vec<(String, String)>,
    client_head: String,
}

impl Cluster {
    /// Starts `router_count` routers; services run `service_script`
    /// (relative to tests/scripts/: `luna <script> <id> <router>...`,
    /// printing `ready <id>` once registered everywhere); clients run
    /// `client_head`.
    pub fn new(service_script: &str, client_head: &str, router_count: usize, router_args: &[&str]) -> Cluster {
        let dir = Dir::new();
        let mut args = vec!["--heartbeat-ms", "200"];
        args.extend_from_slice(router_args);
        let routers = (0..router_count).map(|_| start_router(dir.dir.path(), &args)).collect();
        Cluster {
            dir,
            routers,
            services: HashMap::new(),
            service_script: script_arg(service_script),
            service_env: Vec::new(),
            client_head: client_head.to_string(),
        }
    }

    /// Sets an environment variable of every service started from now on.
    pub fn set_service_env(&mut self, key: &str, value: &str) {
        self.service_env.push((key.to_string(), value.to_string()));
    }

    pub fn addresses(&self) -> Vec<String> {
        self.routers.iter().map(|(_, a)| a.clone()).collect()
    }

    /// Starts the service script as `id` and waits for `ready <id>`.
    pub fn start_service(&mut self, id: &str) {
        let service = self.start_service_with(id, &[]);
        self.services.insert(id.to_string(), service);
    }

    /// Starts the service script as `id` with extra environment variables
    /// (after those of set_service_env), waits for `ready <id>` and returns
    /// it (not kept in `services`).
    pub fn start_service_with(&self, id: &str, env: &[(&str, &str)]) -> Luna {
        let mut args = vec![self.service_script.clone(), id.to_string()];
        args.extend(self.addresses());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut all: Vec<(&str, &str)> = self
            .service_env
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        all.extend_from_slice(env);
        let mut service = Luna::start_with(self.dir.dir.path(), &args, &all);
        service.expect(&format!("ready {id}"));
        service
    }

    /// Starts a client node `id`: the client head, then `body` (relative to tests/scripts/).
    pub fn start_client(&self, id: &str, body: &str) -> Luna {
        self.start_client_with(id, body, &[])
    }

    /// `start_client` with extra environment variables.
    pub fn start_client_with(&self, id: &str, body: &str, env: &[(&str, &str)]) -> Luna {
        client(self.dir.dir.path(), &self.client_head, body, id, &self.addresses(), env)
    }

    /// SIGKILLs a service and waits for it to be gone.
    pub fn kill_service(&mut self, id: &str) {
        let mut service = self.services.remove(id).unwrap();
        service.signal(libc::SIGKILL);
        service.wait_exit();
    }
}

/// Starts `CLIENT_BODY=<body> luna <head> <id> <routers>...` in `cwd`
/// (`head` and `body` relative to tests/scripts/).
pub fn client(cwd: &Path, head: &str, body: &str, id: &str, routers: &[String], env: &[(&str, &str)]) -> Luna {
    let head = script_arg(head);
    let body = script_arg(body);
    let mut args = vec![head.as_str(), id];
    args.extend(routers.iter().map(String::as_str));
    let mut all = vec![("CLIENT_BODY", body.as_str())];
    all.extend_from_slice(env);
    Luna::start_with(cwd, &args, &all)
}

//! A test cluster: router processes (the ready router script) and service
//! processes started from one service script, plus client nodes.
//!
//! A client is a head script (under tests/scripts/) that starts the node and
//! ends by running the file named by CLIENT_BODY in its own environment:
//! `CLIENT_BODY=<body> luna <head> <id> <router>...`.

use std::collections::HashMap;
use std::path::Path;

use super::{Dir, Luna, script_arg};

pub struct Cluster {
    pub dir: Dir,
    pub routers: Vec<(Luna, String)>,
    pub services: HashMap<String, Luna>,
    client_head: String,
}

impl Cluster {
    /// Starts `router_count` routers; services run a copy of
    /// `service_script` (relative to tests/scripts/) as service.lua in the
    /// cluster's directory (`luna service.lua <id> <router>...`, printing
    /// `ready <id>` once registered everywhere); clients run `client_head`.
    pub fn new(service_script: &str, client_head: &str, router_count: usize, router_args: &[&str]) -> Cluster {
        let dir = Dir::new();
        dir.copy_script("service.lua", service_script);
        let router_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime_lua/router.lua");
        let mut routers = Vec::new();
        for _ in 0..router_count {
            let mut args = vec![
                router_script.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--heartbeat-ms",
                "200",
            ];
            args.extend_from_slice(router_args);
            let mut router = Luna::start_in(dir.dir.path(), &args);
            let address = router.value("listening");
            routers.push((router, address));
        }
        Cluster {
            dir,
            routers,
            services: HashMap::new(),
            client_head: client_head.to_string(),
        }
    }

    pub fn addresses(&self) -> Vec<String> {
        self.routers.iter().map(|(_, a)| a.clone()).collect()
    }

    /// Starts `service.lua <id> <routers>` and waits for `ready <id>`.
    pub fn start_service(&mut self, id: &str) {
        let service = self.start_service_with(id, &[]);
        self.services.insert(id.to_string(), service);
    }

    /// Starts `service.lua <id> <routers>` with extra environment variables,
    /// waits for `ready <id>` and returns it (not kept in `services`).
    pub fn start_service_with(&self, id: &str, env: &[(&str, &str)]) -> Luna {
        let mut args = vec!["service.lua".to_string(), id.to_string()];
        args.extend(self.addresses());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut service = Luna::start_with(self.dir.dir.path(), &args, env);
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

//! A test cluster: router processes (the ready router script) and service
//! processes started from one service script.

use std::collections::HashMap;

use super::{Dir, Luna};

pub struct Cluster {
    pub dir: Dir,
    pub routers: Vec<(Luna, String)>,
    pub services: HashMap<String, Luna>,
    client_head: &'static str,
}

impl Cluster {
    /// Starts `router_count` routers; services run `service_script`
    /// (`luna service.lua <id> <router>...`, printing `ready <id>` once
    /// registered everywhere); clients start with `client_head`.
    pub fn new(service_script: &str, client_head: &'static str, router_count: usize, router_args: &[&str]) -> Cluster {
        let dir = Dir::new();
        dir.write("service.lua", service_script);
        let router_script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime_lua/router.lua");
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
            client_head,
        }
    }

    pub fn addresses(&self) -> Vec<String> {
        self.routers.iter().map(|(_, a)| a.clone()).collect()
    }

    /// Starts `service.lua <id> <routers>` and waits for `ready <id>`.
    pub fn start_service(&mut self, id: &str) {
        let mut args = vec!["service.lua".to_string(), id.to_string()];
        args.extend(self.addresses());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut service = Luna::start_in(self.dir.dir.path(), &args);
        service.expect(&format!("ready {id}"));
        self.services.insert(id.to_string(), service);
    }

    /// Starts a client node: the client head followed by `body`.
    pub fn start_client(&self, id: &str, body: &str) -> Luna {
        self.dir
            .write(&format!("client_{id}.lua"), &format!("{}\n{body}", self.client_head));
        let mut args = vec![format!("client_{id}.lua"), id.to_string()];
        args.extend(self.addresses());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Luna::start_in(self.dir.dir.path(), &args)
    }

    /// SIGKILLs a service and waits for it to be gone.
    pub fn kill_service(&mut self, id: &str) {
        let mut service = self.services.remove(id).unwrap();
        service.signal(libc::SIGKILL);
        service.wait_exit();
    }
}

//! The examples run as the README says (with free ports instead of fixed ones).

mod common;

use std::path::{Path, PathBuf};

use common::{Dir, Luna};

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(path)
}

#[test]
fn hello_example_ticks_and_picks_up_edits() {
    let dir = Dir::new();
    for file in ["main.lua", "greeting.lua"] {
        std::fs::copy(example(&format!("hello/{file}")), dir.path(file)).unwrap();
    }
    let mut hello = Luna::start(&dir.path("main.lua"), &[]);
    hello.expect("hello #1 from luna");
    let edited = std::fs::read_to_string(dir.path("greeting.lua"))
        .unwrap()
        .replace("from luna", "from the edit");
    std::fs::write(dir.path("greeting.lua"), edited).unwrap();
    hello.expect("from the edit");
    hello.signal(libc::SIGTERM);
    assert!(hello.wait_exit().success());
    hello.expect("bye after");
}

#[test]
fn cluster_example_serves_a_client() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut routers, addresses): (Vec<Luna>, Vec<String>) = (0..2).map(|_| common::start_router(root, &[])).unzip();
    let env = [("CLUSTER_ROUTERS", addresses.join(","))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut services = Vec::new();
    for (script, id) in [
        ("mail", "2.1"),
        ("mail", "2.2"),
        ("mail", "2.3"),
        ("match", "3.1"),
        ("match", "3.2"),
        ("game", "4.1"),
        ("game", "4.2"),
    ] {
        let path = example(&format!("cluster/{script}.lua"));
        let mut service = Luna::start_with(root, &[path.to_str().unwrap(), id], &env);
        service.expect_err(&format!("{id}: connected to router {}", addresses[1]));
        services.push(service);
    }
    // Services register on both routers before the client starts.
    for router in &mut routers {
        for _ in 0..7 {
            router.expect_err("registered from");
        }
    }
    let client = example("cluster/client.lua");
    let mut client = Luna::start_with(root, &[client.to_str().unwrap(), "10.1", "2"], &env);
    let login = client.expect("login: ");
    assert!(
        login.starts_with("login: welcome alice to 4.") && login.ends_with("(1 unread)"),
        "{login}"
    );
    assert_eq!(client.expect("match: "), "match: waiting (by 3.1)");
    assert!(client.expect("inbox: ").starts_with("inbox: alice has 1 mails on 2."));
    client.expect("login: welcome bob");
    assert_eq!(client.expect("match: "), "match: match 1: alice vs bob (by 3.1)");
    client.expect("client done");
    assert!(client.wait_exit().success(), "{}", client.stderr());
    for service in services.iter_mut().skip(5) {
        service.expect("announcement: alice finished round 1");
    }
}

#[test]
fn cluster_example_with_discovery_and_a_master_lease() {
    let redis = common::redis::Redis::start(&[]);
    let redis_address = format!("127.0.0.1:{}", redis.port);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut routers: Vec<Luna> = (0..2)
        .map(|_| common::start_router(root, &["--redis", &redis_address, "--prefix", "cluster"]).0)
        .collect();
    let env = [("CLUSTER_REDIS", redis_address.as_str())];
    let start = |script: &str, id: &str| {
        let path = example(&format!("cluster/{script}.lua"));
        Luna::start_with(root, &[path.to_str().unwrap(), id], &env)
    };
    let mut services = vec![start("mail", "2.1"), start("match", "3.2")];
    // 3.2 holds the lease before 3.1 starts, so it is master although 3.1 sorts first.
    services[1].expect_err("3.2 is the match master");
    services.push(start("match", "3.1"));
    services.push(start("game", "4.1"));
    for router in &mut routers {
        common::eventually("registrations and the master on every router", || {
            let log = router.stderr();
            (log.matches("registered from").count() == 4 && log.contains("master of group 3 is 3.2")).then_some(())
        });
    }
    let client = example("cluster/client.lua");
    let mut client = Luna::start_with(root, &[client.to_str().unwrap(), "10.1", "2"], &env);
    client.expect("login: welcome alice to 4.1 (1 unread)");
    assert_eq!(client.expect("match: "), "match: waiting (by 3.2)");
    client.expect("client done");
    assert!(client.wait_exit().success(), "{}", client.stderr());
}

//! Edge cases of luna.discovery found while splitting it (issue 16): a name
//! missing from scans twice, and a lease that lives longer than its
//! discovery's TTL across a Redis restart. Real redis-server, real processes.

mod common;

use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::redis::Redis;
use common::{Luna, test_script};

/// A name missing from a scan, seen again, then missing again gets a full
/// grace period from the second time: the timer of the first absence must
/// not remove it early.
#[test]
fn a_name_missing_twice_gets_a_full_grace_period_the_second_time() {
    // Without CONFIG, keyspace notifications stay off: only the scans see changes.
    let redis = Redis::start(&["--rename-command", "CONFIG", ""]);
    let port = redis.port.to_string();
    let mut watcher = Luna::start(&test_script("discovery_edges/watcher.lua"), &[&port, "100", "3000"]);
    watcher.expect("watching");
    redis.cli(&["SET", "g:service:a", "v1"]);
    watcher.expect("added a v1");

    // Missing for several scans: its 3 s grace period starts.
    redis.cli(&["DEL", "g:service:a"]);
    std::thread::sleep(Duration::from_millis(1500));
    // Back (with a new value, so the watcher says when it saw it), then gone again.
    redis.cli(&["SET", "g:service:a", "v2"]);
    watcher.expect("added a v2");
    let deleted = Instant::now();
    redis.cli(&["DEL", "g:service:a"]);
    watcher.expect("removed a");
    let waited = deleted.elapsed();
    assert!(
        waited >= Duration::from_millis(2900),
        "removed {waited:?} after it went missing again, before its 3 s grace period"
    );
}

/// Issue-16 find: the wait after a reconnect was the discovery's TTL, not
/// the lease's. With a lease TTL (3 s) longer than the discovery's (300 ms),
/// a contender that reconnected to a restarted Redis took the lease while
/// the holder, cut off from Redis, still held it by its own deadline.
#[test]
fn after_a_redis_restart_a_contender_waits_the_lease_ttl() {
    let mut redis = Redis::start(&[]);
    let proxy = Proxy::start(redis.port);
    let (proxy_port, redis_port) = (proxy.port.to_string(), redis.port.to_string());
    let script = test_script("discovery_edges/lease.lua");
    let mut holder = Luna::start(&script, &["3.1", &proxy_port, "300", "3000"]);
    holder.expect("promoted 3.1");
    let mut contender = Luna::start(&script, &["3.2", &redis_port, "300", "3000"]);
    // Connected before the restart: what it finds after it is a reconnect.
    contender.expect("connected 3.2");

    // The holder is cut off; Redis restarts empty and the contender reconnects.
    proxy.freeze();
    redis.restart();
    let demoted = holder.value("demoted 3.1");
    let demoted: i64 = demoted.split(' ').next().unwrap().parse().unwrap();
    let promoted: i64 = contender.value("promoted 3.2").parse().unwrap();
    assert!(
        demoted < promoted,
        "two masters at once: the cut-off holder demoted at {demoted} ms, {} ms after the contender was promoted at {promoted} ms",
        demoted - promoted
    );
}

/// Review find: a key under the watched prefix that GET cannot read (a hash
/// at `g:service:bad`) made its GET fail, the failure was dropped and the
/// scan waited for it for good, so no scan ever ended and a service that
/// went away was never removed. Now the key is logged and taken as absent.
#[test]
fn an_unreadable_key_does_not_stop_the_scan() {
    // Without CONFIG, keyspace notifications stay off: only the scans see changes.
    let redis = Redis::start(&["--rename-command", "CONFIG", ""]);
    let port = redis.port.to_string();
    redis.cli(&["HSET", "g:service:bad", "field", "value"]);
    redis.cli(&["SET", "g:service:a", "v1"]);
    let mut watcher = Luna::start(&test_script("discovery_edges/watcher.lua"), &[&port, "100", "200"]);
    watcher.expect("watching");
    watcher.expect("added a v1");

    redis.cli(&["DEL", "g:service:a"]);
    watcher.expect("removed a");
    watcher.expect_err("discovery: cannot read g:service:bad");
    assert!(
        !watcher.stdout().iter().any(|line| line.contains(" bad")),
        "the unreadable key was taken as a service: {:?}",
        watcher.stdout()
    );
}

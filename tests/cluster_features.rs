//! Cluster features (issue 15) with real routers and services: membership
//! events, waiting for a route, trace ids through three services.

mod common;

use common::cluster::Cluster;
use common::{Luna, eventually};

fn cluster(routers: usize) -> Cluster {
    cluster_with(routers, &[])
}

/// A cluster of the features scripts whose routers also get `router_args`.
fn cluster_with(routers: usize, router_args: &[&str]) -> Cluster {
    let mut args = vec!["--heartbeat-ms", "100"];
    args.extend_from_slice(router_args);
    Cluster::new("features/service.lua", "features/client_head.lua", routers, &args)
}

/// Stdout lines of `client` starting with `prefix`, so far.
fn lines(client: &Luna, prefix: &str) -> Vec<String> {
    client.stdout().into_iter().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn membership_events_are_exact_and_survive_a_router_switch() {
    let mut cluster = cluster(2);
    cluster.start_service("2.1");
    cluster.start_service("2.2");
    let mut watcher = cluster.start_client("9.1", "features/watcher.lua");
    watcher.expect("watching");
    watcher.expect("view 2.1,2.2 via");
    cluster.start_service("2.3");
    watcher.expect("member 2.3 up");
    cluster.kill_service("2.1");
    watcher.expect("member 2.1 down");
    watcher.expect("view 2.2,2.3 via");

    // Kill the router the watcher uses: it moves to the other one, and its
    // view moves with it, without announcing anything that did not change.
    let via = lines(&watcher, "view ").last().cloned().unwrap();
    let address = via.rsplit(' ').next().unwrap().to_string();
    let at = cluster.routers.iter().position(|(_, a)| *a == address).unwrap();
    let (mut router, _) = cluster.routers.remove(at);
    router.signal(libc::SIGKILL);
    router.wait_exit();
    let other = cluster.routers[0].1.clone();
    watcher.expect(&format!("view 2.2,2.3 via {other}"));
    cluster.start_service("2.4");
    watcher.expect("member 2.4 up");
    let events: Vec<String> = lines(&watcher, "member ")
        .into_iter()
        .filter(|l| l.starts_with("member 2."))
        .collect();
    let mut sorted = events.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "member 2.1 down",
            "member 2.1 up",
            "member 2.2 up",
            "member 2.3 up",
            "member 2.4 up"
        ],
        "every change once, nothing repeated by the router switch: {events:?}"
    );
}

#[test]
fn calls_and_forwards_can_wait_for_their_target_to_register() {
    let mut cluster = cluster(2);
    let mut waiter = cluster.start_client("9.2", "features/waiter.lua");
    assert_eq!(waiter.value("without waiting"), "no-route", "fail-fast is the default");
    waiter.expect("waiting");
    cluster.start_service("2.5");
    let service = cluster.services.remove("2.5").unwrap();
    assert_eq!(waiter.value("answer"), "hello from 2.5");
    // The held forward may arrive before the service prints `ready`.
    eventually("the held forward delivered", || {
        service.stdout().iter().any(|l| l == "note 2.5 held").then_some(())
    });
    assert_eq!(waiter.value("still missing"), "no-route");
}

#[test]
fn one_trace_id_follows_a_request_through_three_services() {
    let mut cluster = cluster(2);
    for id in ["3.1", "4.1", "5.1"] {
        cluster.start_service(id);
    }
    let mut tracer = cluster.start_client("9.3", "features/tracer.lua");
    let line = tracer.value("trace");
    let (trace, err) = line.split_once(' ').unwrap();
    assert_eq!(err, "nil", "{line}");
    assert_eq!(trace.len(), 16, "{line}");
    for (at, id) in [(1, "3.1"), (2, "4.1"), (3, "5.1")] {
        let service = cluster.services.get_mut(id).unwrap();
        let logged = service.expect_err(&format!("hop {at} at {id}"));
        assert!(
            logged.contains(&format!("[trace={trace}]")),
            "{id} logs the request's trace id: {logged}"
        );
    }
    // The forwarded note: one new id, the same at every hop.
    let mut note_traces = Vec::new();
    for id in ["3.1", "4.1", "5.1"] {
        let service = cluster.services.get_mut(id).unwrap();
        let line = service.value(&format!("trace_note {id}"));
        assert_eq!(line.len(), 16, "{id} runs the note under a trace id: {line}");
        note_traces.push(line);
    }
    assert!(note_traces.iter().all(|t| *t == note_traces[0]), "{note_traces:?}");
    assert_ne!(note_traces[0], trace, "the note started a trace of its own");
}

/// The owners of the 60 keys of hash_owners.lua, asked through router `via`.
fn hash_owners(cluster: &Cluster, id: &str, via: usize) -> Vec<(String, String)> {
    let mut client = cluster.start_client_with(id, "features/hash_owners.lua", &[("VIA", &via.to_string())]);
    let mut owners: Vec<(String, String)> = (0..60)
        .map(|_| {
            let line = client.value("owner");
            let (key, who) = line.split_once(' ').unwrap();
            (key.to_string(), who.to_string())
        })
        .collect();
    owners.sort_by_key(|(key, _)| key.parse::<u32>().unwrap());
    owners
}

#[test]
fn rendezvous_hashing_agrees_on_every_router_and_moves_about_one_key_in_n() {
    let mut cluster = cluster_with(2, &["--hash-mode", "2=rendezvous"]);
    for id in ["2.1", "2.2", "2.3"] {
        cluster.start_service(id);
    }
    let first = hash_owners(&cluster, "9.4", 1);
    assert_eq!(
        first,
        hash_owners(&cluster, "9.5", 2),
        "both routers pick the same node"
    );
    let used: std::collections::HashSet<&String> = first.iter().map(|(_, who)| who).collect();
    assert_eq!(used.len(), 3, "{first:?}");
    cluster.start_service("2.4");
    let after = hash_owners(&cluster, "9.6", 1);
    let moved: Vec<_> = first.iter().zip(&after).filter(|(a, b)| a.1 != b.1).collect();
    assert!(
        moved.iter().all(|(_, b)| b.1 == "2.4"),
        "keys only move to the new node: {moved:?}"
    );
    assert!(
        (5..=25).contains(&moved.len()),
        "about a quarter of 60 keys move, not {} of them",
        moved.len()
    );
}

#[test]
fn publish_subscribe_across_two_routers_with_retained_states() {
    let mut cluster = cluster_with(2, &["--stats-ms", "100"]);
    let mut subscriber = cluster.start_client("9.7", "features/subscriber.lua");
    subscriber.expect("subscribed");
    // Its three topics reached both routers (their stats count them) before anything is published.
    eventually("the subscriptions on both routers", || {
        cluster
            .routers
            .iter()
            .all(|(router, _)| router.stderr().contains(" topics=3"))
            .then_some(())
    });
    let mut publisher = cluster.start_client("9.8", "features/publisher.lua");
    publisher.expect("published");
    // Topics are independent: their messages may interleave in any order.
    for expected in ["news item 3", "score v2"] {
        eventually(expected, || {
            subscriber.stdout().iter().any(|l| l == expected).then_some(())
        });
    }
    subscriber.expect("tick ");
    let news = lines(&subscriber, "news ");
    assert_eq!(
        news,
        ["news item 1", "news item 2", "news item 3"],
        "each message once and in order, though subscribed on two routers"
    );
    assert_eq!(
        lines(&subscriber, "score "),
        ["score v1", "score v2"],
        "each state once, in order"
    );

    // A late subscriber gets the latest state first, once.
    let mut late = cluster.start_client("9.9", "features/late.lua");
    late.expect("late score v2");
    assert!(!late.stdout().iter().any(|l| l == "late score v1"));

    // Nobody heard one publish: counted by the router it went through.
    eventually("an unheard publish counted", || {
        cluster
            .routers
            .iter()
            .any(|(router, _)| router.stderr().contains("published_unheard=1"))
            .then_some(())
    });

    // The subscription survives the loss of a router.
    let (mut router, _) = cluster.routers.remove(0);
    router.signal(libc::SIGKILL);
    router.wait_exit();
    let ticks_then = lines(&subscriber, "tick ").len();
    eventually("ticks after the router died", || {
        (lines(&subscriber, "tick ").len() > ticks_then + 5).then_some(())
    });
    assert_eq!(lines(&late, "late score ").len(), 1, "{:?}", late.stdout());
}

/// Review find: a forward held for its route (wait_for_route) whose send
/// failed once the route appeared was dropped without a word. Its failure
/// goes to on_forward_error now (here: a message that cannot be encoded).
#[test]
fn a_held_forward_that_fails_when_sent_reaches_on_forward_error() {
    let mut cluster = cluster(1);
    let mut waiter = cluster.start_client("9.3", "features/held_unsendable.lua");
    waiter.expect("waiting");
    cluster.start_service("2.5");
    let service = cluster.services.remove("2.5").unwrap();
    let error = waiter.expect("forward_error ");
    assert!(
        error.ends_with(" target 2.5"),
        "reported as a target forward to 2.5: {error}"
    );
    eventually("the sendable held forward delivered", || {
        service.stdout().iter().any(|l| l == "note 2.5 held").then_some(())
    });
}

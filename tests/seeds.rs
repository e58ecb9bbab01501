//! The socket examples of the seed documents (luabus and luna READMEs) run
//! unchanged; only the fixed port 8080 is replaced by a free one. The
//! examples are in tests/scripts/seeds/.

mod common;

use common::{Luna, test_script};

/// Starts `tests/scripts/seeds/<name>.lua <args...>`.
fn seed_script(name: &str, args: &[&str]) -> Luna {
    Luna::start(&test_script(&format!("seeds/{name}.lua")), args)
}

fn start_server() -> (Luna, String) {
    let mut server = seed_script("luabus_server", &[]);
    let port = server.value("port");
    (server, port)
}

#[test]
fn luabus_readme_socket_example() {
    let (mut server, port) = start_server();
    let mut client = seed_script("luabus_client", &[&port]);
    client.expect("client on_connect\tok");
    server.expect("server on_call\ton_login\talice\tsecret");
    client.expect("client on_call\ton_login_ok\talice\tsecret");
    assert!(client.wait_exit().success(), "{}", client.stderr());
    server.expect("server on_error\tconnection-lost");
}

#[test]
fn luna_readme_socket_example() {
    let (mut server, port) = start_server();
    let mut client = seed_script("luna_client", &[&port]);
    client.expect("client on_connected");
    server.expect("server on_call\ton_login\tbob\tpw");
    client.expect("client on_recv\ton_login_ok\tbob\tpw");
    assert!(client.wait_exit().success(), "{}", client.stderr());
}

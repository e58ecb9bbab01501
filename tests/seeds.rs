//! The socket examples of the seed documents (luabus and luna READMEs) run
//! unchanged; only the fixed port 8080 is replaced by a free one.

mod common;

use common::{Dir, Luna};

/// luabus README, "网络" section, as a server process.
const LUABUS_SERVER: &str = r#"
lbus = require("lbus");
socket_mgr = lbus.create_socket_mgr(100);
mgr = socket_mgr
listener = mgr.listen("127.0.0.1", PORT);
streams = {}

--设置accept回调
listener.on_accept = function(stream)
    streams[#streams + 1] = stream
    stream.on_call = function(msg, ...)
        print("server on_call", msg, ...)
        stream.call("on_login_ok", ...)
    end

    stream.on_error = function(err)
        print("server on_error", err)
    end
end

function on_loop()
    --用户需要在主循环中调用wait函数,比如:
    socket_mgr.wait(50);
end
print("port " .. listener.port)
"#;

/// luabus README, client side.
const LUABUS_CLIENT: &str = r#"
lbus = require("lbus");
socket_mgr = lbus.create_socket_mgr(100);
mgr = socket_mgr
acc, password = "alice", "secret"

stream = mgr.connect("127.0.0.1", PORT, 2000);
--设置连接事件回调:
stream.on_connect = function(result)
    print("client on_connect", result)
    stream.call("on_login", acc, password);
end

stream.on_error = function (err)
    print("client on_error", err)
end

stream.on_call = function (msg, ...)
    print("client on_call", msg, ...)
    --设置多久没收到消息就超时,默认不超时
    stream.set_timeout(2000);
    --设置nodelay属性,默认设置为true
    stream.set_nodelay(true);
    --设置收发缓冲区,至少应该可以容纳一条消息,默认64K
    stream.set_recv_buffer_size(1024 * 64);
    stream.set_send_buffer_size(1024 * 64);
    stream.close();
    luna_quit_flag = true
end

function on_loop()
    socket_mgr.wait(50);
end
"#;

/// luna README, "网络" section: global create_socket_mgr, on_connected, on_recv.
const LUNA_CLIENT: &str = r#"
socket_mgr = create_socket_mgr(100);
mgr = socket_mgr
acc, password = "bob", "pw"
--连接都是异步进行的,一直要stream上面触发'on_connected'事件后,连接才可用
stream = mgr.connect("127.0.0.1", PORT);
stream.on_connected = function()
    print("client on_connected")
    stream.call("on_login", acc, password);
end

stream.on_error = function (err)
    --发生任何错误时触发
    print("client on_error", err)
end

stream.on_recv = function (msg, ...)
    --收到对端消息时触发.
    print("client on_recv", msg, ...)
    stream.close();
    luna_quit_flag = true
end

function on_loop()
    socket_mgr.wait(50);
end
"#;

fn start_server(dir: &Dir) -> (Luna, String) {
    let server = dir.write("server.lua", &LUABUS_SERVER.replace("PORT", "0"));
    let mut server = Luna::start(&server, &[]);
    let port = server.value("port");
    (server, port)
}

#[test]
fn luabus_readme_socket_example() {
    let dir = Dir::new();
    let (mut server, port) = start_server(&dir);
    let client = dir.write("client.lua", &LUABUS_CLIENT.replace("PORT", &port));
    let mut client = Luna::start(&client, &[]);
    client.expect("client on_connect\tok");
    server.expect("server on_call\ton_login\talice\tsecret");
    client.expect("client on_call\ton_login_ok\talice\tsecret");
    assert!(client.wait_exit().success(), "{}", client.stderr());
    server.expect("server on_error\tconnection-lost");
}

#[test]
fn luna_readme_socket_example() {
    let dir = Dir::new();
    let (mut server, port) = start_server(&dir);
    let client = dir.write("client.lua", &LUNA_CLIENT.replace("PORT", &port));
    let mut client = Luna::start(&client, &[]);
    client.expect("client on_connected");
    server.expect("server on_call\ton_login\tbob\tpw");
    client.expect("client on_recv\ton_login_ok\tbob\tpw");
    assert!(client.wait_exit().success(), "{}", client.stderr());
}

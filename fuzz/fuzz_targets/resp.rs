//! The RESP reply parser: the promises of `luna::codec::checks::resp`, and
//! the same replies and values as `redis-protocol`, the parser luna used
//! before (where both accept: luna is stricter on nesting, sizes, number
//! lines and the CRLF after a bulk string).
#![no_main]

use std::ffi::c_int;

use libfuzzer_sys::fuzz_target;
use luna::codec::checks;
use luna::codec::resp::{self, Reply};
use mlua::ffi::{self, lua_State};
use redis_protocol::resp2::decode::decode_range;
use redis_protocol::resp2::types::RangeFrame;

fuzz_target!(|data: &[u8]| {
    checks::resp(data);
    let ours = ours(data);
    match ours {
        Ok((Reply::Pushed(len), ref described)) => {
            let (frame, their_len) = decode_range(data)
                .expect("redis-protocol accepts what luna accepts")
                .expect("redis-protocol finds the reply luna finds");
            assert_eq!(their_len, len);
            assert_eq!(*described, top_level(data, &frame));
        }
        Ok((Reply::Incomplete, _)) => {
            assert!(
                !matches!(decode_range(data), Ok(Some(_))),
                "luna waits for more, redis-protocol does not"
            );
        }
        Err(_) => {}
    }
});

/// Our reply and a description of the values pushed.
fn ours(data: &[u8]) -> Result<(Reply, String), String> {
    let lua = checks::bare_lua();
    let mut outcome = None;
    // SAFETY: the closure keeps the stack balanced and owns nothing across Lua calls.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            let top = ffi::lua_gettop(state);
            let reply = resp::push_reply(state, data, checks::RESP_MAX_LEN);
            let described = match reply {
                Ok(Reply::Pushed(_)) => {
                    if ffi::lua_isnil(state, -1) != 0 {
                        describe(state, -2)
                    } else {
                        format!("E:{:?}", bytes_at(state, -1))
                    }
                }
                _ => String::new(),
            };
            ffi::lua_settop(state, top);
            outcome = Some(reply.map(|reply| (reply, described)));
        })
    }
    .expect("no Lua error");
    outcome.expect("the parser returned")
}

unsafe fn bytes_at(state: *mut lua_State, index: c_int) -> Vec<u8> {
    unsafe {
        let mut len = 0;
        let ptr = ffi::lua_tolstring(state, index, &mut len);
        std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_vec()
    }
}

/// A value pushed by the parser: `nil`, `i:<n>`, `s:<bytes>`, `e:<message>`
/// for an error inside an array, `[a,b,...]` for an array.
unsafe fn describe(state: *mut lua_State, index: c_int) -> String {
    unsafe {
        let index = ffi::lua_absindex(state, index);
        match ffi::lua_type(state, index) {
            ffi::LUA_TNIL => "nil".into(),
            ffi::LUA_TNUMBER => format!("i:{}", ffi::lua_tointegerx(state, index, std::ptr::null_mut())),
            ffi::LUA_TSTRING => format!("s:{:?}", bytes_at(state, index)),
            ffi::LUA_TTABLE => {
                if ffi::lua_getfield(state, index, c"err".as_ptr()) == ffi::LUA_TSTRING {
                    let text = format!("e:{:?}", bytes_at(state, -1));
                    ffi::lua_pop(state, 1);
                    return text;
                }
                ffi::lua_pop(state, 1);
                ffi::lua_getfield(state, index, c"n".as_ptr());
                let n = ffi::lua_tointegerx(state, -1, std::ptr::null_mut());
                ffi::lua_pop(state, 1);
                assert!(ffi::lua_checkstack(state, 4) != 0);
                let mut items = Vec::new();
                for at in 1..=n {
                    ffi::lua_rawgeti(state, index, at);
                    items.push(describe(state, -1));
                    ffi::lua_pop(state, 1);
                }
                format!("[{}]", items.join(","))
            }
            other => panic!("unexpected Lua type {other}"),
        }
    }
}

fn top_level(data: &[u8], frame: &RangeFrame) -> String {
    match frame {
        RangeFrame::Error((start, end)) => format!("E:{:?}", &data[*start..*end]),
        _ => theirs(data, frame),
    }
}

fn theirs(data: &[u8], frame: &RangeFrame) -> String {
    match frame {
        RangeFrame::SimpleString((start, end)) | RangeFrame::BulkString((start, end)) => {
            format!("s:{:?}", &data[*start..*end])
        }
        RangeFrame::Error((start, end)) => format!("e:{:?}", &data[*start..*end]),
        RangeFrame::Integer(value) => format!("i:{value}"),
        RangeFrame::Null => "nil".into(),
        RangeFrame::Array(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(|item| theirs(data, item))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
    }
}

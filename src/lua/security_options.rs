//! The `options` table of `mgr.listen` and `mgr.connect`: how a link is
//! secured (`secret`, `tls = {...}`, `handshake_timeout_ms`).

use std::ffi::{CStr, c_int};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mlua::ffi::{self, lua_State};

use super::raw::{Args, integer_arg, raw_field, with_bytes};
use crate::net::secure::auth::Secret;
use crate::net::secure::tls::{TlsConfig, TlsOptions};
use crate::net::secure::{DEFAULT_HANDSHAKE_TIMEOUT, Security};

/// Which side the options are for.
pub enum Side<'a> {
    /// A listener.
    Listen,
    /// A connection to this host (the default TLS server name).
    Connect(&'a str),
}

/// Reads `table[name]` (pushed, then popped) with `read`; None when nil.
///
/// # Safety
/// The [stack contract](super::raw#safety), with a table at `table`;
/// `read` keeps the contract and leaves the field on top.
unsafe fn field<T>(
    state: *mut lua_State,
    table: c_int,
    name: &CStr,
    read: impl FnOnce() -> Result<T, String>,
) -> Result<Option<T>, String> {
    // SAFETY: a table at `table` (the caller's promise); raw_field pushes one
    // value, popped after `read`.
    unsafe {
        let kind = raw_field(state, table, name);
        let value = if kind == ffi::LUA_TNIL {
            Ok(None)
        } else {
            read().map(Some)
        };
        ffi::lua_pop(state, 1);
        value
    }
}

/// A copy of the string on top of the stack, or an error naming `what`.
///
/// # Safety
/// The [stack contract](super::raw#safety), with a value on top.
unsafe fn top_string(state: *mut lua_State, what: &str) -> Result<Vec<u8>, String> {
    // SAFETY: a value on top (the caller's promise); its bytes are copied
    // before `with_bytes` returns.
    unsafe { with_bytes(state, -1, |bytes| bytes.map(<[u8]>::to_vec)) }
        .ok_or_else(|| format!("{what} must be a string"))
}

/// A path field of the `tls` table at `table`.
///
/// # Safety
/// The [stack contract](super::raw#safety), with a table at `table`.
unsafe fn path_field(state: *mut lua_State, table: c_int, name: &CStr) -> Result<Option<PathBuf>, String> {
    let what = format!("tls.{}", name.to_string_lossy());
    // SAFETY: the caller's contract; the field is on top while `read` runs.
    unsafe {
        field(state, table, name, || {
            let bytes = top_string(state, &what)?;
            String::from_utf8(bytes)
                .map(PathBuf::from)
                .map_err(|_| format!("{what} must be a UTF-8 path"))
        })
    }
}

/// The `tls` table at `table` (an absolute index) as options.
///
/// # Safety
/// The [stack contract](super::raw#safety), `table` an absolute index.
unsafe fn tls_options(state: *mut lua_State, table: c_int) -> Result<TlsOptions, String> {
    // SAFETY: the caller's contract; `table` is checked to be a table first,
    // and each field is on top while its reader runs.
    unsafe {
        if ffi::lua_type(state, table) != ffi::LUA_TTABLE {
            return Err("tls must be a table { cert, key, ca, server_name, require_client_cert }".into());
        }
        let server_name = field(state, table, c"server_name", || {
            String::from_utf8(top_string(state, "tls.server_name")?).map_err(|_| "tls.server_name must be text".into())
        })?;
        let require_client_cert = field(state, table, c"require_client_cert", || {
            Ok(ffi::lua_toboolean(state, -1) != 0)
        })?;
        Ok(TlsOptions {
            cert: path_field(state, table, c"cert")?,
            key: path_field(state, table, c"key")?,
            ca: path_field(state, table, c"ca")?,
            server_name,
            require_client_cert: require_client_cert.unwrap_or(false),
        })
    }
}

/// Reads the options table at argument `index` (absent or nil: no
/// security). The error names the field that is wrong.
///
/// # Safety
/// The [stack contract](super::raw#safety) (`args` vouches for the index).
pub unsafe fn security_arg(args: &Args, index: c_int, side: Side) -> Result<Option<Arc<Security>>, String> {
    if args.kind(index) != ffi::LUA_TTABLE {
        return Ok(None);
    }
    let state = args.state();
    // An argument index is already absolute.
    let table = index;
    // SAFETY: a table at an argument slot; each field is on top while its
    // reader runs, and popped after.
    unsafe {
        let secret = field(state, table, c"secret", || {
            let bytes = top_string(state, "secret")?;
            Secret::new(&bytes).ok_or_else(|| "secret must not be empty".to_string())
        })?;
        let tls = field(state, table, c"tls", || {
            let options = tls_options(state, ffi::lua_gettop(state))?;
            match side {
                Side::Listen => TlsConfig::server(&options),
                Side::Connect(host) => TlsConfig::client(&options, host),
            }
        })?;
        let timeout = field(state, table, c"handshake_timeout_ms", || {
            integer_arg(state, -1)
                .filter(|&ms| ms > 0)
                .map(|ms| Duration::from_millis(ms as u64))
                .ok_or_else(|| "handshake_timeout_ms must be a whole number > 0".to_string())
        })?;
        let security = Security {
            secret: secret.map(Arc::new),
            tls,
            handshake_timeout: timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
        };
        Ok(security.is_needed().then(|| Arc::new(security)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mlua::{Lua, Value};

    use super::*;

    /// What `security_arg` makes of the Lua expression `options` as argument 1.
    fn parse(options: &str, side: Side) -> Result<Option<Arc<Security>>, String> {
        let lua = Lua::new();
        let value: Value = lua.load(format!("return {options}")).eval().unwrap();
        let mut result = None;
        // SAFETY: a protected call with the options as argument 1, which
        // stays in place; the stack is checked to be left as it was.
        unsafe {
            lua.exec_raw::<()>(value, |state| {
                let args = Args::new(state);
                result = Some(security_arg(&args, 1, side));
                assert_eq!(ffi::lua_gettop(state), 1, "the stack is left as it was");
            })
        }
        .unwrap();
        result.unwrap()
    }

    fn error_of(options: &str) -> String {
        match parse(options, Side::Listen) {
            Err(error) => error,
            Ok(_) => panic!("{options} was accepted"),
        }
    }

    #[test]
    fn no_table_or_nothing_asked_means_no_security() {
        for options in ["nil", "1024", "{}", "{ backlog = 5, framing = 'raw' }"] {
            assert!(parse(options, Side::Listen).unwrap().is_none(), "{options}");
        }
    }

    #[test]
    fn a_secret_and_a_timeout_are_read() {
        let security = parse("{ secret = 's3cret', handshake_timeout_ms = 1500 }", Side::Listen)
            .unwrap()
            .expect("security");
        assert!(security.secret.is_some() && security.tls.is_none());
        assert_eq!(security.handshake_timeout, Duration::from_millis(1500));
        let default = parse("{ secret = 'x' }", Side::Connect("localhost")).unwrap().unwrap();
        assert_eq!(default.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
    }

    #[test]
    fn each_wrong_field_is_named() {
        let cases = [
            ("{ secret = '' }", "secret must not be empty"),
            ("{ secret = 5 }", "secret must be a string"),
            (
                "{ handshake_timeout_ms = 0 }",
                "handshake_timeout_ms must be a whole number > 0",
            ),
            (
                "{ handshake_timeout_ms = 1.5 }",
                "handshake_timeout_ms must be a whole number > 0",
            ),
            ("{ tls = 5 }", "tls must be a table"),
            ("{ tls = { cert = 1 } }", "tls.cert must be a string"),
            ("{ tls = { key = '\\255' } }", "tls.key must be a UTF-8 path"),
            ("{ tls = { server_name = '\\255' } }", "tls.server_name must be text"),
        ];
        for (options, expected) in cases {
            let error = error_of(options);
            assert!(error.starts_with(expected), "{options}: {error}");
        }
    }

    #[test]
    fn fields_behind_metatables_are_not_read() {
        // Options are plain tables: an __index that would answer is not asked.
        let options = "setmetatable({}, { __index = function() return 'from a metamethod' end })";
        assert!(parse(options, Side::Listen).unwrap().is_none());
    }
}

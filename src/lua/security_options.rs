//! The `options` table of `mgr.listen` and `mgr.connect`: how a link is
//! secured (`secret`, `tls = {...}`, `handshake_timeout_ms`).

use std::ffi::{CStr, c_int};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mlua::ffi::{self, lua_State};

use super::raw::{integer_arg, raw_field, string_arg};
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
unsafe fn field<T>(
    state: *mut lua_State,
    table: c_int,
    name: &CStr,
    read: impl FnOnce() -> Result<T, String>,
) -> Result<Option<T>, String> {
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

/// The string on top of the stack, or an error naming `what`.
unsafe fn top_string(state: *mut lua_State, what: &str) -> Result<Vec<u8>, String> {
    unsafe { string_arg(state, -1) }
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format!("{what} must be a string"))
}

unsafe fn path_field(state: *mut lua_State, table: c_int, name: &CStr) -> Result<Option<PathBuf>, String> {
    let what = format!("tls.{}", name.to_string_lossy());
    unsafe {
        field(state, table, name, || {
            let bytes = top_string(state, &what)?;
            String::from_utf8(bytes)
                .map(PathBuf::from)
                .map_err(|_| format!("{what} must be a UTF-8 path"))
        })
    }
}

unsafe fn tls_options(state: *mut lua_State, table: c_int) -> Result<TlsOptions, String> {
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

/// Reads the options table at `index` (absent or nil: no security). The
/// error names the field that is wrong.
pub unsafe fn security_arg(state: *mut lua_State, index: c_int, side: Side) -> Result<Option<Arc<Security>>, String> {
    unsafe {
        if ffi::lua_type(state, index) != ffi::LUA_TTABLE {
            return Ok(None);
        }
        let table = ffi::lua_absindex(state, index);
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

//! W7: the MessagePack codec on the Lua stack (`luna::codec`) against rmpv
//! going through a prebuilt `rmpv::Value`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use mlua::ffi;

/// A 10-key table with nested tables, about 120 bytes encoded.
const SMALL: &str = r#"
return {
    id = 1234567, name = "alice", level = 42, hp = 987.5, online = true,
    pos = { x = 10.5, y = -3.25, z = 0 }, tags = { "pvp", "guild", "vip" },
    guild = "knights", exp = 123456789, items = { 101, 202, 303 },
}
"#;

/// 1,000 records, about 27 KB encoded.
const LARGE: &str = r#"
local t = {}
for i = 1, 1000 do
    t[i] = { id = i, name = "user" .. i, lv = i % 100, ok = i % 3 == 0 }
end
return t
"#;

/// Timings of one shape.
pub struct Shape {
    pub name: &'static str,
    pub bytes: usize,
    pub encode_ns: f64,
    pub decode_ns: f64,
    pub rmpv_encode_ns: f64,
    pub rmpv_decode_ns: f64,
}

/// Runs `op` repeatedly for about `budget` (after a short warm-up) and
/// returns nanoseconds per call.
fn ns_per_op(budget: Duration, mut op: impl FnMut()) -> f64 {
    let warm_until = Instant::now() + budget / 5;
    while Instant::now() < warm_until {
        for _ in 0..16 {
            op();
        }
    }
    let start = Instant::now();
    let mut iterations: u64 = 0;
    let mut batch: u64 = 16;
    loop {
        for _ in 0..batch {
            op();
        }
        iterations += batch;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return elapsed.as_nanos() as f64 / iterations as f64;
        }
        batch = (batch * 2).min(4096);
    }
}

/// Measures both shapes, `budget` per timed operation.
pub fn run(budget: Duration) -> Result<Vec<Shape>> {
    Ok(vec![shape("small", SMALL, budget)?, shape("large", LARGE, budget)?])
}

fn shape(name: &'static str, source: &str, budget: Duration) -> Result<Shape> {
    let lua = mlua::Lua::new();
    let table: mlua::Table = lua.load(source).eval().context("build the table")?;
    let mut outcome: Result<(usize, f64, f64, Vec<u8>)> = Err(anyhow!("not run"));
    // SAFETY: inside exec_raw the table is argument 1 of a protected C call
    // on a valid state; encode_args reads stack index 1 only, decode_args
    // pushes its results, which are popped at once, so the stack stays balanced.
    unsafe {
        lua.exec_raw::<()>(table, |state| {
            outcome = (|| {
                let mut out = Vec::with_capacity(64 << 10);
                luna::codec::encode_args(state, 1, 1, &mut out).map_err(|e| anyhow!("encode: {e}"))?;
                let encoded = out.clone();
                let top = ffi::lua_gettop(state);
                let pushed = luna::codec::decode_args(state, &encoded).map_err(|e| anyhow!("decode: {e}"))?;
                if pushed != 1 {
                    bail!("decode pushed {pushed} values, expected 1");
                }
                ffi::lua_settop(state, top);
                let encode_ns = ns_per_op(budget, || {
                    out.clear();
                    let result = luna::codec::encode_args(state, 1, 1, &mut out);
                    black_box(result.is_ok());
                });
                let decode_ns = ns_per_op(budget, || {
                    let result = luna::codec::decode_args(state, black_box(&encoded));
                    black_box(result.is_ok());
                    ffi::lua_settop(state, top);
                });
                Ok((encoded.len(), encode_ns, decode_ns, encoded))
            })();
            ffi::lua_settop(state, 0);
        })
        .context("exec_raw")?;
    }
    let (bytes, encode_ns, decode_ns, encoded) = outcome?;

    // The same shape as a prebuilt rmpv::Value (parsed from luna's bytes, so
    // keys, order and integer/float kinds match exactly).
    let value = rmpv::decode::read_value(&mut &encoded[..]).context("rmpv parse")?;
    let mut out = Vec::with_capacity(64 << 10);
    rmpv::encode::write_value(&mut out, &value).context("rmpv encode")?;
    if out.len() != bytes {
        bail!("rmpv wrote {} bytes where luna wrote {bytes}", out.len());
    }
    let rmpv_encode_ns = ns_per_op(budget, || {
        out.clear();
        let result = rmpv::encode::write_value(&mut out, black_box(&value));
        black_box(result.is_ok());
    });
    let rmpv_decode_ns = ns_per_op(budget, || {
        let value = rmpv::decode::read_value(&mut black_box(&encoded[..]));
        black_box(value.is_ok());
    });
    Ok(Shape {
        name,
        bytes,
        encode_ns,
        decode_ns,
        rmpv_encode_ns,
        rmpv_decode_ns,
    })
}

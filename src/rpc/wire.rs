//! The RPC messages on the wire: a call is ("@call", session, reply_to,
//! method, ...) or ("@tcall", session, reply_to, trace, method, ...); an
//! answer is ("@ret", session, from_id, ok, ...); a one-way message with a
//! trace id is ("@trace", trace, msg, ...). The core writes these heads
//! itself and reads an answer's session and a message's trace id before
//! anything is decoded into Lua.

use rmp::encode::{write_array_len, write_bin_len, write_str, write_str_len, write_uint};

/// The elements of a call's head before the method: tag, session, reply_to (and trace).
pub fn head_len(traced: bool) -> u32 {
    if traced { 4 } else { 3 }
}

/// Writes the array header of a call with `values` elements after its head
/// (the method and its arguments), then the head.
pub fn write_call_head(out: &mut Vec<u8>, session: u32, reply_to: u32, trace: Option<&str>, values: u32) {
    // Writing to a Vec cannot fail.
    let _ = write_array_len(out, head_len(trace.is_some()) + values);
    let _ = write_str(out, if trace.is_some() { "@tcall" } else { "@call" });
    let _ = write_uint(out, u64::from(session));
    let _ = write_uint(out, u64::from(reply_to));
    if let Some(trace) = trace {
        let _ = write_str(out, trace);
    }
}

/// Writes the array header of a traced one-way message with `values`
/// elements after its head, then the head ("@trace", trace).
pub fn write_trace_head(out: &mut Vec<u8>, trace: &[u8], values: u32) {
    // Writing to a Vec cannot fail; the id is text as luna makes them, bytes otherwise.
    let _ = write_array_len(out, 2 + values);
    let _ = write_str(out, "@trace");
    let _ = if std::str::from_utf8(trace).is_ok() {
        write_str_len(out, trace.len() as u32)
    } else {
        write_bin_len(out, trace.len() as u32)
    };
    out.extend_from_slice(trace);
}

/// True when a message is ("@trace", trace, msg, ...): the core makes the
/// trace id current while the message's handler runs and hands it the rest.
pub fn is_traced(payload: &[u8]) -> bool {
    let mut rest = payload;
    matches!(rmp::decode::read_array_len(&mut rest), Ok(len) if len >= 3) && rest.starts_with(b"\xa6@trace")
}

/// True when a message is a call without a trace id ("@call", session,
/// reply_to, method, ...), which the core runs in a worker coroutine.
pub fn is_call(payload: &[u8]) -> bool {
    let mut rest = payload;
    matches!(rmp::decode::read_array_len(&mut rest), Ok(len) if len >= 4) && rest.starts_with(b"\xa5@call")
}

/// The session of an answer ("@ret", session, from_id, ok, ...); None for
/// any other message.
pub fn answer_session(payload: &[u8]) -> Option<u32> {
    let mut rest = payload;
    let len = rmp::decode::read_array_len(&mut rest).ok()?;
    let tag = rest.get(..5)?;
    if len < 4 || tag != b"\xa4@ret" {
        return None;
    }
    rest = &rest[5..];
    rmp::decode::read_int(&mut rest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(values: &[rmpv::Value]) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &rmpv::Value::Array(values.to_vec())).unwrap();
        out
    }

    #[test]
    fn a_call_head_is_what_a_peer_decodes() {
        let mut out = Vec::new();
        write_call_head(&mut out, 70_000, 3, Some("t-1"), 2);
        rmpv::encode::write_value(&mut out, &"add".into()).unwrap();
        rmpv::encode::write_value(&mut out, &1.into()).unwrap();
        let value = rmpv::decode::read_value(&mut out.as_slice()).unwrap();
        let expected: Vec<rmpv::Value> = vec![
            "@tcall".into(),
            70_000.into(),
            3.into(),
            "t-1".into(),
            "add".into(),
            1.into(),
        ];
        assert_eq!(value, rmpv::Value::Array(expected));
        let mut plain = Vec::new();
        write_call_head(&mut plain, 1, 0, None, 1);
        rmpv::encode::write_value(&mut plain, &"m".into()).unwrap();
        let value = rmpv::decode::read_value(&mut plain.as_slice()).unwrap();
        assert_eq!(
            value,
            rmpv::Value::Array(vec!["@call".into(), 1.into(), 0.into(), "m".into()])
        );
    }

    #[test]
    fn answers_are_recognised_by_tag_and_session_in_any_integer_form() {
        let answer = |session: rmpv::Value| message(&["@ret".into(), session, 7.into(), true.into()]);
        assert_eq!(answer_session(&answer(5.into())), Some(5));
        assert_eq!(answer_session(&answer(0x8000_0001u32.into())), Some(0x8000_0001));
        assert_eq!(answer_session(&answer(rmpv::Value::from(-1))), None, "not a session");
        assert_eq!(answer_session(&answer("5".into())), None);
        assert_eq!(answer_session(&message(&["@ret".into(), 5.into()])), None, "too short");
        assert_eq!(
            answer_session(&message(&["@call".into(), 5.into(), 0.into(), "m".into()])),
            None
        );
        assert_eq!(answer_session(&[0x94, 0xa4, b'@']), None, "truncated");
        assert_eq!(answer_session(&[]), None);
    }

    #[test]
    fn a_trace_head_is_what_a_peer_decodes_and_is_recognised() {
        let mut out = Vec::new();
        write_trace_head(&mut out, b"00ab12cd00000001", 2);
        rmpv::encode::write_value(&mut out, &"echo".into()).unwrap();
        rmpv::encode::write_value(&mut out, &7.into()).unwrap();
        assert!(is_traced(&out));
        let value = rmpv::decode::read_value(&mut out.as_slice()).unwrap();
        let expected: Vec<rmpv::Value> = vec!["@trace".into(), "00ab12cd00000001".into(), "echo".into(), 7.into()];
        assert_eq!(value, rmpv::Value::Array(expected));
        assert!(
            !is_traced(&message(&["@trace".into(), "id".into()])),
            "no message after the id"
        );
        assert!(!is_traced(&message(&["echo".into(), "@trace".into(), 1.into()])));
        assert!(!is_traced(&[]));
    }

    #[test]
    fn calls_are_recognised_by_tag_and_length() {
        let mut out = Vec::new();
        write_call_head(&mut out, 9, 0, None, 1);
        rmpv::encode::write_value(&mut out, &"add".into()).unwrap();
        assert!(is_call(&out));
        let mut traced = Vec::new();
        write_call_head(&mut traced, 9, 0, Some("t"), 1);
        rmpv::encode::write_value(&mut traced, &"add".into()).unwrap();
        assert!(!is_call(&traced), "@tcall goes to the script");
        assert!(!is_call(&message(&["@call".into(), 1.into(), 0.into()])), "no method");
        assert!(!is_call(&message(&["@ret".into(), 1.into(), 0.into(), true.into()])));
    }
}

//! The RPC messages on the wire: a call is ("@call", session, reply_to,
//! method, ...) or ("@tcall", session, reply_to, trace, method, ...); an
//! answer is ("@ret", session, from_id, ok, ...); a one-way message with a
//! trace id is ("@trace", trace, msg, ...). The core writes these heads
//! itself and reads an answer's session and a message's trace id before
//! anything is decoded into Lua.

use rmp::encode::{write_array_len, write_bin_len, write_bool, write_str, write_str_len, write_uint};

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

/// Writes the array header of an answer with `values` results after its
/// head, then the head ("@ret", session, from_id, ok).
pub fn write_answer_head(out: &mut Vec<u8>, session: u32, from_id: u32, ok: bool, values: u32) {
    // Writing to a Vec cannot fail.
    let _ = write_array_len(out, 4 + values);
    let _ = write_str(out, "@ret");
    let _ = write_uint(out, u64::from(session));
    let _ = write_uint(out, u64::from(from_id));
    let _ = write_bool(out, ok);
}

/// Writes the array header of a traced one-way message with `values`
/// elements after its head, then the head ("@trace", trace).
pub fn write_trace_head(out: &mut Vec<u8>, trace: &[u8], values: u32) {
    // Writing to a Vec cannot fail; the id is text as luna makes them, bytes otherwise.
    let _ = write_array_len(out, 2 + values);
    out.extend_from_slice(b"\xa6@trace");
    let _ = if trace.is_ascii() || std::str::from_utf8(trace).is_ok() {
        write_str_len(out, trace.len() as u32)
    } else {
        write_bin_len(out, trace.len() as u32)
    };
    out.extend_from_slice(trace);
}

/// A traced one-way message ("@trace", trace, msg, ...): what the core
/// reads before it decodes the message itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHead<'a> {
    /// The trace id (a string or bytes on the wire).
    pub trace: &'a [u8],
    /// The message's values: how many, and where they start.
    pub values: u32,
    /// Offset of the first value in the payload.
    pub values_at: usize,
}

/// A traced message's head after its tag: the id and where the message
/// starts. None when the id is not a string (or bytes) or is cut short.
fn trace_after_tag<'a>(len: u32, rest: &'a [u8], payload: &[u8]) -> Option<TraceHead<'a>> {
    let (&marker, after) = rest.split_first()?;
    // The id's length: a fixstr, or str/bin 8, 16 or 32 (length bytes to skip).
    let (trace_len, skip): (usize, usize) = match marker {
        0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
        0xd9 | 0xc4 => (usize::from(*after.first()?), 1),
        0xda | 0xc5 => (usize::from(u16::from_be_bytes(after.get(..2)?.try_into().ok()?)), 2),
        0xdb | 0xc6 => (u32::from_be_bytes(after.get(..4)?.try_into().ok()?) as usize, 4),
        _ => return None,
    };
    let trace = after.get(skip..skip.checked_add(trace_len)?)?;
    Some(TraceHead {
        trace,
        values: len - 2,
        values_at: payload.len() - after.len() + skip + trace_len,
    })
}

/// A call without a trace id ("@call", session, reply_to, method, ...):
/// what the core reads before it decodes the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallHead {
    /// The caller's session.
    pub session: u32,
    /// Where the answer goes: a service id, or 0 for the stream the call came on.
    pub reply_to: u32,
    /// The method and its arguments: how many, and where they start.
    pub values: u32,
    /// Offset of the method in the payload.
    pub values_at: usize,
}

/// A call's head after its tag: session and reply_to.
fn call_after_tag(len: u32, mut rest: &[u8], payload: &[u8]) -> Option<CallHead> {
    let session = rmp::decode::read_int(&mut rest).ok()?;
    let reply_to = rmp::decode::read_int(&mut rest).ok()?;
    Some(CallHead {
        session,
        reply_to,
        values: len - 3,
        values_at: payload.len() - rest.len(),
    })
}

/// An answer ("@ret", session, from_id, ok, ...): what the core reads
/// before it decodes the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerHead {
    /// The session of the call it answers.
    pub session: u32,
    /// True for results, false for an error message.
    pub ok: bool,
    /// The results: how many, and where they start.
    pub results: u32,
    /// Offset of the first result in the payload.
    pub results_at: usize,
}

/// An answer's head after its tag: session, from_id (not kept) and ok.
fn answer_after_tag(len: u32, mut rest: &[u8], payload: &[u8]) -> Option<AnswerHead> {
    let session = rmp::decode::read_int(&mut rest).ok()?;
    let _from: i64 = rmp::decode::read_int(&mut rest).ok()?;
    let ok = rmp::decode::read_bool(&mut rest).ok()?;
    Some(AnswerHead {
        session,
        ok,
        results: len - 4,
        results_at: payload.len() - rest.len(),
    })
}

/// What the core makes of a message before any of it is decoded into Lua.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head<'a> {
    /// An answer to a call: the core resumes the caller when the session is its own.
    Answer(AnswerHead),
    /// A call without a trace id: the core runs it in a worker coroutine.
    Call(CallHead),
    /// A traced one-way message: the handler runs with the id current.
    Trace(TraceHead<'a>),
    /// Anything else (including a malformed head): the stream's handler
    /// gets the whole message.
    Other,
}

/// Reads the head of a message once: its array length and tag, then what
/// that kind of message carries before its values.
pub fn head(payload: &[u8]) -> Head<'_> {
    let mut rest = payload;
    let Ok(len) = rmp::decode::read_array_len(&mut rest) else {
        return Head::Other;
    };
    let parsed = if let Some(rest) = rest.strip_prefix(b"\xa4@ret").filter(|_| len >= 4) {
        answer_after_tag(len, rest, payload).map(Head::Answer)
    } else if let Some(rest) = rest.strip_prefix(b"\xa5@call").filter(|_| len >= 4) {
        call_after_tag(len, rest, payload).map(Head::Call)
    } else if let Some(rest) = rest.strip_prefix(b"\xa6@trace").filter(|_| len >= 3) {
        trace_after_tag(len, rest, payload).map(Head::Trace)
    } else {
        None
    };
    parsed.unwrap_or(Head::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_head(payload: &[u8]) -> Option<CallHead> {
        match head(payload) {
            Head::Call(call) => Some(call),
            _ => None,
        }
    }

    fn answer_head(payload: &[u8]) -> Option<AnswerHead> {
        match head(payload) {
            Head::Answer(answer) => Some(answer),
            _ => None,
        }
    }

    fn trace_head(payload: &[u8]) -> Option<TraceHead<'_>> {
        match head(payload) {
            Head::Trace(trace) => Some(trace),
            _ => None,
        }
    }

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
    fn an_answer_head_is_what_a_peer_decodes_and_is_recognised() {
        let mut out = Vec::new();
        write_answer_head(&mut out, 300, 0x0001_0002, true, 1);
        rmpv::encode::write_value(&mut out, &"r".into()).unwrap();
        assert_eq!(
            answer_head(&out).map(|h| (h.session, h.ok, h.results)),
            Some((300, true, 1))
        );
        let value = rmpv::decode::read_value(&mut out.as_slice()).unwrap();
        let expected: Vec<rmpv::Value> = vec!["@ret".into(), 300.into(), 0x0001_0002.into(), true.into(), "r".into()];
        assert_eq!(value, rmpv::Value::Array(expected));
    }

    #[test]
    fn answers_are_recognised_by_tag_session_and_ok_in_any_integer_form() {
        let answer =
            |session: rmpv::Value, ok: rmpv::Value| message(&["@ret".into(), session, 7.into(), ok, "r".into()]);
        let head = answer_head(&answer(5.into(), true.into())).unwrap();
        assert_eq!((head.session, head.ok, head.results), (5, true, 1));
        let bytes = answer(0x8000_0001u32.into(), false.into());
        let head = answer_head(&bytes).unwrap();
        assert_eq!((head.session, head.ok), (0x8000_0001, false));
        assert_eq!(&bytes[head.results_at..], b"\xa1r", "the results start after the head");
        assert_eq!(
            answer_head(&answer(rmpv::Value::from(-1), true.into())),
            None,
            "not a session"
        );
        assert_eq!(answer_head(&answer("5".into(), true.into())), None);
        assert_eq!(answer_head(&answer(5.into(), 1.into())), None, "ok is a boolean");
        assert_eq!(answer_head(&message(&["@ret".into(), 5.into()])), None, "too short");
        assert_eq!(
            answer_head(&message(&["@call".into(), 5.into(), 0.into(), "m".into()])),
            None
        );
        assert_eq!(answer_head(&[0x94, 0xa4, b'@']), None, "truncated");
        assert_eq!(answer_head(&[]), None);
    }

    #[test]
    fn a_trace_head_is_what_a_peer_decodes_and_is_recognised() {
        let mut out = Vec::new();
        write_trace_head(&mut out, b"00ab12cd00000001", 2);
        rmpv::encode::write_value(&mut out, &"echo".into()).unwrap();
        rmpv::encode::write_value(&mut out, &7.into()).unwrap();
        let head = trace_head(&out).unwrap();
        assert_eq!((head.trace, head.values), (&b"00ab12cd00000001"[..], 2));
        assert_eq!(&out[head.values_at..], b"\xa4echo\x07", "the message follows the head");
        let value = rmpv::decode::read_value(&mut out.as_slice()).unwrap();
        let expected: Vec<rmpv::Value> = vec!["@trace".into(), "00ab12cd00000001".into(), "echo".into(), 7.into()];
        assert_eq!(value, rmpv::Value::Array(expected));
        let long = "t".repeat(300);
        let bytes = message(&["@trace".into(), long.as_str().into(), "m".into()]);
        let head = trace_head(&bytes).unwrap();
        assert_eq!(
            (head.trace.len(), &bytes[head.values_at..]),
            (300, &b"\xa1m"[..]),
            "a str16 id"
        );
        let binary = message(&["@trace".into(), rmpv::Value::Binary(vec![1, 2]), "m".into()]);
        assert_eq!(trace_head(&binary).map(|h| h.trace), Some(&[1u8, 2][..]), "a bin id");
        assert_eq!(
            trace_head(&message(&["@trace".into(), "id".into()])),
            None,
            "no message after the id"
        );
        assert_eq!(
            trace_head(&message(&["@trace".into(), 5.into(), "m".into()])),
            None,
            "the id is a string"
        );
        assert_eq!(trace_head(&message(&["echo".into(), "@trace".into(), 1.into()])), None);
        assert_eq!(
            trace_head(&[0x93, 0xa6, b'@', b't', b'r', b'a', b'c', b'e', 0xa5, b'x']),
            None,
            "truncated id"
        );
        assert_eq!(trace_head(&[]), None);
    }

    #[test]
    fn calls_are_recognised_by_tag_and_length() {
        let mut out = Vec::new();
        write_call_head(&mut out, 9, 0x0002_0001, None, 2);
        rmpv::encode::write_value(&mut out, &"add".into()).unwrap();
        rmpv::encode::write_value(&mut out, &1.into()).unwrap();
        let head = call_head(&out).unwrap();
        assert_eq!((head.session, head.reply_to, head.values), (9, 0x0002_0001, 2));
        assert_eq!(
            &out[head.values_at..],
            b"\xa3add\x01",
            "the method and its arguments follow the head"
        );
        let mut traced = Vec::new();
        write_call_head(&mut traced, 9, 0, Some("t"), 1);
        rmpv::encode::write_value(&mut traced, &"add".into()).unwrap();
        assert_eq!(call_head(&traced), None, "@tcall goes to the script");
        assert_eq!(
            call_head(&message(&["@call".into(), 1.into(), 0.into()])),
            None,
            "no method"
        );
        assert_eq!(
            call_head(&message(&["@ret".into(), 1.into(), 0.into(), true.into()])),
            None
        );
    }
}

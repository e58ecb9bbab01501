//! One log line as bytes: RFC 3339 UTC time with `Z`, level, optional
//! process name, message; as text or as one JSON object.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Level;

/// How lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `2026-12-01T22:52:16.123Z INFO  [name] message`
    Text,
    /// `{"time":"2026-12-01T22:52:16.123Z","level":"info","name":"...","msg":"..."}`
    Json,
}

impl Format {
    /// Parses `text` or `json` (any case).
    pub fn parse(text: &str) -> Option<Format> {
        match text.to_ascii_lowercase().as_str() {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Appends one complete line (ending in `\n`) to `out`, stamped with the time now.
pub fn format_line(out: &mut Vec<u8>, format: Format, level: Level, name: Option<&str>, message: &str) {
    format_line_at(out, format, SystemTime::now(), level, name, message)
}

/// [`format_line`] with a given time.
pub fn format_line_at(
    out: &mut Vec<u8>,
    format: Format,
    time: SystemTime,
    level: Level,
    name: Option<&str>,
    message: &str,
) {
    match format {
        Format::Text => {
            push_time(out, time);
            out.push(b' ');
            let label = level.label().as_bytes();
            out.extend_from_slice(label);
            out.extend(std::iter::repeat_n(b' ', 6 - label.len()));
            if let Some(name) = name {
                out.push(b'[');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"] ");
            }
            out.extend_from_slice(message.as_bytes());
        }
        Format::Json => {
            out.extend_from_slice(b"{\"time\":\"");
            push_time(out, time);
            out.extend_from_slice(b"\",\"level\":\"");
            out.extend_from_slice(level.name().as_bytes());
            if let Some(name) = name {
                out.extend_from_slice(b"\",\"name\":\"");
                push_json_escaped(out, name);
            }
            out.extend_from_slice(b"\",\"msg\":\"");
            push_json_escaped(out, message);
            out.extend_from_slice(b"\"}");
        }
    }
    out.push(b'\n');
}

thread_local! {
    /// The formatted `YYYY-MM-DDTHH:MM:SS` of the last second seen on this thread.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
fn push_time(out: &mut Vec<u8>, time: SystemTime) {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (cached_secs, mut text) = SECOND.get();
    if cached_secs != secs {
        let mut fresh = Vec::with_capacity(19);
        push_seconds(&mut fresh, secs);
        text.copy_from_slice(&fresh);
        SECOND.set((secs, text));
    }
    out.extend_from_slice(&text);
    out.push(b'.');
    push_digits(out, u64::from(since_epoch.subsec_millis()), 3);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of seconds since the epoch.
fn push_seconds(out: &mut Vec<u8>, secs: u64) {
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    push_digits(out, year.clamp(0, 9999) as u64, 4);
    out.push(b'-');
    push_digits(out, u64::from(month), 2);
    out.push(b'-');
    push_digits(out, u64::from(day), 2);
    out.push(b'T');
    push_digits(out, of_day / 3600, 2);
    out.push(b':');
    push_digits(out, of_day / 60 % 60, 2);
    out.push(b':');
    push_digits(out, of_day % 60, 2);
}

fn push_digits(out: &mut Vec<u8>, value: u64, width: u32) {
    let mut div = 10u64.pow(width - 1);
    while div > 0 {
        out.push(b'0' + (value / div % 10) as u8);
        div /= 10;
    }
}

/// JSON string escaping (RFC 8259): quotes, backslashes and control characters.
fn push_json_escaped(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &byte in text.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 | 0x7f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 15)]);
            }
            _ => out.push(byte),
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn line(format: Format, level: Level, name: Option<&str>, message: &str) -> String {
        let mut out = Vec::new();
        // 2026-12-01T22:52:16.123Z
        let time = UNIX_EPOCH + Duration::from_millis(1_796_165_536_123);
        format_line_at(&mut out, format, time, level, name, message);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn cached_seconds_change() {
        let mut out = Vec::new();
        let base = UNIX_EPOCH + Duration::from_millis(1_796_165_536_999);
        push_time(&mut out, base);
        push_time(&mut out, base + Duration::from_millis(1));
        push_time(&mut out, base + Duration::from_secs(86_400));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-12-01T22:52:16.999Z2026-12-01T22:52:17.000Z2026-12-02T22:52:16.999Z"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_778), (2026, 11, 21));
    }

    #[test]
    fn text_lines() {
        assert_eq!(
            line(Format::Text, Level::Info, None, "hello"),
            "2026-12-01T22:52:16.123Z INFO  hello\n"
        );
        assert_eq!(
            line(Format::Text, Level::Error, Some("2.1"), "boom"),
            "2026-12-01T22:52:16.123Z ERROR [2.1] boom\n"
        );
    }

    #[test]
    fn json_lines() {
        assert_eq!(
            line(Format::Json, Level::Warn, Some("a\"b"), "x\\y\n\u{1}é"),
            "{\"time\":\"2026-12-01T22:52:16.123Z\",\"level\":\"warn\",\"name\":\"a\\\"b\",\
             \"msg\":\"x\\\\y\\n\\u0001é\"}\n"
        );
        assert_eq!(
            line(Format::Json, Level::Debug, None, ""),
            "{\"time\":\"2026-12-01T22:52:16.123Z\",\"level\":\"debug\",\"msg\":\"\"}\n"
        );
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("xml"), None);
    }
}

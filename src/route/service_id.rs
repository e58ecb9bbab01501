//! Service ids: `group << 16 | index`, written `"group.index"`.

/// Builds an id from a group (1..=255) and an index (1..=65535).
pub fn make(group: u32, index: u32) -> u32 {
    group << 16 | index
}

/// The group part of an id.
pub fn group(id: u32) -> u32 {
    id >> 16
}

/// The index part of an id.
pub fn index(id: u32) -> u32 {
    id & 0xffff
}

/// True when group and index are both in range.
pub fn is_valid(id: u32) -> bool {
    (1..=super::MAX_GROUP).contains(&group(id)) && index(id) != 0
}

/// The `"group.index"` form.
pub fn name(id: u32) -> String {
    format!("{}.{}", group(id), index(id))
}

/// Parses `"group.index"`; `None` unless both parts are in range.
pub fn parse(text: &str) -> Option<u32> {
    let (group, index) = text.split_once('.')?;
    let group: u32 = group.trim().parse().ok()?;
    let index: u32 = index.trim().parse().ok()?;
    if index > 0xffff {
        return None;
    }
    let id = make(group, index);
    (group <= super::MAX_GROUP && is_valid(id)).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id = make(2, 1);
        assert_eq!(id, 131_073);
        assert_eq!((group(id), index(id)), (2, 1));
        assert_eq!(name(id), "2.1");
        assert_eq!(parse("2.1"), Some(id));
    }

    #[test]
    fn rejects_out_of_range() {
        assert_eq!(parse("0.1"), None);
        assert_eq!(parse("2.0"), None);
        assert_eq!(parse("256.1"), None);
        assert_eq!(parse("2.65536"), None);
        assert_eq!(parse("2"), None);
        assert_eq!(parse("a.b"), None);
    }
}

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

/// True for a group number 1..=255.
pub fn is_valid_group(group: i64) -> bool {
    (1..=i64::from(super::MAX_GROUP)).contains(&group)
}

/// The id of `group` (1..=255) and `index` (1..=65535), if both are in range.
pub fn from_parts(group: i64, index: i64) -> Option<u32> {
    (is_valid_group(group) && (1..=0xffff).contains(&index)).then(|| make(group as u32, index as u32))
}

/// True when group and index are both in range.
pub fn is_valid(id: u32) -> bool {
    is_valid_group(i64::from(group(id))) && index(id) != 0
}

/// The `"group.index"` form.
pub fn name(id: u32) -> String {
    format!("{}.{}", group(id), index(id))
}

/// Parses `"group.index"`; `None` unless both parts are in range.
pub fn parse(text: &str) -> Option<u32> {
    let (group, index) = text.split_once('.')?;
    from_parts(group.trim().parse().ok()?, index.trim().parse().ok()?)
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

//! Every number a configuration gives has a range, checked when the file
//! is loaded and when it is reloaded; a value outside it is an error that
//! names the key, the range and the value. The ranges are also what keeps
//! the arithmetic on configured values from overflowing (a time added to
//! now, a queue allocated). Long values are cut in messages, so that a
//! refused file never echoes megabytes back.

use std::fmt::Display;
use std::ops::RangeInclusive;

/// `key = value` within `range`, or an error saying so.
pub fn within<T: PartialOrd + Display>(
    key: &str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{key} must be {} to {}, not {value}",
            range.start(),
            range.end()
        ))
    }
}

/// The most of a value a message quotes.
pub const QUOTED: usize = 64;

/// `text` for a message: debug-quoted (control characters escaped), and
/// cut after [`QUOTED`] characters with a count of the rest.
pub fn quoted(text: &str) -> String {
    let count = text.chars().count();
    if count <= QUOTED {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(QUOTED).collect();
    format!("{head:?}... ({} more characters)", count - QUOTED)
}

/// A message cut after `limit` bytes (at a character boundary), with a
/// count of the rest.
pub fn cut(message: &str, limit: usize) -> String {
    if message.len() <= limit {
        return message.to_owned();
    }
    let mut end = limit;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}... ({} more bytes)",
        &message[..end],
        message.len() - end
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_key_the_range_and_the_value() {
        assert!(within("queue", 5, 1..=10).is_ok());
        assert_eq!(
            within("queue", 0, 1..=10).unwrap_err(),
            "queue must be 1 to 10, not 0"
        );
        assert!(within("x", u64::MAX, 0..=86_400).is_err());
    }

    #[test]
    fn long_values_are_cut_and_control_characters_escaped() {
        assert_eq!(quoted("d\t1"), "\"d\\t1\"");
        let long = "é".repeat(1000);
        let q = quoted(&long);
        assert!(q.ends_with("(936 more characters)") && q.len() < 200, "{q}");
        let c = cut(&long, 101);
        assert!(
            c.starts_with(&"é".repeat(50)) && c.ends_with("(1900 more bytes)"),
            "{c}"
        );
        assert_eq!(cut("short", 10), "short");
    }
}

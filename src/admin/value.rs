//! Stored values shown safely: as text when they are valid UTF-8, else as
//! hex.
//!
//! Pure. Owns [`show_value`] and [`value_json`]. Invariants: every byte
//! string is shown losslessly; in text a non-UTF-8 value (or one holding
//! control characters other than tab and newline) prints as `0x` + hex;
//! in JSON `value_hex` is always there and `value` (a string) only for
//! valid UTF-8.

/// The value for a terminal.
pub fn show_value(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t') =>
        {
            text.to_string()
        }
        _ => format!("0x{}", hex(bytes)),
    }
}

/// Lower-case hex, two digits per byte.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `value_hex` always, `value` when the bytes are valid UTF-8, into `obj`.
pub fn value_json(bytes: &[u8], obj: &mut serde_json::Map<String, serde_json::Value>) {
    obj.insert("value_hex".into(), hex(bytes).into());
    if let Ok(text) = std::str::from_utf8(bytes) {
        obj.insert("value".into(), text.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_shows_as_text_and_binary_as_hex() {
        assert_eq!(show_value(b"hello\tworld\n"), "hello\tworld\n");
        assert_eq!(show_value("é".as_bytes()), "é");
        assert_eq!(show_value(&[0xff, 0x00, 0x10]), "0xff0010");
        assert_eq!(show_value(b"bell\x07"), "0x62656c6c07");
        assert_eq!(show_value(b""), "");
        let mut obj = serde_json::Map::new();
        value_json(&[0xff, 0xfe], &mut obj);
        assert_eq!(obj["value_hex"], "fffe");
        assert!(!obj.contains_key("value"));
        value_json(b"ok", &mut obj);
        assert_eq!(obj["value"], "ok");
    }
}

//! Sizes given on the command line (`gc --max-bytes SIZE`): a byte count with an
//! optional binary suffix.

/// `SIZE`: a byte count with an optional binary suffix `K`, `M` or `G` (any case).
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.as_bytes().last()?.to_ascii_uppercase() {
        b'K' => (&text[..text.len() - 1], 1u64 << 10),
        b'M' => (&text[..text.len() - 1], 1 << 20),
        b'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// The flag table's check for `--max-bytes SIZE`.
pub fn check_size(text: &str) -> Result<(), String> {
    match parse_size(text) {
        Some(_) => Ok(()),
        None => Err(format!("invalid value '{text}': expected a size in bytes, optionally with K, M or G")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("2k"), Some(2048));
        assert_eq!(parse_size("3M"), Some(3 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        for bad in ["", "K", "1.5M", "-1", "1T", "1 M", "99999999999999999999G"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}

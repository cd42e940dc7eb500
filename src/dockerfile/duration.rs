//! Go's `time.ParseDuration`, for HEALTHCHECK's `--interval`, `--timeout`, `--start-period` and
//! `--start-interval`, so that every value Docker accepts is accepted here with the same meaning.

/// Nanoseconds in each unit Go accepts.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // µ (micro sign)
    ("\u{3bc}s", 1_000), // μ (Greek mu)
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` (or a bare `0`) into nanoseconds. The error is a
/// short reason; the caller adds the flag and value.
pub(crate) fn parse_go_duration(text: &str) -> Result<i64, &'static str> {
    let (neg, mut s) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("invalid duration");
    }
    let limit: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err("invalid duration");
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u128 = 0;
        for b in s[..int_len].bytes() {
            whole = whole * 10 + u128::from(b - b'0');
            if whole > limit {
                return Err("invalid duration (too large)");
            }
        }
        s = &s[int_len..];
        let mut frac: u128 = 0;
        let mut scale: u128 = 1;
        let mut frac_len = 0;
        if let Some(rest) = s.strip_prefix('.') {
            frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            for b in rest[..frac_len].bytes() {
                // Go stops accumulating digits once they would overflow, but still consumes them.
                if frac < limit / 10 {
                    frac = frac * 10 + u128::from(b - b'0');
                    scale *= 10;
                }
            }
            s = &rest[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err("invalid duration");
        }
        let unit_len = s
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err("missing unit in duration");
        }
        let unit_text = &s[..unit_len];
        s = &s[unit_len..];
        let Some(&(_, unit)) = UNITS.iter().find(|(name, _)| *name == unit_text) else {
            return Err("unknown unit in duration (use ns, us, ms, s, m or h)");
        };
        let mut value = whole
            .checked_mul(unit)
            .filter(|v| *v <= limit)
            .ok_or("invalid duration (too large)")?;
        if frac > 0 {
            // Go computes this part in floating point; so do we, for the same rounding.
            value += (frac as f64 * (unit as f64 / scale as f64)) as u128;
            if value > limit {
                return Err("invalid duration (too large)");
            }
        }
        total += value;
        if total > limit {
            return Err("invalid duration (too large)");
        }
    }
    if neg {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    i64::try_from(total).map_err(|_| "invalid duration (too large)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("30s", 30_000_000_000),
            ("1m30s", 90_000_000_000),
            ("500ms", 500_000_000),
            ("1h", 3_600_000_000_000),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("10us", 10_000),
            ("10\u{b5}s", 10_000),
            ("10\u{3bc}s", 10_000),
            ("7ns", 7),
            ("+2m", 120_000_000_000),
            ("-3s", -3_000_000_000),
            ("1h2m3s4ms", 3_723_004_000_000),
            ("0s", 0),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration(input), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn rejected() {
        let cases: &[(&str, &str)] = &[
            ("", "invalid duration"),
            ("-", "invalid duration"),
            ("30", "missing unit in duration"),
            ("s", "invalid duration"),
            (".s", "invalid duration"),
            ("1d", "unknown unit in duration (use ns, us, ms, s, m or h)"),
            ("1S", "unknown unit in duration (use ns, us, ms, s, m or h)"),
            (
                "1 s",
                "unknown unit in duration (use ns, us, ms, s, m or h)",
            ),
            ("9223372036854775808ns", "invalid duration (too large)"),
            ("3000000h", "invalid duration (too large)"),
            (
                "99999999999999999999999999999999999999999s",
                "invalid duration (too large)",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration(input), Err(*want), "input {input:?}");
        }
    }
}

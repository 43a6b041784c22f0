//! Text forms of the apimachinery types that have their own Go `MarshalJSON`.
//!
//! `metav1.Time` prints RFC 3339 in UTC with whole seconds, `MicroTime` with exactly six
//! fractional digits, and `metav1.Duration` Go's `time.Duration.String()` (`1h0m0s`). These are
//! pure functions of numbers and strings, shared by the decoder and the encoder.

use jiff::Timestamp;

/// `seconds` since the epoch → `2006-01-02T15:04:05Z`.
pub(crate) fn format_time(seconds: i64) -> Option<String> {
    let ts = Timestamp::new(seconds, 0).ok()?;
    Some(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// `seconds`, `nanos` → `2006-01-02T15:04:05.000000Z` (nanos truncated to µs, as Go does).
pub(crate) fn format_micro_time(seconds: i64, nanos: i32) -> Option<String> {
    let ts = Timestamp::new(seconds, 0).ok()?;
    let micros = nanos.clamp(0, 999_999_999) / 1000;
    Some(format!("{}.{micros:06}Z", ts.strftime("%Y-%m-%dT%H:%M:%S")))
}

/// RFC 3339 text (any offset) → (seconds, nanos), as Go's `time.Parse(time.RFC3339, …)` reads it.
pub(crate) fn parse_time(text: &str) -> Option<(i64, i32)> {
    let ts: Timestamp = text.parse().ok()?;
    Some((ts.as_second(), ts.subsec_nanosecond()))
}

/// Go's `time.Duration.String()`.
pub(crate) fn format_duration(nanos: i64) -> String {
    let negative = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        if u == 0 {
            return "0s".to_string();
        }
        let (prec, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let frac = fraction(&mut u, prec);
        out = format!("{u}{frac}{unit}");
    } else {
        let frac = fraction(&mut u, 9);
        out.push_str(&format!("{}{frac}s", u % 60));
        u /= 60;
        if u > 0 {
            out = format!("{}m{out}", u % 60);
            u /= 60;
            if u > 0 {
                out = format!("{u}h{out}");
            }
        }
    }
    if negative {
        out.insert(0, '-');
    }
    out
}

/// Takes `prec` digits off `v` and renders them as `.ddd` without trailing zeros.
fn fraction(v: &mut u64, prec: u32) -> String {
    let mut digits = Vec::new();
    let mut printing = false;
    for _ in 0..prec {
        let d = *v % 10;
        printing |= d != 0;
        if printing {
            digits.push(char::from(b'0' + d as u8));
        }
        *v /= 10;
    }
    if digits.is_empty() {
        return String::new();
    }
    digits.push('.');
    digits.into_iter().rev().collect()
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`.
pub(crate) fn parse_duration(text: &str) -> Option<i64> {
    let (negative, mut rest) = match (text.strip_prefix('-'), text.strip_prefix('+')) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, next) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut part = whole.checked_mul(scale)?;
        let mut div: i128 = 1;
        for d in frac.bytes().take(18) {
            div *= 10;
            part = part.checked_add(i128::from(d - b'0') * scale / div)?;
        }
        total = total.checked_add(part)?;
        rest = next;
    }
    let total = if negative { -total } else { total };
    i64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(
            format_time(1498581334).as_deref(),
            Some("2017-06-27T16:35:34Z")
        );
        assert_eq!(
            format_micro_time(1498581334, 123_456_789).as_deref(),
            Some("2017-06-27T16:35:34.123456Z")
        );
        assert_eq!(
            format_micro_time(0, 0).as_deref(),
            Some("1970-01-01T00:00:00.000000Z")
        );
        assert_eq!(parse_time("2017-06-27T16:35:34Z"), Some((1498581334, 0)));
        assert_eq!(
            parse_time("2017-06-27T18:35:34+02:00"),
            Some((1498581334, 0))
        );
        assert_eq!(
            parse_time("2017-06-27T16:35:34.5Z"),
            Some((1498581334, 500_000_000))
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn durations_match_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (4_000_000_000 + 5 * 60_000_000_000, "5m4s"),
            (-90_000_000_000, "-1m30s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(format_duration(nanos), text);
            assert_eq!(parse_duration(text), Some(nanos), "{text}");
        }
    }

    #[test]
    fn duration_parse_forms() {
        assert_eq!(parse_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        for bad in ["", "1", "h", "1x", "-", "9999999999999h", ".s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}

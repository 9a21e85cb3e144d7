//! Number parsing and formatting exactly as Redis replies show them.

/// Formats a double the way Redis 7.0 replies with one (`ZSCORE`, `ZINCRBY`, scores in RESP2):
/// C's `%.17g`, with `inf`/`-inf`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return "0".into();
    }
    const PRECISION: i32 = 17;
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, d);
    let (mantissa, exp) = sci.split_once('e').expect("scientific notation");
    let exp: i32 = exp.parse().expect("exponent");
    if !(-4..PRECISION).contains(&exp) {
        let mantissa = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (PRECISION - 1 - exp).max(0) as usize;
        trim_fraction(&format!("{d:.decimals$}")).to_string()
    }
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Formats the result of `INCRBYFLOAT`/`HINCRBYFLOAT` as Redis stores it: plain decimal, no
/// exponent, trailing zeros trimmed. Redis computes in `long double` and prints 17 decimals; with
/// doubles, 16 significant digits give the same text for the values people add up (`0.1 + 0.2`
/// shows as `0.3`, as in Redis).
pub fn format_float_value(d: f64) -> String {
    if d == 0.0 {
        return "0".into();
    }
    if d.fract() == 0.0 && d.abs() < 1e17 {
        return format!("{d:.0}");
    }
    if d.abs() >= 1e17 {
        return format!("{d:.0}");
    }
    let sci = format!("{:.15e}", d.abs());
    let (mantissa, exp) = sci.split_once('e').expect("scientific notation");
    let exp: i32 = exp.parse().expect("exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if d < 0.0 {
        out.push('-');
    }
    if exp < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        out.push_str(&digits[..int_len]);
        out.push('.');
        out.push_str(&digits[int_len..]);
    }
    let trimmed = out.trim_end_matches('0').trim_end_matches('.');
    trimmed.to_string()
}

/// Parses a strict integer the way Redis does (`string2ll`): optional minus, no plus sign, no
/// leading zeros, no spaces, fits in i64.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = if b[0] == b'-' { (true, &b[1..]) } else { (false, b) };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: i128 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i128;
    }
    if neg {
        v = -v;
    }
    i64::try_from(v).ok()
}

/// Parses a float the way Redis does for scores and increments (`strtold` semantics): decimal or
/// exponent notation, `inf`/`+inf`/`-inf`, no NaN, no surrounding spaces.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            if lower.contains("nan") || lower.contains("inf") {
                return None;
            }
            match lower.parse::<f64>() {
                Ok(v) => v,
                Err(_) => parse_hex_float(&lower)?,
            }
        }
    };
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

/// `strtold` also reads C99 hexadecimal floats: `0x10`, `-0x1.8p3`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (neg, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let rest = rest.strip_prefix("0x")?;
    let (mantissa, exp) = match rest.split_once('p') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int_part.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_format_like_redis() {
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(1e30), "1e+30");
        assert_eq!(format_double(1e-30), "1.0000000000000001e-30");
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(1e-10), "1e-10");
        assert_eq!(format_double(0.001), "0.001");
        assert_eq!(format_double(123456789.0), "123456789");
        assert_eq!(format_double(f64::INFINITY), "inf");
    }

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(parse_i64(b"-42"), Some(-42));
        assert_eq!(parse_i64(b"007"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn float_values_format_without_exponent() {
        assert_eq!(format_float_value(10.5 + 0.1), "10.6");
        assert_eq!(format_float_value(3.0), "3");
        assert_eq!(format_float_value(5.0e3), "5000");
        assert_eq!(format_float_value(0.1 + 0.1 + 0.1), "0.3");
        assert_eq!(format_float_value(-1.25), "-1.25");
        assert_eq!(format_float_value(1e30), "1000000000000000019884624838656");
    }
}

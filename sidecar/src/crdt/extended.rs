//! x87 extended precision (C `long double` on x86-64), for `INCRBYFLOAT` and `HINCRBYFLOAT`.
//!
//! Redis computes both commands in `long double`: on x86-64 that is the x87 80-bit format, a
//! 64-bit significand with an explicit integer bit and a 15-bit exponent, rounded to nearest,
//! ties to even. The operands are parsed with `strtold`, the sum is one x87 addition, and the
//! result is stored as `snprintf("%.17Lf")` with trailing zeros and a trailing `.` removed
//! (`ld2string` in `LD_STR_HUMAN` mode). [`Extended`] reproduces each step bit for bit, without
//! a C `long double`:
//!
//! - [`Extended::parse_redis`] is Redis's `string2ld` (`strtold` plus its checks), and
//!   [`Extended::parse`] the plain, correctly rounded `strtold`;
//! - [`Extended::add`] is the x87 addition, correctly rounded to 64 bits;
//! - [`Extended::format_human`] is `ld2string(.., LD_STR_HUMAN)`: glibc prints the exact binary
//!   value rounded half-to-even at 17 decimals.
//!
//! `INCRBYFLOAT key incr` is then, as in Redis 7.0 (`incrbyfloatCommand`):
//!
//! ```text
//! current = stored string ? parse_redis(stored) : ZERO     // None: "value is not a valid float"
//! incr    = parse_redis(incr)                               // None: "value is not a valid float"
//! sum     = current.add(incr)
//! !sum.is_finite()                                          // "increment would produce NaN or Infinity"
//! store sum.format_human()
//! ```
//!
//! `HINCRBYFLOAT` is the same, except that Redis first rejects a non-finite increment ("value is
//! NaN or Infinity") and reports an unparsable stored field as "hash value is not a float". A
//! stored integer (Redis's `OBJ_ENCODING_INT`) gives the same value through `parse_redis` as
//! through the `(long double)` cast Redis uses, so the text alone is enough.
//!
//! Exact parsing and printing need big integers; a minimal private one (`Big`) lives at the end
//! of this file. Ordinary values take microseconds; the extremes (parsing a 5119-byte argument,
//! printing the 4933 digits of the largest values) take up to about half a millisecond.

use std::cmp::Ordering;

/// Exponent (of the significand's least significant bit) of subnormals and the smallest normals:
/// the biased exponents 0 and 1 of the x87 format both scale the significand by 2^-16445.
const MIN_EXP: i32 = -16445;
/// Exponent of the largest finite values: biased exponent 32766 is 2^(32766 - 16383 - 63).
const MAX_EXP: i32 = 16320;
/// `exp` of an infinity (its `mant` is 0).
const INF_EXP: i32 = i32::MAX;
/// `exp` of a NaN (its `mant` is 0).
const NAN_EXP: i32 = i32::MIN;

/// Longest input Redis accepts: `string2ld` copies into a `char[5 * 1024]` with its terminator.
const REDIS_MAX_LEN: usize = 5 * 1024 - 1;
/// Significant decimal digits kept when parsing; later ones only matter as "some were nonzero".
/// Every halfway point between two extended values has fewer significant digits (at most about
/// 11,520, for the subnormal ones), so rounding is decided within the digits kept.
const MAX_DIGITS: usize = 12_000;
/// Significant hexadecimal digits kept when parsing (80 bits, more than the 66 rounding needs).
const MAX_HEX_DIGITS: usize = 20;

/// An x87 extended-precision value: `(-1)^neg * mant * 2^exp`.
///
/// Finite nonzero values have `MIN_EXP <= exp <= MAX_EXP` and the top bit of `mant` set, except
/// the subnormals, which have `exp == MIN_EXP` and a smaller `mant`. Zero has `mant == 0` and
/// `exp == 0`; the infinities and NaN have `mant == 0` and the sentinel exponents `INF_EXP` and
/// `NAN_EXP` (NaN is never negative here). Every value has exactly one representation, so
/// `PartialEq` compares representations: `-0` and `+0` differ, and NaN equals NaN.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Extended {
    neg: bool,
    mant: u64,
    exp: i32,
}

impl Extended {
    /// Positive zero.
    pub const ZERO: Extended = Extended { neg: false, mant: 0, exp: 0 };
    /// Positive infinity.
    pub const INFINITY: Extended = Extended { neg: false, mant: 0, exp: INF_EXP };
    /// Negative infinity.
    pub const NEG_INFINITY: Extended = Extended { neg: true, mant: 0, exp: INF_EXP };
    /// Not a number (what `inf + -inf` gives).
    pub const NAN: Extended = Extended { neg: false, mant: 0, exp: NAN_EXP };

    const fn zero(neg: bool) -> Extended {
        Extended { neg, mant: 0, exp: 0 }
    }

    const fn infinity(neg: bool) -> Extended {
        Extended { neg, mant: 0, exp: INF_EXP }
    }

    /// Parses `s` as glibc's `strtold` does, requiring the whole string to be consumed: an
    /// optional sign, then either decimal digits with an optional fraction and exponent (`e`/`E`),
    /// a C99 hexadecimal float (`0x1.8p3`, `0X10`, binary exponent optional), or `inf`/`infinity`
    /// in any case. No surrounding spaces; `nan` is rejected. The result is correctly rounded
    /// (nearest, ties to even) to 64 bits; values beyond the range become an infinity, values
    /// below it a subnormal or a signed zero, as x87 rounding gives them. There is no length limit.
    /// One glibc quirk is reproduced on purpose: a hexadecimal input in the subnormal range with
    /// more than 64 significant bits ignores its 65th bit when breaking a tie (see `parse_hex`).
    pub fn parse(s: &[u8]) -> Option<Extended> {
        parse_full(s).map(|(value, _)| value)
    }

    /// Parses `s` exactly as Redis's `string2ld` does (the `long double` parser behind
    /// `INCRBYFLOAT` and `HINCRBYFLOAT`): [`Extended::parse`], but also rejecting an empty string,
    /// one of 5120 bytes or more, a finite number too large for the format (`strtold`'s `ERANGE`
    /// with an infinite result) and a nonzero number that rounds to zero (`ERANGE` with a zero
    /// result). A literal `inf` or `infinity` is accepted: Redis then fails on the infinite sum.
    pub fn parse_redis(s: &[u8]) -> Option<Extended> {
        if s.is_empty() || s.len() > REDIS_MAX_LEN {
            return None;
        }
        match parse_full(s)? {
            (value, false) => Some(value),
            (_, true) => None,
        }
    }

    /// The value of `d`, exactly (every double is an extended value). NaN gives [`Extended::NAN`].
    pub fn from_f64(d: f64) -> Extended {
        if d.is_nan() {
            return Extended::NAN;
        }
        let neg = d.is_sign_negative();
        if d.is_infinite() {
            return Extended::infinity(neg);
        }
        if d == 0.0 {
            return Extended::zero(neg);
        }
        let bits = d.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i32;
        let fraction = bits & ((1 << 52) - 1);
        let (mant, exp) = if biased == 0 { (fraction, -1074) } else { (fraction | 1 << 52, biased - 1075) };
        let lz = mant.leading_zeros();
        Extended { neg, mant: mant << lz, exp: exp - lz as i32 }
    }

    /// The value of `i`, exactly (what C's `(long double)i` gives).
    pub fn from_i64(i: i64) -> Extended {
        if i == 0 {
            return Extended::ZERO;
        }
        let mant = i.unsigned_abs();
        let lz = mant.leading_zeros();
        Extended { neg: i < 0, mant: mant << lz, exp: -(lz as i32) }
    }

    /// The nearest double (ties to even), as C's `(double)` cast gives it: subnormal, zero or
    /// infinite when out of the double's range.
    pub fn to_f64(self) -> f64 {
        if self.is_nan() {
            return f64::NAN;
        }
        let sign = if self.neg { -1.0 } else { 1.0 };
        if self.exp == INF_EXP {
            return sign * f64::INFINITY;
        }
        if self.mant == 0 {
            return sign * 0.0;
        }
        // The double is m * 2^e with m < 2^53 and -1074 <= e <= 971.
        let len = 64 - self.mant.leading_zeros() as i64;
        let exp = self.exp as i64;
        let mut e = (exp + len - 53).max(-1074);
        let shift = e - exp;
        let mut m = if shift <= 0 {
            (self.mant as u128) << -shift
        } else {
            shift_round(self.mant as u128, shift, false)
        };
        if m == 1 << 53 {
            m >>= 1;
            e += 1;
        }
        if m == 0 {
            return sign * 0.0;
        }
        if e > 971 {
            return sign * f64::INFINITY;
        }
        let m = m as u64;
        let bits = if m < 1 << 52 { m } else { ((e + 1075) as u64) << 52 | (m & ((1 << 52) - 1)) };
        f64::from_bits(bits | (self.neg as u64) << 63)
    }

    /// `self + other` as the x87 `fadd` computes it at full precision: the exact sum rounded to
    /// nearest (ties to even) at 64 bits. An exact cancellation gives `+0`, `-0 + -0` gives `-0`,
    /// an overflow gives an infinity, `inf + -inf` gives NaN. Also available as `+`.
    #[allow(clippy::should_implement_trait)] // it is implemented too, below; this needs no import
    pub fn add(self, other: Extended) -> Extended {
        if self.is_nan() || other.is_nan() {
            return Extended::NAN;
        }
        match (self.exp == INF_EXP, other.exp == INF_EXP) {
            (true, true) if self.neg != other.neg => return Extended::NAN,
            (true, _) => return self,
            (false, true) => return other,
            (false, false) => {}
        }
        if other.mant == 0 {
            return if self.mant == 0 { Extended::zero(self.neg && other.neg) } else { self };
        }
        if self.mant == 0 {
            return other;
        }
        let (a, b) = if self.exp >= other.exp { (self, other) } else { (other, self) };
        // Both significands in units of 2^(a.exp - 63): `a` exactly (below 2^127, so the sum fits
        // in a u128), `b` exactly unless it lies entirely below that unit; then `a` is normal
        // (a.exp > MIN_EXP), so the sum keeps at least 126 bits and `b` only decides the sticky bit.
        let gap = (a.exp - b.exp) as u32;
        let big_a = (a.mant as u128) << 63;
        let (big_b, sticky) = if gap <= 63 {
            ((b.mant as u128) << (63 - gap), false)
        } else if gap - 63 < 64 {
            ((b.mant >> (gap - 63)) as u128, b.mant & ((1 << (gap - 63)) - 1) != 0)
        } else {
            (0, true)
        };
        let unit = a.exp as i64 - 63;
        if a.neg == b.neg {
            return round(a.neg, big_a + big_b, unit, sticky);
        }
        if sticky {
            // a - (big_b + f) with 0 < f < 1 is (a - big_b - 1) + (1 - f).
            return round(a.neg, big_a - big_b - 1, unit, true);
        }
        match big_a.cmp(&big_b) {
            Ordering::Greater => round(a.neg, big_a - big_b, unit, false),
            Ordering::Less => round(b.neg, big_b - big_a, unit, false),
            Ordering::Equal => Extended::ZERO,
        }
    }

    /// Whether the value is neither infinite nor NaN.
    pub fn is_finite(self) -> bool {
        self.exp != INF_EXP && self.exp != NAN_EXP
    }

    /// Whether the value is NaN.
    pub fn is_nan(self) -> bool {
        self.exp == NAN_EXP
    }

    /// The 80-bit x87 encoding (sign, 15-bit biased exponent, 64-bit significand with its explicit
    /// integer bit) in the low bits, as the bytes of a `long double` read little-endian. NaN is
    /// the positive quiet NaN `0x7fff_c000000000000000`.
    pub fn to_bits(self) -> u128 {
        let sign = (self.neg as u128) << 79;
        let (biased, mant) = match self.exp {
            NAN_EXP => (0x7fff, 0xc000_0000_0000_0000),
            INF_EXP => (0x7fff, 1 << 63),
            _ if self.mant == 0 => (0, 0),
            _ if self.mant >> 63 == 0 => (0, self.mant),
            exp => ((exp - MIN_EXP + 1) as u128, self.mant),
        };
        sign | biased << 64 | mant as u128
    }

    /// The text Redis stores for this value (`ld2string` with `LD_STR_HUMAN`): `%.17Lf` of the
    /// exact binary value, which glibc rounds half-to-even at the 17th decimal, then trailing zeros
    /// and a trailing `.` removed. Plain positional notation, never an exponent: the largest
    /// values print all of their 4933 integer digits. A result of `-0` (negative zero, or a
    /// negative value above -5e-18) becomes `0`, as Redis does. Infinities print `inf`/`-inf`
    /// (Redis never stores them); NaN prints `nan`.
    pub fn format_human(self) -> String {
        if self.is_nan() {
            return "nan".into();
        }
        if self.exp == INF_EXP {
            return if self.neg { "-inf".into() } else { "inf".into() };
        }
        let digits = if self.exp >= 0 {
            // An integer: all 17 decimals are zeros, and trimmed.
            let mut n = Big::from_u64(self.mant);
            n.shl(self.exp as u64);
            n.to_decimal()
        } else {
            // Value * 10^17 < 2^64 * 10^17 < 2^121: rounding it to an integer is `%.17Lf`.
            let scaled = shift_round(self.mant as u128 * 10u128.pow(17), -(self.exp as i64), false);
            let mut text = format!("{scaled:018}");
            text.insert(text.len() - 17, '.');
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        };
        if self.neg && digits != "0" {
            format!("-{digits}")
        } else {
            digits
        }
    }
}

impl std::ops::Add for Extended {
    type Output = Extended;

    fn add(self, other: Extended) -> Extended {
        Extended::add(self, other)
    }
}

/// `n >> shift` (with `shift >= 1`) rounded to nearest, ties to even, where `sticky` says that
/// the exact value has nonzero bits below those of `n`.
fn shift_round(n: u128, shift: i64, sticky: bool) -> u128 {
    debug_assert!(shift >= 1);
    if shift > 128 {
        return 0; // below half of the unit
    }
    let kept = if shift == 128 { 0 } else { n >> shift };
    let half = (n >> (shift - 1)) & 1 == 1;
    let below = n & ((1u128 << (shift - 1)) - 1) != 0 || sticky;
    kept + (half && (below || kept & 1 == 1)) as u128
}

/// Rounds `(-1)^neg * (n + f) * 2^e2` to an extended value, where `0 < f < 1` if `sticky` and
/// `f == 0` otherwise. When `sticky`, `n` must have at least 66 significant bits, so that the
/// rounding position lies within `n`.
fn round(neg: bool, n: u128, e2: i64, sticky: bool) -> Extended {
    if n == 0 {
        debug_assert!(!sticky);
        return Extended::zero(neg);
    }
    let len = 128 - n.leading_zeros() as i64;
    let mut exp = (e2 + len - 64).max(MIN_EXP as i64);
    let shift = exp - e2;
    let mut mant = if shift <= 0 {
        debug_assert!(!sticky);
        n << -shift
    } else {
        shift_round(n, shift, sticky)
    };
    if mant >> 64 != 0 {
        mant >>= 1; // rounded up to 2^64
        exp += 1;
    }
    if mant == 0 {
        return Extended::zero(neg);
    }
    if exp > MAX_EXP as i64 {
        return Extended::infinity(neg);
    }
    Extended { neg, mant: mant as u64, exp: exp as i32 }
}

/// Like [`round`] for a big `n`: keeps its top 128 bits and folds the rest into the sticky bit.
fn round_big(neg: bool, n: &Big, e2: i64, sticky: bool) -> Extended {
    let len = n.bit_len();
    let drop = len.saturating_sub(128);
    round(neg, n.bits_from(drop), e2 + drop as i64, sticky || n.any_below(drop))
}

/// Parses like `strtold` (see [`Extended::parse`]). The flag says whether `strtold` would report
/// `ERANGE` with an infinite or zero result: a finite number rounded to an infinity, or a nonzero
/// one rounded to zero.
fn parse_full(s: &[u8]) -> Option<(Extended, bool)> {
    let (neg, body) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some((Extended::infinity(neg), false));
    }
    let value = match body {
        [b'0', x, hex @ ..] if x.eq_ignore_ascii_case(&b'x') => parse_hex(neg, hex)?,
        _ => parse_decimal(neg, body)?,
    };
    // Only zeros and infinities have no significand bits: from nonzero digits, an underflow or
    // an overflow.
    let (value, nonzero_digits) = value;
    Some((value, nonzero_digits && value.mant == 0))
}

/// Parses the unsigned decimal part of a number (`12.5e-3`). The flag says whether the digits
/// are not all zeros (so that a zero result is an underflow).
fn parse_decimal(neg: bool, s: &[u8]) -> Option<(Extended, bool)> {
    let mut digits: Vec<u8> = Vec::new(); // significant digits: no leading zeros
    let mut exp10: i64 = 0; // the value is digits * 10^exp10
    let mut dropped_nonzero = false;
    let mut seen_digit = false;
    let mut i = 0;
    let mut in_fraction = false;
    while i < s.len() {
        match s[i] {
            c @ b'0'..=b'9' => {
                seen_digit = true;
                let d = c - b'0';
                if in_fraction {
                    exp10 -= 1;
                }
                if digits.is_empty() && d == 0 {
                    // a leading zero
                } else if digits.len() < MAX_DIGITS {
                    digits.push(d);
                } else {
                    dropped_nonzero |= d != 0;
                    exp10 += 1;
                }
            }
            b'.' if !in_fraction => in_fraction = true,
            _ => break,
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    if i < s.len() {
        if !s[i].eq_ignore_ascii_case(&b'e') {
            return None;
        }
        exp10 = exp10.saturating_add(parse_exponent(&s[i + 1..])?);
    }
    if dropped_nonzero {
        // Any digit between the kept ones and the next halfway point rounds the same way.
        digits.push(1);
        exp10 -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
        exp10 += 1;
    }
    if digits.is_empty() {
        return Some((Extended::zero(neg), false));
    }
    // 10^(n-1+exp10) <= value < 10^(n+exp10); the range is about 3.6e-4951 to 1.19e4932.
    let n = digits.len() as i64;
    if n - 1 + exp10 >= 4933 {
        return Some((Extended::infinity(neg), true));
    }
    if n + exp10 <= -4951 {
        return Some((Extended::zero(neg), true));
    }
    let mut num = Big::from_decimal(&digits);
    let value = if exp10 >= 0 {
        // digits * 10^e = digits * 5^e * 2^e, an integer.
        num.mul_pow5(exp10 as u64);
        round_big(neg, &num, exp10, false)
    } else {
        // digits / 10^m = (digits / 5^m) * 2^-m. Scale one side by a power of two so that the
        // quotient has 66 or 67 bits, then round it with the remainder as the sticky bit.
        let m = -exp10;
        let mut den = Big::from_u64(1);
        den.mul_pow5(m as u64);
        let scale = 66 + den.bit_len() as i64 - num.bit_len() as i64;
        if scale >= 0 {
            num.shl(scale as u64);
        } else {
            den.shl(-scale as u64);
        }
        let (quotient, remainder) = num.div_small_quotient(&den);
        round(neg, quotient, -m - scale, remainder)
    };
    Some((value, true))
}

/// Parses the unsigned hexadecimal part of a number after its `0x` (`1.8p3`).
fn parse_hex(neg: bool, s: &[u8]) -> Option<(Extended, bool)> {
    let mut mant: u128 = 0;
    let mut kept = 0;
    let mut exp2: i64 = 0; // the value is (mant + sticky) * 2^exp2
    let mut sticky = false;
    let mut seen_digit = false;
    let mut in_fraction = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'.' if !in_fraction => in_fraction = true,
            c if c.is_ascii_hexdigit() => {
                seen_digit = true;
                let d = (c as char).to_digit(16).unwrap_or(0) as u128;
                if in_fraction {
                    exp2 -= 4;
                }
                if mant == 0 && d == 0 {
                    // a leading zero
                } else if kept < MAX_HEX_DIGITS {
                    mant = mant << 4 | d;
                    kept += 1;
                } else {
                    sticky |= d != 0;
                    exp2 += 4;
                }
            }
            _ => break,
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    if i < s.len() {
        if !s[i].eq_ignore_ascii_case(&b'p') {
            return None;
        }
        exp2 = exp2.saturating_add(parse_exponent(&s[i + 1..])?);
    }
    if mant == 0 {
        return Some((Extended::zero(neg), false));
    }
    let len = 128 - mant.leading_zeros() as i64;
    if len > 64 && exp2 + len - 1 < MIN_EXP as i64 + 63 {
        // glibc quirk, reproduced on purpose: for a hexadecimal input whose value is subnormal,
        // `strtold` keeps the first 64 significant bits, a round bit (the 65th) and a sticky bit
        // (all later bits), then rounds again to the subnormal's precision and forgets the old
        // round bit (`round_and_return` in glibc's strtod_l.c). So that bit never breaks a tie:
        // 0x1.0000000000000001p-16446, just above half the smallest subnormal, becomes 0 (and
        // Redis rejects it) where correct rounding gives the smallest subnormal. Decimal input is
        // rounded correctly.
        mant &= !(1 << (len - 65));
    }
    // Huge exponents only need to stay huge: clamp them so that the arithmetic cannot overflow.
    Some((round(neg, mant, exp2.clamp(-1 << 40, 1 << 40), sticky), true))
}

/// Parses an exponent's optional sign and decimal digits, which must make up all of `s`;
/// saturates far beyond any meaningful exponent.
fn parse_exponent(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits.iter().fold(0i64, |acc, d| (acc * 10 + (d - b'0') as i64).min(1 << 40));
    Some(if neg { -value } else { value })
}

/// A minimal unsigned big integer: little-endian 32-bit limbs, without high zero limbs (zero is
/// empty). Only what exact parsing and printing need.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut n = Big(vec![v as u32, (v >> 32) as u32]);
        n.trim();
        n
    }

    /// The number whose decimal digits (most significant first, each 0..=9) are `digits`.
    fn from_decimal(digits: &[u8]) -> Big {
        let mut n = Big(Vec::with_capacity(digits.len() / 9 + 1));
        for chunk in digits.chunks(9) {
            n.mul_add_small(
                10u32.pow(chunk.len() as u32),
                chunk.iter().fold(0, |acc, &d| acc * 10 + d as u32),
            );
        }
        n
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn bit_len(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(top) => self.0.len() as u64 * 32 - top.leading_zeros() as u64,
        }
    }

    /// `self = self * m + a`.
    fn mul_add_small(&mut self, m: u32, a: u32) {
        let mut carry = a as u64;
        for limb in &mut self.0 {
            let v = *limb as u64 * m as u64 + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    /// `self *= 5^e`.
    fn mul_pow5(&mut self, mut e: u64) {
        const POW5_13: u32 = 1_220_703_125; // the largest power of 5 below 2^32
        while e >= 13 {
            self.mul_add_small(POW5_13, 0);
            e -= 13;
        }
        self.mul_add_small(5u32.pow(e as u32), 0);
    }

    /// `self <<= bits`.
    fn shl(&mut self, bits: u64) {
        if self.0.is_empty() {
            return;
        }
        let (limbs, bits) = ((bits / 32) as usize, (bits % 32) as u32);
        if bits != 0 {
            let mut carry = 0;
            for limb in &mut self.0 {
                let v = (*limb as u64) << bits | carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            if carry != 0 {
                self.0.push(carry as u32);
            }
        }
        self.0.splice(0..0, std::iter::repeat_n(0, limbs));
    }

    /// `self >>= 1`.
    fn shr1(&mut self) {
        let mut carry = 0;
        for limb in self.0.iter_mut().rev() {
            let v = *limb;
            *limb = v >> 1 | carry << 31;
            carry = v & 1;
        }
        self.trim();
    }

    /// The 128 bits of `self` starting at bit `from`.
    fn bits_from(&self, from: u64) -> u128 {
        let (limb, bit) = ((from / 32) as usize, (from % 32) as u32);
        let get = |i: usize| self.0.get(limb + i).copied().unwrap_or(0) as u128;
        let low = (get(0) | get(1) << 32 | get(2) << 64 | get(3) << 96) >> bit;
        if bit == 0 {
            low
        } else {
            low | get(4) << (128 - bit)
        }
    }

    /// Whether any of the bits below bit `to` is set.
    fn any_below(&self, to: u64) -> bool {
        let (limb, bit) = ((to / 32) as usize, (to % 32) as u32);
        self.0.iter().take(limb).any(|&l| l != 0)
            || (bit != 0 && self.0.get(limb).is_some_and(|&l| l & ((1 << bit) - 1) != 0))
    }

    /// `self -= other`, which must not exceed `self`.
    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = false;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let (v, b1) = limb.overflowing_sub(other.0.get(i).copied().unwrap_or(0));
            let (v, b2) = v.overflowing_sub(borrow as u32);
            *limb = v;
            borrow = b1 || b2;
        }
        debug_assert!(!borrow);
        self.trim();
    }

    /// Divides `self` by `den`, which must make a quotient below 2^128: returns the quotient and
    /// whether the remainder is nonzero. `self` is left holding the remainder.
    fn div_small_quotient(&mut self, den: &Big) -> (u128, bool) {
        let mut quotient = 0u128;
        if let Some(gap) = self.bit_len().checked_sub(den.bit_len()) {
            debug_assert!(gap < 128);
            let mut shifted = den.clone();
            shifted.shl(gap);
            for bit in (0..=gap).rev() {
                if *self >= shifted {
                    self.sub_assign(&shifted);
                    quotient |= 1 << bit;
                }
                shifted.shr1();
            }
        }
        (quotient, !self.0.is_empty())
    }

    /// `self /= d`, returning the remainder.
    fn div_rem_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let v = rem << 32 | *limb as u64;
            *limb = (v / d as u64) as u32;
            rem = v % d as u64;
        }
        self.trim();
        rem as u32
    }

    /// The decimal digits, without leading zeros (`0` for zero).
    fn to_decimal(&self) -> String {
        let mut n = self.clone();
        let mut chunks = Vec::new(); // base 10^9, least significant first
        while !n.0.is_empty() {
            chunks.push(n.div_rem_small(1_000_000_000));
        }
        let mut text = chunks.last().map_or_else(|| "0".to_string(), |top| top.to_string());
        for chunk in chunks.iter().rev().skip(1) {
            text.push_str(&format!("{chunk:09}"));
        }
        text
    }
}

impl PartialOrd for Big {
    fn partial_cmp(&self, other: &Big) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Big {
    fn cmp(&self, other: &Big) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Extended {
        Extended::parse(s.as_bytes()).unwrap_or_else(|| panic!("{s:?} should parse"))
    }

    /// `INCRBYFLOAT` as Redis 7.0 runs it on a key holding `stored`.
    fn incrbyfloat(stored: &mut Option<String>, incr: &str) -> Result<String, &'static str> {
        const NOT_FLOAT: &str = "ERR value is not a valid float";
        let current = match stored {
            None => Extended::ZERO,
            Some(text) => Extended::parse_redis(text.as_bytes()).ok_or(NOT_FLOAT)?,
        };
        let sum = current.add(Extended::parse_redis(incr.as_bytes()).ok_or(NOT_FLOAT)?);
        if !sum.is_finite() {
            return Err("ERR increment would produce NaN or Infinity");
        }
        let text = sum.format_human();
        *stored = Some(text.clone());
        Ok(text)
    }

    /// Replies of a real redis-server 7.0.15 (glibc 2.36, x86-64).
    #[test]
    fn matches_redis_server() {
        let runs: &[(&[&str], &str)] = &[
            (&["10.5", "0.1"], "10.6"),
            (&["9007199254740993", "1"], "9007199254740994"),
            (&["123456789012345678"], "123456789012345678"),
            (&["1.23456789012345678e20"], "123456789012345678000"),
            (&["-3.3333333333333333"], "-3.3333333333333333"),
            (&["0.7", "0.1"], "0.8"),
            (&["0.7", "-0.8"], "-0.1"),
            (&["5.0e3", "2.0e2"], "5200"),
            (&["3.0e3"], "3000"),
            (&["1.5"], "1.5"),
            (&["1", "-1"], "0"),
            (&["-0", "-0"], "0"),
            (&["1e-20"], "0"),
            (&["-1e-20"], "0"),
            (&["-1e-17"], "-0.00000000000000001"),
            (&["1e-4940"], "0"),
            (&["3.6e-4951"], "0"),
            (&["+.5"], "0.5"),
            (&["1."], "1"),
            (&["0x1p3"], "8"),
            (&["0x.8"], "0.5"),
            (&["0X1P-2"], "0.25"),
            (&["0x1.00000000000000008p-16446"], "0"),
        ];
        for (steps, want) in runs {
            let mut stored = None;
            let mut last = Ok(String::new());
            for step in *steps {
                last = incrbyfloat(&mut stored, step);
            }
            assert_eq!(last.as_deref(), Ok(*want), "{steps:?}");
        }
        let mut stored = None;
        incrbyfloat(&mut stored, "1e300").unwrap();
        assert_eq!(stored.as_deref(), Some(E300));
        stored = None;
        incrbyfloat(&mut stored, "1e308").unwrap();
        assert_eq!(incrbyfloat(&mut stored, "1e308").as_deref(), Ok(E308_TWICE));
        stored = None;
        let text = incrbyfloat(&mut stored, &format!("1{}", "0".repeat(4900))).unwrap();
        assert!(text
            .starts_with("10000000000000000000270831223069034983322405250407883434650293011195902851726069"));
        assert_eq!(text.len(), 4901);

        let invalid = [
            "1e5000",
            "1e-5000",
            "nan",
            " 1",
            "1 ",
            "1e",
            "0x",
            ".",
            "infinit",
            "0x1.0000000000000001p-16446",
        ];
        for incr in invalid {
            assert_eq!(incrbyfloat(&mut None, incr), Err("ERR value is not a valid float"), "{incr:?}");
        }
        for incr in ["inf", "-inf", "infinity", "INFINITY"] {
            assert_eq!(incrbyfloat(&mut None, incr), Err("ERR increment would produce NaN or Infinity"));
        }
        let mut max = Some("1.18973149535723176502e4932".to_string());
        assert_eq!(incrbyfloat(&mut max, "1e4916"), Err("ERR increment would produce NaN or Infinity"));
        // Redis copies the argument into a 5120-byte buffer with its terminator.
        let longest = format!("1.{}", "0".repeat(5117));
        assert_eq!(incrbyfloat(&mut None, &longest).as_deref(), Ok("1"));
        let too_long = format!("1.{}", "0".repeat(5118));
        assert_eq!(incrbyfloat(&mut None, &too_long), Err("ERR value is not a valid float"));
        assert_eq!(Extended::parse(too_long.as_bytes()), Some(parse("1")));
    }

    const E300: &str = concat!(
        "100000000000000000000899732407955919387052394427329074793826008232126564659618093575584915",
        "208375049719035037250861427483590359255618467298391309626052074864628732713564184365329408",
        "425510760601678972665293237003055138294762099454029477278188962060617926761162709741065056",
        "7187386105690089424915104006144",
    );

    const E308_TWICE: &str = concat!(
        "199999999999999999993371759311691291321120199694831134415594095989843469737676123744200253",
        "843777078640893494450108026446304269499187921167194841628860392837535918200039206381557326",
        "219209014213335878306791577877829121087126122536729803237260434173178506889763247582601711",
        "514636284849020905456510092687857156096",
    );

    /// `(a, b, a + b as x87 bits, Redis's text of a + b)`, from glibc 2.36's `strtold`, the x87
    /// `fadd` and Redis's `ld2string` (`%.17Lf`, trimmed) compiled with gcc.
    const SUMS: &[(&str, &str, u128, &str)] = &[
        ("0", "10.5", 0x4002a800000000000000, "10.5"),
        ("10.5", "0.1", 0x4002a99999999999999a, "10.6"),
        ("0", "0.1", 0x3ffbcccccccccccccccd, "0.1"),
        ("0.1", "0.2", 0x3ffd999999999999999a, "0.3"),
        ("0.2", "0.1", 0x3ffd999999999999999a, "0.3"),
        ("0.3", "-0.1", 0x3ffcccccccccccccccce, "0.2"),
        ("0.7", "0.1", 0x3ffecccccccccccccccd, "0.8"),
        ("0.7", "-0.8", 0xbffbccccccccccccccd0, "-0.1"),
        ("0.8", "-0.7", 0x3ffbccccccccccccccd0, "0.1"),
        ("1", "-1", 0x00000000000000000000, "0"),
        ("-0", "-0", 0x80000000000000000000, "0"),
        ("0", "-0", 0x00000000000000000000, "0"),
        ("-0", "1e-20", 0x3fbcbce5086492111aeb, "0"),
        ("1.5", "-1.5", 0x00000000000000000000, "0"),
        ("9007199254740993", "1", 0x40348000000000000800, "9007199254740994"),
        ("0", "123456789012345678", 0x4037db4da5d31879a700, "123456789012345678"),
        ("0", "1.23456789012345678e20", 0x4041d629d3f025e6cd16, "123456789012345678000"),
        ("0", "-3.3333333333333333", 0xc000d5555555555554bc, "-3.3333333333333333"),
        ("5.0e3", "2.0e2", 0x400ba280000000000000, "5200"),
        ("0", "3.0e3", 0x400abb80000000000000, "3000"),
        ("0", "1.5", 0x3fffc000000000000000, "1.5"),
        ("18446744073709551615", "1", 0x403f8000000000000000, "18446744073709551616"),
        ("18446744073709551616", "-1", 0x403effffffffffffffff, "18446744073709551615"),
        ("36893488147419103231", "0", 0x40408000000000000000, "36893488147419103232"),
        ("-9223372036854775808", "-1", 0xc03e8000000000000001, "-9223372036854775809"),
        ("12345678901234567890123", "0.5", 0x4048a750ad939d9c5091, "12345678901234567889920"),
        ("3.14159265358979323846264338327950288", "0", 0x4000c90fdaa22168c235, "3.14159265358979324"),
        ("2.718281828459045235360287471352662497757", "-2", 0x3ffeb7e151628aed2a6c, "0.71828182845904524"),
        ("0.123456789012345678901", "0.000000000000000001", 0x3ffbfcd6e9ba37b2f976, "0.12345678901234568"),
        ("1.00000000000000000001", "-1", 0x00000000000000000000, "0"),
        ("99999999999999999.9", "0.1", 0x4037b1a2bc2ec5000000, "100000000000000000"),
        ("0.99999999999999999", "0.00000000000000001", 0x3fff8000000000000000, "1"),
        ("0.000000000000000005", "0", 0x3fc5b877aa3236a4b449, "0"),
        ("0.000000000000000015", "0", 0x3fc78a59bfa5a8fb8737, "0.00000000000000002"),
        ("0.000000000000000025", "0", 0x3fc7e69594bec44de15b, "0.00000000000000002"),
        ("0x1p-18", "0", 0x3fed8000000000000000, "0.00000381469726562"),
        ("0x1.8p-57", "0", 0x3fc6c000000000000000, "0.00000000000000001"),
        ("-0x1p-57", "0", 0xbfc68000000000000000, "-0.00000000000000001"),
        ("0.00000000000000000499999999", "0", 0x3fc5b877aa2c0614831d, "0"),
        ("-0.000000000000000005", "0", 0xbfc5b877aa3236a4b449, "0"),
        ("1e-17", "-2e-17", 0xbfc6b877aa3236a4b449, "-0.00000000000000001"),
        ("1e-4000", "1", 0x3fff8000000000000000, "1"),
        ("3.6e-4951", "0", 0x00000000000000000001, "0"),
        ("1e300", "-1e300", 0x00000000000000000000, "0"),
        ("1e-300", "1e-300", 0x3c1bab70fe17c79ac6ca, "0"),
        ("4.9e-324", "0", 0x3bccfde4b4fb194fced9, "0"),
        ("0x1.8p3", "0x10", 0x4003e000000000000000, "28"),
        ("0X1P-2", "0x.8", 0x3ffec000000000000000, "0.75"),
        ("-0x1.fffffffffffffffep0", "0x1p-63", 0xbffffffffffffffffffe, "-2"),
        ("0x1.00000000000000008p0", "0", 0x3fff8000000000000000, "1"),
        ("0x1.00000000000000018p0", "0", 0x3fff8000000000000001, "1"),
        ("0xffffffffffffffff.8p0", "0", 0x403f8000000000000000, "18446744073709551616"),
        ("0x1.0000000000000001p-16446", "0", 0x00000000000000000000, "0"),
        ("+.5", "5.", 0x4001b000000000000000, "5.5"),
        ("1e0005", "-1E+2", 0x400fc31e000000000000, "99900"),
        ("123.456e-2", "0.0001234e4", 0x40009dfce3150dae3e6c, "2.46856"),
        (".000001", "1000000", 0x4012f4240000010c6f7a, "1000000.00000099999999748"),
        ("1e19", "-1", 0x403e8ac7230489e7ffff, "9999999999999999999"),
        ("1e20", "1", 0x4041ad78ebc5ac620000, "100000000000000000000"),
        ("-1e20", "1e-20", 0xc041ad78ebc5ac620000, "-100000000000000000000"),
        ("18446744073709551616.5", "0", 0x403f8000000000000000, "18446744073709551616"),
        ("9223372036854775807.5", "0.25", 0x403e8000000000000000, "9223372036854775808"),
        ("5.0000000000000000005", "0", 0x4001a000000000000001, "5"),
        ("1.1", "2.2", 0x4000d333333333333334, "3.3"),
        ("0.1", "-0.3", 0xbffcccccccccccccccce, "-0.2"),
        ("100", "-99.99", 0x3ff8a3d70a3d70a3e000, "0.01"),
        ("33.3", "66.7", 0x4005c800000000000000, "100"),
        ("0x3p-18", "0", 0x3feec000000000000000, "0.00001144409179688"),
    ];

    #[test]
    fn sums_match_glibc_and_x87() {
        for &(a, b, bits, text) in SUMS {
            let sum = parse(a).add(parse(b));
            assert_eq!(sum.to_bits(), bits, "{a} + {b}: {:#x}", sum.to_bits());
            assert_eq!(sum.format_human(), text, "{a} + {b}");
            assert_eq!(parse(b).add(parse(a)), sum, "{b} + {a}");
        }
    }

    /// Like [`SUMS`], for results too long to spell out: `(a, b, bits, first 40 bytes, length)`.
    const HUGE_SUMS: &[(&str, &str, u128, &str, usize)] = &[
        ("1e300", "1", 0x43e3bf21e44003acdd2d, "1000000000000000000008997324079559193870", 301),
        ("1e308", "1e308", 0x43ff8e679c2f5e44ff8f, "1999999999999999999933717593116912913211", 309),
        (
            "1.7976931348623157e308",
            "1.7976931348623157e308",
            0x43fffffffffffffff7ac,
            "3595386269724631399918420935482088680967",
            309,
        ),
        ("0", "1e4000", 0x73e6d1ba8323fe558c61, "9999999999999999999965463873099623784932", 4000),
        ("-1e4000", "0", 0xf3e6d1ba8323fe558c61, "-999999999999999999996546387309962378493", 4001),
        (
            "0x1.fffffffffffffffep16383",
            "0",
            0x7ffeffffffffffffffff,
            "1189731495357231765021263853030970205169",
            4933,
        ),
        (
            "1.18973149535723176502e4932",
            "-1e4932",
            0x7ffca34d355a8e0424c8,
            "1897314953572317650152449036430063138452",
            4932,
        ),
        ("1e4931", "1e4931", 0x7ffcac23c22116cbf8a4, "2000000000000000000012037898775927782647", 4932),
        ("-1e4900", "1e-4900", 0xff94ae9204275937a4c1, "-100000000000000000002708312230690349833", 4902),
    ];

    #[test]
    fn huge_sums_print_every_digit() {
        for &(a, b, bits, prefix, len) in HUGE_SUMS {
            let sum = parse(a).add(parse(b));
            assert_eq!(sum.to_bits(), bits, "{a} + {b}: {:#x}", sum.to_bits());
            let text = sum.format_human();
            assert!(text.starts_with(prefix) && text.len() == len, "{a} + {b}: {text}");
            assert!(text.trim_start_matches('-').bytes().all(|c| c.is_ascii_digit()));
            // Redis stores the text and parses it again on the next increment: it must round-trip.
            assert_eq!(Extended::parse_redis(text.as_bytes()), Some(sum));
        }
    }

    /// `(input, Redis's string2ld, plain strtold)`, as x87 bits, from glibc 2.36.
    const PARSES: &[(&str, Option<u128>, Option<u128>)] = &[
        ("", None, None),
        (" 1", None, None),
        ("1 ", None, None),
        ("\x0b1", None, None),
        ("1e", None, None),
        ("1e+", None, None),
        ("e1", None, None),
        (".", None, None),
        ("-", None, None),
        ("+", None, None),
        ("-.", None, None),
        ("0x", None, None),
        ("0x.", None, None),
        ("0x.p1", None, None),
        ("0x1p", None, None),
        ("0x1p-", None, None),
        ("1.2.3", None, None),
        ("+-1", None, None),
        ("--1", None, None),
        ("nan", None, None),
        ("NaN", None, None),
        ("-nan", None, None),
        ("nan(1)", None, None),
        ("infinit", None, None),
        ("infx", None, None),
        ("inf", Some(0x7fff8000000000000000), Some(0x7fff8000000000000000)),
        ("-Infinity", Some(0xffff8000000000000000), Some(0xffff8000000000000000)),
        ("INF", Some(0x7fff8000000000000000), Some(0x7fff8000000000000000)),
        ("+infinity", Some(0x7fff8000000000000000), Some(0x7fff8000000000000000)),
        ("1e5000", None, Some(0x7fff8000000000000000)),
        ("-1e5000", None, Some(0xffff8000000000000000)),
        ("1e-5000", None, Some(0x00000000000000000000)),
        ("-1e-5000", None, Some(0x80000000000000000000)),
        ("1e4932", Some(0x7ffed72cb2a95c7ef6cd), Some(0x7ffed72cb2a95c7ef6cd)),
        ("1.18973149535723176502e4932", Some(0x7ffeffffffffffffffff), Some(0x7ffeffffffffffffffff)),
        ("1.1897314953572317650e4932", Some(0x7ffeffffffffffffffff), Some(0x7ffeffffffffffffffff)),
        ("1.1897314953572317651e4932", None, Some(0x7fff8000000000000000)),
        ("3.6e-4951", Some(0x00000000000000000001), Some(0x00000000000000000001)),
        ("1.8e-4951", None, Some(0x00000000000000000000)),
        ("1.9e-4951", Some(0x00000000000000000001), Some(0x00000000000000000001)),
        ("-1.9e-4951", Some(0x80000000000000000001), Some(0x80000000000000000001)),
        ("5.4e-4951", Some(0x00000000000000000001), Some(0x00000000000000000001)),
        ("0x1p-16445", Some(0x00000000000000000001), Some(0x00000000000000000001)),
        ("0x1p-16446", None, Some(0x00000000000000000000)),
        ("-0x1p-16446", None, Some(0x80000000000000000000)),
        ("0x1.0000000000000001p-16446", None, Some(0x00000000000000000000)),
        ("0x1.00000000000000008p-16446", Some(0x00000000000000000001), Some(0x00000000000000000001)),
        ("0x1.0000000000000001p-16445", Some(0x00000000000000000001), Some(0x00000000000000000001)),
        ("0x1.4000000000000001p-16444", Some(0x00000000000000000002), Some(0x00000000000000000002)),
        ("0x1.ffffffffffffffffp16383", None, Some(0x7fff8000000000000000)),
        ("0x1.fffffffffffffffep16383", Some(0x7ffeffffffffffffffff), Some(0x7ffeffffffffffffffff)),
        ("0x1.fffffffffffffffe7fffp16383", Some(0x7ffeffffffffffffffff), Some(0x7ffeffffffffffffffff)),
        ("0e99999999999999999999", Some(0x00000000000000000000), Some(0x00000000000000000000)),
        ("-0e-99999999999999999999", Some(0x80000000000000000000), Some(0x80000000000000000000)),
        ("1e99999999999999999999", None, Some(0x7fff8000000000000000)),
        ("1e-99999999999999999999", None, Some(0x00000000000000000000)),
        ("0x1p99999999999999", None, Some(0x7fff8000000000000000)),
        ("0x1p-99999999999999", None, Some(0x00000000000000000000)),
        ("00000000000000000000000001", Some(0x3fff8000000000000000), Some(0x3fff8000000000000000)),
        ("1_000", None, None),
        ("1,5", None, None),
        ("0.1", Some(0x3ffbcccccccccccccccd), Some(0x3ffbcccccccccccccccd)),
        ("-0", Some(0x80000000000000000000), Some(0x80000000000000000000)),
        ("+0", Some(0x00000000000000000000), Some(0x00000000000000000000)),
        ("0.", Some(0x00000000000000000000), Some(0x00000000000000000000)),
        (".0", Some(0x00000000000000000000), Some(0x00000000000000000000)),
        ("1.e5", Some(0x400fc350000000000000), Some(0x400fc350000000000000)),
        ("1e+0005", Some(0x400fc350000000000000), Some(0x400fc350000000000000)),
        ("0x10", Some(0x40038000000000000000), Some(0x40038000000000000000)),
        ("0XaBc.DeFp-3", Some(0x4007abcdef0000000000), Some(0x4007abcdef0000000000)),
        ("0x.000000000000000000000001p0", Some(0x3f9f8000000000000000), Some(0x3f9f8000000000000000)),
        ("9007199254740993", Some(0x40348000000000000400), Some(0x40348000000000000400)),
        ("-18446744073709551615", Some(0xc03effffffffffffffff), Some(0xc03effffffffffffffff)),
        ("0.1e1", Some(0x3fff8000000000000000), Some(0x3fff8000000000000000)),
        ("1.9999999999999999999", Some(0x3fffffffffffffffffff), Some(0x3fffffffffffffffffff)),
        ("1.99999999999999999995", Some(0x40008000000000000000), Some(0x40008000000000000000)),
        ("2.00000000000000000011", Some(0x40008000000000000001), Some(0x40008000000000000001)),
        ("2.00000000000000000033", Some(0x40008000000000000002), Some(0x40008000000000000002)),
    ];

    #[test]
    fn parses_like_strtold_and_string2ld() {
        for &(input, redis, plain) in PARSES {
            let bits = |v: Option<Extended>| v.map(Extended::to_bits);
            assert_eq!(bits(Extended::parse_redis(input.as_bytes())), redis, "parse_redis({input:?})");
            assert_eq!(bits(Extended::parse(input.as_bytes())), plain, "parse({input:?})");
        }
    }

    #[test]
    fn long_inputs_round_correctly() {
        // 1 + 2^-64, exactly halfway between 1 and the next value: ties to even.
        let half = "1.0000000000000000000542101086242752217003726400434970855712890625";
        assert_eq!(parse(half).to_bits(), 0x3fff8000000000000000);
        // Digits far beyond the ones kept still break the tie, either way.
        let above = format!("{half}{}1", "0".repeat(15000));
        assert_eq!(parse(&above).to_bits(), 0x3fff8000000000000001);
        let below = format!("{}4{}", &half[..half.len() - 1], "9".repeat(15000));
        assert_eq!(parse(&below).to_bits(), 0x3fff8000000000000000);
        let shifted = format!("0.{}{}e11990", "0".repeat(11990), "1".repeat(20));
        assert_eq!(parse(&shifted).to_bits(), 0x3ffbe38e38e38e38e38e);
    }

    /// `(input, its extended value cast to double)`, from glibc 2.36 and gcc.
    const TO_F64: &[(&str, u64)] = &[
        ("0.1", 0x3fb999999999999a),
        ("1e4000", 0x7ff0000000000000),
        ("-1e4000", 0xfff0000000000000),
        ("1e-320", 0x00000000000007e8),
        ("4.9e-324", 0x0000000000000001),
        ("2.4703282292062327e-324", 0x0000000000000000),
        ("2.4703282292062328e-324", 0x0000000000000001),
        ("1.7976931348623158e308", 0x7fefffffffffffff),
        ("1.7976931348623159e308", 0x7ff0000000000000),
        ("9007199254740993", 0x4340000000000000),
        ("9007199254740995", 0x4340000000000002),
        ("0x1.00000000000008p0", 0x3ff0000000000000),
        ("0x1.00000000000018p0", 0x3ff0000000000002),
        ("0x1.000000000000080000001p0", 0x3ff0000000000000),
        ("3.6e-4951", 0x0000000000000000),
        ("-2.2250738585072011e-308", 0x800fffffffffffff),
        ("0x1.fffffffffffffp-1023", 0x0010000000000000),
        ("0x1.fffffffffffff8p-1023", 0x0010000000000000),
    ];

    #[test]
    fn to_f64_rounds_like_a_cast() {
        for &(input, bits) in TO_F64 {
            assert_eq!(parse(input).to_f64().to_bits(), bits, "{input}");
        }
        assert!(Extended::NAN.to_f64().is_nan());
        assert_eq!(Extended::NEG_INFINITY.to_f64(), f64::NEG_INFINITY);
        assert_eq!(parse("-0").to_f64().to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn from_f64_and_from_i64_are_exact() {
        // Bits of `(long double)d` from gcc.
        let cases: &[(u64, u128)] = &[
            (0x3fb999999999999a, 0x3ffbccccccccccccd000),
            (0x8000000000000001, 0xbbcd8000000000000000),
            (0x7fefffffffffffff, 0x43fefffffffffffff800),
            (0xc00921fb54442d18, 0xc000c90fdaa22168c000),
            (0x0010000000000000, 0x3c018000000000000000),
        ];
        for &(d, bits) in cases {
            let e = Extended::from_f64(f64::from_bits(d));
            assert_eq!(e.to_bits(), bits, "{d:#x}");
            assert_eq!(e.to_f64().to_bits(), d);
        }
        for d in [0.0, -0.0, 1.5, -2.5e-310, f64::MIN_POSITIVE, f64::MAX, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(Extended::from_f64(d).to_f64().to_bits(), d.to_bits(), "{d}");
        }
        assert!(Extended::from_f64(f64::NAN).is_nan());
        for i in [0, 1, -1, 42, i64::MAX, i64::MIN, 9007199254740993] {
            assert_eq!(Extended::from_i64(i), parse(&i.to_string()), "{i}");
        }
        assert_eq!(Extended::from_i64(i64::MIN).format_human(), "-9223372036854775808");
    }

    #[test]
    fn special_values() {
        let one = parse("1");
        assert!(Extended::INFINITY.add(Extended::NEG_INFINITY).is_nan());
        assert!(Extended::NAN.add(one).is_nan());
        assert_eq!(Extended::INFINITY.add(one), Extended::INFINITY);
        assert_eq!(one.add(Extended::NEG_INFINITY), Extended::NEG_INFINITY);
        assert_eq!(Extended::INFINITY + Extended::INFINITY, Extended::INFINITY);
        assert_eq!(one + one, parse("2"));
        assert!(!Extended::INFINITY.is_finite() && !Extended::NAN.is_finite() && one.is_finite());
        assert_eq!(Extended::INFINITY.format_human(), "inf");
        assert_eq!(Extended::NEG_INFINITY.format_human(), "-inf");
        assert_eq!(Extended::NAN.format_human(), "nan");
        // The largest value overflows when doubled.
        let max = parse("0x1.fffffffffffffffep16383");
        assert_eq!(max.add(max), Extended::INFINITY);
        assert_eq!(max.add(parse("0x1p16319")), Extended::INFINITY); // half an ulp: ties to even (up)
        assert_eq!(max.add(parse("0x1.fffffp16318")), max);
        // Signed zeros: only -0 + -0 stays negative.
        let (zero, neg_zero) = (Extended::ZERO, parse("-0"));
        assert_eq!(neg_zero.add(neg_zero), neg_zero);
        assert_eq!(neg_zero.add(zero), zero);
        assert_eq!(zero.add(neg_zero), zero);
        assert_eq!(one.add(parse("-1")), zero);
        assert_eq!(neg_zero.format_human(), "0");
        // Subnormals add exactly and can become normal.
        let tiny = parse("0x1p-16445");
        assert_eq!(tiny.add(tiny).to_bits(), 0x2);
        let largest_subnormal = parse("0x0.fffffffffffffffep-16382");
        assert_eq!(largest_subnormal.to_bits(), 0x7fffffffffffffff);
        assert_eq!(largest_subnormal.add(tiny).to_bits(), 0x00018000000000000000);
        // A far smaller operand only decides the rounding.
        assert_eq!(one.add(parse("0x1p-64")).to_bits(), 0x3fff8000000000000000);
        assert_eq!(one.add(parse("0x1.000001p-64")).to_bits(), 0x3fff8000000000000001);
        assert_eq!(one.add(parse("-0x1p-200")).to_bits(), 0x3fff8000000000000000);
        assert_eq!(one.add(parse("-0x1p-65")).to_bits(), 0x3fff8000000000000000);
        assert_eq!(one.add(parse("-0x1.000001p-65")).to_bits(), 0x3ffeffffffffffffffff);
    }

    #[test]
    fn big_integers() {
        let mut n = Big::from_decimal(&[1; 30]);
        assert_eq!(n.to_decimal(), "1".repeat(30));
        n.mul_pow5(40);
        n.shl(77);
        let m = n.clone();
        assert_eq!(n.div_small_quotient(&m), (1, false));
        assert_eq!(Big::from_u64(0).to_decimal(), "0");
        let mut x = Big::from_u64(u64::MAX);
        x.shl(100);
        assert_eq!(x.bit_len(), 164);
        assert_eq!(x.bits_from(36), (u64::MAX as u128) << 64);
        assert_eq!(x.bits_from(100), u64::MAX as u128);
        assert!(!x.any_below(100) && x.any_below(101));
        let mut y = x.clone();
        y.mul_add_small(3, 7);
        assert_eq!(y.div_small_quotient(&x), (3, true));
        assert_eq!(y, Big::from_u64(7));
        assert_eq!(y.div_rem_small(2), 1);
    }
}

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
//! of this file. The largest values (about 1.19e4932) take well under a millisecond.

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
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
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
        let mut m =
            if shift <= 0 { (self.mant as u128) << -shift } else { shift_round(self.mant as u128, shift, false) };
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
    /// an overflow gives an infinity, `inf + -inf` gives NaN.
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
            n.mul_add_small(10u32.pow(chunk.len() as u32), chunk.iter().fold(0, |acc, &d| acc * 10 + d as u32));
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

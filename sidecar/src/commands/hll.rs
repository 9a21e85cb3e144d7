//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE. Registers merge by maximum across replicas; a
//! DEL that saw the HyperLogLog wins over concurrent adds.

use bytes::Bytes;

use super::flags::*;
use super::{cmd, CmdError, CmdResult, Command, Ctx};
use crate::crdt::hll::{self, Registers, REGISTERS};
use crate::crdt::keyspace::{HllPart, Part};
use crate::crdt::Effect;

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("pfadd", -2, WRITE | DENYOOM | FAST, (1, 1, 1), "hyperloglog", "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.", pfadd),
    cmd("pfcount", -2, READONLY, (1, -1, 1), "hyperloglog", "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).", pfcount),
    cmd("pfmerge", -2, WRITE | DENYOOM, (1, -1, 1), "hyperloglog", "Merges one or more HyperLogLog values into a single key.", pfmerge),
];

fn wrong_type() -> CmdError {
    CmdError::Raw("WRONGTYPE Key is not a valid HyperLogLog string value.".into())
}

/// The registers at `key`: Ok(None) when missing; an error for anything but a HyperLogLog.
fn registers(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Box<Registers>>, CmdError> {
    match ctx.part(key) {
        None => Ok(None),
        Some(Part::Hll(h)) => Ok(Some(h.regs.clone().unwrap_or_else(|| Box::new([0; REGISTERS])))),
        Some(Part::Str(_)) => Err(wrong_type()),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn pfadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let regs = registers(ctx, &args[1])?;
    let existed = regs.is_some();
    let regs = regs.unwrap_or_else(|| Box::new([0; REGISTERS]));
    let mut updates: Vec<(u16, u8)> = Vec::new();
    for e in &args[2..] {
        let (i, rank) = hll::locate(e);
        let current = updates.iter().find(|u| u.0 == i).map(|u| u.1).unwrap_or(regs[i as usize]);
        if rank > current {
            updates.retain(|u| u.0 != i);
            updates.push((i, rank));
        }
    }
    let changed = !updates.is_empty() || !existed;
    if changed {
        ctx.write(&args[1], Effect::HllAdd { updates });
    }
    ctx.out.int(changed as i64);
    Ok(())
}

fn pfcount(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut union: Option<Box<Registers>> = None;
    for key in &args[1..] {
        if let Some(r) = registers(ctx, key)? {
            match union.as_mut() {
                None => union = Some(r),
                Some(u) => u.iter_mut().zip(r.iter()).for_each(|(a, b)| *a = (*a).max(*b)),
            }
        }
    }
    ctx.out.int(union.map(|u| hll::count(&u)).unwrap_or(0) as i64);
    Ok(())
}

fn pfmerge(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let dest = registers(ctx, &args[1])?;
    let existed = dest.is_some();
    let dest = dest.unwrap_or_else(|| Box::new([0; REGISTERS]));
    let mut merged = dest.clone();
    for key in &args[2..] {
        if let Some(r) = registers(ctx, key)? {
            merged.iter_mut().zip(r.iter()).for_each(|(a, b)| *a = (*a).max(*b));
        }
    }
    let updates: Vec<(u16, u8)> =
        (0..REGISTERS).filter(|&i| merged[i] > dest[i]).map(|i| (i as u16, merged[i])).collect();
    if !updates.is_empty() || !existed {
        ctx.write(&args[1], Effect::HllAdd { updates });
    }
    ctx.out.ok();
    Ok(())
}

/// What GET shows of a HyperLogLog: Redis's dense representation ("HYLL" header, then 16384
/// six-bit registers, least significant bits first).
pub fn encode_for_get(h: &HllPart) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + REGISTERS * 6 / 8);
    out.extend_from_slice(b"HYLL");
    out.push(0); // dense encoding
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&h.count().to_le_bytes());
    let mut packed = vec![0u8; REGISTERS * 6 / 8 + 1];
    if let Some(regs) = &h.regs {
        for (i, &r) in regs.iter().enumerate() {
            let bit = i * 6;
            let (byte, shift) = (bit / 8, bit % 8);
            let v = (r as u16 & 0x3f) << shift;
            packed[byte] |= (v & 0xff) as u8;
            packed[byte + 1] |= (v >> 8) as u8;
        }
    }
    packed.truncate(REGISTERS * 6 / 8);
    out.extend_from_slice(&packed);
    out
}

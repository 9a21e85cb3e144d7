//! `syncmesh-replica check-data DIR [--fix | --set-aside]`: what a data directory holds, told to
//! a person, and the two ways to change it that never lose a byte (see `storage::repair`).
//!
//! Exit status: 0 a replica starts on the directory (as it is, or after the fix), 1 it is
//! damaged and a replica refuses to start on it, 2 the check itself failed (no such directory,
//! an I/O error, a replica running on it for --fix or --set-aside).

use std::path::Path;

use crate::config::CheckData;
use crate::storage::repair::{self, SET_ASIDE};
use crate::storage::survey::{self, FileState, Survey};
use crate::storage::{DirLock, StorageError};

pub const OK: i32 = 0;
pub const DAMAGED: i32 = 1;
pub const FAILED: i32 = 2;

/// Runs the tool; returns the exit status.
pub fn run(args: &CheckData) -> i32 {
    match check(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("check-data: {e}");
            FAILED
        }
    }
}

fn check(args: &CheckData) -> Result<i32, StorageError> {
    let dir = &args.dir;
    if !dir.is_dir() {
        eprintln!("check-data: {} is not a directory", dir.display());
        return Ok(FAILED);
    }
    if args.fix || args.set_aside {
        // Held until the end: no replica may start on the directory while it is changed.
        let _lock = match DirLock::acquire(dir) {
            Ok(lock) => lock,
            Err(e) => {
                eprintln!("check-data: cannot change {}: {e}; stop the replica first", dir.display());
                return Ok(FAILED);
            }
        };
        return if args.set_aside { set_aside(dir) } else { fix(dir) };
    }
    if DirLock::in_use(dir) {
        println!(
            "note: a replica is running on {}: its newest segment is being written, so its end may \
             look torn",
            dir.display()
        );
    }
    let s = survey::survey(dir, true)?;
    print_survey(&s);
    Ok(verdict(&s, true))
}

fn fix(dir: &Path) -> Result<i32, StorageError> {
    let before = survey::survey(dir, true)?;
    print_survey(&before);
    println!();
    match repair::fix(&before)? {
        None => {
            println!("nothing to fix.");
            return Ok(verdict(&before, false));
        }
        Some(fixed) => {
            println!("fixed:");
            for action in &fixed.actions {
                println!("  {action}");
            }
            println!("  what was cut or moved is kept in {} (see its README)", fixed.aside.display());
        }
    }
    let after = survey::survey(dir, true)?;
    println!();
    println!("after the fix:");
    print_survey(&after);
    Ok(verdict(&after, false))
}

fn set_aside(dir: &Path) -> Result<i32, StorageError> {
    let why = "check-data --set-aside: set aside so that the replica starts as a new member and \
               bootstraps from its peers";
    match repair::set_aside(dir, SET_ASIDE, why)? {
        Some(aside) => {
            println!("moved the snapshot and the log of {} into {}", dir.display(), aside.display());
            println!(
                "the next start on {} is a new member (a new replica id) that bootstraps from its peers",
                dir.display()
            );
        }
        None => println!("{} holds no snapshot and no log: nothing to set aside", dir.display()),
    }
    Ok(OK)
}

fn print_survey(s: &Survey) {
    let database = crate::storage::recover::database_of(&s.dir)
        .map(|d| format!("database '{d}'"))
        .unwrap_or_else(|| "no database file".into());
    let replica = s.replica_id.map(|id| format!(", replica {id:016x}")).unwrap_or_default();
    println!("data directory {} ({database}{replica})", s.dir.display());
    if s.is_empty() {
        println!("  no snapshot and no log: a replica starting here is a new member");
        return;
    }
    let width = s.files.iter().map(|f| f.size.to_string().len()).max().unwrap_or(1);
    let indent = " ".repeat(2 + 18 + 2 + width + 8);
    for f in &s.files {
        let what = match (&f.state, f.name.as_str()) {
            (FileState::Good, crate::storage::snapshot::FILE_NAME) => format!("ok: {} keys", f.records),
            (FileState::Good, _) => format!("ok: {} records", f.records),
            (FileState::TornTail { at }, _) => format!(
                "torn tail from byte {at} ({} bytes): the last record was cut short by a crash; {} records before it",
                f.size - at,
                f.records
            ),
            (FileState::Damaged { at, why, readable_after }, _) => {
                let mut text = format!("DAMAGED at byte {at}: {why}");
                text.push_str(&format!("\n{indent}{} records before the damage", f.records));
                if *readable_after > 0 {
                    text.push_str(&format!(", {readable_after} readable records after it (cannot be replayed)"));
                }
                text
            }
            (FileState::AfterDamage, _) => format!("after the damage, not replayed ({} readable records)", f.records),
            (FileState::Covered, _) => "held by the snapshot (a compaction stopped before deleting it)".into(),
        };
        println!("  {:<18}  {:>width$} bytes  {what}", f.name, f.size);
    }
    match &s.damage {
        Some(d) => {
            if d.file != crate::storage::snapshot::FILE_NAME && !s.files.iter().any(|f| f.name == d.file) {
                println!("  {:<18}  missing: {}", d.file, d.why);
            }
            println!(
                "keys recoverable: {} (the history up to {} byte {})",
                d.keys_recoverable, d.file, d.offset
            );
        }
        None => println!("keys: {}", s.keys()),
    }
}

/// Prints what a start would do with the directory; the exit status that says it.
fn verdict(s: &Survey, advise: bool) -> i32 {
    let dir = s.dir.display();
    if let Some(d) = &s.damage {
        println!();
        println!("DAMAGED: {}: {}", d.file, d.why);
        println!("a replica refuses to start on this directory.");
        if advise {
            println!("choose one (each keeps every byte):");
            println!("  syncmesh-replica check-data {dir} --fix");
            if d.keys_recoverable > 0 || d.repair != survey::Repair::Everything {
                println!(
                    "      the replica starts under its id with the {} recoverable keys; the damage and everything",
                    d.keys_recoverable
                );
                println!("      after it move to {dir}/damaged-<unix time>/ (for a replica alone: in a mesh, peers that");
                println!("      hold its writes from the cut part get quarantined)");
            } else {
                println!(
                    "      nothing is recoverable: every file moves to {dir}/damaged-<unix time>/ and the"
                );
                println!("      replica starts as a new member (empty, or bootstrapped from its peers)");
            }
            println!("  syncmesh-replica check-data {dir} --set-aside, or start the replica with --recover-from-peers");
            println!(
                "      every file moves aside; the replica rejoins as a new member and gets back what its peers hold"
            );
        }
        return DAMAGED;
    }
    println!();
    match &s.torn {
        Some(t) => println!(
            "OK: a replica starts on this directory with {} keys; it first copies the torn tail ({} bytes) \
             into {dir}/damaged-<unix time>/ and cuts it off",
            s.keys(),
            t.len
        ),
        None if s.is_empty() => println!("OK: no history; a replica starting on it is a new member"),
        None => println!("OK: a replica starts on this directory with {} keys", s.keys()),
    }
    OK
}

//! Opening a data directory built from fuzz bytes (a corpus of real directories, damaged) never
//! panics and never loses a byte: a refused start changes nothing; a start that cuts a torn
//! tail keeps the cut bytes in `damaged-*/`; `--recover-from-peers` moves every file there
//! unchanged; `check-data --fix` keeps every byte and the directory then opens. The only files a
//! start removes are segments a valid snapshot holds (a compaction's leftovers).
//!
//! Input: a list of files, each `kind:u8 len:u16-LE bytes` (kind 0 `snapshot.bin`, 1
//! `snapshot.tmp`, n >= 2 the segment `log-<n-1>.aof`); the first byte chooses how to open.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use syncmesh_replica::config::AppendFsync;
use syncmesh_replica::storage::recover::{self, OnDamage, Options};
use syncmesh_replica::storage::{log, repair, snapshot, survey, StorageError};

fn unpack(mut data: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    while data.len() >= 3 {
        let kind = data[0];
        let len = u16::from_le_bytes([data[1], data[2]]) as usize;
        let bytes = &data[3..(3 + len).min(data.len())];
        data = &data[(3 + len).min(data.len())..];
        let name = match kind {
            0 => snapshot::FILE_NAME.to_string(),
            1 => snapshot::TEMP_NAME.to_string(),
            n => log::segment_path(Path::new(""), n as u64 - 1).to_string_lossy().into_owned(),
        };
        files.insert(name, bytes.to_vec());
    }
    files
}

fn work_dir() -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    base.join(format!("syncmesh-fuzz-data-dir-{}", std::process::id()))
}

/// Every file under `dir` (recursively) by relative path.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Each original file is in `dir` unchanged, cut with the rest kept as `*/NAME.from-OFFSET`,
/// or moved whole into a subdirectory; `may_go` names files allowed to be gone.
fn assert_every_byte_kept(dir: &Path, original: &BTreeMap<String, Vec<u8>>, may_go: &dyn Fn(&str) -> bool) {
    let now = contents(dir);
    for (name, bytes) in original {
        let here = now.get(Path::new(name));
        let elsewhere = |file: &str| {
            now.iter()
                .find(|(p, _)| p.components().count() == 2 && p.file_name().unwrap() == file)
                .map(|(_, b)| b)
        };
        match here {
            Some(b) if b == bytes => {}
            Some(b) => {
                assert!(b.len() < bytes.len() && bytes.starts_with(b), "{name} changed, not cut");
                let rest = elsewhere(&format!("{name}.from-{}", b.len()))
                    .unwrap_or_else(|| panic!("{name}'s cut part kept"));
                assert_eq!(&[b.as_slice(), rest].concat(), bytes, "{name}'s cut part");
            }
            None if may_go(name) => {}
            None => assert_eq!(elsewhere(name), Some(bytes), "{name} moved whole"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else { return };
    let files = unpack(rest);
    let dir = work_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    // The same as a start reads: a snapshot.tmp is dropped first (an unfinished compaction).
    let originals: BTreeMap<String, Vec<u8>> =
        files.into_iter().filter(|(n, _)| n != snapshot::TEMP_NAME).collect();
    let standalone = how & 1 == 0;
    let next_segment = snapshot::read(&dir).ok().flatten().map(|s| s.next_segment).unwrap_or(0);
    let covered = |name: &str| log::parse_segment_name(name).is_some_and(|n| n < next_segment);
    if how & 6 == 6 {
        // check-data --fix, then a start.
        let _ = std::fs::remove_file(dir.join(snapshot::TEMP_NAME));
        let s = match survey::survey(&dir, standalone) {
            Ok(s) => s,
            // A header of a format this release does not read: nothing to fix, nothing changed.
            Err(StorageError::Format(_)) => {
                assert_every_byte_kept(&dir, &originals, &|name| name == snapshot::TEMP_NAME);
                let _ = std::fs::remove_dir_all(&dir);
                return;
            }
            Err(e) => panic!("survey: {e}"),
        };
        repair::fix(&s).unwrap();
        assert_every_byte_kept(&dir, &originals, &|_| false);
        let again = survey::survey(&dir, standalone).unwrap();
        assert!(again.damage.is_none(), "damage after --fix: {:?}", again.damage);
        let opts = Options {
            database: "fuzz".into(),
            policy: AppendFsync::No,
            rewrite_min: 1 << 20,
            standalone,
            on_damage: OnDamage::Stop,
        };
        recover::open(&dir, &opts).unwrap_or_else(|e| panic!("a fixed directory opens: {e}"));
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let on_damage = if how & 2 == 2 { OnDamage::SetAsideAndRebuild } else { OnDamage::Stop };
    let opts = Options {
        database: "fuzz".into(),
        policy: AppendFsync::No,
        rewrite_min: 1 << 20,
        standalone,
        on_damage,
    };
    let before = contents(&dir);
    match recover::open(&dir, &opts) {
        // Damage, or a file of a format this release does not read: nothing may change.
        Err(StorageError::Damaged(_) | StorageError::Format(_)) => {
            let mut after = contents(&dir);
            // The start creates its bookkeeping files before it reads the history.
            after.remove(Path::new("lock"));
            after.remove(Path::new("database"));
            let mut before = before;
            before.remove(Path::new(snapshot::TEMP_NAME));
            assert_eq!(after, before, "a refused start changed the directory");
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(r) => {
            let set_aside = r.set_aside.clone();
            drop(r);
            match set_aside {
                // Rebuilt as a new member: every file of the history is in the aside directory
                // as it was (the new member's own first segment may reuse a name).
                Some(aside) => {
                    for (name, bytes) in &originals {
                        let moved = std::fs::read(aside.join(name)).ok();
                        assert!(moved.as_ref() == Some(bytes), "{name} moved aside unchanged");
                    }
                }
                None => assert_every_byte_kept(&dir, &originals, &covered),
            }
        }
    }
    // Only a passing input's directory goes: a failing one stays for a look.
    let _ = std::fs::remove_dir_all(&dir);
});

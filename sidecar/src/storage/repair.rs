//! Changing a data directory because of damage, without ever losing a byte: files are moved
//! (never deleted) into a directory of their own inside the data directory, `damaged-<unix
//! time>/` or `set-aside-<unix time>/`, and a file is cut only after the part cut off has been
//! copied there and synced. Recovery and replay never look inside those directories.
//!
//! - [`set_aside`]: every file of the history moves aside; the next start is a new member
//!   (`--recover-from-peers`, `check-data --set-aside`, a replica whose history is behind its
//!   peers').
//! - [`keep_torn_tail`]: the torn last record a crash left is kept aside, then cut.
//! - [`fix`]: `check-data --fix`: the damage and everything after it are set aside, so that the
//!   next start has the history up to the damage.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::log;
use super::snapshot;
use super::survey::{Repair, Survey, TornTail};
use super::sync_dir;

/// Prefix of the directories damaged files are moved to.
pub const DAMAGED: &str = "damaged";
/// Prefix of the directories a person's `check-data --set-aside` moves files to.
pub const SET_ASIDE: &str = "set-aside";

/// Creates `dir/<prefix>-<unix time>` (with `-2`, `-3`, … if it exists).
fn new_aside_dir(dir: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    let now = crate::server::unix_ms() / 1000;
    for n in 1u32.. {
        let name = if n == 1 { format!("{prefix}-{now}") } else { format!("{prefix}-{now}-{n}") };
        let path = dir.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("some name is free")
}

/// Where the files of one repair go, and the note that says what happened to them.
struct Aside {
    dir: PathBuf,
    path: PathBuf,
    note: Vec<String>,
}

impl Aside {
    fn new(dir: &Path, prefix: &str, why: &str) -> std::io::Result<Aside> {
        let path = new_aside_dir(dir, prefix)?;
        let note = vec![
            format!(
                "Set aside by syncmesh-replica {} at unix time {}.",
                env!("CARGO_PKG_VERSION"),
                crate::server::unix_ms() / 1000
            ),
            format!("Why: {why}"),
            String::new(),
        ];
        Ok(Aside { dir: dir.to_path_buf(), path, note })
    }

    /// Moves `file` (in the data directory) here.
    fn move_file(&mut self, file: &Path) -> std::io::Result<()> {
        let name = file.file_name().expect("a file name");
        std::fs::rename(file, self.path.join(name))?;
        self.note.push(format!("{}: moved here whole from the data directory", name.to_string_lossy()));
        Ok(())
    }

    /// Copies `file` from byte `at` on into `<name>.from-<at>` here, syncs the copy, then cuts
    /// `file` at `at`.
    fn cut_file(&mut self, file: &Path, at: u64) -> std::io::Result<()> {
        let name = file.file_name().expect("a file name").to_string_lossy().into_owned();
        let bytes = std::fs::read(file)?;
        let tail = bytes.get(at as usize..).unwrap_or(&[]);
        let kept = format!("{name}.from-{at}");
        let mut copy = File::create(self.path.join(&kept))?;
        copy.write_all(tail)?;
        copy.sync_all()?;
        sync_dir(&self.path)?;
        sync_dir(&self.dir)?;
        let f = std::fs::OpenOptions::new().write(true).open(file)?;
        f.set_len(at)?;
        f.sync_all()?;
        self.note.push(format!(
            "{kept}: bytes {at}.. of {name} ({} bytes), cut off it; to put them back, with the replica \
             stopped: cat {kept} >> ../{name}",
            tail.len()
        ));
        Ok(())
    }

    /// Writes the note (`README`), syncs both directories; returns where the files went.
    fn finish(self) -> std::io::Result<PathBuf> {
        let mut readme = File::create(self.path.join("README"))?;
        readme.write_all((self.note.join("\n") + "\n").as_bytes())?;
        readme.sync_all()?;
        sync_dir(&self.path)?;
        sync_dir(&self.dir)?;
        Ok(self.path)
    }
}

/// The files of the history: the snapshot (and an unfinished one), the segments.
fn history_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = [snapshot::FILE_NAME, snapshot::TEMP_NAME]
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.exists())
        .collect();
    files.extend(super::survey::segments(dir)?.into_values());
    Ok(files)
}

/// Moves every file of the directory's history (snapshot, log segments) into
/// `dir/<prefix>-<unix time>/`, with a `README` saying `why`; the directory keeps its
/// `database` file. A replica started on it next is a new member that bootstraps from its
/// peers. Deletes nothing. Returns where the files went (None: there was no history to move).
///
/// The caller makes sure no replica appends to the directory meanwhile (it holds its lock, or
/// it is the replica and stops right after).
pub fn set_aside(dir: &Path, prefix: &str, why: &str) -> std::io::Result<Option<PathBuf>> {
    let files = history_files(dir)?;
    if files.is_empty() {
        return Ok(None);
    }
    let mut aside = Aside::new(dir, prefix, why)?;
    for f in &files {
        aside.move_file(f)?;
    }
    aside.finish().map(Some)
}

/// Keeps the torn tail a crash left aside in `dir/damaged-<unix time>/`, then cuts it off the
/// segment (or moves the segment, if its header was cut short). Returns where it went.
pub fn keep_torn_tail(dir: &Path, torn: &TornTail) -> std::io::Result<PathBuf> {
    let path = log::segment_path(dir, torn.number);
    let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
    let why = format!(
        "the last record of the log, in {name} from byte {}, was cut short (a write interrupted by a crash); \
         the replica started with the records before it",
        torn.at
    );
    let mut aside = Aside::new(dir, DAMAGED, &why)?;
    if torn.at == 0 {
        aside.move_file(&path)?;
    } else {
        aside.cut_file(&path, torn.at)?;
    }
    aside.finish()
}

/// What [`fix`] did.
pub struct Fixed {
    /// Where the cut and moved parts are.
    pub aside: PathBuf,
    /// One line per file changed.
    pub actions: Vec<String>,
}

/// `check-data --fix`: sets the first damage of `survey` and everything after it aside (or a
/// torn tail, as a start would), so that the next start recovers what was readable up to it.
/// None if there was nothing to fix.
pub fn fix(survey: &Survey) -> std::io::Result<Option<Fixed>> {
    let dir = &survey.dir;
    let Some(damage) = &survey.damage else {
        return match &survey.torn {
            Some(torn) => {
                let aside = keep_torn_tail(dir, torn)?;
                let name = log::segment_path(dir, torn.number);
                let action = format!("cut the torn tail of {} at byte {}", name.display(), torn.at);
                Ok(Some(Fixed { aside, actions: vec![action] }))
            }
            None => Ok(None),
        };
    };
    let why = format!("check-data --fix: {damage}");
    let mut aside = Aside::new(dir, DAMAGED, &why)?;
    let mut actions = Vec::new();
    let segments = super::survey::segments(dir)?;
    let move_from = |aside: &mut Aside, first: u64, actions: &mut Vec<String>| -> std::io::Result<()> {
        for path in segments.range(first..).map(|(_, p)| p) {
            aside.move_file(path)?;
            actions.push(format!("moved {} aside", path.display()));
        }
        Ok(())
    };
    match damage.repair {
        Repair::Everything => {
            for f in history_files(dir)? {
                aside.move_file(&f)?;
                actions.push(format!("moved {} aside", f.display()));
            }
        }
        Repair::SegmentsFrom(first) => move_from(&mut aside, first, &mut actions)?,
        Repair::CutSegment { number, at } => {
            let path = log::segment_path(dir, number);
            aside.cut_file(&path, at)?;
            actions.push(format!("cut {} at byte {at} (the part after it is kept aside)", path.display()));
            move_from(&mut aside, number + 1, &mut actions)?;
        }
    }
    let aside = aside.finish()?;
    Ok(Some(Fixed { aside, actions }))
}

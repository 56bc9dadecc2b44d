//! Notices a store's file deleted or replaced while the store has it open.
//!
//! SQLite keeps writing to the file it opened, whatever now stands at its
//! path: after `rm scores.db`, or `mv other.db scores.db`, every commit is
//! acknowledged and then lost at the next start, which opens the path. The
//! guard remembers the identity (device and inode) of the file and of its
//! write-ahead log as opened, and compares them with what the paths name
//! now. Once they differ, the guard stays broken: the process must be
//! restarted on a good file, and nothing written meanwhile can be lost
//! because nothing is written.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tracing::{error, warn};

/// The identity of one file as opened.
#[derive(Debug)]
struct Watched {
    path: PathBuf,
    /// What the file is called in messages.
    what: &'static str,
    /// Device and inode when it was opened.
    id: (u64, u64),
    /// Held open, so that the inode cannot be freed and its number reused
    /// by another file while the guard compares against it.
    _file: std::fs::File,
}

/// Watches a database file (and its write-ahead log, when there is one).
#[derive(Debug)]
pub struct FileGuard {
    files: Vec<Watched>,
    /// Why the guard broke, once it has: it never heals.
    broken: OnceLock<String>,
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (meta.dev(), meta.ino())
}

/// Elsewhere there is no inode to compare: every file looks the same, and
/// the guard never breaks.
#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

impl Watched {
    fn open(path: &Path, what: &'static str) -> std::io::Result<Watched> {
        let file = std::fs::File::open(path)?;
        let id = identity(&file.metadata()?);
        Ok(Watched {
            path: path.to_owned(),
            what,
            id,
            _file: file,
        })
    }

    /// Why this file is no longer the one opened, if it is not.
    fn problem(&self) -> Option<String> {
        match std::fs::metadata(&self.path) {
            Ok(meta) if identity(&meta) == self.id => None,
            Ok(_) => Some(format!(
                "the {} was replaced by another file while the db ran",
                self.what
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("the {} was deleted while the db ran", self.what))
            }
            Err(e) => {
                // Not a verdict: the file may well be there.
                warn!(path = %self.path.display(), error = %e, "cannot check the database file");
                None
            }
        }
    }
}

impl FileGuard {
    /// Remembers `path` as it is now, and `wal` (its write-ahead log) if
    /// that exists.
    ///
    /// # Errors
    /// `path` cannot be opened or read.
    pub fn new(path: &Path, wal: &Path) -> std::io::Result<FileGuard> {
        let mut files = vec![Watched::open(path, "database file")?];
        match Watched::open(wal, "database's write-ahead log") {
            Ok(w) => files.push(w),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(FileGuard {
            files,
            broken: OnceLock::new(),
        })
    }

    /// Checks that every watched path still names the file opened. The
    /// first failure is logged as an error and kept.
    ///
    /// # Errors
    /// Why writes must stop: the file (or its log) was deleted or replaced,
    /// now or before.
    pub fn check(&self) -> Result<(), String> {
        if let Some(why) = self.broken.get() {
            return Err(why.clone());
        }
        let Some((file, why)) = self
            .files
            .iter()
            .find_map(|f| f.problem().map(|why| (f, why)))
        else {
            return Ok(());
        };
        let why = format!("{why}: writes are refused until it is restarted on a good file");
        if self.broken.set(why.clone()).is_ok() {
            error!(path = %file.path.display(), "{why}");
        }
        Err(why)
    }

    /// Why the guard broke, if it has (without checking again).
    pub fn problem(&self) -> Option<&str> {
        self.broken.get().map(String::as_str)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn deletion_and_replacement_break_the_guard_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let (db, wal) = (dir.path().join("s.db"), dir.path().join("s.db-wal"));
        std::fs::write(&db, b"a").unwrap();
        let guard = FileGuard::new(&db, &wal).unwrap();
        assert_eq!(guard.check(), Ok(()));
        // Rewritten in place: the same file.
        std::fs::write(&db, b"b").unwrap();
        assert_eq!(guard.check(), Ok(()));
        std::fs::remove_file(&db).unwrap();
        let why = guard.check().unwrap_err();
        assert!(why.contains("deleted"), "{why}");
        // Putting a file back does not heal it.
        std::fs::write(&db, b"c").unwrap();
        assert_eq!(guard.check(), Err(why.clone()));
        assert_eq!(guard.problem(), Some(why.as_str()));

        std::fs::write(&wal, b"w").unwrap();
        let guard = FileGuard::new(&db, &wal).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, b"x").unwrap();
        std::fs::rename(&other, &wal).unwrap();
        let why = guard.check().unwrap_err();
        assert!(why.contains("write-ahead log was replaced"), "{why}");
        assert!(FileGuard::new(&dir.path().join("missing"), &wal).is_err());
    }
}

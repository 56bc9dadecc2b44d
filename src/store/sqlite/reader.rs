//! A connection that only reads the update log, for a thread other than the
//! writer's: in WAL mode readers and the writer never wait for each other,
//! and each read sees every commit made before it began.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{rows, BUSY_TIMEOUT};
use crate::store::{Change, LogReader, StoreError};

/// A read-only connection to the store's file.
#[derive(Debug)]
pub struct SqliteReader {
    pub(super) conn: Connection,
}

impl SqliteReader {
    /// Opens `path`, which the writer has opened (and so made a WAL
    /// database) already.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub(super) fn open(path: &Path) -> Result<SqliteReader, StoreError> {
        // Read-write at the file level, so that it may use the shared-memory
        // index of the WAL, and `query_only` so that it never writes.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch("PRAGMA query_only=ON;")?;
        Ok(SqliteReader { conn })
    }
}

impl LogReader for SqliteReader {
    fn changes_after(&mut self, version: i64, limit: usize) -> Result<Vec<Change>, StoreError> {
        rows::changes_after(&self.conn, version, limit)
    }

    fn history(
        &mut self,
        key: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        rows::history(&self.conn, key, before, limit)
    }
}

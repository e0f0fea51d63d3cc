//! The on-disk store of what is known about photos: SQLite, in the user's cache folder.
//!
//! Results are keyed by the BLAKE3 hash of a file's bytes and the model's id, so a renamed or
//! moved photo costs nothing and an edited one is tagged again. A path table remembers each
//! file's size, modification time and hash, so unchanged files are not even read again.
//! Writes go in one transaction per batch in WAL mode: a crash loses at most that batch.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use crate::model::ClassProb;

use super::photo_info::PhotoInfo;

/// Version of the table layout; a database of an older version this one knows is upgraded in
/// place, one of a newer version is only read.
pub const SCHEMA_VERSION: i64 = 2;
/// The oldest layout that is upgraded (version 1 lacked the `photos` table of dates taken and
/// cameras).
const OLDEST_UPGRADABLE: i64 = 1;
/// The hash recorded for a path of a given size and modification time.
const KNOWN_HASH: &str = "SELECT hash FROM files WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3";
/// The stored result of a content hash under a model.
const RESULT: &str = "SELECT labels, embedding FROM results WHERE hash = ?1 AND model = ?2";
/// Every content hash with a result under a model.
const RESULT_HASHES: &str = "SELECT hash FROM results WHERE model = ?1";
/// The stored embedding of a content hash under a model.
const EMBEDDING: &str = "SELECT embedding FROM results WHERE hash = ?1 AND model = ?2";
/// The recorded paths of a content hash.
const PATHS_OF: &str = "SELECT path FROM files WHERE hash = ?1 ORDER BY path";
/// Every recorded file whose content has a result under a model.
const FILES_OF_MODEL: &str =
    "SELECT f.path, f.hash FROM files f JOIN results r ON r.hash = f.hash AND r.model = ?1 ORDER BY f.path";
/// Every query a cache must answer: a newer layout in which all of them prepare is read (the
/// date and camera, read where the layout has them, are not required).
const READ_QUERIES: [&str; 6] = [KNOWN_HASH, RESULT, RESULT_HASHES, EMBEDDING, PATHS_OF, FILES_OF_MODEL];
/// Stores a photo's date taken and camera.
const PUT_INFO: &str = "INSERT OR REPLACE INTO photos (hash, taken, taken_offset, camera) VALUES (?1, ?2, ?3, ?4)";
/// The tables of the current layout, created in one transaction.
const CREATE_TABLES: &str = "
    CREATE TABLE IF NOT EXISTS results (
        hash BLOB NOT NULL,
        model TEXT NOT NULL,
        labels TEXT NOT NULL,
        embedding BLOB NOT NULL,
        PRIMARY KEY (hash, model)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS files (
        path BLOB PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        hash BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS files_by_hash ON files(hash);
    CREATE TABLE IF NOT EXISTS photos (
        hash BLOB PRIMARY KEY,
        taken INTEGER,
        taken_offset INTEGER,
        camera TEXT
    ) WITHOUT ROWID;";
/// How many of the most probable classes are stored per photo.
pub const CACHED_TOP_K: usize = 25;
/// File name of the database inside the cache folder.
pub const DATABASE_FILE: &str = "evatag.sqlite";

/// A BLAKE3 digest of a file's contents.
pub type ContentHash = [u8; 32];

/// Errors from the cache database.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// SQLite failed.
    #[error("cache database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// Another program held the database locked for longer than evatag waits.
    #[error("cache database {path} is locked by another program (waited {:.0} s)", waited.as_secs_f64())]
    Busy {
        /// The database file.
        path: PathBuf,
        /// How long evatag waited.
        waited: Duration,
    },
    /// The cache folder cannot be created or used.
    #[error("cache folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The cache path exists but is not a folder.
    #[error("cache folder {path} is not a folder (set EVATAG_CACHE_DIR to use another place)")]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// The database is damaged.
    #[error("cache database {path} is unusable: {reason}")]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A newer evatag wrote the database in a layout this one cannot read; it is left as it is.
    #[error(
        "cache database {path} was written by a newer evatag (layout version {version}; this one reads up to \
         {SCHEMA_VERSION}) and is left as it is (a newer evatag, or another EVATAG_CACHE_DIR, caches again)"
    )]
    Newer {
        /// The database file.
        path: PathBuf,
        /// The layout version it has.
        version: i64,
    },
    /// The file is an SQLite database that no evatag wrote; it is left as it is.
    #[error(
        "cache database {path} is not an evatag cache (tables under layout version {version}) and is left as \
         it is (move the file away, or set EVATAG_CACHE_DIR, to cache again)"
    )]
    Unknown {
        /// The database file.
        path: PathBuf,
        /// The layout version it has.
        version: i64,
    },
    /// A damaged database could not be moved aside.
    #[error("cache database {path} is damaged ({reason}) and could not be moved aside: {source}")]
    MoveAside {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// Why it could not be renamed.
        source: std::io::Error,
    },
}

impl CacheError {
    /// An SQLite error on the database at `path`; a lock held too long is [`CacheError::Busy`].
    fn from_sqlite(path: &Path, source: rusqlite::Error) -> Self {
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                // The connection waited its whole busy timeout before this error.
                Self::Busy { path: path.to_owned(), waited: BUSY_TIMEOUT }
            }
            _ => Self::Sqlite { path: path.to_owned(), source },
        }
    }

    /// Whether another program holds the database locked.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy { .. })
    }
}

/// How long to wait for another program's lock on the database before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many moved-aside damaged databases are kept; older ones are deleted.
pub const KEPT_BROKEN_COPIES: usize = 3;

/// Size and modification time of a file, as recorded in the path table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Length in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

impl FileStamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Self { size: meta.len(), mtime_ns }
    }
}

/// A model's verdict on one photo, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedResult {
    /// The most probable classes, best first.
    pub labels: Vec<ClassProb>,
    /// The pooled embedding.
    pub embedding: Vec<f32>,
}

/// One result to store.
#[derive(Debug, Clone)]
pub struct NewResult<'a> {
    /// Where the photo is.
    pub path: &'a Path,
    /// Its size and time when it was read.
    pub stamp: FileStamp,
    /// Its content hash.
    pub hash: ContentHash,
    /// Most probable classes, best first.
    pub labels: &'a [ClassProb],
    /// Its embedding.
    pub embedding: &'a [f32],
    /// Its date taken and camera.
    pub info: &'a PhotoInfo,
}

/// An open cache database.
pub struct Cache {
    path: PathBuf,
    conn: Connection,
    writable: bool,
}

impl Cache {
    /// Opens (or creates) the database in `dir`, with warnings to show the user.
    ///
    /// Only a database that SQLite (or its integrity check) finds corrupt, or that is not a
    /// database, is moved aside (to a new name each time, keeping the newest
    /// [`KEPT_BROKEN_COPIES`]) and replaced by an empty one. A database written by a newer
    /// evatag is never written or moved: it is read where its layout still answers this
    /// version's queries, and otherwise the caller goes on without a cache. A database that is
    /// read-only, or on a full disk, is opened read-only: its results are still served. A database locked
    /// by another program for longer than [`BUSY_TIMEOUT`] is an error, and the caller goes on
    /// without a cache.
    pub fn open_in(dir: &Path) -> Result<(Self, Vec<String>), CacheError> {
        Self::open_in_waiting(dir, BUSY_TIMEOUT)
    }

    /// [`Cache::open_in`], waiting at most `busy_timeout` for another program's lock.
    pub fn open_in_waiting(dir: &Path, busy_timeout: Duration) -> Result<(Self, Vec<String>), CacheError> {
        if dir.exists() && !dir.is_dir() {
            return Err(CacheError::NotAFolder { path: dir.to_owned() });
        }
        std::fs::create_dir_all(dir).map_err(|source| CacheError::Folder { path: dir.to_owned(), source })?;
        let path = dir.join(DATABASE_FILE);
        let started = std::time::Instant::now();
        let failure = loop {
            match Self::open_checked(&path, busy_timeout) {
                Ok(cache) => return Ok((cache, Vec::new())),
                // Two processes setting up one new database can each hold the lock the other
                // needs; SQLite then fails one at once instead of waiting, and it tries again.
                Err(failure) if failure.kind() == FailureKind::Busy && started.elapsed() < busy_timeout => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(failure) => break failure,
            }
        };
        match failure.kind() {
            FailureKind::Damaged => {
                let reason = failure.to_string();
                let (aside, removed) = move_aside(&path).map_err(|source| CacheError::MoveAside {
                    path: path.clone(),
                    reason: reason.clone(),
                    source,
                })?;
                let cache = Self::open_checked(&path, busy_timeout).map_err(|e| e.into_error(&path))?;
                let mut warnings = vec![format!(
                    "the cache database {} was unusable ({reason}); moved it to {} and started a new one",
                    path.display(),
                    aside.display()
                )];
                if !removed.is_empty() {
                    let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
                    warnings.push(format!(
                        "deleted the oldest moved-aside cache databases, keeping {KEPT_BROKEN_COPIES}: {}",
                        names.join(", ")
                    ));
                }
                Ok((cache, warnings))
            }
            FailureKind::Busy => Err(CacheError::Busy { path, waited: busy_timeout }),
            FailureKind::Newer => {
                let cache = Self::open_read_only(&path).map_err(|e| e.into_error(&path))?;
                let warning = format!(
                    "the cache database {} was written by a newer evatag ({failure}; this one writes {SCHEMA_VERSION}): \
                     its results are used, new ones are not stored, and the file is left as it is",
                    path.display()
                );
                Ok((cache, vec![warning]))
            }
            FailureKind::CannotWrite => {
                let warning = format!(
                    "the cache database {} cannot be written ({failure}); cached results are used, new ones are not stored",
                    path.display()
                );
                match Self::open_read_only(&path) {
                    Ok(cache) => Ok((cache, vec![warning])),
                    Err(_) => Err(failure.into_error(&path)),
                }
            }
            FailureKind::Other => Err(failure.into_error(&path)),
        }
    }

    /// Opens a database this version can write. Nothing is written to a database this
    /// version must not write (a newer layout, another program's), and where the tables must
    /// be created or upgraded, the layout version is checked again and the tables made in one
    /// `BEGIN IMMEDIATE` transaction: a second process opening the same folder at that moment
    /// waits for this one, then finds the tables complete.
    fn open_checked(path: &Path, busy_timeout: Duration) -> Result<Self, OpenFailure> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(busy_timeout)?;
        // Reading the header makes SQLite parse it: random bytes fail here.
        let (version, tables) = Self::layout(&conn)?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(OpenFailure::Damaged(format!("integrity check: {check}")));
        }
        // Switching to WAL writes the header, so it is done only when needed (and outside
        // the transaction, where a journal mode cannot change).
        let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !journal.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        if tables == 0 || version < SCHEMA_VERSION {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let created = Self::layout(&conn).and_then(|(version, tables)| {
                if tables == 0 || version < SCHEMA_VERSION {
                    conn.execute_batch(&format!("{CREATE_TABLES} PRAGMA user_version = {SCHEMA_VERSION};"))?;
                }
                Ok(())
            });
            match created {
                Ok(()) => conn.execute_batch("COMMIT")?,
                Err(failure) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(failure);
                }
            }
        }
        Ok(Self { path: path.to_owned(), conn, writable: true })
    }

    /// The database's layout version and table count, refusing a layout this version must not
    /// write: a newer one, or tables that no evatag made.
    fn layout(conn: &Connection) -> Result<(i64, i64), OpenFailure> {
        // One statement, so both come from one snapshot: read apart, another process's
        // creation could be seen half (its tables, but not yet its version).
        let (version, tables): (i64, i64) = conn.query_row(
            "SELECT user_version, (SELECT count(*) FROM sqlite_master) FROM pragma_user_version()",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if version > SCHEMA_VERSION {
            return Err(OpenFailure::Newer(version));
        }
        if tables > 0 && version < OLDEST_UPGRADABLE {
            return Err(OpenFailure::Unknown(version));
        }
        Ok((version, tables))
    }

    /// Opens a database for lookups only, where the queries this version makes can be
    /// answered from its layout: this version's, an older one it upgrades, or a newer one
    /// that kept the tables and columns read here.
    fn open_read_only(path: &Path) -> Result<Self, OpenFailure> {
        let cache = Self::open_reader(path).map_err(|e| match e {
            CacheError::Sqlite { source, .. } => OpenFailure::Sqlite(source),
            other => OpenFailure::Damaged(other.to_string()),
        })?;
        let version: i64 = cache.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version < OLDEST_UPGRADABLE {
            return Err(OpenFailure::Unknown(version));
        }
        if version > SCHEMA_VERSION && READ_QUERIES.iter().any(|query| cache.conn.prepare(query).is_err()) {
            return Err(OpenFailure::Newer(version));
        }
        Ok(cache)
    }

    /// Opens an existing database file for lookups only, beside a writer in another thread.
    pub fn open_reader(path: &Path) -> Result<Self, CacheError> {
        let sqlite = |source| CacheError::Sqlite { path: path.to_owned(), source };
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        Ok(Self { path: path.to_owned(), conn, writable: false })
    }

    /// Whether results can be stored (false for a read-only database).
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sqlite(&self) -> impl Fn(rusqlite::Error) -> CacheError + '_ {
        |source| CacheError::from_sqlite(&self.path, source)
    }

    /// The hash recorded for `path`, if its size and modification time are unchanged.
    pub fn known_hash(&self, path: &Path, stamp: FileStamp) -> Result<Option<ContentHash>, CacheError> {
        self.conn
            .prepare_cached(KNOWN_HASH)
            .and_then(|mut s| {
                s.query_row(params![path_key(path), stamp.size as i64, stamp.mtime_ns], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
            })
            .map(|h| h.and_then(|h| h.try_into().ok()))
            .map_err(self.sqlite())
    }

    /// The stored result for content `hash` under `model`.
    pub fn result(&self, hash: &ContentHash, model: &str) -> Result<Option<CachedResult>, CacheError> {
        self.conn
            .prepare_cached(RESULT)
            .and_then(|mut s| {
                s.query_row(params![&hash[..], model], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))
                    .optional()
            })
            .map_err(self.sqlite())
            .map(|row| {
                row.and_then(|(labels, embedding)| {
                    Some(CachedResult {
                        labels: serde_json::from_str(&labels).ok()?,
                        embedding: decode_f32(&embedding),
                    })
                })
            })
    }

    /// The date taken and camera stored for content `hash`; `None` when they were never read
    /// (a result stored by an older version, or a database of the older layout opened
    /// read-only).
    pub fn photo_info(&self, hash: &ContentHash) -> Option<PhotoInfo> {
        self.conn
            .prepare_cached("SELECT taken, taken_offset, camera FROM photos WHERE hash = ?1")
            .and_then(|mut s| {
                s.query_row(params![&hash[..]], |r| {
                    Ok(PhotoInfo { taken: r.get(0)?, taken_offset: r.get(1)?, camera: r.get(2)? })
                })
                .optional()
            })
            .ok()
            .flatten()
    }

    /// Stores the date taken and camera read for content `hash` (nothing when read-only).
    pub fn remember_info(&mut self, hash: &ContentHash, info: &PhotoInfo) -> Result<(), CacheError> {
        if !self.writable {
            return Ok(());
        }
        self.conn
            .prepare_cached(PUT_INFO)
            .and_then(|mut s| s.execute(params![&hash[..], info.taken, info.taken_offset, info.camera]))
            .map(drop)
            .map_err(self.sqlite())
    }

    /// Records where a file is and what it hashes to, without a result (a cache hit under a
    /// new name).
    pub fn remember_file(&mut self, path: &Path, stamp: FileStamp, hash: &ContentHash) -> Result<(), CacheError> {
        if !self.writable {
            return Ok(());
        }
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO files (path, size, mtime_ns, hash) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![path_key(path), stamp.size as i64, stamp.mtime_ns, &hash[..]]))
            .map(drop)
            .map_err(self.sqlite())
    }

    /// Stores a batch of results and their paths in one transaction (nothing when the
    /// database is read-only).
    pub fn store_batch(&mut self, model: &str, batch: &[NewResult<'_>]) -> Result<(), CacheError> {
        if !self.writable {
            return Ok(());
        }
        let path = self.path.clone();
        let sqlite = |source| CacheError::from_sqlite(&path, source);
        let tx = self.conn.transaction().map_err(sqlite)?;
        {
            let mut put_result = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO results (hash, model, labels, embedding) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sqlite)?;
            let mut put_file = tx
                .prepare_cached("INSERT OR REPLACE INTO files (path, size, mtime_ns, hash) VALUES (?1, ?2, ?3, ?4)")
                .map_err(sqlite)?;
            let mut put_info = tx.prepare_cached(PUT_INFO).map_err(sqlite)?;
            for r in batch {
                put_info
                    .execute(params![&r.hash[..], r.info.taken, r.info.taken_offset, r.info.camera])
                    .map_err(sqlite)?;
                let labels = serde_json::to_string(r.labels).expect("labels serialise");
                put_result.execute(params![&r.hash[..], model, labels, encode_f32(r.embedding)]).map_err(sqlite)?;
                put_file
                    .execute(params![path_key(r.path), r.stamp.size as i64, r.stamp.mtime_ns, &r.hash[..]])
                    .map_err(sqlite)?;
            }
        }
        tx.commit().map_err(sqlite)
    }

    /// The content hashes of every result stored for `model`.
    pub fn hashes(&self, model: &str) -> Result<Vec<ContentHash>, CacheError> {
        let mut stmt = self.conn.prepare(RESULT_HASHES).map_err(self.sqlite())?;
        let rows = stmt.query_map(params![model], |r| r.get::<_, Vec<u8>>(0)).map_err(self.sqlite())?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(hash) = row.map_err(self.sqlite())?.try_into() {
                out.push(hash);
            }
        }
        Ok(out)
    }

    /// The stored embedding of content `hash` under `model`.
    pub fn embedding(&self, hash: &ContentHash, model: &str) -> Result<Option<Vec<f32>>, CacheError> {
        self.conn
            .prepare_cached(EMBEDDING)
            .and_then(|mut s| s.query_row(params![&hash[..], model], |r| r.get::<_, Vec<u8>>(0)).optional())
            .map(|bytes| bytes.map(|b| decode_f32(&b)))
            .map_err(self.sqlite())
    }

    /// The recorded paths of files holding content `hash`, in order.
    pub fn paths_of(&self, hash: &ContentHash) -> Result<Vec<PathBuf>, CacheError> {
        let mut stmt = self.conn.prepare_cached(PATHS_OF).map_err(self.sqlite())?;
        let rows = stmt.query_map(params![&hash[..]], |r| r.get::<_, Vec<u8>>(0)).map_err(self.sqlite())?;
        rows.map(|row| row.map(path_from_bytes).map_err(self.sqlite())).collect()
    }

    /// Every recorded file whose content has a result for `model`, with its content hash, in
    /// path order.
    pub fn files_of_model(&self, model: &str) -> Result<Vec<(PathBuf, ContentHash)>, CacheError> {
        let mut stmt = self.conn.prepare(FILES_OF_MODEL).map_err(self.sqlite())?;
        let rows = stmt
            .query_map(params![model], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(self.sqlite())?;
        let mut out = Vec::new();
        for row in rows {
            let (path, hash) = row.map_err(self.sqlite())?;
            if let Ok(hash) = hash.try_into() {
                out.push((path_from_bytes(path), hash));
            }
        }
        Ok(out)
    }

    /// Forgets where files were (moved to the trash, say); their contents' results stay, for
    /// copies elsewhere or a file put back.
    pub fn forget_files(&mut self, paths: &[PathBuf]) -> Result<(), CacheError> {
        if !self.writable {
            return Ok(());
        }
        let path = self.path.clone();
        let sqlite = |source| CacheError::from_sqlite(&path, source);
        let tx = self.conn.transaction().map_err(sqlite)?;
        {
            let mut forget = tx.prepare_cached("DELETE FROM files WHERE path = ?1").map_err(sqlite)?;
            for file in paths {
                forget.execute(params![path_key(file)]).map_err(sqlite)?;
            }
        }
        tx.commit().map_err(sqlite)
    }

    /// Number of stored results and the database's size on disk in bytes.
    pub fn stats(&self) -> Result<(u64, u64), CacheError> {
        let count: i64 =
            self.conn.query_row("SELECT count(*) FROM results", [], |r| r.get(0)).map_err(self.sqlite())?;
        let bytes = ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", self.path.display())).ok())
            .map(|m| m.len())
            .sum();
        Ok((count as u64, bytes))
    }

    /// Deletes every stored result and path.
    pub fn clear(&mut self) -> Result<(), CacheError> {
        self.conn
            .execute_batch("DELETE FROM results; DELETE FROM files; DELETE FROM photos; VACUUM;")
            .map_err(self.sqlite())
    }
}

/// Why a database could not be opened as it is.
enum OpenFailure {
    Sqlite(rusqlite::Error),
    /// A readable database that fails its integrity check.
    Damaged(String),
    /// Written by a newer evatag, in the layout version given.
    Newer(i64),
    /// Tables under a layout version no evatag wrote (another program's database).
    Unknown(i64),
}

/// What to do about an [`OpenFailure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// Corrupt or not a database, as SQLite or its integrity check says: move it aside and
    /// start again.
    Damaged,
    /// Locked by another program.
    Busy,
    /// Readable but not writable (permissions, read-only medium, full disk).
    CannotWrite,
    /// A newer layout: read it where its tables allow, never write or move it.
    Newer,
    /// Anything else: leave the file alone and go on without a cache.
    Other,
}

impl OpenFailure {
    fn kind(&self) -> FailureKind {
        let e = match self {
            Self::Damaged(_) => return FailureKind::Damaged,
            Self::Newer(_) => return FailureKind::Newer,
            Self::Unknown(_) => return FailureKind::Other,
            Self::Sqlite(e) => e,
        };
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => FailureKind::Damaged,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => FailureKind::Busy,
            Some(ErrorCode::ReadOnly | ErrorCode::DiskFull | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
                FailureKind::CannotWrite
            }
            _ => FailureKind::Other,
        }
    }

    fn into_error(self, path: &Path) -> CacheError {
        let kind = self.kind();
        let path = path.to_owned();
        match self {
            Self::Sqlite(_) if kind == FailureKind::Busy => CacheError::Busy { path, waited: BUSY_TIMEOUT },
            Self::Sqlite(source) => CacheError::Sqlite { path, source },
            Self::Damaged(reason) => CacheError::Damaged { path, reason },
            Self::Newer(version) => CacheError::Newer { path, version },
            Self::Unknown(version) => CacheError::Unknown { path, version },
        }
    }
}

impl From<rusqlite::Error> for OpenFailure {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

impl std::fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(e) => write!(f, "{e}"),
            Self::Damaged(why) => f.write_str(why),
            Self::Newer(version) => write!(f, "written by a newer evatag (layout version {version})"),
            Self::Unknown(version) => write!(f, "not an evatag cache (layout version {version})"),
        }
    }
}

/// The marker in the names of moved-aside databases.
const BROKEN_MARKER: &str = ".broken-";

/// Renames a damaged database (and its WAL and shared-memory files) to a name no earlier copy
/// has, then deletes the oldest copies beyond [`KEPT_BROKEN_COPIES`]. Returns the new name and
/// the deleted copies.
fn move_aside(path: &Path) -> std::io::Result<(PathBuf, Vec<PathBuf>)> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let sibling = |suffix: &str| PathBuf::from(format!("{}{suffix}", path.display()));
    // Numbered after every copy made in the same second, so that names keep their order
    // even after older copies are deleted.
    let after = broken_copies(path).iter().filter(|(stamp, _)| stamp.0 == secs).map(|(stamp, _)| stamp.1).max();
    let aside = (after.unwrap_or(0) + 1..)
        .map(|n| sibling(&format!("{BROKEN_MARKER}{secs}-{n}")))
        .find(|candidate| !candidate.exists())
        .expect("some suffix is free");
    for suffix in ["", "-wal", "-shm"] {
        let from = sibling(suffix);
        if from.exists() {
            std::fs::rename(&from, PathBuf::from(format!("{}{suffix}", aside.display())))?;
        }
    }
    Ok((aside, prune_broken_copies(path)))
}

/// The moved-aside copies of `path`, oldest first, with the (seconds, number) of their names.
fn broken_copies(path: &Path) -> Vec<((u64, u32), PathBuf)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{name}{BROKEN_MARKER}");
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut copies: Vec<((u64, u32), PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let file_name = entry.file_name();
            let (secs, n) = file_name.to_str()?.strip_prefix(&prefix)?.split_once('-')?;
            Some(((secs.parse().ok()?, n.parse().ok()?), entry.path()))
        })
        .collect();
    copies.sort();
    copies
}

/// Deletes the oldest moved-aside copies of `path` beyond [`KEPT_BROKEN_COPIES`].
fn prune_broken_copies(path: &Path) -> Vec<PathBuf> {
    let copies = broken_copies(path);
    let excess = copies.len().saturating_sub(KEPT_BROKEN_COPIES);
    copies
        .into_iter()
        .take(excess)
        .filter_map(|(_, copy)| {
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
            }
            std::fs::remove_file(&copy).ok().map(|()| copy)
        })
        .collect()
}

/// A path as stored: its platform bytes, so names that are not UTF-8 survive.
fn path_key(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// A path stored as its platform bytes, back. The bytes may come from another platform, so
/// they are not trusted: on Unix any bytes are a path; on Windows they are WTF-8 (UTF-8 that may
/// hold unpaired surrogates, which Windows allows in names), and elsewhere UTF-8; bytes that are
/// not are read lossily (such a path then simply finds no file).
pub fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(std::ffi::OsString::from_vec(bytes))
    }
    #[cfg(windows)]
    {
        use std::os::windows::ffi::OsStringExt;
        match wide_from_wtf8(&bytes) {
            Some(wide) => PathBuf::from(std::ffi::OsString::from_wide(&wide)),
            None => PathBuf::from(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        match String::from_utf8(bytes) {
            Ok(text) => PathBuf::from(text),
            Err(e) => PathBuf::from(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }
}

/// The UTF-16 code units that WTF-8 `bytes` encode (UTF-8 in which U+D800 to U+DFFF may stand
/// alone, as Windows' `as_encoded_bytes` writes unpaired surrogates), or `None` where the bytes
/// are not WTF-8.
#[cfg(any(windows, test))]
fn wide_from_wtf8(bytes: &[u8]) -> Option<Vec<u16>> {
    let mut wide = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(&lead) = rest.first() {
        let (len, min, bits) = match lead {
            0x00..=0x7F => (1, 0, u32::from(lead)),
            0xC2..=0xDF => (2, 0x80, u32::from(lead & 0x1F)),
            0xE0..=0xEF => (3, 0x800, u32::from(lead & 0x0F)),
            0xF0..=0xF4 => (4, 0x1_0000, u32::from(lead & 0x07)),
            _ => return None,
        };
        let mut code = bits;
        for &byte in rest.get(1..len)? {
            if byte & 0xC0 != 0x80 {
                return None;
            }
            code = (code << 6) | u32::from(byte & 0x3F);
        }
        if code < min || code > 0x10_FFFF {
            return None;
        }
        if let Some(above) = code.checked_sub(0x1_0000) {
            wide.extend([0xD800 | (above >> 10) as u16, 0xDC00 | (above & 0x3FF) as u16]);
        } else {
            wide.push(code as u16);
        }
        rest = &rest[len..];
    }
    Some(wide)
}

fn encode_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The BLAKE3 hash of a file's bytes.
pub fn hash_bytes(bytes: &[u8]) -> ContentHash {
    *blake3::hash(bytes).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<ClassProb> {
        vec![ClassProb { class: 281, prob: 0.5 }, ClassProb { class: 282, prob: 0.25 }]
    }

    #[test]
    fn stores_and_finds_results_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cache, warnings) = Cache::open_in(dir.path()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let stamp = FileStamp { size: 10, mtime_ns: 5 };
        let hash = hash_bytes(b"photo");
        let path = Path::new("/photos/cat.jpg");
        cache
            .store_batch(
                "m1",
                &[NewResult {
                    path,
                    stamp,
                    hash,
                    labels: &labels(),
                    embedding: &[1.0, -2.5],
                    info: &PhotoInfo::default(),
                }],
            )
            .unwrap();
        assert_eq!(cache.known_hash(path, stamp).unwrap(), Some(hash));
        assert_eq!(cache.known_hash(path, FileStamp { size: 10, mtime_ns: 6 }).unwrap(), None);
        let hit = cache.result(&hash, "m1").unwrap().unwrap();
        assert_eq!(hit.labels, labels());
        assert_eq!(hit.embedding, vec![1.0, -2.5]);
        assert!(cache.result(&hash, "m2").unwrap().is_none());
        assert_eq!(cache.hashes("m1").unwrap(), [hash]);
        assert_eq!(cache.embedding(&hash, "m1").unwrap(), Some(vec![1.0, -2.5]));
        assert_eq!(cache.embedding(&hash, "m2").unwrap(), None);
        assert_eq!(cache.files_of_model("m1").unwrap(), [(path.to_owned(), hash)]);
        assert!(cache.files_of_model("m2").unwrap().is_empty());
        cache.remember_file(Path::new("/photos/copy.jpg"), stamp, &hash).unwrap();
        assert_eq!(
            cache.paths_of(&hash).unwrap(),
            [PathBuf::from("/photos/cat.jpg"), PathBuf::from("/photos/copy.jpg")]
        );
        cache.forget_files(&[path.to_owned()]).unwrap();
        assert_eq!(cache.paths_of(&hash).unwrap(), [PathBuf::from("/photos/copy.jpg")]);
        assert_eq!(cache.hashes("m1").unwrap(), [hash], "the result stays for the other copy");
    }

    #[test]
    fn wtf8_bytes_give_back_the_utf16_name() {
        let name = "caf\u{e9} \u{1F600}.jpg";
        assert_eq!(wide_from_wtf8(name.as_bytes()), Some(name.encode_utf16().collect()));
        // An unpaired surrogate, as a Windows file name may hold.
        assert_eq!(wide_from_wtf8(b"a\xed\xa0\x80b"), Some(vec![0x61, 0xD800, 0x62]));
        for bad in [&b"caf\xe9"[..], b"\xc0\x80", b"\xe0\x80\x80", b"\xf4\x90\x80\x80", b"\xed\xa0", b"\x80"] {
            assert_eq!(wide_from_wtf8(bad), None, "{bad:?}");
        }
    }

    #[cfg(windows)]
    #[test]
    fn unpaired_surrogate_paths_round_trip() {
        use std::os::windows::ffi::OsStringExt;
        let dir = tempfile::tempdir().unwrap();
        let (mut cache, _) = Cache::open_in(dir.path()).unwrap();
        let name: Vec<u16> = "C:\\photos\\cat_".encode_utf16().chain([0xD800]).chain(".jpg".encode_utf16()).collect();
        let path = PathBuf::from(std::ffi::OsString::from_wide(&name));
        let hash = hash_bytes(b"x");
        let stamp = FileStamp { size: 1, mtime_ns: 1 };
        let result =
            NewResult { path: &path, stamp, hash, labels: &labels(), embedding: &[0.5], info: &PhotoInfo::default() };
        cache.store_batch("m", &[result]).unwrap();
        assert_eq!(cache.paths_of(&hash).unwrap(), [path]);
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_round_trip() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let (mut cache, _) = Cache::open_in(dir.path()).unwrap();
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/photos/caf\xe9.jpg"));
        let hash = hash_bytes(b"x");
        let stamp = FileStamp { size: 1, mtime_ns: 1 };
        cache
            .store_batch(
                "m",
                &[NewResult { path, stamp, hash, labels: &labels(), embedding: &[0.5], info: &PhotoInfo::default() }],
            )
            .unwrap();
        assert_eq!(cache.paths_of(&hash).unwrap(), [path]);
    }

    /// Stores one result for `hash` under model "m" at `path`.
    fn store_one(cache: &mut Cache, path: &Path, hash: ContentHash) {
        let stamp = FileStamp { size: 1, mtime_ns: 1 };
        let info = PhotoInfo::default();
        let result = NewResult { path, stamp, hash, labels: &labels(), embedding: &[0.5], info: &info };
        cache.store_batch("m", &[result]).unwrap();
    }

    fn garbage() -> Vec<u8> {
        (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    fn broken_copy_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(BROKEN_MARKER) && !name.ends_with("-wal") && !name.ends_with("-shm"))
            .collect();
        names.sort();
        names
    }

    /// A database holding one result.
    fn cache_with_one_result(dir: &Path) -> ContentHash {
        let (mut cache, _) = Cache::open_in(dir).unwrap();
        let hash = hash_bytes(b"photo");
        let stamp = FileStamp { size: 5, mtime_ns: 1 };
        let path = Path::new("/photos/a.jpg");
        cache
            .store_batch(
                "m",
                &[NewResult { path, stamp, hash, labels: &labels(), embedding: &[1.0], info: &PhotoInfo::default() }],
            )
            .unwrap();
        hash
    }

    #[test]
    fn garbage_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DATABASE_FILE), garbage()).unwrap();
        let (cache, warnings) = Cache::open_in(dir.path()).unwrap();
        assert!(warnings[0].contains("moved it to"), "{warnings:?}");
        assert_eq!(cache.stats().unwrap().0, 0);
        assert_eq!(broken_copy_names(dir.path()).len(), 1);
    }

    #[test]
    fn moved_aside_copies_never_overwrite_each_other_and_the_oldest_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut removed_warnings = Vec::new();
        // Five damaged databases within the same second each get their own name.
        for round in 0..5u8 {
            let mut bytes = garbage();
            bytes[0] = round;
            std::fs::write(dir.path().join(DATABASE_FILE), bytes).unwrap();
            let (cache, warnings) = Cache::open_in(dir.path()).unwrap();
            drop(cache);
            std::fs::remove_file(dir.path().join(DATABASE_FILE)).unwrap();
            removed_warnings.extend(warnings.into_iter().filter(|w| w.contains("deleted the oldest")));
        }
        let kept = broken_copy_names(dir.path());
        assert_eq!(kept.len(), KEPT_BROKEN_COPIES, "{kept:?}");
        // The newest copies are the ones kept: their first byte is the round number.
        let mut firsts: Vec<u8> = kept.iter().map(|name| std::fs::read(dir.path().join(name)).unwrap()[0]).collect();
        firsts.sort();
        assert_eq!(firsts, vec![2, 3, 4]);
        assert_eq!(removed_warnings.len(), 2, "{removed_warnings:?}");
        assert!(removed_warnings.iter().all(|w| w.contains(BROKEN_MARKER)));
    }

    #[test]
    fn a_locked_database_is_kept_and_reported_busy() {
        let dir = tempfile::tempdir().unwrap();
        let hash = cache_with_one_result(dir.path());
        let wait = Duration::from_millis(200);
        // Another program writing: lookups go on, a write gives up after the timeout.
        let writer = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (mut cache, warnings) = Cache::open_in_waiting(dir.path(), wait).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(cache.result(&hash, "m").unwrap().is_some());
        let stamp = FileStamp { size: 1, mtime_ns: 1 };
        let row = NewResult {
            path: Path::new("/b.jpg"),
            stamp,
            hash: hash_bytes(b"b"),
            labels: &labels(),
            embedding: &[0.0],
            info: &PhotoInfo::default(),
        };
        let err = cache.store_batch("m", &[row]).unwrap_err();
        assert!(err.is_busy(), "{err}");
        drop((cache, writer));
        // Another program holding the file exclusively: opening gives up after the timeout.
        let holder = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        holder.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;").unwrap();
        let err = Cache::open_in_waiting(dir.path(), wait).err().expect("busy");
        assert!(err.is_busy(), "{err}");
        assert!(err.to_string().contains("locked by another program"), "{err}");
        drop(holder);
        assert!(broken_copy_names(dir.path()).is_empty());
        let (cache, warnings) = Cache::open_in(dir.path()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(cache.result(&hash, "m").unwrap().is_some(), "the results survived");
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_database_still_serves_its_results() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let hash = cache_with_one_result(dir.path());
        let file = dir.path().join(DATABASE_FILE);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
        // Root may write anyway; the test is only meaningful where the mode is enforced.
        if std::fs::OpenOptions::new().write(true).open(&file).is_ok() {
            return;
        }
        let (mut cache, warnings) = Cache::open_in(dir.path()).unwrap();
        assert!(warnings[0].contains("cannot be written"), "{warnings:?}");
        assert!(!cache.is_writable());
        assert!(cache.result(&hash, "m").unwrap().is_some());
        let stamp = FileStamp { size: 1, mtime_ns: 1 };
        let other = NewResult {
            path: Path::new("/b.jpg"),
            stamp,
            hash: hash_bytes(b"b"),
            labels: &labels(),
            embedding: &[0.0],
            info: &PhotoInfo::default(),
        };
        cache.store_batch("m", &[other]).unwrap();
        assert!(cache.result(&hash_bytes(b"b"), "m").unwrap().is_none(), "nothing is written");
        assert!(broken_copy_names(dir.path()).is_empty());
    }

    #[test]
    fn dates_and_cameras_are_stored_with_results_and_apart_from_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cache, _) = Cache::open_in(dir.path()).unwrap();
        let info =
            PhotoInfo { taken: Some(1_626_247_800), taken_offset: Some(7200), camera: Some("Canon EOS R5".into()) };
        let (a, b) = (hash_bytes(b"a"), hash_bytes(b"b"));
        let stamp = FileStamp { size: 1, mtime_ns: 1 };
        let row =
            NewResult { path: Path::new("/a.jpg"), stamp, hash: a, labels: &labels(), embedding: &[1.0], info: &info };
        cache.store_batch("m", &[row]).unwrap();
        assert_eq!(cache.photo_info(&a), Some(info));
        assert_eq!(cache.photo_info(&b), None, "never read");
        cache.remember_info(&b, &PhotoInfo::default()).unwrap();
        assert_eq!(cache.photo_info(&b), Some(PhotoInfo::default()), "read, and nothing found");
        cache.clear().unwrap();
        assert_eq!(cache.photo_info(&a), None);
    }

    #[test]
    fn a_database_of_the_first_layout_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let hash = hash_bytes(b"kept");
        {
            let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE results (hash BLOB NOT NULL, model TEXT NOT NULL, labels TEXT NOT NULL,
                    embedding BLOB NOT NULL, PRIMARY KEY (hash, model)) WITHOUT ROWID;
                 CREATE TABLE files (path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                    hash BLOB NOT NULL);
                 CREATE INDEX files_by_hash ON files(hash);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO results VALUES (?1, 'm', ?2, ?3)",
                params![&hash[..], serde_json::to_string(&labels()).unwrap(), encode_f32(&[0.5])],
            )
            .unwrap();
        }
        let (mut cache, warnings) = Cache::open_in(dir.path()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(broken_copy_names(dir.path()).is_empty(), "nothing is set aside");
        assert_eq!(cache.result(&hash, "m").unwrap().unwrap().labels, labels(), "the results are kept");
        assert_eq!(cache.photo_info(&hash), None);
        let info = PhotoInfo { taken: Some(0), ..PhotoInfo::default() };
        cache.remember_info(&hash, &info).unwrap();
        assert_eq!(cache.photo_info(&hash), Some(info));
        let version: i64 = cache.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_file_where_the_folder_should_be_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache");
        std::fs::write(&file, b"x").unwrap();
        let err = Cache::open_in(&file).err().expect("not a folder");
        assert!(err.to_string().contains("is not a folder"), "{err}");
    }

    /// The hash of the database file's bytes, to show that opening it wrote nothing.
    fn database_bytes(dir: &Path) -> ContentHash {
        hash_bytes(&std::fs::read(dir.join(DATABASE_FILE)).unwrap())
    }

    /// A database that a newer evatag wrote, keeping this version's tables: its results are
    /// served, nothing is stored, and its bytes stay as they were.
    #[test]
    fn a_newer_database_that_keeps_these_tables_is_read_and_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let stored = hash_bytes(b"stored by this version");
        {
            let (mut cache, _) = Cache::open_in(dir.path()).unwrap();
            store_one(&mut cache, Path::new("/photos/a.jpg"), stored);
            cache.conn.execute_batch(&format!("PRAGMA user_version = {};", SCHEMA_VERSION + 1)).unwrap();
        }
        let before = database_bytes(dir.path());
        {
            let (mut cache, warnings) = Cache::open_in(dir.path()).unwrap();
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(warnings[0].contains("written by a newer evatag (layout version 3"), "{warnings:?}");
            assert!(!cache.is_writable());
            assert_eq!(cache.result(&stored, "m").unwrap().unwrap().labels, labels());
            store_one(&mut cache, Path::new("/photos/b.jpg"), hash_bytes(b"new"));
            assert_eq!(cache.result(&hash_bytes(b"new"), "m").unwrap(), None, "nothing is stored");
        }
        assert_eq!(database_bytes(dir.path()), before, "the database was written");
        assert!(broken_copy_names(dir.path()).is_empty(), "the database was moved aside");
    }

    /// A newer layout this version cannot read, and another program's database: both are an
    /// error (the caller goes on without a cache) and keep their bytes.
    #[test]
    fn unreadable_newer_and_foreign_databases_keep_their_bytes() {
        let cases = [
            ("CREATE TABLE results2 (x); PRAGMA user_version = 3;", "written by a newer evatag (layout version 3"),
            ("CREATE TABLE other (x); PRAGMA user_version = 0;", "is not an evatag cache"),
        ];
        for (sql, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            Connection::open(dir.path().join(DATABASE_FILE)).unwrap().execute_batch(sql).unwrap();
            let before = database_bytes(dir.path());
            let err = Cache::open_in(dir.path()).err().expect("refused");
            assert!(err.to_string().contains(expected) && err.to_string().contains("left as it is"), "{err}");
            assert_eq!(database_bytes(dir.path()), before, "{sql}");
            assert!(broken_copy_names(dir.path()).is_empty(), "{sql}");
        }
    }

    /// Eight openers at the same moment on an empty folder, twenty times over: every one gets a
    /// writable cache and none moves another's database aside.
    #[test]
    fn openers_racing_on_an_empty_folder_all_succeed() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|scope| {
                let openers: Vec<_> = (0..8u8)
                    .map(|i| {
                        let (dir, barrier) = (dir.path(), &barrier);
                        scope.spawn(move || {
                            barrier.wait();
                            let (mut cache, warnings) = Cache::open_in(dir).unwrap();
                            assert!(warnings.is_empty(), "{warnings:?}");
                            store_one(&mut cache, Path::new(&format!("/photos/{i}.jpg")), hash_bytes(&[i]));
                        })
                    })
                    .collect();
                openers.into_iter().for_each(|opener| opener.join().unwrap());
            });
            let (cache, _) = Cache::open_in(dir.path()).unwrap();
            assert_eq!(cache.hashes("m").unwrap().len(), 8);
            assert!(broken_copy_names(dir.path()).is_empty());
        }
    }
}

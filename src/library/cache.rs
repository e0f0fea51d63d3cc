//! The on-disk store of what is known about photos: SQLite, in the user's cache folder.
//!
//! Results are keyed by the BLAKE3 hash of a file's bytes and the model's id, so a renamed or
//! moved photo costs nothing and an edited one is tagged again. A path table remembers each
//! file's size, modification time and hash, so unchanged files are not even read again.
//! Writes go in one transaction per batch in WAL mode: a crash loses at most that batch.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::ClassProb;

/// Version of the table layout; a database with another version is set aside and rebuilt.
pub const SCHEMA_VERSION: i64 = 1;
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
    /// The cache folder cannot be created or used.
    #[error("cache folder {path}: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The cache folder: `EVATAG_CACHE_DIR` if set, else the platform's cache location.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("EVATAG_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("org", "evatag", "evatag").map(|d| d.cache_dir().to_owned())
}

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
}

/// An open cache database.
pub struct Cache {
    path: PathBuf,
    conn: Connection,
}

impl Cache {
    /// Opens (or creates) the database in `dir`. A file that is not a database of this
    /// version is moved aside to `*.broken-<time>` and a fresh one made; the returned warning
    /// says so.
    pub fn open_in(dir: &Path) -> Result<(Self, Option<String>), CacheError> {
        std::fs::create_dir_all(dir).map_err(|source| CacheError::Io { path: dir.to_owned(), source })?;
        let path = dir.join(DATABASE_FILE);
        match Self::open_checked(&path) {
            Ok(cache) => Ok((cache, None)),
            Err(reason) => {
                let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let aside = path.with_extension(format!("sqlite.broken-{stamp}"));
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", path.display()));
                    if from.exists() {
                        let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                        std::fs::rename(&from, &to).map_err(|source| CacheError::Io { path: from, source })?;
                    }
                }
                let cache = Self::open_checked(&path).map_err(|e| match e {
                    OpenFailure::Sqlite(source) => CacheError::Sqlite { path: path.clone(), source },
                    OpenFailure::Foreign(why) => {
                        CacheError::Sqlite { path: path.clone(), source: rusqlite::Error::InvalidParameterName(why) }
                    }
                })?;
                let warning = format!(
                    "the cache database {} was unusable ({}); moved it to {} and started a new one",
                    path.display(),
                    reason,
                    aside.display()
                );
                Ok((cache, Some(warning)))
            }
        }
    }

    fn open_checked(path: &Path) -> Result<Self, OpenFailure> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Reading the schema makes SQLite parse the header: random bytes fail here.
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if tables > 0 && version != SCHEMA_VERSION {
            return Err(OpenFailure::Foreign(format!("schema version {version}, expected {SCHEMA_VERSION}")));
        }
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(OpenFailure::Foreign(format!("integrity check: {check}")));
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS results (
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
            PRAGMA user_version = {SCHEMA_VERSION};"
        ))?;
        Ok(Self { path: path.to_owned(), conn })
    }

    /// Opens an existing database file for lookups only, beside a writer in another thread.
    pub fn open_reader(path: &Path) -> Result<Self, CacheError> {
        let sqlite = |source| CacheError::Sqlite { path: path.to_owned(), source };
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(sqlite)?;
        Ok(Self { path: path.to_owned(), conn })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sqlite(&self) -> impl Fn(rusqlite::Error) -> CacheError + '_ {
        |source| CacheError::Sqlite { path: self.path.clone(), source }
    }

    /// The hash recorded for `path`, if its size and modification time are unchanged.
    pub fn known_hash(&self, path: &Path, stamp: FileStamp) -> Result<Option<ContentHash>, CacheError> {
        self.conn
            .prepare_cached("SELECT hash FROM files WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3")
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
            .prepare_cached("SELECT labels, embedding FROM results WHERE hash = ?1 AND model = ?2")
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

    /// Records where a file is and what it hashes to, without a result (a cache hit under a
    /// new name).
    pub fn remember_file(&mut self, path: &Path, stamp: FileStamp, hash: &ContentHash) -> Result<(), CacheError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO files (path, size, mtime_ns, hash) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![path_key(path), stamp.size as i64, stamp.mtime_ns, &hash[..]]))
            .map(drop)
            .map_err(self.sqlite())
    }

    /// Stores a batch of results and their paths in one transaction.
    pub fn store_batch(&mut self, model: &str, batch: &[NewResult<'_>]) -> Result<(), CacheError> {
        let path = self.path.clone();
        let sqlite = |source| CacheError::Sqlite { path: path.clone(), source };
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
            for r in batch {
                let labels = serde_json::to_string(r.labels).expect("labels serialise");
                put_result.execute(params![&r.hash[..], model, labels, encode_f32(r.embedding)]).map_err(sqlite)?;
                put_file
                    .execute(params![path_key(r.path), r.stamp.size as i64, r.stamp.mtime_ns, &r.hash[..]])
                    .map_err(sqlite)?;
            }
        }
        tx.commit().map_err(sqlite)
    }

    /// Every stored embedding of `model` with one path that holds it, in a stable order.
    pub fn embeddings(&self, model: &str) -> Result<Vec<(ContentHash, PathBuf, Vec<f32>)>, CacheError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.hash, min(f.path), r.embedding FROM results r JOIN files f ON f.hash = r.hash
                 WHERE r.model = ?1 GROUP BY r.hash ORDER BY min(f.path)",
            )
            .map_err(self.sqlite())?;
        let rows = stmt
            .query_map(params![model], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Vec<u8>>(2)?))
            })
            .map_err(self.sqlite())?;
        let mut out = Vec::new();
        for row in rows {
            let (hash, path, embedding) = row.map_err(self.sqlite())?;
            if let Ok(hash) = hash.try_into() {
                out.push((hash, path_from_key(path), decode_f32(&embedding)));
            }
        }
        Ok(out)
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
        self.conn.execute_batch("DELETE FROM results; DELETE FROM files; VACUUM;").map_err(self.sqlite())
    }
}

enum OpenFailure {
    Sqlite(rusqlite::Error),
    Foreign(String),
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
            Self::Foreign(why) => f.write_str(why),
        }
    }
}

/// A path as stored: its platform bytes, so names that are not UTF-8 survive.
fn path_key(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

fn path_from_key(bytes: Vec<u8>) -> PathBuf {
    // SAFETY: every stored key was produced by `as_encoded_bytes` on this platform.
    PathBuf::from(unsafe { std::ffi::OsString::from_encoded_bytes_unchecked(bytes) })
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
        let (mut cache, warning) = Cache::open_in(dir.path()).unwrap();
        assert!(warning.is_none());
        let stamp = FileStamp { size: 10, mtime_ns: 5 };
        let hash = hash_bytes(b"photo");
        let path = Path::new("/photos/cat.jpg");
        cache
            .store_batch("m1", &[NewResult { path, stamp, hash, labels: &labels(), embedding: &[1.0, -2.5] }])
            .unwrap();
        assert_eq!(cache.known_hash(path, stamp).unwrap(), Some(hash));
        assert_eq!(cache.known_hash(path, FileStamp { size: 10, mtime_ns: 6 }).unwrap(), None);
        let hit = cache.result(&hash, "m1").unwrap().unwrap();
        assert_eq!(hit.labels, labels());
        assert_eq!(hit.embedding, vec![1.0, -2.5]);
        assert!(cache.result(&hash, "m2").unwrap().is_none());
        assert_eq!(cache.embeddings("m1").unwrap().len(), 1);
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
        cache.store_batch("m", &[NewResult { path, stamp, hash, labels: &labels(), embedding: &[0.5] }]).unwrap();
        assert_eq!(cache.embeddings("m").unwrap()[0].1, path);
    }

    #[test]
    fn garbage_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(dir.path().join(DATABASE_FILE), garbage).unwrap();
        let (cache, warning) = Cache::open_in(dir.path()).unwrap();
        assert!(warning.unwrap().contains("moved it to"));
        assert_eq!(cache.stats().unwrap().0, 0);
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("broken"))
            .count();
        assert_eq!(aside, 1);
    }

    #[test]
    fn another_schema_version_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        conn.execute_batch("CREATE TABLE other (x); PRAGMA user_version = 99;").unwrap();
        drop(conn);
        let (_, warning) = Cache::open_in(dir.path()).unwrap();
        assert!(warning.unwrap().contains("schema version 99"));
    }
}

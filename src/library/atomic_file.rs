//! Files replaced in one step: what is written goes to a temporary file beside the
//! destination, is flushed to disk, and is renamed over it, so that a crash or a kill leaves
//! the old file or the new one, never half of one. Sidecars, exported tables, the saved photo
//! list, the settings and cached thumbnails are all written this way.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

/// Prefix and suffix of the temporary files written beside their destinations.
const TEMP_PREFIX: &str = ".evatag-";
const TEMP_SUFFIX: &str = ".tmp";
/// A temporary file this old was left by a write that did not finish.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// Replaces `path` with what `write` writes, keeping the permissions the file had. On an
/// error the temporary file is removed; I/O errors become `E` through `io_error`, with the OS's
/// own message (not the temporary file's name).
pub fn replace_file<E>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), E>,
    io_error: impl Fn(io::Error) -> E,
) -> Result<(), E> {
    let to_error = |e: io::Error| io_error(without_temp_name(e));
    let mut temp = temp_file_beside(path, folder_of(path)).map_err(to_error)?;
    let mut out = BufWriter::new(temp.as_file_mut());
    write(&mut out)?;
    out.flush().map_err(to_error)?;
    drop(out);
    temp.as_file().sync_all().map_err(to_error)?;
    temp.persist(path).map_err(|e| to_error(e.error))?;
    Ok(())
}

/// A temporary file in `dir` with the permissions `path` has, or those of a new file.
pub fn temp_file_beside(path: &Path, dir: &Path) -> io::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX);
    match fs::metadata(path) {
        Ok(meta) => {
            builder.permissions(meta.permissions());
        }
        #[cfg(unix)]
        Err(_) => {
            // The umask still applies, as for any new file.
            builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        }
        #[cfg(not(unix))]
        Err(_) => {}
    }
    builder.tempfile_in(dir)
}

/// The OS's own message for an error, without the temporary file's name that `tempfile` adds.
pub fn without_temp_name(error: io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => error,
    }
}

/// The folder a file is written in.
pub fn folder_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Removes the temporary files that a write killed before it could clean up left in `dir`
/// (those older than a minute, so that another write's files in flight are kept).
pub fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| SystemTime::now().duration_since(t).is_ok_and(|age| age > STALE_TEMP_AGE));
        if old && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

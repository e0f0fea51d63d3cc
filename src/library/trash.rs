//! Moving photos to the system trash (Freedesktop trash, the macOS Finder's, the Windows
//! Recycle Bin) through the `trash` crate, with their XMP sidecars; never a permanent delete.
//!
//! Photos are moved one at a time, each before its sidecars, and each move is one rename into
//! the trash: however a batch is interrupted, every file is either where it was or in the
//! trash, and a sidecar never leaves without its photo.

use super::export::{SidecarNaming, sidecar_path};
use super::watch::Watch;
use std::path::{Path, PathBuf};

/// What a move to the trash did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrashReport {
    /// The photos now in the trash.
    pub moved: Vec<PathBuf>,
    /// Their sidecars now in the trash.
    pub sidecars: Vec<PathBuf>,
    /// Each photo or sidecar that could not be moved, with a line naming it and the cause.
    pub errors: Vec<(PathBuf, String)>,
    /// Whether `stop` ended the batch before every photo was moved.
    pub stopped: bool,
}

/// Moves `photos` and their XMP sidecars to the system trash, saying how many are done
/// before each, until `watch` says to stop. A photo that cannot be moved keeps its sidecars;
/// one that fails does not stop the others.
pub fn move_to_trash(photos: &[PathBuf], watch: Watch<'_>) -> TrashReport {
    let mut report = TrashReport::default();
    for (i, photo) in photos.iter().enumerate() {
        if !watch.progress(i, photos.len()) {
            report.stopped = true;
            break;
        }
        if let Err(e) = trash::delete(photo) {
            report.errors.push((photo.clone(), format!("{}: not moved to the trash: {e}", photo.display())));
            continue;
        }
        report.moved.push(photo.clone());
        let remaining = &photos[i + 1..];
        for sidecar in sidecars_of(photo, remaining) {
            match trash::delete(&sidecar) {
                Ok(()) => report.sidecars.push(sidecar),
                Err(e) => {
                    let message = format!("{}: not moved to the trash: {e}", sidecar.display());
                    report.errors.push((sidecar, message));
                }
            }
        }
    }
    if !report.stopped {
        watch.progress(photos.len(), photos.len());
    }
    report
}

/// The existing sidecars that belong to `photo` alone once it is gone: `photo.jpg.xmp`, and
/// `photo.xmp` unless another photo of that name (a RAW beside its JPEG) stays, other than
/// those in `leaving` (moved after it).
fn sidecars_of(photo: &Path, leaving: &[PathBuf]) -> Vec<PathBuf> {
    let appended = sidecar_path(photo, SidecarNaming::Appended);
    let replaced = sidecar_path(photo, SidecarNaming::Replaced);
    let mut found = Vec::new();
    if appended.is_file() {
        found.push(appended);
    }
    if replaced.is_file() && !shares_its_name(photo, &replaced, leaving) {
        found.push(replaced);
    }
    found
}

/// Whether a file other than `photo`, its sidecar and the photos in `leaving` has `photo`'s
/// name with another extension: the `photo.xmp` sidecar is then that file's too.
fn shares_its_name(photo: &Path, sidecar: &Path, leaving: &[PathBuf]) -> bool {
    let (Some(dir), Some(stem)) = (photo.parent(), photo.file_stem()) else { return false };
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) else {
        return true;
    };
    entries.filter_map(Result::ok).map(|entry| dir.join(entry.file_name())).any(|other| {
        other.file_stem() == Some(stem)
            && other != photo
            && other != sidecar
            && !leaving.contains(&other)
            && other.extension().is_some_and(|e| !e.eq_ignore_ascii_case("xmp"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_sidecar_stays_while_its_other_photo_does() {
        let dir = tempfile::tempdir().unwrap();
        let touch = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, b"x").unwrap();
            path
        };
        let (jpeg, raw) = (touch("a.jpg"), touch("a.cr2"));
        let (appended, shared) = (touch("a.jpg.xmp"), touch("a.xmp"));
        assert_eq!(sidecars_of(&jpeg, &[]), std::slice::from_ref(&appended));
        assert_eq!(sidecars_of(&jpeg, std::slice::from_ref(&raw)), [appended, shared.clone()]);
        std::fs::remove_file(&raw).unwrap();
        assert_eq!(sidecars_of(&jpeg, &[]).last(), Some(&shared));
    }
}

//! Turning the paths a user gives into the image files to tag.
//!
//! Folders are walked recursively, following symbolic links but never around a loop. Inside
//! folders, files are picked by extension (any case); their content is checked when they are
//! decoded. Anything that cannot be an image file yet is named like one (a FIFO, a dangling
//! link, a directory called `x.jpg`) is reported once, never opened.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::preprocess::{self, PreprocessError};

/// File extensions recognised as images, lower case: the `image` crate's formats, HEIF
/// (read through libheif; where it is missing they are reported, not skipped) and camera RAW.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "png", "webp", "tif", "tiff", "bmp", "gif", // the image crate
    "heic", "heif", "hif", "avif", // libheif
    "dng", "cr2", "cr3", "crw", "nef", "nrw", "arw", "sr2", "srf", "raf", "rw2", "rwl", "orf", "pef", "iiq", "mos",
    "3fr", "fff", "mrw", "srw", "x3f", "kdc", "dcr", "erf", "mef", // flashraw
];

/// One outcome of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanItem {
    /// A regular file to tag.
    Image(PathBuf),
    /// A path that was skipped, and why.
    Problem {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Whether a path's extension names a supported image format.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|known| known.eq_ignore_ascii_case(e)))
}

/// Walks `roots` and hands every image file and every problem to `visit`, in a stable order
/// (roots as given, folder contents sorted by name). `visit` returns `false` to stop early.
///
/// An explicitly named file is always offered, whatever its extension; an explicitly named
/// folder is always walked.
pub fn scan(roots: &[PathBuf], mut visit: impl FnMut(ScanItem) -> bool) {
    for root in roots {
        let keep_going = match fs::metadata(root) {
            Ok(meta) if meta.is_dir() => walk(root, &mut visit),
            Ok(meta) if meta.is_file() => visit(ScanItem::Image(root.clone())),
            Ok(_) => visit(problem(root, "is not a regular file (a pipe, socket or device)")),
            Err(e) => visit(problem(root, &describe_io(root, &e))),
        };
        if !keep_going {
            return;
        }
    }
}

fn walk(root: &Path, visit: &mut impl FnMut(ScanItem) -> bool) -> bool {
    let mut entries = walkdir::WalkDir::new(root).follow_links(true).sort_by_file_name().into_iter();
    while let Some(entry) = entries.next() {
        let item = match entry {
            Err(e) => {
                let path = e.path().unwrap_or(root).to_owned();
                let reason = if e.loop_ancestor().is_some() {
                    "is a symbolic link back into its own folder (a loop); not followed".to_owned()
                } else if let Some(io) = e.io_error() {
                    describe_io(&path, io)
                } else {
                    e.to_string()
                };
                // Only report what would have mattered: image-named entries, folders, and
                // anything that exists but cannot be reached (a dangling link named
                // `notes.txt` is not worth a line; a folder too deep to open is).
                let unreachable = e.io_error().is_some_and(|io| io.kind() != std::io::ErrorKind::NotFound);
                if has_image_extension(&path)
                    || e.loop_ancestor().is_some()
                    || e.depth() == 0
                    || unreachable
                    || is_dir_error(&path)
                {
                    problem(&path, &reason)
                } else {
                    continue;
                }
            }
            Ok(entry) => {
                let path = entry.path();
                let file_type = entry.file_type();
                if entry.depth() == 0 || !has_image_extension(path) {
                    continue;
                }
                if file_type.is_dir() {
                    entries.skip_current_dir();
                    problem(path, "is a directory named like an image; skipped")
                } else if file_type.is_file() {
                    ScanItem::Image(path.to_owned())
                } else {
                    problem(path, "is not a regular file (a pipe, socket or device)")
                }
            }
        };
        if !visit(item) {
            return false;
        }
    }
    true
}

/// Whether a path that failed to be read is a folder we could not list.
fn is_dir_error(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

fn problem(path: &Path, reason: &str) -> ScanItem {
    ScanItem::Problem { path: path.to_owned(), reason: reason.to_owned() }
}

/// Reads a photo file whole, after checking that it is no larger than `max_file_mb` megabytes
/// and that its first bytes are those of a supported format: a huge or foreign file is
/// refused without being read. Errors name the file and the cause.
pub fn read_photo(path: &Path, max_file_mb: u64) -> Result<Vec<u8>, PreprocessError> {
    let io = |e: std::io::Error| PreprocessError::Unreadable { path: path.to_owned(), reason: describe_io(path, &e) };
    let too_large = |bytes: u64| PreprocessError::FileTooLarge { path: path.to_owned(), bytes, limit_mb: max_file_mb };
    let mut file = fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let limit = max_file_mb.saturating_mul(1_000_000);
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    (&mut file).take(preprocess::HEADER_LEN as u64).read_to_end(&mut bytes).map_err(io)?;
    if bytes.is_empty() {
        return Err(PreprocessError::Empty { path: path.to_owned() });
    }
    preprocess::check_header(&bytes, path)?;
    // Bounded even if the file grows while it is read.
    (&mut file).take(limit.saturating_sub(bytes.len() as u64) + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// An I/O error phrased for a person, distinguishing dangling links from missing files.
pub fn describe_io(path: &Path, error: &std::io::Error) -> String {
    let dangling = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match error.kind() {
        std::io::ErrorKind::NotFound if dangling => "is a symbolic link to something that does not exist".to_owned(),
        std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        std::io::ErrorKind::PermissionDenied => "cannot be read: permission denied".to_owned(),
        std::io::ErrorKind::InvalidFilename => {
            format!("cannot be read: the path is too long for the system ({} bytes)", path.as_os_str().len())
        }
        _ => format!("cannot be read: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(roots: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
        let (mut images, mut problems) = (Vec::new(), Vec::new());
        scan(roots, |item| {
            match item {
                ScanItem::Image(p) => images.push(p),
                ScanItem::Problem { path, reason } => problems.push((path, reason)),
            }
            true
        });
        (images, problems)
    }

    #[test]
    fn extensions_match_in_any_case() {
        assert!(has_image_extension(Path::new("a/B.JPG")));
        assert!(has_image_extension(Path::new("c.Tiff")));
        assert!(has_image_extension(Path::new("IMG_0001.HEIC")));
        assert!(has_image_extension(Path::new("DSC_0001.NEF")));
        assert!(!has_image_extension(Path::new("c.xmp")));
        assert!(!has_image_extension(Path::new("jpg")));
    }

    #[cfg(unix)]
    #[test]
    fn loops_links_and_odd_entries_are_reported_once() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/a.JPG"), b"x").unwrap();
        fs::write(root.join("notes.txt"), b"x").unwrap();
        fs::create_dir(root.join("x.jpg")).unwrap();
        symlink(root, root.join("sub/loop")).unwrap();
        symlink(root.join("gone.png"), root.join("dangling.png")).unwrap();
        let fifo = root.join("pipe.jpg");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let (images, problems) = collect(&[root.to_owned()]);
        assert_eq!(images, vec![root.join("sub/a.JPG")]);
        let named: Vec<String> =
            problems.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(named, ["dangling.png", "pipe.jpg", "loop", "x.jpg"], "{problems:?}");
        assert!(problems[0].1.contains("symbolic link"), "{problems:?}");
    }

    #[test]
    fn explicit_files_are_offered_whatever_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("photo.dat");
        fs::write(&file, b"x").unwrap();
        let missing = dir.path().join("missing.jpg");
        let (images, problems) = collect(&[file.clone(), missing.clone()]);
        assert_eq!(images, vec![file]);
        assert_eq!(problems, vec![(missing, "does not exist".to_owned())]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_folder_too_deep_for_the_system_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        // Twenty levels of 250-byte names: the full path exceeds PATH_MAX (4096 bytes), so the
        // walk cannot open the deepest folders. Each level is made through the previous one's
        // descriptor, which keeps every call under the limit.
        let level = "d".repeat(250);
        let mut fd_dir = fs::File::open(dir.path()).unwrap();
        for _ in 0..20 {
            let here = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd_dir));
            fs::create_dir(Path::new(&here).join(&level)).unwrap();
            fd_dir = fs::File::open(Path::new(&here).join(&level)).unwrap();
        }
        let here = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd_dir));
        fs::write(Path::new(&here).join("photo.jpg"), b"x").unwrap();
        let (images, problems) = collect(&[dir.path().to_owned()]);
        assert!(images.is_empty(), "{images:?}");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.contains("too long"), "{problems:?}");
    }

    #[test]
    fn photos_are_refused_by_size_and_header_before_being_read() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.jpg");
        // A sparse 3 MB file: refused by size alone.
        fs::File::create(&big).unwrap().set_len(3_000_000).unwrap();
        let err = read_photo(&big, 2).unwrap_err();
        assert!(matches!(err, PreprocessError::FileTooLarge { bytes: 3_000_000, limit_mb: 2, .. }), "{err}");
        assert!(err.to_string().contains("big.jpg") && err.to_string().contains("3 MB, over the 2 MB limit"), "{err}");
        let text = dir.path().join("notes.jpg");
        fs::write(&text, "hello, this is not a photo at all").unwrap();
        let err = read_photo(&text, 2).unwrap_err();
        assert!(matches!(err, PreprocessError::UnknownFormat { .. }), "{err}");
        assert!(err.to_string().contains("notes.jpg") && err.to_string().contains("not a supported image"), "{err}");
        let empty = dir.path().join("empty.png");
        fs::write(&empty, b"").unwrap();
        let err = read_photo(&empty, 2).unwrap_err();
        assert!(matches!(err, PreprocessError::Empty { .. }) && err.to_string().contains("is empty"), "{err}");
        let png = dir.path().join("ok.png");
        image::RgbImage::new(3, 2).save(&png).unwrap();
        assert_eq!(read_photo(&png, 2).unwrap(), fs::read(&png).unwrap());
    }
}

//! Writing tags where other programs find them: XMP sidecars ([`xmp`]), CSV and JSON
//! ([`tabular`]), with one entry point, [`ExportRequest::run`], for the command line and the app.
//!
//! Every file is written to a temporary file in its folder and renamed over the destination, so
//! a crash leaves either the old file or the new one; an interrupted export removes its
//! temporary file, and one left by a killed process is removed by the next export to that
//! folder. Photos themselves are never opened for writing. A sidecar that is read-only, a
//! symbolic link, or not XMP is reported and left as it is.

pub mod tabular;
pub mod xmp;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::atomic_file::{folder_of, remove_stale_temp_files, replace_file, temp_file_beside, without_temp_name};
use super::photo_info::PhotoInfo;
use crate::fail_point::{Stage, fail_point, panic_message};
use crate::model::labels::Label;

pub use tabular::{write_csv, write_json};

/// Root of the hierarchical keywords evatag writes.
pub const KEYWORD_ROOT: &str = "evatag";

/// How a sidecar is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SidecarNaming {
    /// `photo.jpg` → `photo.jpg.xmp`, as digiKam and darktable name them.
    #[default]
    Appended,
    /// `photo.jpg` → `photo.xmp`, as Lightroom names them.
    Replaced,
}

/// The sidecar of `photo` under `naming`.
pub fn sidecar_path(photo: &Path, naming: SidecarNaming) -> PathBuf {
    match naming {
        SidecarNaming::Appended => {
            let mut name = photo.as_os_str().to_owned();
            name.push(".xmp");
            PathBuf::from(name)
        }
        SidecarNaming::Replaced => photo.with_extension("xmp"),
    }
}

/// The keywords for labels at or above min_prob, best first, deduplicated.
pub fn keywords(labels: &[Label], min_prob: f32) -> Vec<String> {
    let mut keywords: Vec<String> = Vec::new();
    for label in ranked(labels, min_prob) {
        let keyword = label.keyword();
        if !keyword.is_empty() && !keywords.iter().any(|k| k == keyword) {
            keywords.push(keyword.to_owned());
        }
    }
    keywords
}

/// Labels at or above `min_prob`, best first; equal ones keep their order.
fn ranked(labels: &[Label], min_prob: f32) -> Vec<&Label> {
    let mut ranked: Vec<&Label> = labels.iter().filter(|l| l.prob >= min_prob).collect();
    ranked.sort_by(|a, b| b.prob.total_cmp(&a.prob));
    ranked
}

/// One photo and its labels, for the CSV and JSON exports.
#[derive(Debug, Clone, Copy)]
pub struct PhotoTags<'a> {
    /// Where the photo is.
    pub path: &'a Path,
    /// Its labels.
    pub labels: &'a [Label],
    /// Its date taken and camera, when known.
    pub info: Option<&'a PhotoInfo>,
}

/// Errors from exporting tags.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An existing sidecar is not XMP that can be merged; it was left untouched.
    #[error("sidecar {path} is not usable XMP ({reason}); left it untouched")]
    Xml {
        /// The sidecar.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing the CSV file failed.
    #[error("CSV file {path}: {source}")]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
    /// A sidecar that is read-only; it was left as it is.
    #[error("sidecar {path} is read-only; left it as it is")]
    ReadOnly {
        /// The sidecar.
        path: PathBuf,
    },
    /// A sidecar that is a symbolic link; evatag does not write through links.
    #[error("sidecar {path} is a symbolic link; left it as it is (evatag does not write through links)")]
    Symlink {
        /// The sidecar.
        path: PathBuf,
    },
    /// Several photos would share one sidecar (`photo.jpg` and `photo.png` under
    /// [`SidecarNaming::Replaced`]); none of them was written.
    #[error("{} would all write {sidecar}; wrote none of them (name sidecars photo.jpg.xmp instead)", list(photos))]
    Collision {
        /// The shared sidecar.
        sidecar: PathBuf,
        /// The photos.
        photos: Vec<PathBuf>,
    },
    /// evatag failed unexpectedly (a panic) while writing this file; the rest went on.
    #[error("{path}: evatag failed unexpectedly while exporting it: {what}")]
    Unexpected {
        /// The photo whose sidecar, or the table, that was being written.
        path: PathBuf,
        /// What the panic said.
        what: String,
    },
    /// A photo's sidecar would be a photo of the export itself (`holiday.xmp` holding a
    /// JPEG, say): nothing was written over it.
    #[error("{}: the sidecar would be {photo}, which is one of the photos; wrote none", list(owners))]
    SidecarIsAPhoto {
        /// The photos whose sidecar it would be.
        owners: Vec<PathBuf>,
        /// The photo at the sidecar's path (as the export names it).
        photo: PathBuf,
    },
    /// Writing the JSON file failed.
    #[error("JSON file {path}: {source}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

impl ExportError {
    /// The file the error is about: the photo, sidecar or table that was not written.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::Xml { path, .. }
            | Self::Csv { path, .. }
            | Self::ReadOnly { path }
            | Self::Symlink { path }
            | Self::Unexpected { path, .. }
            | Self::Json { path, .. } => path,
            Self::Collision { sidecar, .. } => sidecar,
            Self::SidecarIsAPhoto { photo, .. } => photo,
        }
    }
}

fn list(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(" and ")
}

/// What to export, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest {
    /// Write XMP sidecars, named this way.
    pub sidecars: Option<SidecarNaming>,
    /// Write every photo's labels to this CSV file.
    pub csv: Option<PathBuf>,
    /// Write every photo's labels to this JSON file.
    pub json: Option<PathBuf>,
    /// Leave out labels less probable than this.
    pub min_prob: f32,
}

/// Writes every photo's labels at or above a probability to one file.
type TableWriter = fn(&Path, &[PhotoTags<'_>], f32) -> Result<(), ExportError>;

/// What an export did.
#[derive(Debug, Default)]
pub struct ExportReport {
    /// Sidecars written, or already up to date.
    pub sidecars: usize,
    /// Of those, sidecars with no keyword: no label of the photo reached the threshold.
    pub sidecars_without_keywords: usize,
    /// Files that could not be written, each with its cause.
    pub errors: Vec<ExportError>,
    /// Whether `stop` ended the export before every file was written.
    pub stopped: bool,
}

impl ExportRequest {
    /// Checks, before any work, that the CSV and JSON files can be created where asked.
    pub fn check_outputs(&self) -> Result<(), ExportError> {
        for file in self.csv.iter().chain(&self.json) {
            check_writable(file)?;
        }
        Ok(())
    }

    /// Writes what was asked for `photos`, going on past a file that fails. `stop` is read
    /// between files: once set, nothing more is written.
    pub fn run(&self, photos: &[PhotoTags<'_>], stop: &AtomicBool) -> ExportReport {
        let mut report = ExportReport::default();
        if let Some(naming) = self.sidecars {
            self.write_sidecars(photos, naming, stop, &mut report);
        }
        let tables: [(&Option<PathBuf>, TableWriter); 2] = [(&self.csv, write_csv), (&self.json, write_json)];
        for (file, write) in tables {
            let Some(file) = file else { continue };
            if stop.load(Ordering::SeqCst) {
                report.stopped = true;
                return report;
            }
            if let Err(e) = guarded(file, || write(file, photos, self.min_prob)) {
                report.errors.push(e);
            }
        }
        report
    }

    fn write_sidecars(
        &self,
        photos: &[PhotoTags<'_>],
        naming: SidecarNaming,
        stop: &AtomicBool,
        report: &mut ExportReport,
    ) {
        let (writable, collisions) = group_by_sidecar(photos, naming);
        report.errors.extend(collisions);
        let mut cleaned = HashSet::new();
        for photo in writable {
            if stop.load(Ordering::SeqCst) {
                report.stopped = true;
                return;
            }
            let sidecar = sidecar_path(photo.path, naming);
            if let Some(dir) = sidecar.parent()
                && cleaned.insert(dir.to_owned())
            {
                remove_stale_temp_files(dir);
            }
            let written = guarded(photo.path, || {
                fail_point(Stage::Export, photo.path);
                write_xmp_sidecar(photo.path, photo.labels, self.min_prob, naming)
            });
            match written {
                Ok(_) => {
                    report.sidecars += 1;
                    if keywords(photo.labels, self.min_prob).is_empty() {
                        report.sidecars_without_keywords += 1;
                    }
                }
                Err(e) => report.errors.push(e),
            }
        }
    }
}

/// Runs `write`, a panic in it becoming an [`ExportError::Unexpected`] for `path`, so that
/// the other files are still written.
fn guarded<T>(path: &Path, write: impl FnOnce() -> Result<T, ExportError>) -> Result<T, ExportError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(write)).unwrap_or_else(|payload| {
        Err(ExportError::Unexpected { path: path.to_owned(), what: panic_message(payload.as_ref()) })
    })
}

/// The photos whose sidecar is theirs alone, in their order, and an error for each sidecar
/// that several photos would share or that is itself one of the photos. Names are compared
/// without regard to case, as the default file systems of macOS and Windows (and FAT and
/// exFAT disks everywhere) compare them: two names that differ only in case are one file
/// there.
fn group_by_sidecar<'p, 'a>(
    photos: &'p [PhotoTags<'a>],
    naming: SidecarNaming,
) -> (Vec<&'p PhotoTags<'a>>, Vec<ExportError>) {
    let fold = |path: &Path| path.to_string_lossy().to_lowercase();
    let mut by_sidecar: BTreeMap<String, (PathBuf, Vec<&PhotoTags<'_>>)> = BTreeMap::new();
    for photo in photos {
        let sidecar = sidecar_path(photo.path, naming);
        by_sidecar.entry(fold(&sidecar)).or_insert_with(|| (sidecar, Vec::new())).1.push(photo);
    }
    let photo_names: BTreeMap<String, &Path> = photos.iter().map(|photo| (fold(photo.path), photo.path)).collect();
    let mut refused = HashSet::new();
    let mut errors = Vec::new();
    for (key, (sidecar, group)) in &by_sidecar {
        if let Some(photo) = photo_names.get(key) {
            let owners = group.iter().map(|p| p.path.to_owned()).collect();
            errors.push(ExportError::SidecarIsAPhoto { owners, photo: photo.to_path_buf() });
        } else if group.len() > 1 {
            errors.push(ExportError::Collision {
                sidecar: sidecar.clone(),
                photos: group.iter().map(|p| p.path.to_owned()).collect(),
            });
        } else {
            continue;
        }
        refused.extend(group.iter().map(|p| p.path));
    }
    (photos.iter().filter(|p| !refused.contains(p.path)).collect(), errors)
}

/// Writes or merges the XMP sidecar of one photo; returns the sidecar's path.
///
/// The keywords of `labels` at or above `min_prob` replace those an earlier export wrote; the
/// rest of an existing sidecar is kept as it is. A sidecar that would not change is not
/// rewritten; one that is read-only or a symbolic link is refused.
pub fn write_xmp_sidecar(
    photo: &Path,
    labels: &[Label],
    min_prob: f32,
    naming: SidecarNaming,
) -> Result<PathBuf, ExportError> {
    let sidecar = sidecar_path(photo, naming);
    match fs::symlink_metadata(&sidecar) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(ExportError::Symlink { path: sidecar }),
        Ok(meta) if meta.permissions().readonly() => return Err(ExportError::ReadOnly { path: sidecar }),
        _ => {}
    }
    let existing = match fs::read(&sidecar) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(ExportError::Io { path: sidecar, source }),
    };
    let merged = xmp::sidecar_contents(existing.as_deref(), &keywords(labels, min_prob))
        .map_err(|reason| ExportError::Xml { path: sidecar.clone(), reason })?;
    if existing.as_deref() != Some(&merged[..]) {
        replace_file(&sidecar, |out| out.write_all(&merged).map_err(io_error(&sidecar)), io_error(&sidecar))?;
    }
    Ok(sidecar)
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.to_owned(), source }
}

/// Whether a file can be created at `path`: its folder exists and takes a new file.
fn check_writable(path: &Path) -> Result<(), ExportError> {
    let dir = folder_of(path);
    let cause = match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => match temp_file_beside(path, dir) {
            Ok(_) => return Ok(()),
            Err(e) => without_temp_name(e),
        },
        Ok(_) => io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a folder", dir.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            io::Error::new(io::ErrorKind::NotFound, format!("the folder {} does not exist", dir.display()))
        }
        Err(e) => e,
    };
    Err(ExportError::Io { path: path.to_owned(), source: cause })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    pub(super) fn label(class: usize, label: &str, prob: f32) -> Label {
        Label { class, label: label.to_owned(), prob }
    }

    pub(super) fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A file named like a photo, with bytes that start like a JPEG.
    pub(super) fn photo_in(dir: &Path, name: &str) -> PathBuf {
        let photo = dir.join(name);
        fs::write(&photo, b"\xff\xd8\xff\xe0 not really a JPEG").unwrap();
        photo
    }

    #[test]
    fn keywords_are_the_first_names_above_the_threshold_best_first() {
        let labels = [
            label(134, "crane", 0.1),
            label(281, "tabby, tabby cat", 0.6),
            label(739, "potter's wheel", 0.2),
            label(517, "crane", 0.1),
            label(1, "goldfish, Carassius auratus", 0.01),
        ];
        assert_eq!(keywords(&labels, 0.1), strings(&["tabby", "potter's wheel", "crane"]));
        assert!(keywords(&labels, 0.9).is_empty());
    }

    #[test]
    fn sidecar_names() {
        let photo = Path::new("/photos/2023/IMG.0001.final.jpg");
        assert_eq!(sidecar_path(photo, SidecarNaming::Appended), Path::new("/photos/2023/IMG.0001.final.jpg.xmp"));
        assert_eq!(sidecar_path(photo, SidecarNaming::Replaced), Path::new("/photos/2023/IMG.0001.final.xmp"));
        assert_eq!(sidecar_path(Path::new("raw"), SidecarNaming::Replaced), Path::new("raw.xmp"));
    }

    #[test]
    fn photos_sharing_a_sidecar_are_reported_and_none_of_them_written() {
        let dir = tempfile::tempdir().unwrap();
        let (jpg, png, other) =
            (photo_in(dir.path(), "x.jpg"), photo_in(dir.path(), "x.png"), photo_in(dir.path(), "y.jpg"));
        let labels = [label(281, "tabby", 0.6)];
        let photos: Vec<PhotoTags> =
            [&jpg, &png, &other].iter().map(|path| PhotoTags { path, labels: &labels, info: None }).collect();
        let request = ExportRequest { sidecars: Some(SidecarNaming::Replaced), csv: None, json: None, min_prob: 0.1 };
        let report = request.run(&photos, &AtomicBool::new(false));
        assert_eq!(report.sidecars, 1);
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        let message = report.errors[0].to_string();
        assert!(message.contains("x.jpg") && message.contains("x.png") && message.contains("x.xmp"), "{message}");
        assert!(!dir.path().join("x.xmp").exists());
        assert!(dir.path().join("y.xmp").exists());
        // Named photo.jpg.xmp, the two do not collide.
        let appended = ExportRequest { sidecars: Some(SidecarNaming::Appended), ..request };
        assert!(appended.run(&photos, &AtomicBool::new(false)).errors.is_empty());
    }

    #[test]
    fn sidecars_that_differ_only_in_case_collide() {
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = (photo_in(dir.path(), "img_1.jpg"), photo_in(dir.path(), "IMG_1.png"));
        let labels = [label(281, "tabby", 0.6)];
        let photos: Vec<PhotoTags> =
            [&lower, &upper].iter().map(|path| PhotoTags { path, labels: &labels, info: None }).collect();
        let request = ExportRequest { sidecars: Some(SidecarNaming::Replaced), csv: None, json: None, min_prob: 0.1 };
        let report = request.run(&photos, &AtomicBool::new(false));
        assert_eq!(report.sidecars, 0);
        let message = report.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        assert!(matches!(report.errors[..], [ExportError::Collision { .. }]), "{message}");
        assert!(message.contains("img_1.jpg") && message.contains("IMG_1.png"), "{message}");
        assert!(!dir.path().join("img_1.xmp").exists() && !dir.path().join("IMG_1.xmp").exists());
    }

    #[test]
    fn a_sidecar_that_would_be_one_of_the_photos_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A JPEG named holiday.XMP, and the holiday.jpg whose sidecar under the Lightroom naming
        // would be it (one file where case does not count); and a photo named x.xmp, whose
        // own sidecar would be itself.
        let (jpeg, named_xmp) = (photo_in(dir.path(), "holiday.jpg"), photo_in(dir.path(), "holiday.XMP"));
        let itself = photo_in(dir.path(), "x.xmp");
        let labels = [label(281, "tabby", 0.6)];
        let photos: Vec<PhotoTags> =
            [&jpeg, &named_xmp, &itself].iter().map(|path| PhotoTags { path, labels: &labels, info: None }).collect();
        let originals: Vec<Vec<u8>> = [&named_xmp, &itself].iter().map(|p| fs::read(p).unwrap()).collect();
        let request = ExportRequest { sidecars: Some(SidecarNaming::Replaced), csv: None, json: None, min_prob: 0.1 };
        let report = request.run(&photos, &AtomicBool::new(false));
        let message = report.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        assert_eq!(report.errors.len(), 2, "{message}");
        assert!(report.errors.iter().all(|e| matches!(e, ExportError::SidecarIsAPhoto { .. })), "{message}");
        assert!(
            message.contains("holiday.jpg and ")
                && message.contains("the sidecar would be")
                && message.contains("holiday.XMP"),
            "{message}"
        );
        assert!(message.contains("x.xmp: the sidecar would be"), "{message}");
        let now: Vec<Vec<u8>> = [&named_xmp, &itself].iter().map(|p| fs::read(p).unwrap()).collect();
        assert_eq!(now, originals, "a photo was written over");
        // holiday.XMP's own sidecar (holiday.xmp) is the same name again, and refused with it.
        assert_eq!(report.sidecars, 0, "{message}");
    }

    #[cfg(unix)]
    #[test]
    fn read_only_and_linked_sidecars_are_left_as_they_are() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let labels = [label(281, "tabby", 0.6)];
        let locked = photo_in(dir.path(), "locked.jpg");
        let locked_sidecar = dir.path().join("locked.jpg.xmp");
        fs::write(&locked_sidecar, "<x/>").unwrap();
        fs::set_permissions(&locked_sidecar, fs::Permissions::from_mode(0o444)).unwrap();
        let err = write_xmp_sidecar(&locked, &labels, 0.1, SidecarNaming::Appended).unwrap_err();
        assert!(matches!(err, ExportError::ReadOnly { .. }), "{err}");
        assert_eq!(fs::read_to_string(&locked_sidecar).unwrap(), "<x/>");

        let linked = photo_in(dir.path(), "linked.jpg");
        let target = dir.path().join("elsewhere.xmp");
        std::os::unix::fs::symlink(&target, dir.path().join("linked.jpg.xmp")).unwrap();
        let err = write_xmp_sidecar(&linked, &labels, 0.1, SidecarNaming::Appended).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(fs::symlink_metadata(dir.path().join("linked.jpg.xmp")).unwrap().file_type().is_symlink());
        assert!(!target.exists());
    }

    #[test]
    fn a_stop_request_ends_the_export_between_files_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let labels = [label(281, "tabby", 0.6)];
        let paths: Vec<PathBuf> = (0..3).map(|i| photo_in(dir.path(), &format!("{i}.jpg"))).collect();
        let photos: Vec<PhotoTags> = paths.iter().map(|path| PhotoTags { path, labels: &labels, info: None }).collect();
        let csv = dir.path().join("all.csv");
        let request = ExportRequest {
            sidecars: Some(SidecarNaming::Appended),
            csv: Some(csv.clone()),
            json: None,
            min_prob: 0.1,
        };
        let report = request.run(&photos, &AtomicBool::new(true));
        assert!(report.stopped);
        assert_eq!(report.sidecars, 0);
        assert!(!csv.exists());
        let names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| n.ends_with(".jpg")), "{names:?}");
    }

    #[test]
    fn temporary_files_left_by_a_killed_export_are_removed_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let photo = photo_in(dir.path(), "a.jpg");
        let stale = dir.path().join(".evatag-abc123.tmp");
        let fresh = dir.path().join(".evatag-def456.tmp");
        fs::write(&stale, b"half").unwrap();
        fs::write(&fresh, b"in flight").unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options().write(true).open(&stale).unwrap().set_modified(long_ago).unwrap();
        let labels = [label(281, "tabby", 0.6)];
        let photos = [PhotoTags { path: &photo, labels: &labels, info: None }];
        let request = ExportRequest { sidecars: Some(SidecarNaming::Appended), csv: None, json: None, min_prob: 0.1 };
        assert!(request.run(&photos, &AtomicBool::new(false)).errors.is_empty());
        assert!(!stale.exists());
        assert!(fresh.exists(), "another export's file in flight is kept");
    }

    #[test]
    fn output_files_are_checked_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing/out.csv");
        let request = ExportRequest { sidecars: None, csv: Some(missing), json: None, min_prob: 0.1 };
        let message = request.check_outputs().unwrap_err().to_string();
        assert!(message.contains("missing/out.csv") && message.contains("does not exist"), "{message}");
        assert!(!message.contains(".evatag-"), "{message}");
        let fine = ExportRequest { csv: Some(dir.path().join("out.csv")), ..request };
        fine.check_outputs().unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "the check leaves nothing behind");
    }
}

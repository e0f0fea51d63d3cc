//! The photo list saved between runs, so that a relaunch shows every photo with its labels at
//! once, before (and without) the model. Written atomically (see [`super::persist`]), so a
//! crash or a kill leaves the previous list or the new one. A path that is not UTF-8 (a
//! Latin-1 name from an old camera or a Windows share) is kept as its bytes, as the command
//! line's `path_bytes` keeps it.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::persist::write_atomically;
use super::photos::{Photo, PhotoList, PhotoState};
use crate::library::export::tabular::{path_fields, path_from_fields};
use crate::library::photo_info::PhotoInfo;
use crate::model::labels::Label;

/// One photo as saved: where it is and, once tagged, its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedPhoto {
    /// Where it is.
    pub path: PathBuf,
    /// Its modification time when last seen.
    pub modified: Option<std::time::SystemTime>,
    /// Its date taken and camera.
    pub info: PhotoInfo,
    /// Its labels, best first; `None` when it was not tagged (yet).
    pub labels: Option<Vec<Label>>,
}

/// One photo as written and read: its path as text, with its bytes in hexadecimal where the
/// text cannot hold them.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_bytes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modified: Option<std::time::SystemTime>,
    #[serde(default)]
    info: Cow<'a, PhotoInfo>,
    labels: Option<Cow<'a, [Label]>>,
}

/// The library as saved: its files and folders, and its photos.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SavedLibrary {
    /// The files and folders the library is made of, in the order they were added.
    pub folders: Vec<PathBuf>,
    /// Its photos.
    pub photos: Vec<SavedPhoto>,
}

/// The library as it is now, its photos shared with the list without copying them (so that
/// taking it costs a frame nothing, however long the list).
pub struct Snapshot {
    folders: Vec<PathBuf>,
    photos: Vec<Arc<Photo>>,
}

/// The library as it is now, to be written.
pub fn snapshot(photos: &PhotoList) -> Snapshot {
    Snapshot { folders: photos.roots().to_vec(), photos: photos.shared() }
}

/// The file's layout: the library's folders and photos. A file of a bare list of photos (as
/// first written) reads too, with no folders.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Layout<'a> {
    Library {
        #[serde(with = "super::persist::paths")]
        folders: Vec<PathBuf>,
        #[serde(borrow)]
        photos: Vec<Record<'a>>,
    },
    #[serde(borrow)]
    Photos(Vec<Record<'a>>),
}

/// Writes the list to `file`, replacing the previous one in one step: tagged photos with
/// their labels, every other photo untagged. Failures are not saved; the next scan finds
/// them again.
pub fn write(file: &Path, library: &Snapshot) -> std::io::Result<()> {
    let records: Vec<Record<'_>> = library
        .photos
        .iter()
        .filter(|photo| !matches!(photo.state, PhotoState::Failed(_)))
        .map(|photo| {
            let (path, path_bytes) = path_fields(&photo.path);
            Record {
                path,
                path_bytes,
                modified: photo.modified,
                info: Cow::Borrowed(&photo.info),
                labels: match &photo.state {
                    PhotoState::Tagged(labels) => Some(Cow::Borrowed(labels.as_slice())),
                    _ => None,
                },
            }
        })
        .collect();
    let layout = Layout::Library { folders: library.folders.clone(), photos: records };
    write_atomically(file, |out| Ok(serde_json::to_writer(out, &layout)?))
}

/// The library saved in `file`; empty when there is none or it cannot be read (a damaged file
/// costs only the instant display: the folders are scanned again anyway).
pub fn read(file: &Path) -> SavedLibrary {
    let Ok(text) = std::fs::read(file) else { return SavedLibrary::default() };
    let (folders, records) = match serde_json::from_slice(&text) {
        Ok(Layout::Library { folders, photos }) => (folders, photos),
        Ok(Layout::Photos(photos)) => (Vec::new(), photos),
        Err(e) => {
            tracing::warn!("{}: the saved photo list could not be read ({e}); it is rebuilt", file.display());
            (Vec::new(), Vec::new())
        }
    };
    let photos = records
        .into_iter()
        .filter_map(|record| {
            Some(SavedPhoto {
                path: path_from_fields(&record.path, record.path_bytes.as_deref())?,
                modified: record.modified,
                info: record.info.into_owned(),
                labels: record.labels.map(Cow::into_owned),
            })
        })
        .collect();
    SavedLibrary { folders, photos }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::PhotoError;

    #[test]
    fn a_list_survives_a_round_trip_and_a_damaged_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/library.json");
        let mut photos = PhotoList::default();
        photos.add_roots(&["/p".into(), "/q/one.jpg".into()]);
        let modified = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        photos.queue("/p/a.jpg".into(), Some(modified));
        photos.queue("/p/b.jpg".into(), None);
        photos.queue("/p/c.jpg".into(), None);
        let labels = vec![Label { class: 281, label: "tabby, tabby cat".into(), prob: 0.5 }];
        photos.finish(Path::new("/p/a.jpg"), PhotoState::Tagged(labels.clone()));
        let info = PhotoInfo { taken: Some(1_600_000_000), taken_offset: Some(3600), camera: Some("NIKON Z 6".into()) };
        photos.set_info(Path::new("/p/a.jpg"), info.clone());
        let broken = PhotoError::file("/p/c.jpg".into(), "c.jpg: not a supported image".into());
        photos.finish(Path::new("/p/c.jpg"), PhotoState::Failed(broken));
        write(&file, &snapshot(&photos)).unwrap();
        let back = read(&file);
        assert_eq!(back.folders, [PathBuf::from("/p"), PathBuf::from("/q/one.jpg")]);
        assert_eq!(
            back.photos,
            [
                SavedPhoto { path: "/p/a.jpg".into(), modified: Some(modified), info, labels: Some(labels) },
                SavedPhoto { path: "/p/b.jpg".into(), modified: None, info: PhotoInfo::default(), labels: None },
            ]
        );
        // A bare list of photos, as first saved (before dates were saved), still reads.
        std::fs::write(&file, br#"[{"path":"/p/old.jpg","labels":null}]"#).unwrap();
        let old = read(&file);
        assert_eq!((old.folders.len(), old.photos[0].info.clone()), (0, PhotoInfo::default()));
        std::fs::write(&file, b"{ not json").unwrap();
        assert_eq!(read(&file), SavedLibrary::default());
        assert_eq!(read(&dir.path().join("missing.json")), SavedLibrary::default());
    }

    #[cfg(unix)]
    #[test]
    fn a_name_that_is_not_utf8_is_saved_and_read_back_exactly() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("library.json");
        let latin1 = PathBuf::from(std::ffi::OsStr::from_bytes(b"/p/caf\xe9-latin1.jpg"));
        let mut photos = PhotoList::default();
        let folder = PathBuf::from(std::ffi::OsStr::from_bytes(b"/Fotos de l'\xe9t\xe9"));
        photos.add_roots(std::slice::from_ref(&folder));
        photos.queue(latin1.clone(), None);
        photos.queue("/p/plain.jpg".into(), None);
        let labels = vec![Label { class: 281, label: "tabby, tabby cat".into(), prob: 0.5 }];
        photos.finish(&latin1, PhotoState::Tagged(labels.clone()));
        write(&file, &snapshot(&photos)).unwrap();
        let back = read(&file);
        assert_eq!(back.folders, [folder]);
        assert_eq!(back.photos.iter().map(|p| p.path.clone()).collect::<Vec<_>>(), [latin1, "/p/plain.jpg".into()]);
        assert_eq!(back.photos[0].labels.as_deref(), Some(labels.as_slice()));
    }
}

//! The photo list saved between runs, so that a relaunch shows every photo with its labels at
//! once, before (and without) the model. Written atomically (a temporary file renamed into
//! place), so a crash or a kill leaves the previous list or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::library::photo_info::PhotoInfo;
use crate::model::labels::Label;

use std::sync::Arc;

use super::photos::{Photo, PhotoList, PhotoState};

/// One photo as saved: where it is and, once tagged, its labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedPhoto {
    /// Where it is.
    pub path: PathBuf,
    /// Its modification time when last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<std::time::SystemTime>,
    /// Its date taken and camera.
    #[serde(default)]
    pub info: PhotoInfo,
    /// Its labels, best first; `None` when it was not tagged (yet).
    pub labels: Option<Vec<Label>>,
}

/// One photo as written: [`SavedPhoto`], borrowed from the list.
#[derive(serde::Serialize)]
struct SavedRef<'a> {
    path: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    modified: Option<std::time::SystemTime>,
    info: &'a PhotoInfo,
    labels: Option<&'a [Label]>,
}

/// The list as it is now, shared with the list without copying it (so that taking it costs
/// a frame nothing, however long the list).
pub fn snapshot(photos: &PhotoList) -> Vec<Arc<Photo>> {
    photos.shared().to_vec()
}

/// Writes the list to `file`, replacing the previous one in one step: tagged photos with
/// their labels, every other photo untagged. Failures are not saved; the next scan finds
/// them again.
pub fn write(file: &Path, photos: &[Arc<Photo>]) -> std::io::Result<()> {
    let photos: Vec<SavedRef<'_>> = photos
        .iter()
        .filter(|photo| !matches!(photo.state, PhotoState::Failed(_)))
        .map(|photo| SavedRef {
            path: &photo.path,
            modified: photo.modified,
            info: &photo.info,
            labels: match &photo.state {
                PhotoState::Tagged(labels) => Some(labels),
                _ => None,
            },
        })
        .collect();
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::Builder::new().prefix(".library-").suffix(".tmp").tempfile_in(dir)?;
    let mut out = std::io::BufWriter::new(temp.as_file_mut());
    serde_json::to_writer(&mut out, &photos)?;
    out.flush()?;
    drop(out);
    temp.as_file().sync_all()?;
    temp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

/// The list saved in `file`; empty when there is none or it cannot be read (a damaged file
/// costs only the instant display: the folders are scanned again anyway).
pub fn read(file: &Path) -> Vec<SavedPhoto> {
    let Ok(text) = std::fs::read(file) else { return Vec::new() };
    serde_json::from_slice(&text).unwrap_or_else(|e| {
        tracing::warn!("{}: the saved photo list could not be read ({e}); it is rebuilt", file.display());
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_survives_a_round_trip_and_a_damaged_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/library.json");
        let mut photos = PhotoList::default();
        let modified = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        photos.queue("/p/a.jpg".into(), Some(modified));
        photos.queue("/p/b.jpg".into(), None);
        photos.queue("/p/c.jpg".into(), None);
        let labels = vec![Label { class: 281, label: "tabby, tabby cat".into(), prob: 0.5 }];
        photos.finish(Path::new("/p/a.jpg"), PhotoState::Tagged(labels.clone()));
        let info = PhotoInfo { taken: Some(1_600_000_000), taken_offset: Some(3600), camera: Some("NIKON Z 6".into()) };
        photos.set_info(Path::new("/p/a.jpg"), info.clone());
        photos.finish(Path::new("/p/c.jpg"), PhotoState::Failed("broken".into()));
        write(&file, &snapshot(&photos)).unwrap();
        let back = read(&file);
        assert_eq!(
            back,
            [
                SavedPhoto { path: "/p/a.jpg".into(), modified: Some(modified), info, labels: Some(labels) },
                SavedPhoto { path: "/p/b.jpg".into(), modified: None, info: PhotoInfo::default(), labels: None },
            ]
        );
        // A list saved before dates were saved still reads.
        std::fs::write(&file, br#"[{"path":"/p/old.jpg","labels":null}]"#).unwrap();
        assert_eq!(read(&file)[0].info, PhotoInfo::default());
        std::fs::write(&file, b"{ not json").unwrap();
        assert!(read(&file).is_empty());
        assert!(read(&dir.path().join("missing.json")).is_empty());
    }
}

//! The photos shown in the window and the order and filter they are shown in.
//!
//! Pure view state, fed by worker events; it never touches the disk.

use std::cmp::{Ordering, Reverse};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::library::photo_info::PhotoInfo;
use crate::model::labels::Label;
use crate::worker::PhotoError;

/// Where a photo stands.
#[derive(Debug, Clone, PartialEq)]
pub enum PhotoState {
    /// Waiting for the model.
    Queued,
    /// Tagged; labels best first.
    Tagged(Vec<Label>),
    /// Could not be tagged, and why.
    Failed(PhotoError),
    /// Not tagged yet: the job was cancelled before its turn. Resume tags it.
    NotTagged,
}

/// How many photos of the list are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Every photo in the list.
    pub total: usize,
    /// Tagged.
    pub tagged: usize,
    /// Failed.
    pub failed: usize,
    /// Cancelled before their turn.
    pub not_tagged: usize,
}

/// One photo in the list.
#[derive(Debug, Clone, PartialEq)]
pub struct Photo {
    /// Where it is.
    pub path: PathBuf,
    /// Its file name, for display.
    pub name: String,
    /// Its file name in lower case, for sorting.
    sort_name: String,
    /// Modification time: the date of a photo without a date taken.
    pub modified: Option<SystemTime>,
    /// Its date taken and camera, once read.
    pub info: PhotoInfo,
    /// Its tags or status.
    pub state: PhotoState,
}

impl Photo {
    /// When it was taken, in seconds since the Unix epoch: the EXIF date, else the file's
    /// modification time.
    pub fn date(&self) -> Option<i64> {
        let modified = || {
            let since_epoch = self.modified?.duration_since(SystemTime::UNIX_EPOCH).ok()?;
            i64::try_from(since_epoch.as_secs()).ok()
        };
        self.info.taken.or_else(modified)
    }

    /// The most probable label, once tagged.
    pub fn top_label(&self) -> Option<&Label> {
        match &self.state {
            PhotoState::Tagged(labels) => labels.first(),
            _ => None,
        }
    }
}

/// Orders the grid can be sorted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SortKey {
    /// By file name.
    #[default]
    Name,
    /// By date taken (the file's time without one), newest first.
    #[serde(alias = "Date")]
    Newest,
    /// By date taken (the file's time without one), oldest first.
    Oldest,
    /// Most confident top label first.
    Confidence,
}

impl SortKey {
    /// Every key, for menus.
    pub const ALL: [SortKey; 4] = [SortKey::Name, SortKey::Newest, SortKey::Oldest, SortKey::Confidence];

    /// A short name for menus.
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Name => "Name",
            SortKey::Newest => "Date taken, newest first",
            SortKey::Oldest => "Date taken, oldest first",
            SortKey::Confidence => "Confidence",
        }
    }
}

/// A photo's identity in the list, for as long as the list lives: it is never given to
/// another photo, so that an action or a selection naming a removed photo names nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhotoId(usize);

/// All photos added in this session, and the visible order.
///
/// The visible order is kept up to date incrementally: a photo that arrives or changes is
/// merged into it, so that a list of tens of thousands of photos is not sorted again for
/// every photo tagged. A change of sort, filter or folder sorts it anew.
#[derive(Debug, Default)]
pub struct PhotoList {
    /// Every photo ever added, by id; a removed photo leaves an empty slot, so that ids stay
    /// stable. Shared with the saved list's writer, which gets a snapshot without copying
    /// them; a photo that changes while it is written is copied then.
    slots: Vec<Option<Arc<Photo>>>,
    /// How many slots hold a photo.
    live: usize,
    by_path: HashMap<PathBuf, PhotoId>,
    sort: SortKey,
    filter: String,
    /// The filter, trimmed and in lower case, as it is matched.
    needle: String,
    /// Only photos under this folder are shown, when set.
    folder: Option<PathBuf>,
    /// The files and folders the library is made of, and how many photos each holds.
    roots: Vec<PathBuf>,
    root_counts: Vec<usize>,
    visible: Vec<PhotoId>,
    /// The visible order must be computed from scratch.
    stale: bool,
    /// Photos added or changed since the visible order was last brought up to date.
    changed: Vec<PhotoId>,
}

impl PhotoList {
    /// The paths of every tagged photo, in the order they were added.
    pub fn tagged_paths(&self) -> Vec<PathBuf> {
        self.iter().filter(|(_, p)| matches!(p.state, PhotoState::Tagged(_))).map(|(_, p)| p.path.clone()).collect()
    }

    /// Number of photos, visible or not.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there are no photos.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The photo with this id, unless it was removed.
    pub fn get(&self, id: PhotoId) -> Option<&Photo> {
        self.slots.get(id.0)?.as_deref()
    }

    /// Whether the photo with this id is in the list.
    pub fn contains(&self, id: PhotoId) -> bool {
        self.get(id).is_some()
    }

    /// Every photo with its id, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (PhotoId, &Photo)> {
        self.slots.iter().enumerate().filter_map(|(i, slot)| Some((PhotoId(i), slot.as_deref()?)))
    }

    /// The id of the photo at `path`.
    pub fn id_of(&self, path: &Path) -> Option<PhotoId> {
        self.by_path.get(path).copied()
    }

    /// Adds a photo (or marks a known one as queued again) and returns its id.
    pub fn queue(&mut self, path: PathBuf, modified: Option<SystemTime>) -> PhotoId {
        if let Some(&id) = self.by_path.get(&path) {
            let photo = self.photo_mut(id);
            if !matches!(photo.state, PhotoState::Tagged(_)) {
                photo.state = PhotoState::Queued;
            }
            photo.modified = modified.or(photo.modified);
            return id;
        }
        let name = path.file_name().map_or_else(|| path.to_string_lossy(), |n| n.to_string_lossy()).into_owned();
        let id = PhotoId(self.slots.len());
        for (root, count) in self.roots.iter().zip(&mut self.root_counts) {
            *count += usize::from(path.starts_with(root));
        }
        self.by_path.insert(path.clone(), id);
        let sort_name = name.to_lowercase();
        self.slots.push(Some(Arc::new(Photo {
            path,
            name,
            sort_name,
            modified,
            info: PhotoInfo::default(),
            state: PhotoState::Queued,
        })));
        self.live += 1;
        self.changed.push(id);
        id
    }

    /// Records a photo's outcome (adding it if it was never queued).
    pub fn finish(&mut self, path: &Path, state: PhotoState) -> PhotoId {
        let id = self.id_of(path).unwrap_or_else(|| self.queue(path.to_owned(), None));
        self.photo_mut(id).state = state;
        id
    }

    /// Takes these photos out of the list (never off the disk) and returns them; ids of
    /// photos not in the list are passed over.
    pub fn remove(&mut self, ids: impl IntoIterator<Item = PhotoId>) -> Vec<Arc<Photo>> {
        let removed: Vec<Arc<Photo>> =
            ids.into_iter().filter_map(|id| self.slots.get_mut(id.0).and_then(Option::take)).collect();
        if removed.is_empty() {
            return removed;
        }
        for photo in &removed {
            self.by_path.remove(&photo.path);
        }
        self.live -= removed.len();
        let slots = &self.slots;
        self.visible.retain(|id| slots[id.0].is_some());
        self.changed.retain(|id| slots[id.0].is_some());
        self.count_roots();
        removed
    }

    /// Adds a photo found after a cancel as not tagged yet; a photo already listed keeps its
    /// state.
    pub fn list_untagged(&mut self, path: PathBuf, modified: Option<SystemTime>) {
        if self.by_path.contains_key(&path) {
            return;
        }
        let id = self.queue(path, modified);
        self.photo_mut(id).state = PhotoState::NotTagged;
    }

    /// Adds a photo known from an earlier run: tagged with `labels`, or not tagged yet.
    pub fn restore(
        &mut self,
        path: PathBuf,
        modified: Option<SystemTime>,
        info: PhotoInfo,
        labels: Option<Vec<Label>>,
    ) {
        let id = self.queue(path, modified);
        let photo = self.photo_mut(id);
        photo.info = info;
        photo.state = labels.map_or(PhotoState::NotTagged, PhotoState::Tagged);
    }

    /// Records a photo's date taken and camera.
    pub fn set_info(&mut self, path: &Path, info: PhotoInfo) {
        if let Some(id) = self.id_of(path) {
            self.photo_mut(id).info = info;
        }
    }

    /// Marks every queued photo as not tagged yet (a cancel).
    pub fn cancel_queued(&mut self) {
        for photo in self.slots.iter_mut().flatten() {
            if photo.state == PhotoState::Queued {
                Arc::make_mut(photo).state = PhotoState::NotTagged;
            }
        }
        self.stale = true;
    }

    /// Queues again every photo that a cancel left untagged; returns their paths.
    pub fn resume_not_tagged(&mut self) -> Vec<PathBuf> {
        let mut resumed = Vec::new();
        for photo in self.slots.iter_mut().flatten() {
            if photo.state == PhotoState::NotTagged {
                Arc::make_mut(photo).state = PhotoState::Queued;
                resumed.push(photo.path.clone());
            }
        }
        self.stale = true;
        resumed
    }

    /// How many photos are in each state.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts { total: self.live, ..Counts::default() };
        for (_, photo) in self.iter() {
            match photo.state {
                PhotoState::Tagged(_) => counts.tagged += 1,
                PhotoState::Failed(_) => counts.failed += 1,
                PhotoState::NotTagged => counts.not_tagged += 1,
                PhotoState::Queued => {}
            }
        }
        counts
    }

    /// The current sort order.
    pub fn sort(&self) -> SortKey {
        self.sort
    }

    /// Changes the sort order.
    pub fn set_sort(&mut self, sort: SortKey) {
        if sort != self.sort {
            self.sort = sort;
            self.stale = true;
        }
    }

    /// The current filter text.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Keeps only photos with a label, file name or folder containing `text` (any case);
    /// empty shows all.
    pub fn set_filter(&mut self, text: &str) {
        if text != self.filter {
            self.filter = text.to_owned();
            self.needle = text.trim().to_lowercase();
            self.stale = true;
        }
    }

    /// The folder the grid is narrowed to, if any.
    pub fn folder(&self) -> Option<&Path> {
        self.folder.as_deref()
    }

    /// Shows only the photos under `folder`; `None` shows every photo.
    pub fn set_folder(&mut self, folder: Option<PathBuf>) {
        if folder != self.folder {
            self.folder = folder;
            self.stale = true;
        }
    }

    /// Adds files and folders to those the library is made of, each once, in the order first
    /// added; returns whether any was new.
    pub fn add_roots(&mut self, roots: &[PathBuf]) -> bool {
        let before = self.roots.len();
        for root in roots {
            if !self.roots.contains(root) {
                self.roots.push(root.clone());
            }
        }
        self.count_roots();
        self.roots.len() != before
    }

    /// Takes a file or folder out of those the library is made of (its photos stay until
    /// they are removed).
    pub fn remove_root(&mut self, root: &Path) {
        self.roots.retain(|r| r != root);
        self.count_roots();
    }

    /// The files and folders the library is made of, in the order they were added.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Whether `path` lies in one of the library's files or folders.
    pub fn in_library(&self, path: &Path) -> bool {
        self.roots.iter().any(|root| path.starts_with(root))
    }

    /// How many photos each root holds, in the order of [`Self::roots`].
    pub fn root_counts(&self) -> &[usize] {
        &self.root_counts
    }

    /// Every photo, shared: a snapshot that costs no copy of a photo.
    pub fn shared(&self) -> Vec<Arc<Photo>> {
        self.slots.iter().flatten().cloned().collect()
    }

    /// The visible photos' ids in display order, brought up to date.
    pub fn visible(&mut self) -> &[PhotoId] {
        self.with_visible().1
    }

    /// The list together with its visible ids, brought up to date, for drawing both at once.
    pub fn with_visible(&mut self) -> (&Self, &[PhotoId]) {
        self.refresh();
        let this: &Self = self;
        (this, &this.visible)
    }

    /// A photo to change, marked as changed for the visible order.
    fn photo_mut(&mut self, id: PhotoId) -> &mut Photo {
        self.changed.push(id);
        let slot = self.slots[id.0].as_mut().expect("the photo is in the list");
        Arc::make_mut(slot)
    }

    /// The photo with an id the list itself holds (visible or changed), so never removed.
    fn listed(&self, id: PhotoId) -> &Photo {
        self.get(id).expect("the list holds only ids of its photos")
    }

    fn count_roots(&mut self) {
        self.root_counts =
            self.roots.iter().map(|root| self.iter().filter(|(_, p)| p.path.starts_with(root)).count()).collect();
    }

    /// Whether a photo matches the folder and the filter: by a label, its file name or a
    /// folder of its path (any case).
    fn matches(&self, photo: &Photo) -> bool {
        if self.folder.as_ref().is_some_and(|folder| !photo.path.starts_with(folder)) {
            return false;
        }
        if self.needle.is_empty() {
            return true;
        }
        let by_label = match &photo.state {
            PhotoState::Tagged(labels) => labels.iter().any(|l| l.label.to_lowercase().contains(&self.needle)),
            _ => false,
        };
        by_label || photo.path.to_string_lossy().to_lowercase().contains(&self.needle)
    }

    /// The grid's order of two photos; ties keep the order they were added in.
    fn compare(&self, a: PhotoId, b: PhotoId) -> Ordering {
        let (first, second) = (self.listed(a), self.listed(b));
        let by_key = match self.sort {
            // Natural and case-insensitive, as file managers sort: img2 before img10.
            SortKey::Name => alphanumeric_sort::compare_str(&first.sort_name, &second.sort_name),
            // Undated photos last either way.
            SortKey::Newest => {
                (first.date().is_none(), Reverse(first.date())).cmp(&(second.date().is_none(), Reverse(second.date())))
            }
            SortKey::Oldest => (first.date().is_none(), first.date()).cmp(&(second.date().is_none(), second.date())),
            SortKey::Confidence => {
                let prob = |photo: &Photo| photo.top_label().map_or(-1.0, |l| l.prob);
                prob(second).total_cmp(&prob(first))
            }
        };
        by_key.then(a.cmp(&b))
    }

    /// Brings the visible order up to date: from scratch when it is stale or most photos
    /// changed, else by taking the changed photos out and merging them back in.
    fn refresh(&mut self) {
        let changed = std::mem::take(&mut self.changed);
        if self.stale || changed.len() > 64 && changed.len() * 8 > self.visible.len() {
            self.recompute();
            return;
        }
        if changed.is_empty() {
            return;
        }
        let changed: HashSet<PhotoId> = changed.into_iter().collect();
        let mut arriving: Vec<PhotoId> = changed.iter().copied().filter(|&id| self.matches(self.listed(id))).collect();
        arriving.sort_by(|&a, &b| self.compare(a, b));
        let staying: Vec<PhotoId> = self.visible.iter().copied().filter(|id| !changed.contains(id)).collect();
        let mut merged = Vec::with_capacity(staying.len() + arriving.len());
        let (mut s, mut a) = (staying.into_iter().peekable(), arriving.into_iter().peekable());
        loop {
            let next = match (s.peek(), a.peek()) {
                (Some(&x), Some(&y)) if self.compare(x, y) == Ordering::Greater => a.next(),
                (Some(_), _) => s.next(),
                (None, _) => a.next(),
            };
            let Some(next) = next else { break };
            merged.push(next);
        }
        self.visible = merged;
    }

    fn recompute(&mut self) {
        let mut visible: Vec<PhotoId> =
            self.iter().filter(|(_, photo)| self.matches(photo)).map(|(id, _)| id).collect();
        visible.sort_by(|&a, &b| self.compare(a, b));
        self.visible = visible;
        self.stale = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(name: &str, prob: f32) -> Label {
        Label { class: 0, label: name.to_owned(), prob }
    }

    #[test]
    fn filter_and_sort_apply() {
        let mut lib = PhotoList::default();
        lib.queue("b.jpg".into(), None);
        lib.queue("a.jpg".into(), None);
        lib.queue("c.jpg".into(), None);
        lib.finish(Path::new("a.jpg"), PhotoState::Tagged(vec![label("tabby, tabby cat", 0.4)]));
        lib.finish(Path::new("b.jpg"), PhotoState::Tagged(vec![label("espresso", 0.9)]));
        let names = |lib: &mut PhotoList| -> Vec<String> {
            let visible = lib.visible().to_vec();
            visible.iter().map(|&id| lib.get(id).unwrap().name.clone()).collect()
        };
        assert_eq!(names(&mut lib), ["a.jpg", "b.jpg", "c.jpg"]);
        lib.set_sort(SortKey::Confidence);
        assert_eq!(names(&mut lib), ["b.jpg", "a.jpg", "c.jpg"]);
        lib.set_filter("TABBY");
        assert_eq!(names(&mut lib), ["a.jpg"]);
        lib.set_filter("C.JPG");
        assert_eq!(names(&mut lib), ["c.jpg"], "file names match too");
        lib.set_filter("");
        lib.cancel_queued();
        let c = lib.id_of(Path::new("c.jpg")).unwrap();
        assert_eq!(lib.get(c).unwrap().state, PhotoState::NotTagged);
        assert_eq!(lib.counts().not_tagged, 1);
        assert_eq!(lib.resume_not_tagged(), [PathBuf::from("c.jpg")]);
        assert_eq!(lib.get(c).unwrap().state, PhotoState::Queued);
        assert_eq!(lib.counts(), Counts { total: 3, tagged: 2, failed: 0, not_tagged: 0 });
    }

    #[test]
    fn names_sort_naturally_and_ignoring_case() {
        let mut lib = PhotoList::default();
        for name in ["img10.jpg", "IMG2.jpg", "img1.jpg", "Beach.jpg", "apple.jpg"] {
            lib.queue(name.into(), None);
        }
        let visible = lib.visible().to_vec();
        let names: Vec<&str> = visible.iter().map(|&id| lib.get(id).unwrap().name.as_str()).collect();
        assert_eq!(names, ["apple.jpg", "Beach.jpg", "img1.jpg", "IMG2.jpg", "img10.jpg"]);
    }

    #[test]
    fn removing_several_keeps_the_others_and_their_ids() {
        let mut lib = PhotoList::default();
        let ids: Vec<PhotoId> = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"].map(|n| lib.queue(n.into(), None)).to_vec();
        assert_eq!(lib.visible(), ids);
        let removed = lib.remove([ids[3], ids[1], ids[1]]);
        let names: Vec<&str> = removed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["d.jpg", "b.jpg"]);
        assert_eq!(lib.len(), 2);
        assert_eq!(lib.id_of(Path::new("c.jpg")), Some(ids[2]), "the others keep their ids");
        assert_eq!(lib.get(ids[2]).unwrap().name, "c.jpg");
        assert!(lib.id_of(Path::new("d.jpg")).is_none() && lib.get(ids[3]).is_none() && !lib.contains(ids[1]));
        assert_eq!(lib.visible(), [ids[0], ids[2]]);
        // A photo added again is a new photo: the removed one's id names nothing.
        let again = lib.queue("b.jpg".into(), None);
        assert_ne!(again, ids[1]);
        assert!(lib.get(ids[1]).is_none());
        assert_eq!(lib.visible(), [ids[0], again, ids[2]]);
        assert!(lib.remove([ids[1]]).is_empty(), "removing a removed photo again does nothing");
    }

    #[test]
    fn dates_taken_sort_both_ways_and_file_times_stand_in() {
        let at = |secs: u64| Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        let mut lib = PhotoList::default();
        lib.queue("exif_old.jpg".into(), at(900));
        lib.queue("file_only.png".into(), at(500));
        lib.queue("exif_new.jpg".into(), at(100));
        lib.queue("undated.jpg".into(), None);
        // The EXIF date wins over the file's time.
        lib.set_info(Path::new("exif_old.jpg"), PhotoInfo { taken: Some(200), ..PhotoInfo::default() });
        lib.set_info(Path::new("exif_new.jpg"), PhotoInfo { taken: Some(800), ..PhotoInfo::default() });
        let names = |lib: &mut PhotoList| -> Vec<String> {
            let visible = lib.visible().to_vec();
            visible.iter().map(|&id| lib.get(id).unwrap().name.clone()).collect()
        };
        lib.set_sort(SortKey::Newest);
        assert_eq!(names(&mut lib), ["exif_new.jpg", "file_only.png", "exif_old.jpg", "undated.jpg"]);
        lib.set_sort(SortKey::Oldest);
        assert_eq!(names(&mut lib), ["exif_old.jpg", "file_only.png", "exif_new.jpg", "undated.jpg"]);
        // A date read later moves the photo.
        lib.set_info(Path::new("undated.jpg"), PhotoInfo { taken: Some(1), ..PhotoInfo::default() });
        assert_eq!(names(&mut lib)[0], "undated.jpg");
    }

    #[test]
    fn requeueing_keeps_tags() {
        let mut lib = PhotoList::default();
        let id = lib.queue("a.jpg".into(), None);
        lib.finish(Path::new("a.jpg"), PhotoState::Tagged(vec![label("x", 0.5)]));
        assert_eq!(lib.queue("a.jpg".into(), None), id);
        assert!(lib.get(id).unwrap().top_label().is_some());
        assert_eq!(lib.len(), 1);
    }

    #[test]
    fn the_library_keeps_each_folder_once_in_the_order_added() {
        let mut lib = PhotoList::default();
        assert!(lib.add_roots(&["/a".into(), "/b".into()]));
        assert!(!lib.add_roots(&["/a".into()]));
        assert_eq!(lib.roots(), [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(lib.in_library(Path::new("/a/x.jpg")) && !lib.in_library(Path::new("/c/x.jpg")));
        let many: Vec<PathBuf> = (0..100).map(|i| PathBuf::from(format!("/p{i}"))).collect();
        lib.add_roots(&many);
        assert_eq!(lib.roots().len(), 102, "no folder of the library is forgotten");
        lib.remove_root(Path::new("/a"));
        assert!(!lib.in_library(Path::new("/a/x.jpg")));
    }
}

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

/// Where a photo stands.
#[derive(Debug, Clone, PartialEq)]
pub enum PhotoState {
    /// Waiting for the model.
    Queued,
    /// Tagged; labels best first.
    Tagged(Vec<Label>),
    /// Could not be tagged; the text names the cause.
    Failed(String),
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

/// All photos added in this session, and the visible order.
///
/// The visible order is kept up to date incrementally: a photo that arrives or changes is
/// merged into it, so that a list of tens of thousands of photos is not sorted again for
/// every photo tagged. A change of sort, filter or folder, or a removal, sorts it anew.
#[derive(Debug, Default)]
pub struct PhotoList {
    /// Shared with the saved list's writer, which gets a snapshot without copying them; a
    /// photo that changes while it is written is copied then.
    photos: Vec<Arc<Photo>>,
    by_path: HashMap<PathBuf, usize>,
    sort: SortKey,
    filter: String,
    /// The filter, trimmed and in lower case, as it is matched.
    needle: String,
    /// Only photos under this folder are shown, when set.
    folder: Option<PathBuf>,
    /// The files and folders the library is made of, and how many photos each holds.
    roots: Vec<PathBuf>,
    root_counts: Vec<usize>,
    visible: Vec<usize>,
    /// The visible order must be computed from scratch.
    stale: bool,
    /// Photos added or changed since the visible order was last brought up to date.
    changed: Vec<usize>,
}

impl PhotoList {
    /// The paths of every tagged photo, in list order.
    pub fn tagged_paths(&self) -> Vec<PathBuf> {
        self.photos.iter().filter(|p| matches!(p.state, PhotoState::Tagged(_))).map(|p| p.path.clone()).collect()
    }

    /// Number of photos, visible or not.
    pub fn len(&self) -> usize {
        self.photos.len()
    }

    /// Whether there are no photos.
    pub fn is_empty(&self) -> bool {
        self.photos.is_empty()
    }

    /// A photo by index.
    pub fn photo(&self, index: usize) -> &Photo {
        &self.photos[index]
    }

    /// The index of the photo at `path`.
    pub fn index_of(&self, path: &Path) -> Option<usize> {
        self.by_path.get(path).copied()
    }

    /// Adds a photo (or marks a known one as queued again) and returns its index.
    pub fn queue(&mut self, path: PathBuf, modified: Option<SystemTime>) -> usize {
        if let Some(&index) = self.by_path.get(&path) {
            let photo = Arc::make_mut(&mut self.photos[index]);
            if !matches!(photo.state, PhotoState::Tagged(_)) {
                photo.state = PhotoState::Queued;
            }
            photo.modified = modified.or(photo.modified);
            self.changed.push(index);
            return index;
        }
        let name = path.file_name().map_or_else(|| path.to_string_lossy(), |n| n.to_string_lossy()).into_owned();
        let index = self.photos.len();
        for (root, count) in self.roots.iter().zip(&mut self.root_counts) {
            *count += usize::from(path.starts_with(root));
        }
        self.by_path.insert(path.clone(), index);
        let sort_name = name.to_lowercase();
        self.photos.push(Arc::new(Photo {
            path,
            name,
            sort_name,
            modified,
            info: PhotoInfo::default(),
            state: PhotoState::Queued,
        }));
        self.changed.push(index);
        index
    }

    /// Records a photo's outcome (adding it if it was never queued).
    pub fn finish(&mut self, path: &Path, state: PhotoState) -> usize {
        let index = self.index_of(path).unwrap_or_else(|| self.queue(path.to_owned(), None));
        Arc::make_mut(&mut self.photos[index]).state = state;
        self.changed.push(index);
        index
    }

    /// Takes the photos at `indices` out of the list (never off the disk) and returns them;
    /// the other photos' indices change.
    pub fn remove(&mut self, indices: impl IntoIterator<Item = usize>) -> Vec<Arc<Photo>> {
        let doomed: std::collections::BTreeSet<usize> = indices.into_iter().filter(|&i| i < self.len()).collect();
        let mut removed = Vec::with_capacity(doomed.len());
        let mut kept = Vec::with_capacity(self.photos.len() - doomed.len());
        for (index, photo) in std::mem::take(&mut self.photos).into_iter().enumerate() {
            if doomed.contains(&index) { removed.push(photo) } else { kept.push(photo) }
        }
        self.photos = kept;
        self.by_path = self.photos.iter().enumerate().map(|(i, p)| (p.path.clone(), i)).collect();
        self.count_roots();
        self.stale = true;
        removed
    }

    /// Adds a photo found after a cancel as not tagged yet; a photo already listed keeps its
    /// state.
    pub fn list_untagged(&mut self, path: PathBuf, modified: Option<SystemTime>) {
        if self.by_path.contains_key(&path) {
            return;
        }
        let index = self.queue(path, modified);
        Arc::make_mut(&mut self.photos[index]).state = PhotoState::NotTagged;
    }

    /// Adds a photo known from an earlier run: tagged with `labels`, or not tagged yet.
    pub fn restore(
        &mut self,
        path: PathBuf,
        modified: Option<SystemTime>,
        info: PhotoInfo,
        labels: Option<Vec<Label>>,
    ) {
        let index = self.queue(path, modified);
        let photo = Arc::make_mut(&mut self.photos[index]);
        photo.info = info;
        photo.state = labels.map_or(PhotoState::NotTagged, PhotoState::Tagged);
    }

    /// Records a photo's date taken and camera.
    pub fn set_info(&mut self, path: &Path, info: PhotoInfo) {
        if let Some(index) = self.index_of(path) {
            Arc::make_mut(&mut self.photos[index]).info = info;
            self.changed.push(index);
        }
    }

    /// Marks every queued photo as not tagged yet (a cancel).
    pub fn cancel_queued(&mut self) {
        for photo in &mut self.photos {
            if photo.state == PhotoState::Queued {
                Arc::make_mut(photo).state = PhotoState::NotTagged;
            }
        }
        self.stale = true;
    }

    /// Queues again every photo that a cancel left untagged; returns their paths.
    pub fn resume_not_tagged(&mut self) -> Vec<PathBuf> {
        let mut resumed = Vec::new();
        for photo in &mut self.photos {
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
        let mut counts = Counts { total: self.photos.len(), ..Counts::default() };
        for photo in &self.photos {
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

    /// Indices of the photos under `root`.
    pub fn under(&self, root: &Path) -> Vec<usize> {
        (0..self.photos.len()).filter(|&i| self.photos[i].path.starts_with(root)).collect()
    }

    /// Every photo, shared: a snapshot that costs no copy.
    pub fn shared(&self) -> &[Arc<Photo>] {
        &self.photos
    }

    /// Indices of the visible photos in display order, brought up to date.
    pub fn visible(&mut self) -> &[usize] {
        self.with_visible().1
    }

    /// The list together with its visible indices, brought up to date, for drawing both at once.
    pub fn with_visible(&mut self) -> (&Self, &[usize]) {
        self.refresh();
        let this: &Self = self;
        (this, &this.visible)
    }

    fn count_roots(&mut self) {
        self.root_counts =
            self.roots.iter().map(|root| self.photos.iter().filter(|p| p.path.starts_with(root)).count()).collect();
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
    fn compare(&self, a: usize, b: usize) -> Ordering {
        let (first, second) = (&self.photos[a], &self.photos[b]);
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
        let changed: HashSet<usize> = changed.into_iter().collect();
        let mut arriving: Vec<usize> = changed.iter().copied().filter(|&i| self.matches(&self.photos[i])).collect();
        arriving.sort_by(|&a, &b| self.compare(a, b));
        let staying: Vec<usize> = self.visible.iter().copied().filter(|i| !changed.contains(i)).collect();
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
        let mut visible: Vec<usize> = (0..self.photos.len()).filter(|&i| self.matches(&self.photos[i])).collect();
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
            visible.iter().map(|&i| lib.photo(i).name.clone()).collect()
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
        let c = lib.index_of(Path::new("c.jpg")).unwrap();
        assert_eq!(lib.photo(c).state, PhotoState::NotTagged);
        assert_eq!(lib.counts().not_tagged, 1);
        assert_eq!(lib.resume_not_tagged(), [PathBuf::from("c.jpg")]);
        assert_eq!(lib.photo(c).state, PhotoState::Queued);
        assert_eq!(lib.counts(), Counts { total: 3, tagged: 2, failed: 0, not_tagged: 0 });
    }

    #[test]
    fn names_sort_naturally_and_ignoring_case() {
        let mut lib = PhotoList::default();
        for name in ["img10.jpg", "IMG2.jpg", "img1.jpg", "Beach.jpg", "apple.jpg"] {
            lib.queue(name.into(), None);
        }
        let visible = lib.visible().to_vec();
        let names: Vec<&str> = visible.iter().map(|&i| lib.photo(i).name.as_str()).collect();
        assert_eq!(names, ["apple.jpg", "Beach.jpg", "img1.jpg", "IMG2.jpg", "img10.jpg"]);
    }

    #[test]
    fn removing_several_keeps_the_others_findable() {
        let mut lib = PhotoList::default();
        for name in ["a.jpg", "b.jpg", "c.jpg", "d.jpg"] {
            lib.queue(name.into(), None);
        }
        let removed = lib.remove([3, 1, 99]);
        let names: Vec<&str> = removed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["b.jpg", "d.jpg"]);
        assert_eq!(lib.len(), 2);
        assert_eq!(lib.photo(lib.index_of(Path::new("c.jpg")).unwrap()).name, "c.jpg");
        assert!(lib.index_of(Path::new("d.jpg")).is_none());
        assert_eq!(lib.visible().len(), 2);
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
            visible.iter().map(|&i| lib.photo(i).name.clone()).collect()
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
        let i = lib.queue("a.jpg".into(), None);
        lib.finish(Path::new("a.jpg"), PhotoState::Tagged(vec![label("x", 0.5)]));
        assert_eq!(lib.queue("a.jpg".into(), None), i);
        assert!(lib.photo(i).top_label().is_some());
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

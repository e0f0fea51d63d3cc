//! Photo thumbnails and previews, decoded and downscaled off the UI thread.
//!
//! The grid asks for what it shows; two loader threads work newest request first (so scrolling
//! fast loads what is on screen now), keep thumbnails in a disk cache so a reopened folder is
//! instant, and hand back pixels that the UI thread uploads a few per frame. Textures live in
//! a bounded least-recently-used cache.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel::{Receiver, Sender, unbounded};
use egui::{ColorImage, TextureHandle, TextureOptions};

use crate::preprocess;

/// The two sizes the app shows photos at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// Grid tiles (longest side in pixels).
    Thumb,
    /// The details pane.
    Preview,
    /// The viewer, large enough for any screen.
    Full,
}

impl Size {
    fn edge(self) -> u32 {
        match self {
            Size::Thumb => 256,
            Size::Preview => 1280,
            Size::Full => 4096,
        }
    }
}

type Key = (PathBuf, Size);

/// The sizes of photo the app opens at all, as set for tagging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Photos with more pixels than this (in millions) are refused.
    pub max_megapixels: u64,
    /// Files larger than this many megabytes are refused before they are read.
    pub max_file_mb: u64,
}

/// Decoded pixels waiting for upload, or why there are none.
struct Loaded {
    key: Key,
    image: Result<ColorImage, String>,
}

/// Requests, newest last; shared with the loader threads.
#[derive(Default)]
struct Queue {
    requests: Mutex<Vec<Key>>,
    wake: Condvar,
}

/// Most requests kept waiting; older ones are dropped (they scrolled out of view long ago).
const MAX_WAITING: usize = 512;
/// Textures uploaded per frame, so that no frame stalls on a burst of uploads.
const UPLOADS_PER_FRAME: usize = 8;

/// Loads and caches thumbnail textures.
pub struct Thumbnails {
    queue: Arc<Queue>,
    loaded: Receiver<Loaded>,
    ready: VecDeque<Loaded>,
    textures: HashMap<Key, (TextureHandle, u64)>,
    pending: HashSet<Key>,
    failed: HashSet<Key>,
    capacity: usize,
    frame: u64,
}

impl Thumbnails {
    /// Starts the loader threads. `disk_cache` is the folder for cached thumbnails, if any;
    /// photos over `limits` are refused as the tagger refuses them; `capacity` bounds the
    /// number of textures kept.
    pub fn new(ctx: &egui::Context, disk_cache: Option<PathBuf>, limits: Limits, capacity: usize) -> Self {
        let queue = Arc::new(Queue::default());
        let (tx, loaded) = unbounded();
        for i in 0..2 {
            let (queue, tx, ctx, disk) = (queue.clone(), tx.clone(), ctx.clone(), disk_cache.clone());
            std::thread::Builder::new()
                .name(format!("evatag-thumbs-{i}"))
                .spawn(move || load_loop(&queue, &tx, &ctx, disk.as_deref(), limits))
                .expect("spawning a thumbnail thread");
        }
        Self {
            queue,
            loaded,
            ready: VecDeque::new(),
            textures: HashMap::new(),
            pending: HashSet::new(),
            failed: HashSet::new(),
            capacity,
            frame: 0,
        }
    }

    /// Uploads a few decoded images and evicts textures beyond capacity; call once per frame.
    pub fn begin_frame(&mut self, ctx: &egui::Context) {
        self.frame += 1;
        self.ready.extend(self.loaded.try_iter());
        for _ in 0..UPLOADS_PER_FRAME {
            let Some(Loaded { key, image }) = self.ready.pop_front() else { break };
            self.pending.remove(&key);
            match image {
                Ok(image) => {
                    let name = format!("{}#{:?}", key.0.display(), key.1);
                    let texture = ctx.load_texture(name, image, TextureOptions::LINEAR);
                    self.textures.insert(key, (texture, self.frame));
                }
                Err(_) => {
                    self.failed.insert(key);
                }
            }
        }
        if !self.ready.is_empty() {
            ctx.request_repaint();
        }
        if self.textures.len() > self.capacity {
            let mut by_age: Vec<(u64, Key)> = self.textures.iter().map(|(k, (_, used))| (*used, k.clone())).collect();
            by_age.sort_by_key(|(used, _)| *used);
            for (_, key) in by_age.into_iter().take(self.textures.len() - self.capacity) {
                self.textures.remove(&key);
            }
        }
    }

    /// The texture for a photo, if loaded; otherwise asks for it and returns `None`.
    pub fn get(&mut self, path: &Path, size: Size) -> Option<TextureHandle> {
        let key = (path.to_owned(), size);
        if let Some((texture, used)) = self.textures.get_mut(&key) {
            *used = self.frame;
            return Some(texture.clone());
        }
        if !self.failed.contains(&key) && self.pending.insert(key.clone()) {
            let mut requests = self.queue.requests.lock().expect("thumbnail queue");
            requests.push(key);
            if requests.len() > MAX_WAITING {
                let excess = requests.len() - MAX_WAITING;
                let dropped: Vec<Key> = requests.drain(..excess).collect();
                for key in dropped {
                    self.pending.remove(&key);
                }
            }
            self.queue.wake.notify_one();
        }
        None
    }

    /// Whether a photo's thumbnail could not be made.
    pub fn failed(&self, path: &Path, size: Size) -> bool {
        self.failed.contains(&(path.to_owned(), size))
    }
}

fn load_loop(queue: &Queue, tx: &Sender<Loaded>, ctx: &egui::Context, disk: Option<&Path>, limits: Limits) {
    loop {
        let key = {
            let mut requests = queue.requests.lock().expect("thumbnail queue");
            loop {
                if let Some(key) = requests.pop() {
                    break key;
                }
                requests = queue.wake.wait(requests).expect("thumbnail queue");
            }
        };
        let image = load(&key.0, key.1, disk, limits);
        if tx.send(Loaded { key, image }).is_err() {
            return;
        }
        ctx.request_repaint();
    }
}

/// The thumbnail from the disk cache, or made from the photo (and then cached).
fn load(path: &Path, size: Size, disk: Option<&Path>, limits: Limits) -> Result<ColorImage, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let cached = (size == Size::Thumb).then(|| disk.map(|d| d.join(cache_name(path, &meta)))).flatten();
    if let Some(file) = &cached
        && let Ok(image) = image::open(file)
    {
        return Ok(to_color_image(&image.into_rgb8()));
    }
    let bytes = crate::library::scan::read_photo(path, limits.max_file_mb).map_err(|e| e.to_string())?;
    let image =
        preprocess::decode_for_display(&bytes, path, limits.max_megapixels, size.edge()).map_err(|e| e.to_string())?;
    let small = image.thumbnail(size.edge(), size.edge()).into_rgb8();
    if let Some(file) = cached {
        store(&file, &small);
    }
    Ok(to_color_image(&small))
}

/// A cache file name that changes whenever the photo does.
fn cache_name(path: &Path, meta: &std::fs::Metadata) -> String {
    let stamp = crate::library::cache::FileStamp::of(meta);
    let mut hasher = blake3::Hasher::new();
    hasher.update(path.as_os_str().as_encoded_bytes());
    hasher.update(&stamp.size.to_le_bytes());
    hasher.update(&stamp.mtime_ns.to_le_bytes());
    format!("{}.jpg", &hasher.finalize().to_hex()[..32])
}

/// Writes a thumbnail atomically; a failure only costs a later re-decode.
fn store(file: &Path, image: &image::RgbImage) {
    let written = super::persist::write_atomically(file, |out| {
        let mut cursor = std::io::Cursor::new(Vec::new());
        image.write_to(&mut cursor, image::ImageFormat::Jpeg).map_err(std::io::Error::other)?;
        out.write_all(cursor.get_ref())
    });
    if let Err(e) = written {
        tracing::debug!("{}: the thumbnail was not cached: {e}", file.display());
    }
}

fn to_color_image(image: &image::RgbImage) -> ColorImage {
    ColorImage::from_rgb([image.width() as usize, image.height() as usize], image.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    #[test]
    fn thumbnails_refuse_what_tagging_refuses() {
        let photo = fixture("photos/cat_landscape.jpg");
        let generous = Limits { max_megapixels: 100, max_file_mb: 100 };
        let thumb = load(&photo, Size::Thumb, None, generous).unwrap();
        assert_eq!(thumb.size.iter().max().copied(), Some(Size::Thumb.edge() as usize), "{:?}", thumb.size);
        let no_file_fits = Limits { max_file_mb: 0, ..generous };
        let error = load(&photo, Size::Thumb, None, no_file_fits).unwrap_err();
        assert!(error.contains("cat_landscape.jpg") && error.contains("over the 0 MB limit"), "{error}");
        let no_picture_fits = Limits { max_megapixels: 0, ..generous };
        let error = load(&photo, Size::Thumb, None, no_picture_fits).unwrap_err();
        assert!(error.contains("over the 0 megapixel limit"), "{error}");
    }
}

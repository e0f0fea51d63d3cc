//! What the app keeps between runs (the photo list, the settings) written to disk: atomically
//! (a temporary file renamed into place, so a crash or a kill leaves the previous file or the
//! new one), off the UI thread, soon after every change, and at once on exit or a signal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Writes `file` in one step (see [`crate::library::atomic_file`]), creating its folder.
pub fn write_atomically(file: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<()> {
    std::fs::create_dir_all(crate::library::atomic_file::folder_of(file))?;
    crate::library::atomic_file::replace_file(file, write, |e| e)
}

/// How soon after a change a file is written again, at the most often.
pub const SAVE_EVERY: Duration = Duration::from_secs(2);

/// Keeps one file up to date with what it holds: written in the background at most every
/// [`SAVE_EVERY`] while it changes (a frame is asked for when the next write is due, so an idle
/// window still saves), at once when asked, and again after a failure, which is told once.
pub struct Saver {
    file: PathBuf,
    /// What is in the file differs from what the app holds.
    dirty: bool,
    /// When the last write started.
    at: Option<Instant>,
    /// A write runs on a background thread now.
    writing: Arc<AtomicBool>,
    /// Why the last write failed, until it is taken.
    failure: Arc<Mutex<Option<String>>>,
    /// Whether the current run of failures has been told.
    failure_told: bool,
}

impl Saver {
    /// A saver for `file`, which holds what the app holds now.
    pub fn new(file: PathBuf) -> Self {
        Self { file, dirty: false, at: None, writing: Arc::default(), failure: Arc::default(), failure_told: false }
    }

    /// What the app holds has changed.
    pub fn changed(&mut self) {
        self.dirty = true;
    }

    /// Writes the file when it is due (with `now`: at once, on this thread) with the writer
    /// that `prepare` returns (which holds a snapshot of what to write). Returns a sentence for
    /// the window the first time a write fails (it is tried again until one succeeds).
    pub fn save<W>(&mut self, ctx: Option<&egui::Context>, now: bool, prepare: impl FnOnce() -> W) -> Option<String>
    where
        W: FnOnce(&Path) -> std::io::Result<()> + Send + 'static,
    {
        if now {
            // A write still running is older than the one about to be made.
            while self.writing.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let failed = self.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        let mut notice = None;
        match failed {
            Some(reason) => {
                self.dirty = true;
                if !std::mem::replace(&mut self.failure_told, true) {
                    notice = Some(format!("{} could not be saved ({reason}); trying again", self.file.display()));
                }
            }
            None if !self.dirty && !self.writing.load(Ordering::SeqCst) && self.at.is_some() => {
                self.failure_told = false;
            }
            None => {}
        }
        if !self.dirty || self.writing.load(Ordering::SeqCst) {
            return notice;
        }
        let wait = self.at.map_or(Duration::ZERO, |at| SAVE_EVERY.saturating_sub(at.elapsed()));
        if !now && !wait.is_zero() {
            if let Some(ctx) = ctx {
                ctx.request_repaint_after(wait);
            }
            return notice;
        }
        self.dirty = false;
        self.at = Some(Instant::now());
        let write = prepare();
        let (file, writing, failure) = (self.file.clone(), Arc::clone(&self.writing), Arc::clone(&self.failure));
        let ctx = ctx.cloned();
        writing.store(true, Ordering::SeqCst);
        let job = move || {
            if let Err(e) = write(&file) {
                tracing::warn!("{}: could not be saved: {e}", file.display());
                *failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(e.to_string());
                // The retry waits for the next frame; ask for one.
                if let Some(ctx) = ctx {
                    ctx.request_repaint_after(SAVE_EVERY);
                }
            }
            writing.store(false, Ordering::SeqCst);
        };
        if now {
            job();
        } else {
            std::thread::spawn(job);
        }
        notice
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer of some text.
    type TextWriter = Box<dyn FnOnce(&Path) -> std::io::Result<()> + Send>;

    /// What prepares a writer of `text`.
    fn text(text: &'static str) -> impl FnOnce() -> TextWriter {
        move || Box::new(move |file: &Path| write_atomically(file, |out| out.write_all(text.as_bytes())))
    }

    #[test]
    fn a_change_is_written_at_once_when_asked_and_a_failure_is_told_once_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("list.json");
        let mut saver = Saver::new(file.clone());
        saver.changed();
        assert_eq!(saver.save(None, true, text("one")), None);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "one");
        // Unchanged: nothing is written.
        std::fs::write(&file, "left alone").unwrap();
        assert_eq!(saver.save(None, true, text("two")), None);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "left alone");

        // The folder becomes a file: the write fails, is told once, and is tried again.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, "").unwrap();
        let mut saver = Saver::new(blocked.join("list.json"));
        saver.changed();
        assert_eq!(saver.save(None, true, text("x")), None);
        let told = saver.save(None, true, text("x")).expect("the failure is told");
        assert!(told.contains("list.json could not be saved") && told.contains("trying again"), "{told}");
        assert_eq!(saver.save(None, true, text("x")), None, "told once");
        std::fs::remove_file(&blocked).unwrap();
        assert_eq!(saver.save(None, true, text("x")), None);
        assert_eq!(std::fs::read_to_string(blocked.join("list.json")).unwrap(), "x", "written on the retry");
    }

    /// Waits until the saver's background write has ended.
    fn wait_for_the_write(saver: &Saver) {
        while saver.writing.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn changes_in_quick_succession_are_written_once_the_interval_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.json");
        let mut saver = Saver::new(file.clone());
        saver.changed();
        saver.save(None, false, text("first"));
        wait_for_the_write(&saver);
        saver.changed();
        saver.save(None, false, text("second"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "first", "not due yet");
        saver.at = Some(Instant::now() - SAVE_EVERY);
        saver.save(None, false, text("second"));
        wait_for_the_write(&saver);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "second");
    }
}

/// A path as the saved files hold it: its text, or its bytes in hexadecimal where it is not
/// UTF-8 (so that a Latin-1 folder name from an old camera or a Windows share survives).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum StoredPath {
    Text(String),
    Bytes { bytes: String },
}

impl StoredPath {
    fn of(path: &Path) -> Self {
        match crate::library::export::tabular::path_fields(path) {
            (text, None) => Self::Text(text.into_owned()),
            (_, Some(bytes)) => Self::Bytes { bytes },
        }
    }

    fn into_path(self) -> Option<PathBuf> {
        match self {
            Self::Text(text) => Some(PathBuf::from(text)),
            Self::Bytes { bytes } => crate::library::export::tabular::path_from_fields("", Some(&bytes)),
        }
    }
}

/// Serde for a list of paths that may not be UTF-8 (`#[serde(with = "persist::paths")]`).
pub mod paths {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::StoredPath;

    /// Writes each path as text, or as its bytes.
    pub fn serialize<S: Serializer>(paths: &[PathBuf], serializer: S) -> Result<S::Ok, S::Error> {
        paths.iter().map(|path| StoredPath::of(path)).collect::<Vec<_>>().serialize(serializer)
    }

    /// Reads the paths back, leaving out any whose bytes are damaged.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PathBuf>, D::Error> {
        Ok(Vec::<StoredPath>::deserialize(deserializer)?.into_iter().filter_map(StoredPath::into_path).collect())
    }
}

/// Serde for an optional path that may not be UTF-8 (`#[serde(with = "persist::optional_path")]`).
pub mod optional_path {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::StoredPath;

    /// Writes the path as text, or as its bytes.
    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, serializer: S) -> Result<S::Ok, S::Error> {
        path.as_deref().map(StoredPath::of).serialize(serializer)
    }

    /// Reads the path back; damaged bytes read as none.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
        Ok(Option::<StoredPath>::deserialize(deserializer)?.and_then(StoredPath::into_path))
    }
}

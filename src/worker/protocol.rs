//! The worker's protocol: its configuration, the [`Command`]s it takes and the [`Event`]s it
//! reports. These types are the whole interface between a front end and the work.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::library::cache::ContentHash;
use crate::library::duplicates::DuplicateGraph;
use crate::library::photo_info::PhotoInfo;
use crate::library::search::Match;
use crate::library::trash::TrashReport;
use crate::model::device::{DTypeChoice, DeviceChoice};
use crate::model::labels::Label;
use crate::model::weights::{ModelSource, WeightsError};
use crate::options::Options;

/// How the worker loads its model and treats files.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Where the model comes from.
    pub source: ModelSource,
    /// Requested device.
    pub device: DeviceChoice,
    /// Requested precision.
    pub dtype: DTypeChoice,
    /// Folder of the result cache; `None` computes everything afresh and stores nothing.
    pub cache_dir: Option<PathBuf>,
    /// Images per model batch.
    pub batch_size: usize,
    /// Labels reported per image.
    pub top_k: usize,
    /// Images with more pixels than this (in millions) are refused.
    pub max_megapixels: u64,
    /// Photo files larger than this many megabytes are refused before they are read.
    pub max_file_mb: u64,
    /// Threads decoding ahead of the model.
    pub decode_threads: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self::new(&Options::default(), 4, 5)
    }
}

impl WorkerConfig {
    /// The configuration for `options`, with `batch_size` images per batch (at least one)
    /// and `top_k` labels per image.
    pub fn new(options: &Options, batch_size: usize, top_k: usize) -> Self {
        Self {
            source: options.source.clone(),
            device: options.device.unwrap_or_default(),
            dtype: options.dtype.unwrap_or_default(),
            cache_dir: options.cache_dir.clone(),
            batch_size: batch_size.max(1),
            top_k,
            max_megapixels: options.max_megapixels,
            max_file_mb: options.max_file_mb,
            decode_threads: 2,
        }
    }
}

/// A request to the worker.
#[derive(Debug, Clone)]
pub enum Command {
    /// Tag these files and everything under these folders.
    Add(Vec<PathBuf>),
    /// Drop everything queued; the batch running now is the last one.
    Cancel,
    /// Rank photos by similarity to `query` (tagged first if it is new).
    FindSimilar {
        /// The photo to compare against.
        query: PathBuf,
        /// How many results.
        k: usize,
        /// Compare only against photos at these paths (already added); all cached photos if `None`.
        within: Option<Vec<PathBuf>>,
    },
    /// Find groups of duplicate photos (answered with [`Event::Duplicates`]).
    FindDuplicates {
        /// Only among photos at these paths (already added); among every file the cache
        /// knows if `None`.
        within: Option<Vec<PathBuf>>,
    },
    /// Move photos and their XMP sidecars to the system trash and forget them (answered with
    /// [`Event::Trashed`]).
    MoveToTrash(Vec<PathBuf>),
    /// Delete every cached result.
    ClearCache,
    /// Stop the worker.
    Shutdown,
}

/// The model's state as a user would describe it.
#[derive(Debug, Clone)]
pub enum ModelStatus {
    /// Looking for the model's files.
    Locating,
    /// Downloading a file.
    Downloading {
        /// File name.
        file: String,
        /// Bytes on disk.
        done: u64,
        /// Bytes in all.
        total: u64,
        /// Seconds left at the current rate, once known.
        eta_secs: Option<f64>,
    },
    /// Reading weights onto the device.
    Loading {
        /// Device name.
        device: String,
    },
    /// Ready to run.
    Ready {
        /// Device name.
        device: String,
        /// Model identity.
        model_id: String,
    },
    /// Could not be made ready: why, and what to do.
    Failed(ModelError),
}

/// Why the model could not be made ready.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// Its files could not be found, downloaded, read or loaded; the message says what to do.
    #[error(transparent)]
    Weights(Arc<WeightsError>),
    /// evatag itself failed (a panic) while loading it, with the panic's message.
    #[error("loading the model failed unexpectedly: {0}")]
    Unexpected(String),
}

impl ModelError {
    /// Whether choosing a local model folder is a way out: the files could not be found or
    /// downloaded, as opposed to found and unusable.
    pub fn files_missing(&self) -> bool {
        matches!(
            self,
            Self::Weights(e) if matches!(**e, WeightsError::Download { .. } | WeightsError::NotCached { .. } | WeightsError::MissingFile { .. })
        )
    }
}

impl From<WeightsError> for ModelError {
    fn from(error: WeightsError) -> Self {
        Self::Weights(Arc::new(error))
    }
}

/// What the model says about one photo.
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged {
    /// Most probable classes, best first.
    pub labels: Vec<Label>,
    /// The photo's embedding.
    pub embedding: Arc<[f32]>,
    /// BLAKE3 of the photo's bytes.
    pub hash: ContentHash,
    /// Its date taken and camera, from EXIF.
    pub info: PhotoInfo,
    /// Whether the result came from the cache instead of the model.
    pub from_cache: bool,
}

/// Counts and pace of the current job.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Progress {
    /// Files finished (tagged, from cache, or failed).
    pub done: u64,
    /// Files found so far.
    pub total: u64,
    /// Whether the folders are still being walked (so `total` may grow).
    pub scanning: bool,
    /// Files run through the model.
    pub inferred: u64,
    /// Files answered from the cache.
    pub cached: u64,
    /// Files that failed.
    pub failed: u64,
    /// Files finished per second since the job began.
    pub images_per_second: f64,
    /// Seconds left at that pace.
    pub eta_secs: Option<f64>,
    /// The model's own speed over this job's batches, once one has run.
    pub model_speed: Option<ModelSpeed>,
}

/// How fast the model itself runs: the forward passes alone, without reading or decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpeed {
    /// Seconds per photo.
    pub seconds_per_image: f64,
    /// Arithmetic rate, in billions of floating-point operations per second (a multiply-add
    /// counts two).
    pub gflops: f64,
    /// Whether the model runs on the CPU, whose peak [`crate::model::peak`] measures.
    pub on_cpu: bool,
}

/// Something the worker reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// The model changed state.
    Model(ModelStatus),
    /// Something worth telling the user that is not tied to one file.
    Warning(String),
    /// A file was found and waits its turn.
    Queued {
        /// The file.
        path: PathBuf,
        /// Its modification time, when it could be read.
        modified: Option<SystemTime>,
    },
    /// A photo found after its job was cancelled: it waits, untagged, for a new command.
    Listed {
        /// The file.
        path: PathBuf,
        /// Its modification time, when it could be read.
        modified: Option<SystemTime>,
    },
    /// One file is finished: tagged, or an error naming the file and the cause.
    Image {
        /// The file.
        path: PathBuf,
        /// Its tags or what went wrong.
        outcome: Result<Tagged, PhotoError>,
    },
    /// Progress of the current job.
    Progress(Progress),
    /// Answer to [`Command::FindSimilar`].
    Similar {
        /// The query photo.
        query: PathBuf,
        /// Ranked matches, or why there are none.
        outcome: Result<Vec<Match>, PhotoError>,
    },
    /// The photos that may be duplicates and how alike they are, or why there are none.
    Duplicates(Result<Arc<DuplicateGraph>, LibraryError>),
    /// What a move to the trash did.
    Trashed(TrashReport),
    /// The cache was emptied, or why it could not be.
    CacheCleared(Result<(), LibraryError>),
    /// A long task other than tagging got on: `done` of `total` items; it stops at
    /// [`crate::worker::Worker::cancel`].
    Working {
        /// The task.
        task: Task,
        /// Items done.
        done: u64,
        /// Items in all.
        total: u64,
    },
    /// Nothing is queued or running.
    Idle,
}

/// What kind of problem kept a photo from being tagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoErrorKind {
    /// The path is no photo file at all: missing, a folder or a pipe named like a photo, a
    /// link to nowhere or around a loop.
    NotAPhoto,
    /// The file is unreadable, not an image, too large, or damaged.
    File,
    /// The model ran and failed on this photo.
    Model,
    /// The model could not be loaded, so nothing was tagged.
    ModelUnavailable,
    /// The job was cancelled before the photo's turn.
    Cancelled,
    /// evatag itself failed (a panic) while working on this photo; the rest went on.
    Unexpected,
}

/// Why the library's cache or index could not answer (finding duplicates, clearing the cache).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LibraryError {
    /// The model is not available, so photos cannot be compared.
    #[error("the model is not available, so photos cannot be compared")]
    ModelUnavailable,
    /// Results are not being cached (`--no-cache`, or a cache that could not be opened).
    #[error("results are not being cached")]
    NoCache,
    /// Stopped by a cancel before the similarity index was complete.
    #[error("stopped before the similarity index was complete")]
    Cancelled,
    /// The cache or the similarity index failed.
    #[error("{0}")]
    Failed(Arc<dyn std::error::Error + Send + Sync>),
}

/// The long tasks besides tagging, which report [`Event::Working`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Building the similarity index from the cache (the first search after an upgrade or
    /// of a large cache).
    BuildingIndex,
    /// Moving photos to the trash.
    MovingToTrash,
}

impl Task {
    /// What the task does, for a progress line.
    pub fn describe(self) -> &'static str {
        match self {
            Self::BuildingIndex => "Building the similarity index",
            Self::MovingToTrash => "Moving photos to the trash",
        }
    }
}

/// Why one photo has no tags: its path, the kind of problem, and a sentence for the user that
/// names the file and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PhotoError {
    /// The photo.
    pub path: PathBuf,
    /// What kind of problem.
    pub kind: PhotoErrorKind,
    /// What to tell the user, naming the file.
    pub message: String,
}

impl PhotoError {
    /// A problem with the file itself; `message` already names the file.
    pub fn file(path: PathBuf, message: String) -> Self {
        Self { path, kind: PhotoErrorKind::File, message }
    }

    /// The path is no photo file; `message` already names it.
    pub fn not_a_photo(path: PathBuf, message: String) -> Self {
        Self { path, kind: PhotoErrorKind::NotAPhoto, message }
    }

    /// The model failed on this photo.
    pub fn model(path: PathBuf, cause: &dyn std::fmt::Display) -> Self {
        let message = format!("{}: the model failed on this image: {cause}", path.display());
        Self { path, kind: PhotoErrorKind::Model, message }
    }

    /// evatag failed unexpectedly (`what` went wrong, as a panic said) while `doing` this
    /// photo's work.
    pub fn unexpected(path: PathBuf, doing: &str, what: &str) -> Self {
        let message = format!("{}: evatag failed unexpectedly while {doing}: {what}", path.display());
        Self { path, kind: PhotoErrorKind::Unexpected, message }
    }

    /// Nothing was tagged because the model is not available.
    pub fn model_unavailable(path: PathBuf) -> Self {
        let message = format!("{}: not tagged: the model is not available", path.display());
        Self { path, kind: PhotoErrorKind::ModelUnavailable, message }
    }

    /// The job was cancelled first.
    pub fn cancelled(path: PathBuf) -> Self {
        let message = format!("{}: not tagged: cancelled", path.display());
        Self { path, kind: PhotoErrorKind::Cancelled, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_folder_is_offered_only_where_the_files_are_missing() {
        let missing: ModelError = WeightsError::MissingFile { path: "/m/model.safetensors".into() }.into();
        assert!(missing.files_missing());
        assert_eq!(missing.to_string(), WeightsError::MissingFile { path: "/m/model.safetensors".into() }.to_string());
        let offline: ModelError =
            WeightsError::NotCached { repo: "timm/x".into(), file: "config.json".into(), cache: "/hf".into() }.into();
        assert!(offline.files_missing());
        let damaged: ModelError =
            WeightsError::NotSafetensors { path: "/m/model.safetensors".into(), reason: "truncated".into() }.into();
        assert!(!damaged.files_missing(), "a damaged file is found, not missing");
        assert!(!ModelError::Unexpected("boom".into()).files_missing());
        assert_eq!(ModelError::Unexpected("boom".into()).to_string(), "loading the model failed unexpectedly: boom");
    }
}

//! The pipeline ahead of the model: a scanner thread walks the folders, and a pool of decoder
//! threads reads, hashes, looks up in the cache, decodes and preprocesses each file. What
//! they find goes to the worker thread as [`PipeMsg`]s. Every message carries the job
//! generation it belongs to, so a cancelled job's stragglers are recognised and dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crossbeam_channel::{Sender, bounded};

use super::protocol::PhotoError;
use crate::fail_point::{Stage, fail_point, panic_message};
use crate::library::cache::{self, Cache, ContentHash, FileStamp};
use crate::library::photo_info::PhotoInfo;
use crate::library::scan::{self, ScanItem};
use crate::model::ClassProb;
use crate::preprocess::{self, Preprocessor};

/// Capacity of the queue between scanner and decoders.
const JOB_QUEUE: usize = 64;

/// A file on its way through the pipeline, tagged with the job generation it belongs to.
pub(super) struct Job {
    generation: u64,
    path: PathBuf,
}

/// What scanner and decoders tell the worker thread.
pub(super) enum PipeMsg {
    /// A file was found and queued.
    Found { generation: u64, path: PathBuf, modified: Option<SystemTime> },
    /// A scan of one `Add` command is complete.
    ScanFinished { generation: u64 },
    /// A photo found by a scan whose job was cancelled: listed, not queued.
    Listed { path: PathBuf, modified: Option<SystemTime> },
    /// A path the scan found to be no photo file; it is counted and reported, never queued.
    Skipped { generation: u64, error: PhotoError },
    /// A file is finished without the model (cache hit or error).
    Finished { generation: u64, path: PathBuf, outcome: Result<Hit, PhotoError> },
    /// A file is preprocessed and waits for the model.
    Ready { generation: u64, item: ReadyImage },
}

/// A cache hit.
pub(super) struct Hit {
    /// The stored labels, best first.
    pub labels: Vec<ClassProb>,
    /// The stored embedding.
    pub embedding: Vec<f32>,
    /// The content hash it is stored under.
    pub hash: ContentHash,
    /// The path table lacks this path (a renamed or copied photo) and should learn it.
    pub record: Option<FileStamp>,
    /// Its date taken and camera.
    pub info: PhotoInfo,
    /// Whether `info` was read now, for a result stored without it, and should be stored.
    pub info_is_new: bool,
}

impl Hit {
    /// The cached result of content `hash`, with its date taken and camera from the cache, or
    /// from `read_info` when they were never stored.
    fn new(
        cache: &Cache,
        hash: ContentHash,
        result: cache::CachedResult,
        record: Option<FileStamp>,
        read_info: impl FnOnce() -> PhotoInfo,
    ) -> Self {
        let stored = cache.photo_info(&hash);
        let info_is_new = stored.is_none();
        let info = stored.unwrap_or_else(read_info);
        Self { labels: result.labels, embedding: result.embedding, hash, record, info, info_is_new }
    }
}

/// A preprocessed image waiting for a batch.
pub(super) struct ReadyImage {
    /// The file.
    pub path: PathBuf,
    /// Its size and time when it was read.
    pub stamp: FileStamp,
    /// Its content hash.
    pub hash: ContentHash,
    /// The model's input, CHW f32.
    pub input: Vec<f32>,
    /// Its date taken and camera.
    pub info: PhotoInfo,
}

/// What decoders need to know about the model.
#[derive(Clone)]
pub(super) struct DecodeContext {
    /// The model's eval transform.
    pub preprocessor: Preprocessor,
    /// The model's identity, under which results are cached.
    pub model_id: String,
    /// The cache database file, read through a connection of the decoder's own.
    pub cache_db: Option<PathBuf>,
    /// How many labels a cached result must hold to answer this request.
    pub labels_needed: usize,
    /// Images with more pixels than this (in millions) are refused.
    pub max_megapixels: u64,
    /// Files larger than this many megabytes are refused before they are read.
    pub max_file_mb: u64,
}

/// Walks `roots` on a thread of its own: each photo found is announced to the worker and
/// queued for the decoders; each problem is reported as a finished file. When the job's
/// generation moves on (a cancel), the rest of the walk only lists photos.
pub(super) fn spawn_scanner(
    roots: Vec<PathBuf>,
    generation: u64,
    current: Arc<AtomicU64>,
    jobs: Sender<Job>,
    pipe: Sender<PipeMsg>,
) {
    std::thread::Builder::new()
        .name("evatag-scan".into())
        .spawn(move || {
            // The job ends with the scan's end, whatever happens in it.
            let walked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                walk(&roots, generation, &current, &jobs, &pipe)
            }));
            if let Err(payload) = walked {
                tracing::error!("the folder scan stopped unexpectedly: {}", panic_message(payload.as_ref()));
            }
            let _ = pipe.send(PipeMsg::ScanFinished { generation });
        })
        .expect("spawning a scanner thread");
}

/// Walks `roots` for [`spawn_scanner`], announcing and queueing what it finds.
fn walk(roots: &[PathBuf], generation: u64, current: &AtomicU64, jobs: &Sender<Job>, pipe: &Sender<PipeMsg>) {
    scan::scan(roots, |item| {
        let cancelled = current.load(Ordering::SeqCst) != generation;
        match item {
            // After a cancel the folders are still listed in full, but nothing more
            // is queued for the model.
            ScanItem::Image(path) if cancelled => {
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                pipe.send(PipeMsg::Listed { path, modified }).is_ok()
            }
            ScanItem::Problem { .. } if cancelled => true,
            ScanItem::Image(path) => {
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                pipe.send(PipeMsg::Found { generation, path: path.clone(), modified }).is_ok()
                    && jobs.send(Job { generation, path }).is_ok()
            }
            ScanItem::Problem { path, reason } => {
                let message = format!("{}: {reason}", path.display());
                pipe.send(PipeMsg::Skipped { generation, error: PhotoError::not_a_photo(path, message) }).is_ok()
            }
        }
    });
}

/// Starts the decoder pool; returns the job queue feeding it.
pub(super) fn spawn_decoders(
    context: DecodeContext,
    threads: usize,
    generation: Arc<AtomicU64>,
    pipe: Sender<PipeMsg>,
) -> Sender<Job> {
    let (tx, rx) = bounded::<Job>(JOB_QUEUE);
    for i in 0..threads {
        let (rx, pipe, generation, context) = (rx.clone(), pipe.clone(), generation.clone(), context.clone());
        std::thread::Builder::new()
            .name(format!("evatag-decode-{i}"))
            .spawn(move || {
                // Each decoder reads the cache through its own connection; WAL lets them run
                // beside the writer.
                let cache = context.cache_db.as_ref().and_then(|db| Cache::open_reader(db).ok());
                for job in rx {
                    if generation.load(Ordering::SeqCst) != job.generation {
                        continue;
                    }
                    // A decoder that panics on one file fails that file, not the whole run,
                    // which would otherwise wait for it forever.
                    let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        prepare(&job.path, &context, cache.as_ref())
                    }))
                    .unwrap_or_else(|payload| {
                        let message = format!(
                            "{}: the decoder failed unexpectedly ({})",
                            job.path.display(),
                            panic_message(payload.as_ref())
                        );
                        Err(PhotoError::file(job.path.clone(), message))
                    });
                    let msg = match prepared {
                        Ok(Prepared::Ready(item)) => PipeMsg::Ready { generation: job.generation, item },
                        Ok(Prepared::Hit(hit)) => {
                            PipeMsg::Finished { generation: job.generation, path: job.path, outcome: Ok(hit) }
                        }
                        Err(e) => PipeMsg::Finished { generation: job.generation, path: job.path, outcome: Err(e) },
                    };
                    if pipe.send(msg).is_err() {
                        return;
                    }
                }
            })
            .expect("spawning a decoder thread");
    }
    tx
}

/// A file after the decoder: answered from the cache, or ready for the model.
pub(super) enum Prepared {
    /// The cache knows it.
    Hit(Hit),
    /// It waits for the model.
    Ready(ReadyImage),
}

/// Everything before the model: stat, cache lookups (by path, then by content), decode and
/// preprocess. Errors name the file and the cause.
pub(super) fn prepare(path: &Path, context: &DecodeContext, cache: Option<&Cache>) -> Result<Prepared, PhotoError> {
    let named = |reason: String| PhotoError::file(path.to_owned(), format!("{}: {reason}", path.display()));
    let failed = |message: String| PhotoError::file(path.to_owned(), message);
    let meta = std::fs::metadata(path).map_err(|e| named(scan::describe_io(path, &e)))?;
    if !meta.is_file() {
        return Err(named("is not a regular file".into()));
    }
    let stamp = FileStamp::of(&meta);
    let usable = |hit: Option<cache::CachedResult>| hit.filter(|h| h.labels.len() >= context.labels_needed);
    if let Some(cache) = cache
        && let Ok(Some(hash)) = cache.known_hash(path, stamp)
        && let Ok(result) = cache.result(&hash, &context.model_id)
        && let Some(hit) = usable(result)
    {
        // The file is not read for a known photo, unless its date was never stored.
        let read_info = || PhotoInfo::from_file_head(path).unwrap_or_default();
        return Ok(Prepared::Hit(Hit::new(cache, hash, hit, None, read_info)));
    }
    let bytes = scan::read_photo(path, context.max_file_mb).map_err(|e| failed(e.to_string()))?;
    let hash = cache::hash_bytes(&bytes);
    if let Some(cache) = cache
        && let Ok(result) = cache.result(&hash, &context.model_id)
        && let Some(hit) = usable(result)
    {
        return Ok(Prepared::Hit(Hit::new(cache, hash, hit, Some(stamp), || PhotoInfo::from_bytes(&bytes))));
    }
    fail_point(Stage::Decode, path);
    let image = preprocess::decode_rgb8(&bytes, path, context.max_megapixels).map_err(|e| failed(e.to_string()))?;
    let info = PhotoInfo::from_bytes(&bytes);
    drop(bytes);
    let input = context.preprocessor.run(&image);
    Ok(Prepared::Ready(ReadyImage { path: path.to_owned(), stamp, hash, input, info }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::cache::NewResult;
    use crate::model::config::{CropMode, Interpolation, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PretrainedCfg};
    use crate::worker::PhotoErrorKind;

    fn context(cache_db: Option<PathBuf>, labels_needed: usize) -> DecodeContext {
        let cfg = PretrainedCfg {
            input_size: [3, 32, 32],
            interpolation: Interpolation::Bicubic,
            crop_pct: 0.9,
            crop_mode: CropMode::Center,
            mean: OPENAI_CLIP_MEAN,
            std: OPENAI_CLIP_STD,
        };
        DecodeContext {
            preprocessor: Preprocessor::new(&cfg),
            model_id: "m".into(),
            cache_db,
            labels_needed,
            max_megapixels: 10,
            max_file_mb: 10,
        }
    }

    fn photo(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 128])).save(&path).unwrap();
        path
    }

    fn ready(prepared: Result<Prepared, PhotoError>) -> ReadyImage {
        match prepared {
            Ok(Prepared::Ready(item)) => item,
            Ok(Prepared::Hit(_)) => panic!("expected the model's turn, got a cache hit"),
            Err(e) => panic!("{e}"),
        }
    }

    fn hit(prepared: Result<Prepared, PhotoError>) -> Hit {
        match prepared {
            Ok(Prepared::Hit(hit)) => hit,
            Ok(Prepared::Ready(item)) => panic!("expected a cache hit for {}", item.path.display()),
            Err(e) => panic!("{e}"),
        }
    }

    /// Stores `labels` and the embedding `[0.5]` as model `m`'s result for `item`.
    fn store(cache: &mut Cache, item: &ReadyImage, labels: &[ClassProb], info: &PhotoInfo) {
        let row = NewResult { path: &item.path, stamp: item.stamp, hash: item.hash, labels, embedding: &[0.5], info };
        cache.store_batch("m", &[row]).unwrap();
    }

    #[test]
    fn a_new_photo_is_preprocessed_and_a_known_one_answered_from_the_cache() {
        let (photos, cache_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut cache, _) = Cache::open_in(cache_dir.path()).unwrap();
        let path = photo(photos.path(), "a.png");
        let item = ready(prepare(&path, &context(None, 1), Some(&cache)));
        assert_eq!(item.input.len(), 3 * 32 * 32);
        assert_eq!(item.hash, cache::hash_bytes(&std::fs::read(&path).unwrap()));

        let labels = [ClassProb { class: 7, prob: 0.9 }];
        store(&mut cache, &item, &labels, &item.info);
        let known = hit(prepare(&path, &context(None, 1), Some(&cache)));
        assert_eq!((known.labels, known.embedding, known.record), (labels.to_vec(), vec![0.5], None));

        // A copy under another name: found by content, and its path is to be remembered.
        let copy = photos.path().join("copy.png");
        std::fs::copy(&path, &copy).unwrap();
        let by_content = hit(prepare(&copy, &context(None, 1), Some(&cache)));
        assert_eq!(by_content.hash, item.hash);
        assert!(by_content.record.is_some());

        // A request for more labels than are stored goes to the model.
        ready(prepare(&path, &context(None, 2), Some(&cache)));
    }

    #[test]
    fn the_date_taken_is_read_once_and_then_served_from_the_cache() {
        let (photos, cache_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut cache, _) = Cache::open_in(cache_dir.path()).unwrap();
        let path = photos.path().join("dated.jpg");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exif/dated_offset.jpg");
        std::fs::copy(fixture, &path).unwrap();
        let item = ready(prepare(&path, &context(None, 1), Some(&cache)));
        assert_eq!(item.info.camera.as_deref(), Some("Canon EOS R5"));
        assert!(item.info.taken.is_some());
        // A result stored without its date, as an older version stored them.
        store(&mut cache, &item, &[ClassProb { class: 7, prob: 0.9 }], &PhotoInfo::default());
        let database = rusqlite::Connection::open(cache_dir.path().join(cache::DATABASE_FILE)).unwrap();
        database.execute("DELETE FROM photos", []).unwrap();
        let known = hit(prepare(&path, &context(None, 1), Some(&cache)));
        assert!(known.info_is_new, "a date never stored is read from the file");
        assert_eq!(known.info, item.info);
        cache.remember_info(&known.hash, &known.info).unwrap();
        let again = hit(prepare(&path, &context(None, 1), Some(&cache)));
        assert!(!again.info_is_new, "then it comes from the cache");
        assert_eq!(again.info, item.info);
    }

    #[test]
    fn errors_name_the_file_and_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("folder.jpg");
        std::fs::create_dir(&folder).unwrap();
        let text = dir.path().join("notes.png");
        std::fs::write(&text, "not pixels").unwrap();
        for (path, cause) in [(&folder, "not a regular file"), (&text, "not a supported image")] {
            let Err(error) = prepare(path, &context(None, 1), None) else { panic!("{} was accepted", path.display()) };
            assert_eq!(error.kind, PhotoErrorKind::File);
            assert_eq!(&error.path, path);
            assert!(error.message.contains(&*path.to_string_lossy()) && error.message.contains(cause), "{error}");
        }
    }
}

//! The background thread that owns the model.
//!
//! [`Command`]s go in and [`Event`]s come out over crossbeam channels; nothing here ever
//! blocks the caller. Inside, a scanner thread walks the given paths, a small pool of decoder
//! threads reads, hashes, looks up and preprocesses files ahead of the model, and the worker
//! thread itself runs batches through the model and writes results to the cache, one
//! transaction per batch. Every queue is bounded, so memory stays flat for any folder size.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, bounded, select, unbounded};

use crate::library::cache::{self, Cache, ContentHash, FileStamp, NewResult};
use crate::library::scan::{self, ScanItem};
use crate::library::search::{Match, SimilarityIndex};
use crate::model::config::ModelConfig;
use crate::model::device::{self, DTypeChoice, DeviceChoice};
use crate::model::labels::{Label, class_name};
use crate::model::weights::{self, DownloadProgress, ModelSource};
use crate::model::{ClassProb, Model, Prediction};
use crate::options::Options;
use crate::preprocess::{self, Preprocessor};

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
            dtype: options.dtype,
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
    /// Delete every cached result.
    ClearCache,
    /// Stop the worker.
    Shutdown,
}

/// The model's state as a user would describe it.
#[derive(Debug, Clone, PartialEq)]
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
    /// Could not be made ready; the text says why and what to do.
    Failed(String),
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
    /// One file is finished: tagged, or an error naming the file and the cause.
    Image {
        /// The file.
        path: PathBuf,
        /// Its tags or what went wrong.
        outcome: Result<Tagged, String>,
    },
    /// Progress of the current job.
    Progress(Progress),
    /// Answer to [`Command::FindSimilar`].
    Similar {
        /// The query photo.
        query: PathBuf,
        /// Ranked matches, or why there are none.
        outcome: Result<Vec<Match>, String>,
    },
    /// The cache was emptied, or could not be: the text says which.
    CacheCleared(Result<(), String>),
    /// Nothing is queued or running.
    Idle,
}

/// Handle on the background worker.
pub struct Worker {
    commands: Sender<Command>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker; it begins locating and loading the model at once. `wake` is called
    /// after every event (a GUI passes its repaint request).
    pub fn spawn(config: WorkerConfig, wake: Box<dyn Fn() + Send + Sync>) -> Self {
        let (commands, command_rx) = unbounded();
        let (event_tx, events) = unbounded();
        let notifier = Notifier { events: event_tx, wake: Arc::from(wake) };
        let thread = std::thread::Builder::new()
            .name("evatag-worker".into())
            .spawn(move || Engine::new(config, notifier, command_rx).run())
            .expect("spawning the worker thread");
        Self { commands, events, thread: Some(thread) }
    }

    /// Sends a command; a stopped worker ignores it.
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// The stream of events.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Asks the worker to stop and waits for it (at most the batch in flight).
    pub fn shutdown(mut self) {
        self.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.send(Command::Shutdown);
    }
}

/// Sends events and wakes the receiver.
#[derive(Clone)]
struct Notifier {
    events: Sender<Event>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Notifier {
    fn send(&self, event: Event) {
        let _ = self.events.send(event);
        (self.wake)();
    }
}

/// What the loader thread reports.
enum LoaderMsg {
    Status(ModelStatus),
    Located { config: ModelConfig, model_id: String },
    Loaded(Result<Box<Model>, String>),
}

/// A file on its way through the pipeline, tagged with the job generation it belongs to.
struct Job {
    generation: u64,
    path: PathBuf,
}

/// What scanner and decoders tell the worker thread.
enum PipeMsg {
    /// A file was found and queued.
    Found { generation: u64, path: PathBuf, modified: Option<SystemTime> },
    /// A scan of one `Add` command is complete.
    ScanFinished { generation: u64 },
    /// A file is finished without the model (cache hit or error).
    Finished { generation: u64, path: PathBuf, outcome: Result<Hit, String> },
    /// A file is preprocessed and waits for the model.
    Ready { generation: u64, item: ReadyImage },
}

/// A cache hit.
struct Hit {
    labels: Vec<ClassProb>,
    embedding: Vec<f32>,
    hash: ContentHash,
    /// The path table lacks this path (a renamed or copied photo) and should learn it.
    record: Option<FileStamp>,
}

/// A preprocessed image waiting for a batch.
struct ReadyImage {
    path: PathBuf,
    stamp: FileStamp,
    hash: ContentHash,
    input: Vec<f32>,
}

/// What decoders need to know about the model.
#[derive(Clone)]
struct DecodeContext {
    preprocessor: Preprocessor,
    model_id: String,
    /// The cache database file, read through a connection of the decoder's own.
    cache_db: Option<PathBuf>,
    /// How many labels a cached result must hold to answer this request.
    labels_needed: usize,
    max_megapixels: u64,
    max_file_mb: u64,
}

/// The state of the worker thread.
struct Engine {
    config: WorkerConfig,
    notifier: Notifier,
    commands: Receiver<Command>,
    loader: Receiver<LoaderMsg>,
    pipe_tx: Sender<PipeMsg>,
    pipe_rx: Receiver<PipeMsg>,
    generation: Arc<AtomicU64>,
    jobs: Option<Sender<Job>>,
    located: Option<(ModelConfig, String)>,
    model: Option<Model>,
    model_failed: bool,
    cache: Option<Cache>,
    index: Option<SimilarityIndex>,
    index_has_cache: bool,
    /// Hashes of the files seen this session, for similarity queries.
    session_hashes: HashMap<PathBuf, ContentHash>,
    /// Paths added before the model's files were found.
    waiting_paths: Vec<Vec<PathBuf>>,
    waiting_queries: Vec<Command>,
    batch: Vec<ReadyImage>,
    job: JobCounters,
}

/// Counters of the current generation.
#[derive(Default)]
struct JobCounters {
    scans_active: u64,
    found: u64,
    progress: Progress,
    started: Option<Instant>,
    last_report: Option<Instant>,
    /// Whether this job has already said that the cache could not be written.
    cache_write_warned: bool,
    /// Whether another program holds the cache locked: the rest of the job is not stored.
    cache_locked: bool,
}

impl JobCounters {
    fn outstanding(&self) -> u64 {
        self.found - self.progress.done
    }

    fn busy(&self) -> bool {
        self.scans_active > 0 || self.outstanding() > 0
    }
}

/// Capacity of the queue between scanner and decoders.
const JOB_QUEUE: usize = 64;

impl Engine {
    fn new(config: WorkerConfig, notifier: Notifier, commands: Receiver<Command>) -> Self {
        let (pipe_tx, pipe_rx) = bounded(2 * config.batch_size.max(1) + config.decode_threads + 64);
        let loader = spawn_loader(&config, notifier.clone());
        Self {
            config,
            notifier,
            commands,
            loader,
            pipe_tx,
            pipe_rx,
            generation: Arc::new(AtomicU64::new(0)),
            jobs: None,
            located: None,
            model: None,
            model_failed: false,
            cache: None,
            index: None,
            index_has_cache: false,
            session_hashes: HashMap::new(),
            waiting_paths: Vec::new(),
            waiting_queries: Vec::new(),
            batch: Vec::new(),
            job: JobCounters::default(),
        }
    }

    fn run(mut self) {
        self.open_cache();
        loop {
            // While the model cannot take a batch, stop pulling preprocessed images so that
            // they wait, bounded, in the pipeline instead of piling up here.
            let pipe = if self.model.is_none() && self.batch.len() >= self.config.batch_size {
                crossbeam_channel::never()
            } else {
                self.pipe_rx.clone()
            };
            select! {
                recv(self.commands) -> command => match command {
                    Ok(Command::Shutdown) | Err(_) => return,
                    Ok(command) => self.handle(command),
                },
                recv(self.loader) -> msg => match msg {
                    Ok(msg) => self.on_loader(msg),
                    Err(_) => self.loader = crossbeam_channel::never(),
                },
                recv(pipe) -> msg => {
                    if let Ok(msg) = msg {
                        self.on_pipe(msg);
                    }
                }
            }
            self.maybe_run_batch();
        }
    }

    fn open_cache(&mut self) {
        let Some(dir) = self.config.cache_dir.clone() else { return };
        match Cache::open_in(&dir) {
            Ok((cache, warnings)) => {
                for warning in warnings {
                    self.notifier.send(Event::Warning(warning));
                }
                self.cache = Some(cache);
            }
            Err(e) => {
                // Without a cache everything still works; it is only slower next time.
                self.config.cache_dir = None;
                self.notifier.send(Event::Warning(format!("{e}; results will not be cached")));
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Add(paths) => {
                if self.located.is_some() {
                    self.start_scan(paths);
                } else if self.model_failed {
                    self.fail_unscanned(paths);
                } else {
                    self.waiting_paths.push(paths);
                }
            }
            Command::Cancel => self.cancel(),
            Command::ClearCache => self.clear_cache(),
            query @ Command::FindSimilar { .. } => {
                if self.model.is_some() {
                    self.answer_query(query);
                } else if self.model_failed {
                    if let Command::FindSimilar { query, .. } = query {
                        self.notifier.send(Event::Similar { query, outcome: Err("the model is not available".into()) });
                    }
                } else {
                    self.waiting_queries.push(query);
                }
            }
            Command::Shutdown => {}
        }
    }

    fn on_loader(&mut self, msg: LoaderMsg) {
        match msg {
            LoaderMsg::Status(status) => {
                let failed = matches!(status, ModelStatus::Failed(_));
                self.notifier.send(Event::Model(status));
                if failed {
                    self.model_failed = true;
                    for paths in std::mem::take(&mut self.waiting_paths) {
                        self.fail_unscanned(paths);
                    }
                    for query in std::mem::take(&mut self.waiting_queries) {
                        if let Command::FindSimilar { query, .. } = query {
                            self.notifier
                                .send(Event::Similar { query, outcome: Err("the model is not available".into()) });
                        }
                    }
                }
            }
            LoaderMsg::Located { config, model_id } => {
                self.index = Some(SimilarityIndex::new(config.eva.embed_dim));
                let cache_db = self.cache.as_ref().map(|c| c.path().to_owned());
                let context = self.decode_context(&config, &model_id, cache_db);
                self.jobs = Some(spawn_decoders(
                    context,
                    self.config.decode_threads.max(1),
                    self.generation.clone(),
                    self.pipe_tx.clone(),
                ));
                self.located = Some((config, model_id));
                for paths in std::mem::take(&mut self.waiting_paths) {
                    self.start_scan(paths);
                }
            }
            LoaderMsg::Loaded(Ok(model)) => {
                self.model = Some(*model);
                self.answer_waiting_queries();
            }
            LoaderMsg::Loaded(Err(_)) => {}
        }
    }

    /// What decoding needs to know about the model and the cache.
    fn decode_context(&self, config: &ModelConfig, model_id: &str, cache_db: Option<PathBuf>) -> DecodeContext {
        DecodeContext {
            preprocessor: Preprocessor::new(&config.pretrained_cfg),
            model_id: model_id.to_owned(),
            cache_db,
            labels_needed: self.config.top_k.min(config.eva.num_classes),
            max_megapixels: self.config.max_megapixels,
            max_file_mb: self.config.max_file_mb,
        }
    }

    /// Reports every path of an `Add` as failed because the model is unavailable.
    fn fail_unscanned(&mut self, paths: Vec<PathBuf>) {
        for path in paths {
            self.notifier.send(Event::Image { path, outcome: Err("not tagged: the model is not available".into()) });
        }
        self.notifier.send(Event::Idle);
    }

    fn start_scan(&mut self, roots: Vec<PathBuf>) {
        let Some(jobs) = self.jobs.clone() else { return };
        if !self.job.busy() {
            self.job = JobCounters { started: Some(Instant::now()), ..JobCounters::default() };
        }
        self.job.scans_active += 1;
        self.job.progress.scanning = true;
        let generation = self.generation.load(Ordering::SeqCst);
        let current = self.generation.clone();
        let pipe = self.pipe_tx.clone();
        std::thread::Builder::new()
            .name("evatag-scan".into())
            .spawn(move || {
                scan::scan(&roots, |item| {
                    if current.load(Ordering::SeqCst) != generation {
                        return false;
                    }
                    let (path, modified) = match &item {
                        ScanItem::Image(path) => {
                            (path.clone(), std::fs::metadata(path).and_then(|m| m.modified()).ok())
                        }
                        ScanItem::Problem { path, .. } => (path.clone(), None),
                    };
                    if pipe.send(PipeMsg::Found { generation, path, modified }).is_err() {
                        return false;
                    }
                    match item {
                        ScanItem::Image(path) => jobs.send(Job { generation, path }).is_ok(),
                        ScanItem::Problem { path, reason } => {
                            let outcome = Err(format!("{}: {reason}", path.display()));
                            pipe.send(PipeMsg::Finished { generation, path, outcome }).is_ok()
                        }
                    }
                });
                let _ = pipe.send(PipeMsg::ScanFinished { generation });
            })
            .expect("spawning a scanner thread");
    }

    fn cancel(&mut self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.batch.clear();
        let was_busy = self.job.busy();
        self.job = JobCounters::default();
        for paths in std::mem::take(&mut self.waiting_paths) {
            for path in paths {
                self.notifier.send(Event::Image { path, outcome: Err("cancelled".into()) });
            }
        }
        if was_busy {
            self.notifier.send(Event::Progress(self.job.progress));
        }
        self.notifier.send(Event::Idle);
    }

    fn clear_cache(&mut self) {
        let outcome = match self.cache.as_mut() {
            Some(cache) => cache.clear().map_err(|e| e.to_string()),
            None => Err("results are not being cached".to_owned()),
        };
        if outcome.is_ok() {
            self.index = self.located.as_ref().map(|(config, _)| SimilarityIndex::new(config.eva.embed_dim));
            self.index_has_cache = false;
            self.session_hashes.clear();
        }
        self.notifier.send(Event::CacheCleared(outcome));
    }

    fn on_pipe(&mut self, msg: PipeMsg) {
        let current = self.generation.load(Ordering::SeqCst);
        match msg {
            PipeMsg::Found { generation, path, modified } if generation == current => {
                self.job.found += 1;
                self.job.progress.total = self.job.found;
                self.notifier.send(Event::Queued { path, modified });
            }
            PipeMsg::ScanFinished { generation } if generation == current => {
                self.job.scans_active = self.job.scans_active.saturating_sub(1);
                self.job.progress.scanning = self.job.scans_active > 0;
                self.after_item();
            }
            PipeMsg::Finished { generation, path, outcome } if generation == current => {
                let outcome = outcome.map(|hit| self.accept_hit(&path, hit));
                self.job.progress.cached += u64::from(outcome.is_ok());
                self.finish(path, outcome);
            }
            PipeMsg::Ready { generation, item } if generation == current => self.batch.push(item),
            _ => {}
        }
    }

    /// Says once per job that results could not be stored (a full disk fails every batch).
    fn warn_cache_write(&mut self, error: &cache::CacheError) {
        tracing::debug!("{error}");
        self.job.cache_locked |= error.is_busy();
        if !std::mem::replace(&mut self.job.cache_write_warned, true) {
            self.notifier.send(Event::Warning(format!("{error}; the results of this run may not all be cached")));
        }
    }

    fn accept_hit(&mut self, path: &Path, hit: Hit) -> Tagged {
        if let (Some(stamp), Some(cache)) = (hit.record, self.cache.as_mut())
            && let Err(e) = cache.remember_file(path, stamp, &hit.hash)
        {
            self.warn_cache_write(&e);
        }
        self.tagged(path, hit.hash, &hit.labels, hit.embedding, true)
    }

    fn tagged(
        &mut self,
        path: &Path,
        hash: ContentHash,
        labels: &[ClassProb],
        embedding: Vec<f32>,
        from_cache: bool,
    ) -> Tagged {
        let num_classes = self.located.as_ref().map_or(0, |(c, _)| c.eva.num_classes);
        self.session_hashes.insert(path.to_owned(), hash);
        if let Some(index) = self.index.as_mut() {
            index.insert(hash, path.to_owned(), &embedding);
        }
        Tagged {
            labels: labels
                .iter()
                .take(self.config.top_k)
                .map(|c| Label { class: c.class, label: class_name(c.class, num_classes), prob: c.prob })
                .collect(),
            embedding: embedding.into(),
            hash,
            from_cache,
        }
    }

    fn finish(&mut self, path: PathBuf, outcome: Result<Tagged, String>) {
        self.job.progress.done += 1;
        if outcome.is_err() {
            self.job.progress.failed += 1;
        }
        self.notifier.send(Event::Image { path, outcome });
        self.after_item();
    }

    /// Reports progress (at most ten times a second, and always at the end) and goes idle
    /// when the job is complete.
    fn after_item(&mut self) {
        let now = Instant::now();
        let complete = !self.job.busy() && self.batch.is_empty();
        let due = self.job.last_report.is_none_or(|t| now - t >= Duration::from_millis(100));
        if due || complete {
            self.job.last_report = Some(now);
            let p = &mut self.job.progress;
            if let Some(started) = self.job.started {
                let secs = (now - started).as_secs_f64().max(1e-3);
                p.images_per_second = p.done as f64 / secs;
                p.eta_secs =
                    (p.done > 0 && !p.scanning).then(|| p.total.saturating_sub(p.done) as f64 / p.images_per_second);
            }
            self.notifier.send(Event::Progress(*p));
        }
        if complete {
            self.notifier.send(Event::Idle);
        }
    }

    /// Runs a batch when it is full, or when nothing more can join it.
    fn maybe_run_batch(&mut self) {
        if self.batch.is_empty() || self.model.is_none() {
            return;
        }
        let waiting_for_more = self.job.scans_active > 0 || self.job.outstanding() > self.batch.len() as u64;
        if self.batch.len() < self.config.batch_size && waiting_for_more {
            return;
        }
        let batch: Vec<ReadyImage> = self.batch.drain(..self.batch.len().min(self.config.batch_size)).collect();
        let inputs: Vec<&[f32]> = batch.iter().map(|b| b.input.as_slice()).collect();
        let model = self.model.as_ref().expect("checked above");
        let predictions = model.predict(&inputs);
        let model_id = model.id().to_owned();
        match predictions {
            Ok(predictions) => self.store_batch(&model_id, batch, predictions),
            Err(e) => {
                for item in batch {
                    self.finish(item.path, Err(format!("the model failed on this image: {e}")));
                }
            }
        }
        // More may be ready already; keep draining without waiting for a new message.
        if !self.batch.is_empty() {
            self.maybe_run_batch();
        }
    }

    /// Records a batch's results (cache, index) and reports each photo as done in the job.
    fn store_batch(&mut self, model_id: &str, batch: Vec<ReadyImage>, predictions: Vec<Prediction>) {
        for (path, tagged) in self.record_results(model_id, batch, predictions) {
            self.job.progress.inferred += 1;
            self.finish(path, Ok(tagged));
        }
    }

    /// Stores results in the cache and the similarity index; returns them as `Tagged`.
    fn record_results(
        &mut self,
        model_id: &str,
        batch: Vec<ReadyImage>,
        predictions: Vec<Prediction>,
    ) -> Vec<(PathBuf, Tagged)> {
        let ranked: Vec<Vec<ClassProb>> =
            predictions.iter().map(|p| p.top_k(cache::CACHED_TOP_K.max(self.config.top_k))).collect();
        if let Some(cache) = self.cache.as_mut().filter(|_| !self.job.cache_locked) {
            let rows: Vec<NewResult> = batch
                .iter()
                .zip(&predictions)
                .zip(&ranked)
                .map(|((item, prediction), labels)| NewResult {
                    path: &item.path,
                    stamp: item.stamp,
                    hash: item.hash,
                    labels,
                    embedding: &prediction.embedding,
                })
                .collect();
            if let Err(e) = cache.store_batch(model_id, &rows) {
                self.warn_cache_write(&e);
            }
        }
        batch
            .into_iter()
            .zip(predictions)
            .zip(ranked)
            .map(|((item, prediction), labels)| {
                let tagged = self.tagged(&item.path, item.hash, &labels, prediction.embedding, false);
                (item.path, tagged)
            })
            .collect()
    }

    fn answer_waiting_queries(&mut self) {
        if self.model.is_none() {
            return;
        }
        for query in std::mem::take(&mut self.waiting_queries) {
            self.answer_query(query);
        }
    }

    fn answer_query(&mut self, command: Command) {
        let Command::FindSimilar { query, k, within } = command else { return };
        let outcome = self.similar(&query, k, within.as_deref());
        self.notifier.send(Event::Similar { query, outcome });
    }

    fn similar(&mut self, query: &Path, k: usize, within: Option<&[PathBuf]>) -> Result<Vec<Match>, String> {
        let (hash, embedding) = self.query_embedding(query)?;
        self.load_index_from_cache();
        let index = self.index.as_ref().ok_or("the model is not ready")?;
        let allowed: Option<HashSet<ContentHash>> =
            within.map(|paths| paths.iter().filter_map(|p| self.session_hashes.get(p).copied()).collect());
        let keep = |h: &ContentHash| allowed.as_ref().is_none_or(|a| a.contains(h));
        Ok(index.search(&embedding, k, Some(&hash), &keep))
    }

    /// The embedding of a query photo: from this session, the cache, or the model.
    fn query_embedding(&mut self, path: &Path) -> Result<(ContentHash, Vec<f32>), String> {
        if let Some(hash) = self.session_hashes.get(path)
            && let Some(e) = self.index.as_ref().and_then(|i| i.embedding(hash))
        {
            return Ok((*hash, e.to_vec()));
        }
        let (config, model_id) = self.located.clone().ok_or("the model is not ready")?;
        let context = self.decode_context(&config, &model_id, None);
        let cache = self.cache.as_ref();
        match prepare(path, &context, cache)? {
            Prepared::Hit(hit) => {
                let tagged = self.accept_hit(path, hit);
                Ok((tagged.hash, tagged.embedding.to_vec()))
            }
            Prepared::Ready(item) => {
                let model = self.model.as_ref().ok_or("the model is not ready")?;
                let prediction = model.predict(&[&item.input]).map_err(|e| e.to_string())?;
                let model_id = model.id().to_owned();
                let recorded = self.record_results(&model_id, vec![item], prediction);
                let (_, tagged) = recorded.into_iter().next().ok_or("the query could not be embedded")?;
                Ok((tagged.hash, tagged.embedding.to_vec()))
            }
        }
    }

    fn load_index_from_cache(&mut self) {
        if self.index_has_cache {
            return;
        }
        let (Some(cache), Some(index), Some((_, model_id))) = (&self.cache, self.index.as_mut(), &self.located) else {
            return;
        };
        match cache.embeddings(model_id) {
            Ok(rows) => {
                for (hash, path, embedding) in rows {
                    if index.embedding(&hash).is_none() {
                        index.insert(hash, path, &embedding);
                    }
                }
                self.index_has_cache = true;
            }
            Err(e) => self.notifier.send(Event::Warning(e.to_string())),
        }
    }
}

/// Locates the model's files (downloading them if needed) and loads it, on its own thread, so
/// the worker keeps answering commands meanwhile.
fn spawn_loader(config: &WorkerConfig, notifier: Notifier) -> Receiver<LoaderMsg> {
    let (tx, rx) = unbounded();
    let source = config.source.clone();
    let (device_choice, dtype_choice) = (config.device, config.dtype);
    let wake = notifier.wake.clone();
    std::thread::Builder::new()
        .name("evatag-model".into())
        .spawn(move || {
            let send = |msg| {
                let _ = tx.send(msg);
                wake();
            };
            send(LoaderMsg::Status(ModelStatus::Locating));
            let mut progress = StatusProgress::new(|status| send(LoaderMsg::Status(status)));
            let located = weights::locate(&source, &mut progress).and_then(|files| {
                let config = weights::read_config(&files.config)?;
                let model_id = weights::model_id(&config, &files)?;
                Ok((files, config, model_id))
            });
            let (files, config, model_id) = match located {
                Ok(found) => found,
                Err(e) => {
                    send(LoaderMsg::Status(ModelStatus::Failed(e.to_string())));
                    return;
                }
            };
            send(LoaderMsg::Located { config, model_id });
            let placement = device::place(device_choice, dtype_choice);
            for warning in &placement.warnings {
                tracing::warn!("{warning}");
            }
            send(LoaderMsg::Status(ModelStatus::Loading { device: placement.device_name() }));
            match Model::load(&files, &placement) {
                Ok(model) => {
                    let ready = ModelStatus::Ready { device: placement.device_name(), model_id: model.id().to_owned() };
                    send(LoaderMsg::Loaded(Ok(Box::new(model))));
                    send(LoaderMsg::Status(ready));
                }
                Err(e) => {
                    send(LoaderMsg::Loaded(Err(e.to_string())));
                    send(LoaderMsg::Status(ModelStatus::Failed(e.to_string())));
                }
            }
        })
        .expect("spawning the model loader thread");
    rx
}

/// Turns download callbacks into [`ModelStatus::Downloading`] updates, a few per second.
struct StatusProgress<F: FnMut(ModelStatus)> {
    report: F,
    file: String,
    done: u64,
    total: u64,
    started: Instant,
    resumed_from: u64,
    last: Option<Instant>,
}

impl<F: FnMut(ModelStatus)> StatusProgress<F> {
    fn new(report: F) -> Self {
        Self { report, file: String::new(), done: 0, total: 0, started: Instant::now(), resumed_from: 0, last: None }
    }

    fn emit(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        let fetched = self.done.saturating_sub(self.resumed_from) as f64;
        let eta_secs = (secs > 1.0 && fetched > 0.0).then(|| (self.total - self.done) as f64 * secs / fetched);
        (self.report)(ModelStatus::Downloading {
            file: self.file.clone(),
            done: self.done,
            total: self.total,
            eta_secs,
        });
    }
}

impl<F: FnMut(ModelStatus)> DownloadProgress for StatusProgress<F> {
    fn start(&mut self, file: &str, total_bytes: u64) {
        self.file = file.to_owned();
        self.total = total_bytes;
        self.done = 0;
        self.resumed_from = 0;
        self.started = Instant::now();
    }

    fn advance(&mut self, bytes: u64) {
        if self.done == 0 && bytes > 0 && self.last.is_none() {
            self.resumed_from = bytes;
        }
        self.done += bytes;
        if self.last.is_none_or(|t| t.elapsed() >= Duration::from_millis(200)) {
            self.last = Some(Instant::now());
            self.emit();
        }
    }

    fn finish(&mut self) {
        self.done = self.total;
        self.emit();
    }
}

/// Starts the decoder pool; returns the job queue feeding it.
fn spawn_decoders(
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
                    let msg = match prepare(&job.path, &context, cache.as_ref()) {
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
enum Prepared {
    Hit(Hit),
    Ready(ReadyImage),
}

/// Everything before the model: stat, cache lookups (by path, then by content), decode and
/// preprocess. Errors name the file and the cause.
fn prepare(path: &Path, context: &DecodeContext, cache: Option<&Cache>) -> Result<Prepared, String> {
    let named = |reason: String| format!("{}: {reason}", path.display());
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
        return Ok(Prepared::Hit(Hit { labels: hit.labels, embedding: hit.embedding, hash, record: None }));
    }
    let bytes = scan::read_photo(path, context.max_file_mb)?;
    let hash = cache::hash_bytes(&bytes);
    if let Some(cache) = cache
        && let Ok(result) = cache.result(&hash, &context.model_id)
        && let Some(hit) = usable(result)
    {
        return Ok(Prepared::Hit(Hit { labels: hit.labels, embedding: hit.embedding, hash, record: Some(stamp) }));
    }
    let image = preprocess::decode_rgb8(&bytes, path, context.max_megapixels).map_err(|e| e.to_string())?;
    drop(bytes);
    let input = context.preprocessor.run(&image);
    Ok(Prepared::Ready(ReadyImage { path: path.to_owned(), stamp, hash, input }))
}

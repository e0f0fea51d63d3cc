//! The worker thread's loop: it takes commands, follows the model loader, gathers what the
//! pipeline prepares into batches, runs them through the model and stores the results.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, select};

use super::Notifier;
use super::duplicates;
use super::loader::{LoaderMsg, spawn_loader};
use super::pipeline::{self, DecodeContext, Hit, Job, PipeMsg, Prepared, ReadyImage};
use super::protocol::{
    Command, Event, LibraryError, ModelSpeed, ModelStatus, PhotoError, Progress, Tagged, Task, WorkerConfig,
};
use super::similar::{CacheOfModel, SearchError, Similarity};
use crate::fail_point::{Stage, fail_point, panic_message};
use crate::library::cache::{self, Cache, CacheError, ContentHash, NewResult};
use crate::library::photo_info::PhotoInfo;
use crate::library::search::Match;
use crate::library::trash;
use crate::library::watch::Watch;
use crate::model::config::ModelConfig;
use crate::model::labels::{Label, class_name};
use crate::model::{ClassProb, Model, Prediction};
use crate::preprocess::Preprocessor;

/// A similarity query waiting for the model.
struct Query {
    query: PathBuf,
    k: usize,
    within: Option<Vec<PathBuf>>,
}

/// A question about the library that waits for the model.
enum Request {
    /// Photos like one photo.
    Similar(Query),
    /// Groups of duplicate photos among these files, or among every file the cache knows.
    Duplicates(Option<Vec<PathBuf>>),
}

/// Where the model is, and what waits for it.
enum ModelState {
    /// Looking for the model's files: added paths and queries wait.
    Locating { waiting_paths: Vec<Vec<PathBuf>>, waiting_queries: Vec<Request> },
    /// The files are found and the configuration is known, so scanning and decoding run;
    /// the weights are still loading, so queries wait.
    Located { config: ModelConfig, model_id: String, waiting_queries: Vec<Request> },
    /// Loaded and running.
    Ready(Box<Model>),
    /// It could not be made ready (the loader said why).
    Failed,
}

impl ModelState {
    /// The configuration and identity, once the files are found.
    fn located(&self) -> Option<(&ModelConfig, &str)> {
        match self {
            Self::Located { config, model_id, .. } => Some((config, model_id)),
            Self::Ready(model) => Some((model.config(), model.id())),
            Self::Locating { .. } | Self::Failed => None,
        }
    }

    fn model(&self) -> Option<&Model> {
        match self {
            Self::Ready(model) => Some(model),
            _ => None,
        }
    }
}

/// Counters of the current job (one generation).
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
    /// Photos run through the model in this job, and the seconds its forward passes took.
    forward_images: u64,
    forward_seconds: f64,
}

impl JobCounters {
    fn outstanding(&self) -> u64 {
        self.found.saturating_sub(self.progress.done)
    }

    fn busy(&self) -> bool {
        self.scans_active > 0 || self.outstanding() > 0
    }
}

/// The state of the worker thread.
pub(super) struct Engine {
    config: WorkerConfig,
    notifier: Notifier,
    commands: Receiver<Command>,
    loader: Receiver<LoaderMsg>,
    /// The loader's thread, waited for when the worker stops: a model still loading is
    /// released before the worker's thread ends.
    loader_thread: Option<std::thread::JoinHandle<()>>,
    pipe_tx: Sender<PipeMsg>,
    pipe_rx: Receiver<PipeMsg>,
    /// The current job's generation; a cancel moves it on, and stale messages are dropped.
    generation: Arc<AtomicU64>,
    /// The decoders' queue, once the model's files are found.
    jobs: Option<Sender<Job>>,
    model: ModelState,
    cache: Option<Cache>,
    similarity: Similarity,
    batch: Vec<ReadyImage>,
    job: JobCounters,
    /// The photos the step under way is working on: a panic in it fails them (and only
    /// them), and the worker goes on.
    in_flight: Vec<PathBuf>,
    /// Set by a cancel; long tasks stop on it, and handling the cancel clears it.
    interrupt: Arc<AtomicBool>,
}

impl Engine {
    /// An engine that starts loading the model at once.
    pub fn new(
        config: WorkerConfig,
        notifier: Notifier,
        commands: Receiver<Command>,
        interrupt: Arc<AtomicBool>,
        predecessor: Option<std::thread::JoinHandle<()>>,
    ) -> Self {
        let (pipe_tx, pipe_rx) = bounded(2 * config.batch_size.max(1) + config.decode_threads + 64);
        let (loader, loader_thread) = spawn_loader(&config, notifier.clone(), predecessor);
        Self {
            config,
            notifier,
            commands,
            loader,
            loader_thread: Some(loader_thread),
            pipe_tx,
            pipe_rx,
            generation: Arc::new(AtomicU64::new(0)),
            jobs: None,
            model: ModelState::Locating { waiting_paths: Vec::new(), waiting_queries: Vec::new() },
            cache: None,
            similarity: Similarity::default(),
            batch: Vec::new(),
            job: JobCounters::default(),
            in_flight: Vec::new(),
            interrupt,
        }
    }

    /// Runs until told to stop or until every handle is gone.
    pub fn run(mut self) {
        self.open_cache();
        loop {
            // While the model cannot take a batch, stop pulling preprocessed images so that
            // they wait, bounded, in the pipeline instead of piling up here.
            let pipe = if self.model.model().is_none() && self.batch.len() >= self.config.batch_size {
                crossbeam_channel::never()
            } else {
                self.pipe_rx.clone()
            };
            let next = select! {
                recv(self.commands) -> command => Next::Command(command.ok()),
                recv(self.loader) -> msg => Next::Loader(msg.ok()),
                recv(pipe) -> msg => Next::Pipe(msg.ok()),
            };
            if let Next::Command(None | Some(Command::Shutdown)) = next {
                self.save_index();
                self.model = ModelState::Failed;
                drop(self.loader);
                if let Some(loader) = self.loader_thread.take() {
                    let _ = loader.join();
                }
                return;
            }
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                match next {
                    Next::Command(command) => command.into_iter().for_each(|command| self.handle(command)),
                    Next::Loader(Some(msg)) => self.on_loader(msg),
                    Next::Loader(None) => self.loader = crossbeam_channel::never(),
                    Next::Pipe(msg) => msg.into_iter().for_each(|msg| self.on_pipe(msg)),
                }
                self.maybe_run_batch();
            }));
            if let Err(payload) = step {
                self.fail_in_flight(&panic_message(payload.as_ref()));
            }
            self.in_flight.clear();
        }
    }

    /// After a panic: the photos the failed step was working on get an error naming them,
    /// so that their job still completes.
    fn fail_in_flight(&mut self, what: &str) {
        tracing::error!("the worker recovered from a panic: {what}");
        for path in std::mem::take(&mut self.in_flight) {
            self.finish(path.clone(), Err(PhotoError::unexpected(path, "tagging it", what)));
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
            Command::Add(paths) => match &mut self.model {
                ModelState::Locating { waiting_paths, .. } => waiting_paths.push(paths),
                ModelState::Failed => self.fail_unscanned(paths),
                ModelState::Located { .. } | ModelState::Ready(_) => self.start_scan(paths),
            },
            Command::Cancel => self.cancel(),
            Command::ClearCache => self.clear_cache(),
            Command::FindSimilar { query, k, within } => self.request(Request::Similar(Query { query, k, within })),
            Command::FindDuplicates { within } => self.request(Request::Duplicates(within)),
            Command::MoveToTrash(paths) => self.move_to_trash(&paths),
            Command::Shutdown => {}
        }
    }

    /// Answers a request now, or once the model is loaded.
    fn request(&mut self, query: Request) {
        match &mut self.model {
            ModelState::Locating { waiting_queries, .. } | ModelState::Located { waiting_queries, .. } => {
                waiting_queries.push(query);
            }
            ModelState::Failed => self.reply_unavailable(query),
            ModelState::Ready(_) => self.answer(query),
        }
    }

    fn on_loader(&mut self, msg: LoaderMsg) {
        match msg {
            LoaderMsg::Status(status) => {
                let failed = matches!(status, ModelStatus::Failed(_));
                self.notifier.send(Event::Model(status));
                if failed {
                    self.on_model_failed();
                }
            }
            LoaderMsg::Located { config, model_id } => {
                let (waiting_paths, waiting_queries) = match std::mem::replace(&mut self.model, ModelState::Failed) {
                    ModelState::Locating { waiting_paths, waiting_queries } => (waiting_paths, waiting_queries),
                    other => {
                        self.model = other;
                        return;
                    }
                };
                let context = self.decode_context(&config, &model_id, self.cache.as_ref().map(|c| c.path().to_owned()));
                self.similarity.reset(config.eva.embed_dim);
                let (threads, generation) = (self.config.decode_threads.max(1), self.generation.clone());
                self.jobs = Some(pipeline::spawn_decoders(context, threads, generation, self.pipe_tx.clone()));
                self.model = ModelState::Located { config, model_id, waiting_queries };
                for paths in waiting_paths {
                    self.start_scan(paths);
                }
            }
            LoaderMsg::Loaded(model) => {
                let waiting = match std::mem::replace(&mut self.model, ModelState::Ready(model)) {
                    ModelState::Locating { waiting_queries, .. } | ModelState::Located { waiting_queries, .. } => {
                        waiting_queries
                    }
                    ModelState::Ready(_) | ModelState::Failed => Vec::new(),
                };
                for query in waiting {
                    self.answer(query);
                }
            }
        }
    }

    /// Everything waiting for the model is answered: it is not available.
    fn on_model_failed(&mut self) {
        let (paths, queries) = match std::mem::replace(&mut self.model, ModelState::Failed) {
            ModelState::Locating { waiting_paths, waiting_queries } => (waiting_paths, waiting_queries),
            ModelState::Located { waiting_queries, .. } => (Vec::new(), waiting_queries),
            ModelState::Ready(_) | ModelState::Failed => (Vec::new(), Vec::new()),
        };
        // A job started while the weights were loading stops: what waits for the model is
        // reported as not tagged, and the rest of the pipeline is dropped.
        if self.job.busy() || !self.batch.is_empty() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            for item in std::mem::take(&mut self.batch) {
                let error = PhotoError::model_unavailable(item.path.clone());
                self.notifier.send(Event::Image { path: item.path, outcome: Err(error) });
            }
            self.job = JobCounters::default();
            self.notifier.send(Event::Idle);
        }
        for paths in paths {
            self.fail_unscanned(paths);
        }
        for query in queries {
            self.reply_unavailable(query);
        }
    }

    fn reply_unavailable(&self, request: Request) {
        match request {
            Request::Similar(query) => {
                let outcome = Err(PhotoError::model_unavailable(query.query.clone()));
                self.notifier.send(Event::Similar { query: query.query, outcome });
            }
            Request::Duplicates(_) => {
                self.notifier.send(Event::Duplicates(Err(LibraryError::ModelUnavailable)));
            }
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

    /// Reports every path of an `Add` as not tagged because the model is unavailable.
    fn fail_unscanned(&mut self, paths: Vec<PathBuf>) {
        for path in paths {
            self.notifier.send(Event::Image { path: path.clone(), outcome: Err(PhotoError::model_unavailable(path)) });
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
        pipeline::spawn_scanner(roots, generation, self.generation.clone(), jobs, self.pipe_tx.clone());
    }

    fn cancel(&mut self) {
        // Any long task the cancel was meant for has stopped by now.
        self.interrupt.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.batch.clear();
        let was_busy = self.job.busy();
        self.job = JobCounters::default();
        if let ModelState::Locating { waiting_paths, .. } = &mut self.model {
            for path in std::mem::take(waiting_paths).into_iter().flatten() {
                self.notifier.send(Event::Image { path: path.clone(), outcome: Err(PhotoError::cancelled(path)) });
            }
        }
        if was_busy {
            self.notifier.send(Event::Progress(self.job.progress));
        }
        self.notifier.send(Event::Idle);
    }

    fn clear_cache(&mut self) {
        let outcome = match self.cache.as_mut() {
            Some(cache) => cache.clear().map_err(|e| LibraryError::Failed(Arc::new(e))),
            None => Err(LibraryError::NoCache),
        };
        if outcome.is_ok()
            && let Some((config, _)) = self.model.located()
        {
            self.similarity.reset(config.eva.embed_dim);
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
            PipeMsg::Listed { path, modified } => self.notifier.send(Event::Listed { path, modified }),
            PipeMsg::Skipped { generation, error } if generation == current => {
                self.job.found += 1;
                self.job.progress.total = self.job.found;
                self.finish(error.path.clone(), Err(error));
            }
            PipeMsg::ScanFinished { generation } if generation == current => {
                self.job.scans_active = self.job.scans_active.saturating_sub(1);
                self.job.progress.scanning = self.job.scans_active > 0;
                self.after_item();
            }
            PipeMsg::Finished { generation, path, outcome } if generation == current => {
                self.in_flight.push(path.clone());
                let outcome = outcome.map(|hit| self.accept_hit(&path, hit));
                self.job.progress.cached += u64::from(outcome.is_ok());
                self.finish(path, outcome);
            }
            PipeMsg::Ready { generation, item } if generation == current => self.batch.push(item),
            // Found before a cancel and read after it: listed all the same.
            PipeMsg::Found { path, modified, .. } => self.notifier.send(Event::Listed { path, modified }),
            _ => {}
        }
    }

    /// Says once per job that results could not be stored (a full disk fails every batch).
    fn warn_cache_write(&mut self, error: &CacheError) {
        tracing::debug!("{error}");
        self.job.cache_locked |= error.is_busy();
        if !std::mem::replace(&mut self.job.cache_write_warned, true) {
            self.notifier.send(Event::Warning(format!("{error}; the results of this run may not all be cached")));
        }
    }

    fn accept_hit(&mut self, path: &Path, hit: Hit) -> Tagged {
        if let (Some(stamp), Some(cache)) = (hit.record, self.cache.as_mut().filter(|_| !self.job.cache_locked))
            && let Err(e) = cache.remember_file(path, stamp, &hit.hash)
        {
            self.warn_cache_write(&e);
        }
        if hit.info_is_new
            && let Some(cache) = self.cache.as_mut().filter(|_| !self.job.cache_locked)
            && let Err(e) = cache.remember_info(&hit.hash, &hit.info)
        {
            self.warn_cache_write(&e);
        }
        self.tagged(path, hit.hash, &hit.labels, hit.embedding, hit.info, true)
    }

    fn tagged(
        &mut self,
        path: &Path,
        hash: ContentHash,
        labels: &[ClassProb],
        embedding: Vec<f32>,
        info: PhotoInfo,
        from_cache: bool,
    ) -> Tagged {
        let num_classes = self.model.located().map_or(0, |(config, _)| config.eva.num_classes);
        let embedding: Arc<[f32]> = embedding.into();
        self.similarity.insert(path, hash, embedding.clone());
        Tagged {
            labels: labels
                .iter()
                .take(self.config.top_k)
                .map(|c| Label { class: c.class, label: class_name(c.class, num_classes), prob: c.prob })
                .collect(),
            embedding,
            hash,
            info,
            from_cache,
        }
    }

    fn finish(&mut self, path: PathBuf, outcome: Result<Tagged, PhotoError>) {
        self.in_flight.retain(|p| *p != path);
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
            self.save_index();
            self.notifier.send(Event::Idle);
        }
    }

    /// Runs a batch when it is full, or when nothing more can join it.
    fn maybe_run_batch(&mut self) {
        let Some(model) = self.model.model() else { return };
        if self.batch.is_empty() {
            return;
        }
        let waiting_for_more = self.job.scans_active > 0 || self.job.outstanding() > self.batch.len() as u64;
        if self.batch.len() < self.config.batch_size && waiting_for_more {
            return;
        }
        let batch: Vec<ReadyImage> = self.batch.drain(..self.batch.len().min(self.config.batch_size)).collect();
        self.in_flight.extend(batch.iter().map(|item| item.path.clone()));
        let model_id = model.id().to_owned();
        let (macs_per_image, on_cpu) = (model.config().eva.macs_per_image(), model.device().is_cpu());
        let started = Instant::now();
        match predict_guarded(model, &batch) {
            Ok(predictions) => {
                self.record_speed(batch.len(), started.elapsed().as_secs_f64(), macs_per_image, on_cpu);
                self.record_batch(&model_id, batch, predictions)
            }
            // A panic in the forward pass: each photo alone, so that only the one it belongs
            // to fails.
            Err(Failure::Panicked(_)) if batch.len() > 1 => {
                for item in batch {
                    let alone = std::slice::from_ref(&item);
                    let predicted = self.model.model().map_or_else(
                        || Err(Failure::Failed("the model was unloaded".into())),
                        |model| predict_guarded(model, alone),
                    );
                    match predicted {
                        Ok(predictions) => self.record_batch(&model_id, vec![item], predictions),
                        Err(failure) => self.finish(item.path.clone(), Err(failure.into_error(item.path))),
                    }
                }
            }
            Err(failure) => {
                for item in batch {
                    self.finish(item.path.clone(), Err(failure.clone().into_error(item.path)));
                }
            }
        }
        // More may be ready already; keep draining without waiting for a new message.
        if !self.batch.is_empty() {
            self.maybe_run_batch();
        }
    }

    /// Adds a batch's forward pass to the job's measure of the model's speed.
    fn record_speed(&mut self, images: usize, seconds: f64, macs_per_image: u64, on_cpu: bool) {
        let job = &mut self.job;
        job.forward_images += images as u64;
        job.forward_seconds += seconds;
        let seconds_per_image = job.forward_seconds / job.forward_images as f64;
        let gflops = 2.0 * macs_per_image as f64 / seconds_per_image.max(1e-9) / 1e9;
        job.progress.model_speed = Some(ModelSpeed { seconds_per_image, gflops, on_cpu });
    }

    /// Records a batch's results and reports each photo as tagged.
    fn record_batch(&mut self, model_id: &str, batch: Vec<ReadyImage>, predictions: Vec<Prediction>) {
        for (path, tagged) in self.record_results(model_id, batch, predictions) {
            match tagged {
                Ok(tagged) => {
                    self.job.progress.inferred += 1;
                    self.finish(path, Ok(tagged));
                }
                Err(error) => self.finish(path, Err(error)),
            }
        }
    }

    /// Stores results in the cache and the similarity index; returns them as `Tagged`, or the
    /// error of a photo whose recording panicked.
    fn record_results(
        &mut self,
        model_id: &str,
        batch: Vec<ReadyImage>,
        predictions: Vec<Prediction>,
    ) -> Vec<(PathBuf, Result<Tagged, PhotoError>)> {
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
                    info: &item.info,
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
                let tagged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    fail_point(Stage::Worker, &item.path);
                    self.tagged(&item.path, item.hash, &labels, prediction.embedding, item.info, false)
                }))
                .map_err(|payload| {
                    PhotoError::unexpected(item.path.clone(), "recording its labels", &panic_message(payload.as_ref()))
                });
                (item.path, tagged)
            })
            .collect()
    }

    /// Saves the similarity index beside the cache if it has changed.
    fn save_index(&mut self) {
        let cache = cache_of_model(&self.cache, &self.model);
        self.similarity.save(cache);
    }

    /// Answers a request (the model is loaded).
    fn answer(&mut self, request: Request) {
        match request {
            Request::Similar(query) => {
                let outcome = self.similar(&query);
                self.notifier.send(Event::Similar { query: query.query, outcome });
            }
            Request::Duplicates(within) => {
                let cache = cache_of_model(&self.cache, &self.model);
                let report = reporter(&self.notifier, Task::BuildingIndex);
                let watch = Watch::new(&self.interrupt, &report);
                let outcome = duplicates::graph(&mut self.similarity, cache, within.as_deref(), watch)
                    .map(Arc::new)
                    .map_err(|e| match e {
                        SearchError::Cancelled => LibraryError::Cancelled,
                        other => LibraryError::Failed(Arc::new(other)),
                    });
                self.notifier.send(Event::Duplicates(outcome));
            }
        }
    }

    /// Moves photos to the trash with their sidecars, then forgets them.
    fn move_to_trash(&mut self, paths: &[PathBuf]) {
        let report = {
            let tell = reporter(&self.notifier, Task::MovingToTrash);
            trash::move_to_trash(paths, Watch::new(&self.interrupt, &tell))
        };
        if let Some(cache) = self.cache.as_mut()
            && let Err(e) = cache.forget_files(&report.moved)
        {
            tracing::warn!("{e}");
        }
        let cache = cache_of_model(&self.cache, &self.model);
        self.similarity.forget(&report.moved, cache);
        self.save_index();
        self.notifier.send(Event::Trashed(report));
    }

    fn similar(&mut self, query: &Query) -> Result<Vec<Match>, PhotoError> {
        let (hash, embedding) = self.query_embedding(&query.query)?;
        let cache = cache_of_model(&self.cache, &self.model);
        let report = reporter(&self.notifier, Task::BuildingIndex);
        let watch = Watch::new(&self.interrupt, &report);
        self.similarity.search(cache, &hash, &embedding, query.k, query.within.as_deref(), watch).map_err(|e| {
            let message = format!("{}: the library could not be searched: {e}", query.query.display());
            PhotoError::file(query.query.clone(), message)
        })
    }

    /// The embedding of a query photo: from this session, the cache, or the model.
    fn query_embedding(&mut self, path: &Path) -> Result<(ContentHash, Arc<[f32]>), PhotoError> {
        if let Some(known) = self.similarity.known(path) {
            return Ok(known);
        }
        let (config, model_id) = self.model.located().ok_or_else(|| PhotoError::model_unavailable(path.to_owned()))?;
        let context = self.decode_context(config, model_id, None);
        match pipeline::prepare(path, &context, self.cache.as_ref())? {
            Prepared::Hit(hit) => {
                let tagged = self.accept_hit(path, hit);
                Ok((tagged.hash, tagged.embedding))
            }
            Prepared::Ready(item) => {
                let model = self.model.model().ok_or_else(|| PhotoError::model_unavailable(path.to_owned()))?;
                let prediction =
                    predict_guarded(model, std::slice::from_ref(&item)).map_err(|e| e.into_error(path.to_owned()))?;
                let model_id = model.id().to_owned();
                let recorded = self.record_results(&model_id, vec![item], prediction);
                let (_, tagged) = recorded
                    .into_iter()
                    .next()
                    .ok_or_else(|| PhotoError::model(path.to_owned(), &"the model returned no result for the query"))?;
                let tagged = tagged?;
                Ok((tagged.hash, tagged.embedding))
            }
        }
    }
}

/// Tells a long task's progress as [`Event::Working`], at most ten times a second (and always
/// its start and end).
fn reporter(notifier: &Notifier, task: Task) -> impl Fn(usize, usize) + '_ {
    let last = std::cell::Cell::new(None::<Instant>);
    move |done, total| {
        let due = last.get().is_none_or(|at| at.elapsed() >= Duration::from_millis(100));
        if due || done == 0 || done == total {
            last.set(Some(Instant::now()));
            notifier.send(Event::Working { task, done: done as u64, total: total as u64 });
        }
    }
}

/// What the worker's loop received.
enum Next {
    /// A command, or `None` when every handle is gone.
    Command(Option<Command>),
    /// A word from the model loader, or `None` when it has finished.
    Loader(Option<LoaderMsg>),
    /// A message from the scanner or the decoders.
    Pipe(Option<PipeMsg>),
}

/// Why the model gave no result for a batch.
#[derive(Clone)]
enum Failure {
    /// The model returned an error.
    Failed(String),
    /// The forward pass panicked, with this message.
    Panicked(String),
}

impl Failure {
    fn into_error(self, path: PathBuf) -> PhotoError {
        match self {
            Self::Failed(message) => PhotoError::model(path, &message),
            Self::Panicked(what) => PhotoError::unexpected(path, "running the model on it", &what),
        }
    }
}

/// Runs the model on `batch`, a panic in it turned into a [`Failure`].
fn predict_guarded(model: &Model, batch: &[ReadyImage]) -> Result<Vec<Prediction>, Failure> {
    let inputs: Vec<&[f32]> = batch.iter().map(|item| item.input.as_slice()).collect();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        batch.iter().for_each(|item| fail_point(Stage::Model, &item.path));
        model.predict(&inputs)
    }))
    .map_err(|payload| Failure::Panicked(panic_message(payload.as_ref())))?
    .map_err(|e| Failure::Failed(crate::model::error_message(&e)))
}

/// The cache and the id of the model whose results it is asked for (none until the model's
/// files are found). A free function, so that the similarity index can be borrowed beside it.
fn cache_of_model<'a>(cache: &'a Option<Cache>, model: &'a ModelState) -> CacheOfModel<'a> {
    cache.as_ref().zip(model.located().map(|(_, id)| id))
}

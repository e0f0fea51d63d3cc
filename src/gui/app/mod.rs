//! The app: its state, and its start. Each frame, worker events come in (`events`), the views
//! draw and return actions (`layout`), the actions are applied (`update`), and what changed
//! is saved off the UI thread (`background`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::model::peak::Peak;
use crate::model::registry::{self, RegisteredModel};
use crate::model::weights::ModelSource;
use crate::options::Options;
use crate::worker::{Command, ModelSpeed, ModelStatus, Progress, Task, Worker, WorkerConfig};

use super::confirm::SidecarPlan;
use super::duplicates::DuplicatesView;
use super::persist::Saver;
use super::photos::PhotoList;
use super::picker::PathEntry;
use super::selection::Selection;
use super::settings::{self, Settings};
use super::similar_strip::SimilarView;
use super::thumbnails::{self, Thumbnails};
use super::viewer::ViewerState;
use super::{precision, saved};
use background::{Jobs, watch_stop_signals};

mod background;
mod events;
mod layout;
mod startup;
mod update;

/// A question or entry over the window, which takes the keyboard until it is answered.
pub(super) enum Modal {
    /// Before sidecars are written: what would be written.
    ConfirmSidecars(SidecarPlan),
    /// Before the cache is cleared.
    ConfirmClearCache,
    /// Before the Duplicates view's other copies go to the trash.
    ConfirmTrashDuplicates,
    /// The app's own path entry, where the system has no file picker.
    PathEntry(PathEntry),
}

/// How the app starts.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// The worker's model and cache configuration (its device is overridden by the
    /// remembered setting unless `device_from_command_line`).
    pub worker: WorkerConfig,
    /// Whether the command line chose the device.
    pub device_from_command_line: bool,
    /// Whether the command line chose the precision (it then wins over the remembered one).
    pub dtype_from_command_line: bool,
    /// Paths to add at start; the last session's paths when empty.
    pub paths: Vec<PathBuf>,
    /// Folder for cached thumbnails, if any.
    pub thumbnail_cache: Option<PathBuf>,
    /// Whether the command line chose the model (a folder, a repository or a registered
    /// model): it then wins over the remembered one.
    pub model_from_command_line: bool,
    /// The registered model asked for; one other than the default, named on the command
    /// line, wins over the remembered one.
    pub model: &'static RegisteredModel,
    /// Where the photo list is saved between runs, if anywhere.
    pub library_file: Option<PathBuf>,
    /// Where the settings are saved between runs, if anywhere.
    pub settings_file: Option<PathBuf>,
    /// Whether SIGTERM, SIGINT and SIGHUP save everything and close the window (the real
    /// window's; a test's app leaves the process's signals alone).
    pub handle_signals: bool,
}

impl AppOptions {
    /// The app's start from the shared options and the paths to open.
    pub fn new(options: &Options, paths: Vec<PathBuf>) -> Self {
        let worker = WorkerConfig::new(options, 4, 5);
        let thumbnail_cache = worker.cache_dir.as_ref().map(|d| d.join("thumbnails"));
        Self {
            device_from_command_line: options.device.is_some(),
            dtype_from_command_line: options.dtype.is_some(),
            model_from_command_line: match &options.source {
                ModelSource::Dir(_) => true,
                ModelSource::Hub { repo, .. } => {
                    *repo != options.model.repo || options.model.name != registry::DEFAULT_MODEL
                }
            },
            model: options.model,
            worker,
            paths,
            thumbnail_cache,
            library_file: crate::setup::data_dir().map(|d| d.join("library.json")),
            settings_file: crate::setup::config_dir().map(|d| d.join("settings.json")),
            handle_signals: true,
        }
    }
}

/// What the last frames cost, for the status line and for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameStats {
    /// Grid cells built in the last frame.
    pub cells_built: usize,
    /// Worker events handled in the last frame.
    pub events_handled: usize,
}

/// The evatag window.
pub struct App {
    options: AppOptions,
    worker: Worker,
    photos: PhotoList,
    thumbnails: Thumbnails,
    model_status: ModelStatus,
    progress: Progress,
    busy: bool,
    /// Cancelled here, and the worker has not yet said it is idle: photos it queued before it
    /// saw the cancel arrive in the meantime, and wait untagged like the rest.
    cancel_unconfirmed: bool,
    /// Every path sent to the worker since it was last idle: a restarted worker is given
    /// them again, so that folders whose scan had not finished are not lost.
    job_paths: Vec<PathBuf>,
    /// A long task of the worker's besides tagging, while it runs: `(task, done, total)`.
    working: Option<(Task, u64, u64)>,
    errors: Vec<(PathBuf, String)>,
    notices: Vec<String>,
    selection: Selection,
    similar: Option<SimilarView>,
    /// The Duplicates view, while it is open.
    duplicates: Option<DuplicatesView>,
    settings: Settings,
    show_settings: bool,
    show_errors: bool,
    stats: FrameStats,
    scroll_to_selected: bool,
    /// Whether the next frame shows the top of the grid.
    scroll_to_top: bool,
    /// Whether the next frame puts the keyboard focus in the filter box.
    focus_filter: bool,
    /// The viewer, while it is open.
    viewer: Option<ViewerState>,
    cache_bytes: Option<u64>,
    /// Whether the cache's size is being measured.
    measuring_cache: bool,
    /// How many times the cache was cleared: a size measured before is stale.
    cache_epoch: u64,
    /// The model's own speed in the last job that ran it.
    model_speed: Option<ModelSpeed>,
    /// This machine's floating-point peak, once measured (while nothing is tagged).
    cpu_peak: Option<Peak>,
    /// Whether the peak is being measured.
    measuring_peak: bool,
    /// The file work running off the UI thread.
    jobs: Jobs,
    /// The one question or entry open over the window, if any.
    modal: Option<Modal>,
    /// The saved photo list.
    library_saver: Option<Saver>,
    /// The saved settings, and the settings they hold.
    settings_saver: Option<(Saver, Settings)>,
    /// Set by SIGTERM, SIGINT or SIGHUP (a logout, a kill, Ctrl-C): save and close.
    stop_signal: Arc<AtomicBool>,
    /// Whether the command line kept the Hub out (`--offline`, `HF_HUB_OFFLINE`): a model
    /// chosen in the window then comes from the local cache too.
    offline: bool,
}

/// Worker events handled per frame at most, so that a burst never makes a frame slow.
const EVENTS_PER_FRAME: usize = 4000;
/// The shortest a scrollbar's handle gets, in points.
const SCROLL_HANDLE_MIN: f32 = 32.0;
/// Photos compared in "Find similar".
const SIMILAR_COUNT: usize = 24;

impl App {
    /// Creates the app, restoring settings and starting the worker.
    pub fn new(cc: &eframe::CreationContext<'_>, mut options: AppOptions) -> Self {
        // The settings file; where there is none yet, what an earlier version kept in eframe's
        // storage.
        let saved_settings = options.settings_file.as_deref().and_then(settings::read);
        let settings: Settings = saved_settings
            .clone()
            .or_else(|| cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)))
            .unwrap_or_default();
        let settings_saver =
            options.settings_file.clone().map(|file| (Saver::new(file), saved_settings.unwrap_or_default()));
        let offline = matches!(options.worker.source, ModelSource::Hub { offline: true, .. });
        let start = startup::resolve(&options, settings, precision::total_memory_bytes());
        let settings = start.settings;
        let precision_notice = start.notice;
        options.worker.source = start.source;
        options.worker.device = start.device;
        options.worker.dtype = start.dtype;
        options.model = start.model;
        let ctx = cc.egui_ctx.clone();
        let stop_signal = Arc::new(AtomicBool::new(false));
        if options.handle_signals {
            watch_stop_signals(&ctx, &stop_signal);
        }
        // A scrollbar over tens of thousands of photos keeps a handle big enough to grab.
        ctx.all_styles_mut(|style| style.spacing.scroll.handle_min_length = SCROLL_HANDLE_MIN);
        let worker = spawn_worker(&ctx, options.worker.clone());
        let limits = thumbnails::Limits {
            max_megapixels: options.worker.max_megapixels,
            max_file_mb: options.worker.max_file_mb,
        };
        let thumbnails = Thumbnails::new(&ctx, options.thumbnail_cache.clone(), limits, 600);
        let mut photos = PhotoList::default();
        photos.set_sort(settings.sort);
        let library = options.library_file.as_deref().map(saved::read).unwrap_or_default();
        for saved in library.photos {
            photos.restore(saved.path, saved.modified, saved.info, saved.labels);
        }
        // A library saved before it held its folders finds them in the settings.
        let folders = if library.folders.is_empty() { &settings.legacy_folders } else { &library.folders };
        photos.add_roots(folders);
        let counts = photos.counts();
        tracing::info!(
            "restored {} photos ({} tagged), folders {:?}, model {:?}",
            counts.total,
            counts.tagged,
            photos.roots(),
            options.worker.source
        );
        let mut app = Self {
            worker,
            photos,
            thumbnails,
            model_status: ModelStatus::Locating,
            progress: Progress::default(),
            busy: false,
            cancel_unconfirmed: false,
            job_paths: Vec::new(),
            working: None,
            errors: Vec::new(),
            notices: Vec::new(),
            selection: Selection::default(),
            similar: None,
            duplicates: None,
            settings,
            show_settings: false,
            show_errors: false,
            stats: FrameStats::default(),
            scroll_to_selected: false,
            scroll_to_top: false,
            focus_filter: false,
            viewer: None,
            cache_bytes: None,
            measuring_cache: false,
            model_speed: None,
            cpu_peak: None,
            measuring_peak: false,
            cache_epoch: 0,
            jobs: Jobs::default(),
            modal: None,
            library_saver: options.library_file.clone().map(Saver::new),
            settings_saver,
            stop_signal,
            offline,
            options,
        };
        app.notices.extend(precision_notice);
        let start = if app.options.paths.is_empty() {
            app.photos.roots().iter().filter(|p| p.exists()).cloned().collect()
        } else {
            app.options.paths.clone()
        };
        app.add_paths(start);
        app
    }

    /// Sends paths to the worker and remembers them for next time.
    pub fn add_paths(&mut self, paths: Vec<PathBuf>) {
        if paths.is_empty() {
            return;
        }
        if self.photos.add_roots(&paths) {
            self.library_changed();
        }
        self.tag(paths);
    }

    /// Sends paths to the worker to be found and tagged.
    fn tag(&mut self, paths: Vec<PathBuf>) {
        self.busy = true;
        self.job_paths.extend(paths.iter().cloned());
        self.worker.send(Command::Add(paths));
    }

    /// The photos in the window and their order, for reading.
    pub fn photos(&self) -> &PhotoList {
        &self.photos
    }

    /// The photos in the window, for tests and benchmarks that feed photos in directly or read
    /// the visible order (which is brought up to date on demand).
    pub fn photos_mut(&mut self) -> &mut PhotoList {
        &mut self.photos
    }

    /// The path of the selected photo with the focus, if any.
    pub fn selected_path(&self) -> Option<&Path> {
        self.selection.focus().and_then(|id| self.photos.get(id)).map(|photo| photo.path.as_path())
    }

    /// The paths of every selected photo, in the order they were added.
    pub fn selected_paths(&self) -> Vec<&Path> {
        self.selection.ids().filter_map(|id| self.photos.get(id)).map(|photo| photo.path.as_path()).collect()
    }

    /// The registered model in use (when the model comes from the Hub).
    pub fn model(&self) -> &'static RegisteredModel {
        self.options.model
    }

    /// The settings as they are now (saved on exit and every 30 s by eframe).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Costs of the last frame.
    pub fn frame_stats(&self) -> FrameStats {
        self.stats
    }

    /// Whether the worker is tagging.
    pub fn is_busy(&self) -> bool {
        self.busy
    }

    /// The model's state.
    pub fn model_status(&self) -> &ModelStatus {
        &self.model_status
    }

    /// The latest notice shown in the status bar, if any.
    pub fn notice(&self) -> Option<&str> {
        self.notices.last().map(String::as_str)
    }
}

fn spawn_worker(ctx: &egui::Context, config: WorkerConfig) -> Worker {
    let ctx = ctx.clone();
    Worker::spawn(config, Box::new(move || ctx.request_repaint()))
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.handle_events(ctx);
        self.handle_dropped_files(ctx);
        self.poll_background();
        if self.stop_signal.swap(false, Ordering::SeqCst) {
            tracing::info!("asked to stop by a signal: saving, then closing");
            self.save_state(Some(ctx), true);
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        } else {
            self.save_state(Some(ctx), false);
        }
        self.thumbnails.begin_frame(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let started = Instant::now();
        let actions = self.views(ui);
        self.drop_overlay(&ctx);
        self.apply(&ctx, actions);
        tracing::trace!(ui_ms = started.elapsed().as_secs_f64() * 1e3, "frame");
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.save_state(None, true);
    }
}

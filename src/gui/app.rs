//! The app's state and its event handling: worker events in, commands out, once per frame.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crossbeam_channel::{Receiver, unbounded};

use crate::library::export::{ExportRequest, PhotoTags};
use crate::library::scan::IMAGE_EXTENSIONS;
use crate::library::search::Match;
use crate::options::Options;
use crate::worker::{Command, Event, ModelStatus, Progress, Worker, WorkerConfig};

use super::library::{Library, PhotoState};
use super::settings::{self, Facts, Settings, SettingsAction};
use super::thumbnails::Thumbnails;
use super::{details, grid, status};

/// How the app starts.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// The worker's model and cache configuration (its device is overridden by the
    /// remembered setting unless `device_from_command_line`).
    pub worker: WorkerConfig,
    /// Whether the command line chose the device.
    pub device_from_command_line: bool,
    /// Paths to add at start; the last session's paths when empty.
    pub paths: Vec<PathBuf>,
    /// Folder for cached thumbnails, if any.
    pub thumbnail_cache: Option<PathBuf>,
}

impl AppOptions {
    /// The app's start from the shared options and the paths to open.
    pub fn new(options: &Options, paths: Vec<PathBuf>) -> Self {
        let worker = WorkerConfig::new(options, 4, 5);
        let thumbnail_cache = worker.cache_dir.as_ref().map(|d| d.join("thumbnails"));
        Self { device_from_command_line: options.device.is_some(), worker, paths, thumbnail_cache }
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

/// The similarity results shown under the selected photo.
pub struct SimilarView {
    /// The query photo.
    pub query: PathBuf,
    /// Ranked matches, an error, or `None` while waiting.
    pub results: Option<Result<Vec<Match>, String>>,
}

/// A result of a background export.
type ExportOutcome = Result<String, String>;

/// The evatag window.
pub struct App {
    options: AppOptions,
    worker: Worker,
    pub(super) library: Library,
    pub(super) thumbnails: Thumbnails,
    pub(super) model_status: ModelStatus,
    pub(super) progress: Progress,
    pub(super) busy: bool,
    pub(super) errors: Vec<(PathBuf, String)>,
    pub(super) notices: Vec<String>,
    pub(super) selected: Option<usize>,
    pub(super) similar: Option<SimilarView>,
    pub(super) settings: Settings,
    pub(super) show_settings: bool,
    pub(super) show_errors: bool,
    pub(super) stats: FrameStats,
    pub(super) columns: usize,
    pub(super) scroll_to_selected: bool,
    cache_bytes: Option<u64>,
    cache_size_rx: Option<Receiver<u64>>,
    export_rx: Option<Receiver<ExportOutcome>>,
}

/// Worker events handled per frame at most, so that a burst never makes a frame slow.
const EVENTS_PER_FRAME: usize = 4000;
/// Photos compared in "Find similar".
const SIMILAR_COUNT: usize = 24;

impl App {
    /// Creates the app, restoring settings and starting the worker.
    pub fn new(cc: &eframe::CreationContext<'_>, mut options: AppOptions) -> Self {
        let settings: Settings = cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
        if !options.device_from_command_line {
            options.worker.device = settings.device;
        }
        let ctx = cc.egui_ctx.clone();
        let worker = spawn_worker(&ctx, options.worker.clone());
        let thumbnails = Thumbnails::new(&ctx, options.thumbnail_cache.clone(), options.worker.max_megapixels, 600);
        let mut library = Library::default();
        library.set_sort(settings.sort);
        let mut app = Self {
            worker,
            library,
            thumbnails,
            model_status: ModelStatus::Locating,
            progress: Progress::default(),
            busy: false,
            errors: Vec::new(),
            notices: Vec::new(),
            selected: None,
            similar: None,
            settings,
            show_settings: false,
            show_errors: false,
            stats: FrameStats::default(),
            columns: 1,
            scroll_to_selected: false,
            cache_bytes: None,
            cache_size_rx: None,
            export_rx: None,
            options,
        };
        let start = if app.options.paths.is_empty() {
            app.settings.last_paths.iter().filter(|p| p.exists()).cloned().collect()
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
        self.settings.remember(&paths);
        self.busy = true;
        self.worker.send(Command::Add(paths));
    }

    /// The photo library (for tests and the views).
    pub fn library(&mut self) -> &mut Library {
        &mut self.library
    }

    /// The selected photo's path, if any.
    pub fn selected_path(&self) -> Option<&Path> {
        self.selected.map(|i| self.library.photo(i).path.as_path())
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

    /// Stops the running job.
    pub(super) fn cancel(&mut self) {
        self.worker.send(Command::Cancel);
        self.library.cancel_queued();
        self.busy = false;
    }

    /// Asks for the photos most similar to the one at `index`.
    pub(super) fn find_similar(&mut self, index: usize) {
        let query = self.library.photo(index).path.clone();
        self.worker.send(Command::FindSimilar { query: query.clone(), k: SIMILAR_COUNT, within: None });
        self.similar = Some(SimilarView { query, results: None });
    }

    /// Selects a photo by path, adding it to the library if it is not there yet.
    pub(super) fn select_path(&mut self, path: &Path) {
        let index = match self.library.index_of(path) {
            Some(index) => index,
            None => {
                let index = self.library.queue(path.to_owned(), None);
                self.add_paths(vec![path.to_owned()]);
                index
            }
        };
        self.selected = Some(index);
        self.scroll_to_selected = true;
    }

    fn handle_events(&mut self, ctx: &egui::Context) {
        let mut handled = 0;
        while handled < EVENTS_PER_FRAME {
            let Ok(event) = self.worker.events().try_recv() else { break };
            handled += 1;
            self.handle(event);
        }
        if handled == EVENTS_PER_FRAME {
            ctx.request_repaint();
        }
        self.stats.events_handled = handled;
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Model(status) => self.model_status = status,
            Event::Warning(warning) => {
                tracing::warn!("{warning}");
                self.notices.push(warning);
            }
            Event::Queued { path, modified } => {
                self.library.queue(path, modified);
            }
            Event::Image { path, outcome } => {
                let state = match outcome {
                    Ok(tagged) => PhotoState::Tagged(tagged.labels),
                    Err(error) => {
                        self.errors.push((path.clone(), error.to_string()));
                        PhotoState::Failed(error.to_string())
                    }
                };
                self.library.finish(&path, state);
            }
            Event::Progress(progress) => self.progress = progress,
            Event::Similar { query, outcome } => {
                if let Some(view) = self.similar.as_mut().filter(|v| v.query == query) {
                    view.results = Some(outcome.map_err(|e| e.to_string()));
                }
            }
            Event::CacheCleared(outcome) => match outcome {
                Ok(()) => self.notices.push("The cache is empty.".to_owned()),
                Err(e) => self.notices.push(format!("The cache could not be cleared: {e}")),
            },
            Event::Idle => self.busy = false,
        }
    }

    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_owned()).collect());
        self.add_paths(dropped);
    }

    /// Opens the system dialog for picking images.
    pub(super) fn open_images_dialog(&mut self) {
        let picked = rfd::FileDialog::new().add_filter("Images", IMAGE_EXTENSIONS).pick_files();
        self.add_paths(picked.unwrap_or_default());
    }

    /// Opens the system dialog for picking folders.
    pub(super) fn open_folder_dialog(&mut self) {
        let picked = rfd::FileDialog::new().pick_folders();
        self.add_paths(picked.unwrap_or_default());
    }

    fn apply_settings_action(&mut self, ctx: &egui::Context, action: SettingsAction) {
        match action {
            SettingsAction::ChangeDevice(device) => {
                self.options.worker.device = device;
                self.restart_worker(ctx);
            }
            SettingsAction::ClearCache => {
                self.worker.send(Command::ClearCache);
                if let Some(dir) = &self.options.thumbnail_cache {
                    let _ = std::fs::remove_dir_all(dir);
                }
                self.cache_bytes = None;
                self.cache_size_rx = None;
            }
            SettingsAction::ExportSidecars => self.export(None),
            SettingsAction::ExportCsv => {
                if let Some(file) =
                    rfd::FileDialog::new().add_filter("CSV", &["csv"]).set_file_name("evatag.csv").save_file()
                {
                    self.export(Some(file));
                }
            }
        }
    }

    /// Starts a worker with the current options; queued photos are sent again.
    fn restart_worker(&mut self, ctx: &egui::Context) {
        let old = std::mem::replace(&mut self.worker, spawn_worker(ctx, self.options.worker.clone()));
        drop(old);
        self.model_status = ModelStatus::Locating;
        let queued: Vec<PathBuf> = (0..self.library.len())
            .map(|i| self.library.photo(i))
            .filter(|p| p.state == PhotoState::Queued)
            .map(|p| p.path.clone())
            .collect();
        if !queued.is_empty() {
            self.busy = true;
            self.worker.send(Command::Add(queued));
        }
    }

    /// Writes XMP sidecars (no `csv`) or one CSV file, on a background thread.
    fn export(&mut self, csv: Option<PathBuf>) {
        let tagged: Vec<(PathBuf, Vec<crate::model::labels::Label>)> = (0..self.library.len())
            .map(|i| self.library.photo(i))
            .filter_map(|p| match &p.state {
                PhotoState::Tagged(labels) => Some((p.path.clone(), labels.clone())),
                _ => None,
            })
            .collect();
        let request = ExportRequest {
            sidecars: csv.is_none().then_some(self.settings.sidecar_naming),
            csv,
            json: None,
            min_prob: self.settings.min_prob,
        };
        let (tx, rx) = unbounded();
        self.export_rx = Some(rx);
        std::thread::spawn(move || {
            let photos: Vec<PhotoTags> = tagged.iter().map(|(path, labels)| PhotoTags { path, labels }).collect();
            let report = request.run(&photos, &AtomicBool::new(false));
            let done = match (&request.csv, report.sidecars) {
                (Some(file), _) => format!("Wrote {} photos to {}", photos.len(), file.display()),
                (None, written) => format!("Wrote {written} XMP sidecars"),
            };
            let outcome = match report.errors.first() {
                None => Ok(done),
                Some(first) => Err(format!("{} files failed; first: {first}", report.errors.len())),
            };
            let _ = tx.send(outcome);
        });
    }

    fn poll_background(&mut self) {
        if let Some(rx) = &self.export_rx
            && let Ok(outcome) = rx.try_recv()
        {
            self.notices.push(outcome.unwrap_or_else(|e| format!("Export failed: {e}")));
            self.export_rx = None;
        }
        if let Some(rx) = &self.cache_size_rx
            && let Ok(bytes) = rx.try_recv()
        {
            self.cache_bytes = Some(bytes);
            self.cache_size_rx = None;
        }
    }

    /// Measures the cache folder on a background thread.
    fn measure_cache(&mut self, ctx: &egui::Context) {
        let Some(dir) = self.options.worker.cache_dir.clone() else { return };
        if self.cache_bytes.is_some() || self.cache_size_rx.is_some() {
            return;
        }
        let (tx, rx) = unbounded();
        self.cache_size_rx = Some(rx);
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(folder_size(&dir));
            ctx.request_repaint();
        });
    }

    fn settings_window(&mut self, ctx: &egui::Context) {
        if !self.show_settings {
            return;
        }
        self.measure_cache(ctx);
        let mut open = true;
        let running_on = match &self.model_status {
            ModelStatus::Loading { device } | ModelStatus::Ready { device, .. } => Some(device.as_str()),
            _ => None,
        };
        let facts = Facts { running_on, folder: self.options.worker.cache_dir.as_deref(), bytes: self.cache_bytes };
        let mut action = None;
        egui::Window::new("Settings").open(&mut open).resizable(false).show(ctx, |ui| {
            action = settings::show(ui, &mut self.settings, &facts);
        });
        self.show_settings = open;
        if let Some(action) = action {
            self.apply_settings_action(ctx, action);
        }
    }

    fn drop_overlay(&self, ctx: &egui::Context) {
        if ctx.input(|i| i.raw.hovered_files.is_empty()) {
            return;
        }
        let screen = ctx.content_rect();
        let painter = ctx.layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("drop_overlay")));
        painter.rect_filled(screen, 0.0, egui::Color32::from_black_alpha(170));
        painter.text(
            screen.center(),
            egui::Align2::CENTER_CENTER,
            "Drop photos or folders to tag them",
            egui::FontId::proportional(28.0),
            egui::Color32::WHITE,
        );
    }
}

fn spawn_worker(ctx: &egui::Context, config: WorkerConfig) -> Worker {
    let ctx = ctx.clone();
    Worker::spawn(config, Box::new(move || ctx.request_repaint()))
}

/// Total size of the files in a folder tree.
fn folder_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.handle_events(ctx);
        self.handle_dropped_files(ctx);
        self.poll_background();
        self.thumbnails.begin_frame(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let started = Instant::now();
        status::toolbar(ui, self);
        status::status_bar(ui, self);
        if self.show_errors {
            status::errors_panel(ui, self);
        }
        details::panel(ui, self);
        grid::central(ui, self);
        self.settings_window(&ctx);
        self.drop_overlay(&ctx);
        tracing::trace!(ui_ms = started.elapsed().as_secs_f64() * 1e3, "frame");
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.settings.sort = self.library.sort();
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}

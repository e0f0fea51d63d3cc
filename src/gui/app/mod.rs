//! The app's state and its event handling: worker events in, commands out, once per frame.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::{Receiver, unbounded};

use crate::library::export::{self, ExportRequest, PhotoTags, SidecarNaming};
use crate::library::photo_info::PhotoInfo;
use crate::library::search::Match;
use crate::library::trash::TrashReport;
use crate::model::device::{DTypeChoice, DeviceChoice};
use crate::model::labels::Label;
use crate::model::registry::{self, RegisteredModel};
use crate::model::weights::ModelSource;
use crate::options::Options;
use crate::worker::{Command, Event, ModelStatus, PhotoErrorKind, Progress, Task, Worker, WorkerConfig};

use super::confirm::{self, SidecarPlan};
use super::duplicates::{self, DuplicatesView};
use super::persist::Saver;

mod startup;
use super::photos::{Photo, PhotoList, PhotoState, SortKey};
use super::picker::{self, PathEntry, Picked};
use super::selection::{Pick, Selection};
use super::settings::{self, Facts, Settings};
use super::thumbnails::{self, Thumbnails};
use super::{details, grid, precision, saved, sidebar, similar_strip, status, viewer};

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

/// The similarity results shown in the strip under the grid.
pub struct SimilarView {
    /// The query photo.
    pub query: PathBuf,
    /// Ranked matches, an error, or `None` while waiting.
    pub results: Option<Result<Vec<Match>, String>>,
}

/// A result of a background export.
type ExportOutcome = Result<String, String>;

/// Something a view asks the app to do. The views only draw; [`App`] applies their actions
/// once per frame, after all of them have drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open the system dialog for picking images.
    OpenImages,
    /// Open the system dialog for picking folders.
    OpenFolder,
    /// Show the grid in this order.
    SetSort(SortKey),
    /// Show only photos with a label containing this text; empty shows all.
    SetFilter(String),
    /// Show only the photos under this folder; `None` shows every photo.
    ShowFolder(Option<PathBuf>),
    /// Scan a file or folder of the library again: new photos are added, deleted ones go.
    RescanFolder(PathBuf),
    /// Take a file or folder out of the library, with its photos (never off the disk).
    RemoveFolder(PathBuf),
    /// Show or hide the settings window.
    ShowSettings(bool),
    /// Show or hide the errors panel.
    ShowErrors(bool),
    /// Forget the listed errors and hide their panel.
    ClearErrors,
    /// Stop the running job.
    Cancel,
    /// Tag the photos a cancel left untagged.
    Resume,
    /// Change the selection as a click on the photo at this index does, scrolling the grid
    /// to it if `scroll`.
    Select {
        /// The photo's index in the list.
        index: usize,
        /// How the click changes the selection.
        pick: Pick,
        /// Whether the grid scrolls to bring it into view.
        scroll: bool,
    },
    /// Select every photo the grid shows.
    SelectAll,
    /// Put the selected photos' paths on the clipboard, one per line.
    CopyPaths,
    /// Show the photo at this index in the viewer.
    OpenViewer(usize),
    /// Close the viewer.
    CloseViewer,
    /// Show the photo this many places on in the grid's order.
    ViewerStep(isize),
    /// Magnify the viewer's photo to this factor of the fitted size.
    ViewerZoom(f32),
    /// Multiply the viewer's magnification by this factor.
    ViewerZoomBy(f32),
    /// Open a photo with the desktop's own viewer.
    OpenExternally(PathBuf),
    /// Open the folder that holds a photo.
    ShowInFolder(PathBuf),
    /// Take the selected photos out of the list (never off the disk).
    RemoveSelected,
    /// Forget the selection.
    ClearSelection,
    /// Put the keyboard focus in the filter box.
    FocusFilter,
    /// Select a photo by path, adding it to the list if it is not there yet.
    SelectPath(PathBuf),
    /// Ask for the photos most similar to the one at this index.
    FindSimilar(usize),
    /// Hide the similar photos.
    CloseSimilar,
    /// Load the model again (after a failure).
    RetryModel,
    /// Pick a local model folder and load the model from it.
    ChooseModelFolder,
    /// Download the model from the Hub instead of a local folder.
    UseHubModel,
    /// Tag with this registered model (from the Hub) from now on.
    ChooseModel(&'static RegisteredModel),
    /// Reload the model on another device.
    ChangeDevice(DeviceChoice),
    /// Reload the model in another precision.
    ChangePrecision(DTypeChoice),
    /// Draw the grid's tiles this many points wide.
    SetTileSize(f32),
    /// Leave labels below this probability out of exported tags.
    SetMinProb(f32),
    /// Name XMP sidecars this way.
    SetSidecarNaming(SidecarNaming),
    /// Ask before emptying the result and thumbnail caches.
    ClearCache,
    /// Empty them.
    ConfirmClearCache,
    /// Ask before writing XMP sidecars for the selected tagged photos, or every tagged photo
    /// when none is selected.
    ExportSidecars,
    /// Write the sidecars the confirmation showed.
    WriteSidecars,
    /// Close the confirmation without writing anything.
    CloseConfirmation,
    /// Change the text of the in-window path entry.
    TypePath(String),
    /// Use the paths typed in the in-window path entry.
    UseTypedPath,
    /// Show or hide the Duplicates view (showing it compares the library's photos).
    ShowDuplicates(bool),
    /// Group duplicates from this similarity on.
    SetDuplicateThreshold(f32),
    /// Ask before moving every group's other copies to the trash.
    AskToTrashDuplicates,
    /// Move them, with their sidecars.
    TrashDuplicates,
    /// Write a CSV of the selected tagged photos (every tagged photo when none is selected),
    /// to a file the user picks.
    ExportCsv,
}

impl Action {
    /// Whether the action names a photo by its index in the list.
    fn names_a_photo_by_index(&self) -> bool {
        matches!(self, Action::Select { .. } | Action::OpenViewer(_) | Action::FindSimilar(_))
    }

    /// Whether the action changes what views other than its own widget show, so that the
    /// frame has to be drawn again to show it.
    fn changes_views(&self) -> bool {
        !matches!(self, Action::SetMinProb(_) | Action::SetSidecarNaming(_) | Action::SetTileSize(_))
    }
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
    /// The photo the viewer shows, while it is open.
    viewer: Option<usize>,
    /// The viewer's magnification over the fitted size.
    viewer_zoom: f32,
    cache_bytes: Option<u64>,
    cache_size_rx: Option<Receiver<u64>>,
    export_rx: Option<Receiver<ExportOutcome>>,
    /// The sidecar confirmation, while it is open.
    confirm_sidecars: Option<SidecarPlan>,
    /// Whether the question before clearing the cache is open.
    confirm_clear_cache: bool,
    /// The app's own path entry, open where the system has no file picker.
    path_entry: Option<PathEntry>,
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
        for saved in options.library_file.as_deref().map(saved::read).unwrap_or_default() {
            photos.restore(saved.path, saved.modified, saved.info, saved.labels);
        }
        let counts = photos.counts();
        tracing::info!(
            "restored {} photos ({} tagged), folders {:?}, model {:?}",
            counts.total,
            counts.tagged,
            settings.last_paths,
            options.worker.source
        );
        let mut app = Self {
            worker,
            photos,
            thumbnails,
            model_status: ModelStatus::Locating,
            progress: Progress::default(),
            busy: false,
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
            viewer_zoom: 1.0,
            cache_bytes: None,
            cache_size_rx: None,
            export_rx: None,
            confirm_sidecars: None,
            confirm_clear_cache: false,
            path_entry: None,
            library_saver: options.library_file.clone().map(Saver::new),
            settings_saver,
            stop_signal,
            offline,
            options,
        };
        app.notices.extend(precision_notice);
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
        self.selection.focus().map(|i| self.photos.photo(i).path.as_path())
    }

    /// The paths of every selected photo, in list order.
    pub fn selected_paths(&self) -> Vec<&Path> {
        self.selection.indices().map(|i| self.photos.photo(i).path.as_path()).collect()
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

    /// Stops the running job.
    fn cancel(&mut self) {
        self.worker.cancel();
        self.photos.cancel_queued();
        self.busy = false;
    }

    /// Moves the viewer `step` photos on in the grid's order (clamped to its ends).
    fn step_viewer(&mut self, step: isize) {
        let Some(current) = self.viewer else { return };
        let visible = self.photos.visible();
        let Some(position) = visible.iter().position(|&i| i == current) else { return };
        let next = (position as isize + step).clamp(0, visible.len() as isize - 1) as usize;
        let index = visible[next];
        self.viewer = Some(index);
        self.selection.pick(index, Pick::Only, &[]);
        self.viewer_zoom = 1.0;
        self.forget_similar_of_others();
    }

    /// Hides similar photos found for a photo other than the selected one: they would read
    /// as its own.
    fn forget_similar_of_others(&mut self) {
        if self.similar.as_ref().is_some_and(|s| Some(s.query.as_path()) != self.selected_path()) {
            self.similar = None;
        }
    }

    /// Opens a file or folder with the desktop's own program; a failure is shown as a notice.
    fn open_externally(&mut self, path: &Path) {
        if let Err(e) = opener::open(path) {
            self.notices.push(format!("{} could not be opened: {e}", path.display()));
        }
    }

    /// Whether `path` belongs to one of the library's files or folders. Photos of a folder
    /// taken out of the library while it was being scanned are not shown again.
    fn in_library(&self, path: &Path) -> bool {
        self.settings.last_paths.iter().any(|root| path.starts_with(root))
    }

    /// Scans a root again: its photos whose files are gone leave the list, new ones join.
    fn rescan(&mut self, root: &Path) {
        if !root.exists() {
            // A disconnected drive or an unmounted share: its photos are kept.
            self.notices.push(format!("{} cannot be found; is its drive connected?", root.display()));
            return;
        }
        let gone: Vec<usize> =
            self.photos.under(root).into_iter().filter(|&i| !self.photos.photo(i).path.exists()).collect();
        if !gone.is_empty() {
            let removed = self.take_out(gone);
            self.notices.push(format!("{} photos of {} are gone from the disk", removed.len(), root.display()));
        }
        self.add_paths(vec![root.to_owned()]);
    }

    /// Takes a root and its photos out of the library (never off the disk).
    fn remove_root(&mut self, root: &Path) {
        self.settings.last_paths.retain(|p| p != root);
        let doomed: Vec<usize> =
            self.photos.under(root).into_iter().filter(|&i| !self.in_library(&self.photos.photo(i).path)).collect();
        self.similar = None;
        let removed = self.take_out(doomed);
        if self.photos.folder() == Some(root) {
            self.photos.set_folder(None);
        }
        self.notices.push(format!(
            "Removed {} and its {} photos from the library (the files are kept)",
            root.display(),
            removed.len()
        ));
    }

    /// Takes photos out of the list (never off the disk), with them the selection, whose
    /// indices no longer hold, and has the saved list written again.
    fn take_out(&mut self, indices: impl IntoIterator<Item = usize>) -> Vec<Arc<Photo>> {
        let removed = self.photos.remove(indices);
        self.selection.clear();
        self.library_changed();
        removed
    }

    /// Tags the photos a cancel left untagged.
    fn resume(&mut self) {
        let paths = self.photos.resume_not_tagged();
        if !paths.is_empty() {
            self.tag(paths);
        }
    }

    /// Opens the Duplicates view, comparing the library's tagged photos, or closes it.
    fn show_duplicates(&mut self, show: bool) {
        if !show {
            self.duplicates = None;
            return;
        }
        self.viewer = None;
        let tagged = self.photos.tagged_paths();
        self.worker.send(Command::FindDuplicates { within: Some(tagged) });
        self.duplicates = Some(DuplicatesView::waiting(self.settings.duplicate_threshold));
    }

    /// Takes what went to the trash out of the library and says how to get it back.
    fn trashed(&mut self, report: TrashReport) {
        let gone: Vec<usize> = report.moved.iter().filter_map(|path| self.photos.index_of(path)).collect();
        self.take_out(gone);
        self.similar = None;
        let failed = report.errors.len();
        self.errors.extend(report.errors);
        let sidecars = match report.sidecars.len() {
            0 => String::new(),
            n => format!(" and {n} XMP sidecars"),
        };
        let failed = match failed {
            0 => String::new(),
            n => format!(" {n} could not be moved (see Errors)."),
        };
        self.notices.push(format!(
            "Moved {} photos{sidecars} to the trash. To get them back, restore them from the trash in your file              manager, then Scan again.{failed}",
            report.moved.len()
        ));
        if self.duplicates.is_some() {
            self.show_duplicates(true);
        }
    }

    /// Asks for the photos most similar to the one at `index`.
    fn find_similar(&mut self, index: usize) {
        let query = self.photos.photo(index).path.clone();
        self.worker.send(Command::FindSimilar { query: query.clone(), k: SIMILAR_COUNT, within: None });
        self.similar = Some(SimilarView { query, results: None });
    }

    /// Selects a photo by path, adding it to the list if it is not there yet.
    fn select_path(&mut self, path: &Path) {
        let index = match self.photos.index_of(path) {
            Some(index) => index,
            None => {
                let index = self.photos.queue(path.to_owned(), None);
                self.add_paths(vec![path.to_owned()]);
                index
            }
        };
        if self.selection.focus() != Some(index) {
            self.selection.pick(index, Pick::Only, &[]);
        }
        self.scroll_to_selected = true;
    }

    fn handle_events(&mut self, ctx: &egui::Context) {
        let mut handled = 0;
        while handled < EVENTS_PER_FRAME {
            let Ok(event) = self.worker.events().try_recv() else { break };
            handled += 1;
            if matches!(event, Event::Image { .. } | Event::Queued { .. } | Event::Listed { .. }) {
                self.library_changed();
            }
            self.handle(event);
        }
        if handled == EVENTS_PER_FRAME {
            ctx.request_repaint();
        }
        self.stats.events_handled = handled;
    }

    fn handle(&mut self, event: Event) {
        let path = match &event {
            Event::Queued { path, .. } | Event::Listed { path, .. } | Event::Image { path, .. } => Some(path),
            _ => None,
        };
        // A photo not in the list, outside the library's folders, is of a folder taken out of
        // the library while it was being scanned.
        if path.is_some_and(|path| self.photos.index_of(path).is_none() && !self.in_library(path)) {
            return;
        }
        if matches!(event, Event::Duplicates(_) | Event::Trashed(_) | Event::Similar { .. }) {
            self.working = None;
        }
        match event {
            Event::Working { task, done, total } => self.working = (done < total).then_some((task, done, total)),
            Event::Duplicates(outcome) => {
                if let Some(view) = self.duplicates.as_mut() {
                    view.set_graph(outcome);
                }
            }
            Event::Trashed(report) => self.trashed(report),
            Event::Model(status) => {
                if !matches!(status, ModelStatus::Downloading { .. }) {
                    tracing::info!("model: {status:?}");
                }
                if matches!(status, ModelStatus::Failed(_)) {
                    // Nothing more will be tagged until Retry: queued photos wait, untagged.
                    self.photos.cancel_queued();
                    self.busy = false;
                }
                self.model_status = status;
            }
            Event::Warning(warning) => {
                tracing::warn!("{warning}");
                self.notices.push(warning);
            }
            Event::Queued { path, modified } => {
                self.photos.queue(path, modified);
            }
            Event::Listed { path, modified } => self.photos.list_untagged(path, modified),
            Event::Image { path, outcome } => {
                let state = match outcome {
                    Ok(tagged) => {
                        self.photos.finish(&path, PhotoState::Tagged(tagged.labels));
                        self.photos.set_info(&path, tagged.info);
                        return;
                    }
                    Err(error) if error.kind == PhotoErrorKind::NotAPhoto => {
                        // Not a photo: listed under Errors only, never as a tile.
                        self.errors.push((path, error.to_string()));
                        return;
                    }
                    Err(error)
                        if matches!(error.kind, PhotoErrorKind::Cancelled | PhotoErrorKind::ModelUnavailable) =>
                    {
                        // Not a failure of the photo: one already listed waits for Resume or
                        // Retry, and a folder that was never scanned is no tile.
                        if self.photos.index_of(&path).is_some() {
                            self.photos.finish(&path, PhotoState::NotTagged);
                        }
                        return;
                    }
                    Err(error) => {
                        self.errors.push((path.clone(), error.to_string()));
                        PhotoState::Failed(error.to_string())
                    }
                };
                self.photos.finish(&path, state);
            }
            Event::Progress(progress) => self.progress = progress,
            Event::Similar { query, outcome } => {
                if let Some(view) = self.similar.as_mut().filter(|v| v.query == query) {
                    view.results = Some(outcome.map_err(|e| e.to_string()));
                }
            }
            Event::CacheCleared(outcome) => match outcome {
                Ok(()) => {
                    self.notices.push("The cache is empty.".to_owned());
                    // Measured again now that the database has shrunk.
                    self.cache_bytes = None;
                    self.cache_size_rx = None;
                }
                Err(e) => self.notices.push(format!("The cache could not be cleared: {e}")),
            },
            Event::Idle => {
                self.busy = false;
                self.job_paths.clear();
            }
        }
    }

    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_owned()).collect());
        self.add_paths(dropped);
    }

    /// Asks for paths with the system's picker, or with the app's own entry where the system
    /// has none.
    fn pick(&mut self, ctx: &egui::Context, pick: picker::Pick) {
        match picker::show(pick) {
            Picked::Paths(paths) => self.use_picked(ctx, pick, paths),
            Picked::Cancelled => {}
            Picked::Unavailable => {
                tracing::warn!("no system file picker could be shown; asking for the path in the window");
                self.path_entry = Some(PathEntry::new(pick));
            }
        }
    }

    /// Does what the picked paths were asked for.
    fn use_picked(&mut self, ctx: &egui::Context, pick: picker::Pick, mut paths: Vec<PathBuf>) {
        match pick {
            picker::Pick::Images | picker::Pick::Folders => self.add_paths(paths),
            picker::Pick::ModelFolder => {
                let Some(dir) = paths.pop() else { return };
                self.settings.model_dir = Some(dir.clone());
                self.options.worker.source = ModelSource::Dir(dir);
                self.retry_model(ctx);
            }
            picker::Pick::CsvFile => {
                if let Some(file) = paths.pop() {
                    self.export(ctx, Some(file));
                }
            }
        }
    }

    /// Applies the actions the views returned this frame, in order. When one of them changed
    /// what the views show, egui is asked to draw the frame again, so that it shows the result
    /// of its own input.
    fn apply(&mut self, ctx: &egui::Context, actions: Vec<Action>) {
        let mut redraw = false;
        let mut removed = false;
        for action in actions {
            // An index taken before a removal in the same frame may name another photo now.
            if removed && action.names_a_photo_by_index() {
                continue;
            }
            redraw |= action.changes_views();
            removed |= matches!(action, Action::RemoveSelected | Action::RemoveFolder(_) | Action::RescanFolder(_));
            self.apply_one(ctx, action);
        }
        if redraw {
            ctx.request_discard("a view's action changed the app");
            if !ctx.will_discard() {
                ctx.request_repaint();
            }
        }
    }

    fn apply_one(&mut self, ctx: &egui::Context, action: Action) {
        match action {
            Action::OpenImages => self.pick(ctx, picker::Pick::Images),
            Action::OpenFolder => self.pick(ctx, picker::Pick::Folders),
            Action::TypePath(text) => {
                if let Some(entry) = &mut self.path_entry {
                    entry.text = text;
                    entry.error = None;
                }
            }
            Action::UseTypedPath => {
                if let Some(entry) = &mut self.path_entry {
                    match picker::parse_typed(entry.pick, &entry.text) {
                        Ok(paths) => {
                            let pick = entry.pick;
                            self.path_entry = None;
                            self.use_picked(ctx, pick, paths);
                        }
                        Err(error) => entry.error = Some(error),
                    }
                }
            }
            Action::SetSort(sort) => self.photos.set_sort(sort),
            Action::SetFilter(filter) => {
                self.photos.set_filter(&filter);
                self.scroll_to_top = true;
                // What is selected and no longer shown would be acted on unseen.
                self.selection.keep_only(self.photos.visible());
            }
            Action::ShowFolder(folder) => {
                self.photos.set_folder(folder);
                self.scroll_to_top = true;
                self.selection.keep_only(self.photos.visible());
            }
            Action::RescanFolder(root) => self.rescan(&root),
            Action::RemoveFolder(root) => self.remove_root(&root),
            Action::ShowSettings(show) => self.show_settings = show,
            Action::ShowErrors(show) => self.show_errors = show,
            Action::ClearErrors => {
                self.errors.clear();
                self.show_errors = false;
            }
            Action::Cancel => self.cancel(),
            Action::Resume => self.resume(),
            Action::Select { index, pick, scroll } => {
                if index >= self.photos.len() {
                    return;
                }
                let visible = self.photos.visible();
                self.selection.pick(index, pick, visible);
                self.forget_similar_of_others();
                self.scroll_to_selected |= scroll;
            }
            Action::SelectAll => {
                let visible = self.photos.visible();
                self.selection.select_all(visible);
                self.forget_similar_of_others();
            }
            Action::CopyPaths => {
                let paths: Vec<String> = self.selected_paths().iter().map(|p| p.display().to_string()).collect();
                ctx.copy_text(paths.join("\n"));
                self.notices.push(match paths.len() {
                    1 => "Copied the path".to_owned(),
                    n => format!("Copied {n} paths"),
                });
            }
            Action::SelectPath(path) => self.select_path(&path),
            Action::OpenViewer(index) => {
                self.viewer = Some(index);
                if !self.selection.contains(index) {
                    self.selection.pick(index, Pick::Only, &[]);
                }
                self.viewer_zoom = 1.0;
            }
            Action::CloseViewer => {
                self.viewer = None;
                self.scroll_to_selected = true;
            }
            Action::ViewerStep(step) => self.step_viewer(step),
            Action::ViewerZoom(zoom) => self.viewer_zoom = zoom.clamp(0.1, 16.0),
            Action::ViewerZoomBy(factor) => self.viewer_zoom = (self.viewer_zoom * factor).clamp(0.1, 16.0),
            Action::OpenExternally(path) => self.open_externally(&path),
            Action::ShowInFolder(path) => self.open_externally(path.parent().unwrap_or(&path)),
            Action::RemoveSelected => {
                let selected: Vec<usize> = self.selection.indices().collect();
                let removed = self.take_out(selected);
                self.similar = None;
                match removed.as_slice() {
                    [] => {}
                    [photo] => self.notices.push(format!("Removed {} from the library (the file is kept)", photo.name)),
                    many => self
                        .notices
                        .push(format!("Removed {} photos from the library (the files are kept)", many.len())),
                }
            }
            Action::ClearSelection => {
                self.selection.clear();
                self.similar = None;
            }
            Action::FocusFilter => self.focus_filter = true,
            Action::FindSimilar(index) => self.find_similar(index),
            Action::CloseSimilar => self.similar = None,
            Action::RetryModel => self.retry_model(ctx),
            Action::ChooseModelFolder => self.pick(ctx, picker::Pick::ModelFolder),
            Action::UseHubModel => {
                self.settings.model_dir = None;
                self.options.worker.source = self.options.model.source(self.offline);
                self.retry_model(ctx);
            }
            Action::ChooseModel(model) => {
                self.settings.model = Some(model.name.to_owned());
                self.settings.model_dir = None;
                self.options.model = model;
                self.options.worker.source = model.source(self.offline);
                self.retry_model(ctx);
            }
            Action::ChangeDevice(device) => {
                self.settings.device = device;
                self.options.worker.device = device;
                self.restart_worker(ctx);
            }
            Action::ChangePrecision(precision) => {
                self.settings.precision = Some(precision);
                self.options.worker.dtype = precision;
                self.restart_worker(ctx);
            }
            Action::SetMinProb(min_prob) => self.settings.min_prob = min_prob,
            Action::SetTileSize(side) => {
                self.settings.tile_size = side.clamp(*grid::TILE_SIZES.start(), *grid::TILE_SIZES.end())
            }
            Action::SetSidecarNaming(naming) => self.settings.sidecar_naming = naming,
            Action::ClearCache => self.confirm_clear_cache = true,
            Action::ConfirmClearCache => {
                self.confirm_clear_cache = false;
                self.worker.send(Command::ClearCache);
                if let Some(dir) = &self.options.thumbnail_cache {
                    let _ = std::fs::remove_dir_all(dir);
                }
                self.cache_bytes = None;
                self.cache_size_rx = None;
            }
            Action::ExportSidecars => self.confirm_sidecars = Some(self.sidecar_plan()),
            Action::WriteSidecars => {
                self.confirm_sidecars = None;
                self.export(ctx, None);
            }
            Action::ShowDuplicates(show) => self.show_duplicates(show),
            Action::SetDuplicateThreshold(threshold) => {
                self.settings.duplicate_threshold = threshold;
                if let Some(view) = self.duplicates.as_mut() {
                    view.set_threshold(threshold);
                }
            }
            Action::AskToTrashDuplicates => {
                if let Some(view) = self.duplicates.as_mut() {
                    view.confirming = true;
                }
            }
            Action::TrashDuplicates => {
                if let Some(view) = self.duplicates.as_mut() {
                    view.confirming = false;
                    view.moving = true;
                    self.worker.send(Command::MoveToTrash(view.other_paths()));
                }
            }
            Action::CloseConfirmation => {
                if let Some(view) = self.duplicates.as_mut() {
                    view.confirming = false;
                }
                self.confirm_sidecars = None;
                self.confirm_clear_cache = false;
                self.path_entry = None;
            }
            Action::ExportCsv => self.pick(ctx, picker::Pick::CsvFile),
        }
    }

    /// Starts a worker with the current options; queued photos are sent again.
    fn restart_worker(&mut self, ctx: &egui::Context) {
        let old = std::mem::replace(&mut self.worker, spawn_worker(ctx, self.options.worker.clone()));
        drop(old);
        self.model_status = ModelStatus::Locating;
        let queued = (0..self.photos.len()).map(|i| self.photos.photo(i)).filter(|p| p.state == PhotoState::Queued);
        let again = paths_to_send_again(std::mem::take(&mut self.job_paths), queued.map(|p| p.path.as_path()));
        if !again.is_empty() {
            self.tag(again);
        }
    }

    /// Starts the model again, then scans the remembered folders and tags what is waiting.
    fn retry_model(&mut self, ctx: &egui::Context) {
        self.restart_worker(ctx);
        let roots: Vec<PathBuf> = self.settings.last_paths.iter().filter(|p| p.exists()).cloned().collect();
        self.resume();
        if !roots.is_empty() {
            self.tag(roots);
        }
    }

    /// The photo list changed and is to be saved.
    fn library_changed(&mut self) {
        if let Some(saver) = self.library_saver.as_mut() {
            saver.changed();
        }
    }

    /// Saves the photo list and the settings where they changed: soon, on a background
    /// thread; with `now` (at exit, or on a signal), at once and on this thread. A save that
    /// fails is said once in the window and tried again.
    fn save_state(&mut self, ctx: Option<&egui::Context>, now: bool) {
        let mut notices = Vec::new();
        if let Some(saver) = self.library_saver.as_mut() {
            let photos = &self.photos;
            notices.extend(saver.save(ctx, now, || {
                let snapshot = saved::snapshot(photos);
                move |file: &Path| saved::write(file, &snapshot)
            }));
        }
        self.settings.sort = self.photos.sort();
        if let Some((saver, written)) = self.settings_saver.as_mut() {
            if *written != self.settings {
                *written = self.settings.clone();
                saver.changed();
            }
            notices.extend(saver.save(ctx, now, || {
                let snapshot = written.clone();
                move |file: &Path| settings::write(file, &snapshot)
            }));
        }
        self.notices.extend(notices);
    }

    /// Writes XMP sidecars (no `csv`) or one CSV file, on a background thread.
    fn export(&mut self, ctx: &egui::Context, csv: Option<PathBuf>) {
        let tagged: Vec<(PathBuf, Vec<Label>, PhotoInfo)> = self
            .export_targets()
            .map(|(path, labels)| {
                let info = self.photos.index_of(path).map(|i| self.photos.photo(i).info.clone()).unwrap_or_default();
                (path.to_owned(), labels.to_vec(), info)
            })
            .collect();
        let ctx = ctx.clone();
        let request = ExportRequest {
            sidecars: csv.is_none().then_some(self.settings.sidecar_naming),
            csv,
            json: None,
            min_prob: self.settings.min_prob,
        };
        let (tx, rx) = unbounded();
        self.export_rx = Some(rx);
        std::thread::spawn(move || {
            let photos: Vec<PhotoTags> =
                tagged.iter().map(|(path, labels, info)| PhotoTags { path, labels, info: Some(info) }).collect();
            let report = request.run(&photos, &AtomicBool::new(false));
            let done = match (&request.csv, report.sidecars) {
                (Some(file), _) => format!("Wrote {} photos to {}", photos.len(), file.display()),
                (None, written) if report.sidecars_without_keywords > 0 => format!(
                    "Wrote {written} XMP sidecars; {} have no keyword at this threshold",
                    report.sidecars_without_keywords
                ),
                (None, written) => format!("Wrote {written} XMP sidecars"),
            };
            let outcome = match report.errors.first() {
                None => Ok(done),
                Some(first) => Err(format!("{} files failed; first: {first}", report.errors.len())),
            };
            let _ = tx.send(outcome);
            // Show the outcome now, not at the next mouse move.
            ctx.request_repaint();
        });
    }

    /// The photos an export writes, with their labels, in list order: the selected tagged
    /// photos, or every tagged photo when none is selected.
    fn export_targets(&self) -> impl Iterator<Item = (&Path, &[Label])> {
        let indices: Box<dyn Iterator<Item = usize>> =
            if self.selection.is_empty() { Box::new(0..self.photos.len()) } else { Box::new(self.selection.indices()) };
        indices.filter_map(|i| {
            let photo = self.photos.photo(i);
            match &photo.state {
                PhotoState::Tagged(labels) => Some((photo.path.as_path(), labels.as_slice())),
                _ => None,
            }
        })
    }

    /// What writing sidecars now would do, for the confirmation.
    fn sidecar_plan(&self) -> SidecarPlan {
        let min_prob = self.settings.min_prob;
        let mut plan = SidecarPlan {
            photos: 0,
            selected: !self.selection.is_empty(),
            min_prob,
            preview: None,
            without_keywords: 0,
        };
        for (path, labels) in self.export_targets() {
            let keywords = export::keywords(labels, min_prob);
            plan.photos += 1;
            plan.without_keywords += usize::from(keywords.is_empty());
            if plan.preview.is_none() {
                let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
                plan.preview = Some((name, keywords));
            }
        }
        plan
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

    /// The keyboard shortcuts that act on the whole window.
    fn shortcuts(&self, ctx: &egui::Context, actions: &mut Vec<Action>) {
        let typing = ctx.egui_wants_keyboard_input();
        let control_focused = ctx.memory(|m| m.focused().is_some());
        let dialog_open = self.confirm_sidecars.is_some()
            || self.confirm_clear_cache
            || self.path_entry.is_some()
            || self.duplicates.as_ref().is_some_and(|d| d.confirming);
        ctx.input_mut(|i| {
            if i.consume_key(egui::Modifiers::COMMAND, egui::Key::O) {
                actions.push(Action::OpenImages);
            }
            if i.consume_key(egui::Modifiers::COMMAND, egui::Key::F) {
                actions.push(Action::FocusFilter);
            }
            if typing || dialog_open || self.viewer.is_some() {
                return;
            }
            if self.duplicates.is_some() {
                if i.consume_key(egui::Modifiers::NONE, egui::Key::Escape) {
                    actions.push(Action::ShowDuplicates(false));
                }
                return;
            }
            if i.consume_key(egui::Modifiers::COMMAND, egui::Key::A) {
                actions.push(Action::SelectAll);
            }
            // Enter and Space press the control that has the keyboard focus, if any.
            if let Some(index) = self.selection.focus().filter(|_| !control_focused)
                && (i.consume_key(egui::Modifiers::NONE, egui::Key::Enter)
                    || i.consume_key(egui::Modifiers::NONE, egui::Key::Space))
            {
                actions.push(Action::OpenViewer(index));
            }
            if let Some(index) = self.selection.focus()
                && i.consume_key(egui::Modifiers::NONE, egui::Key::S)
            {
                actions.push(Action::FindSimilar(index));
            }
            if !control_focused && i.consume_key(egui::Modifiers::NONE, egui::Key::D) {
                actions.push(Action::ShowDuplicates(true));
            }
            if i.consume_key(egui::Modifiers::NONE, egui::Key::Escape) {
                actions.push(if self.show_settings { Action::ShowSettings(false) } else { Action::ClearSelection });
            }
            if !self.selection.is_empty() && i.consume_key(egui::Modifiers::NONE, egui::Key::Delete) {
                actions.push(Action::RemoveSelected);
            }
        });
    }

    /// Draws every view from the current state, collecting what they ask for.
    fn views(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut actions = Vec::new();
        self.shortcuts(ui.ctx(), &mut actions);
        let matching =
            (!self.photos.filter().trim().is_empty()).then(|| (self.photos.visible().len(), self.photos.len()));
        let toolbar = status::Toolbar {
            sort: self.photos.sort(),
            filter: self.photos.filter(),
            matching,
            focus_filter: std::mem::take(&mut self.focus_filter),
            tile_size: self.settings.tile_size,
            settings_open: self.show_settings,
        };
        status::toolbar(ui, &toolbar, &mut actions);
        let under_toolbar = ui.available_rect_before_wrap();
        let status_bar = status::StatusBar {
            model: &self.model_status,
            progress: self.progress,
            counts: self.photos.counts(),
            busy: self.busy,
            working: self.working,
            errors: self.errors.len(),
            errors_open: self.show_errors,
            notice: self.notices.last().map(String::as_str),
        };
        status::status_bar(ui, &status_bar, &mut actions);
        if self.show_errors {
            status::errors_panel(ui, &self.errors, &self.model_status, &mut actions);
        }
        if let Some(index) = self.viewer.filter(|&i| i < self.photos.len()) {
            let (photos, visible) = self.photos.with_visible();
            let position = (visible.iter().position(|&i| i == index).unwrap_or(0), visible.len());
            let view = viewer::Viewer { photo: photos.photo(index), position, zoom: self.viewer_zoom };
            viewer::show(ui, &view, &mut self.thumbnails, &mut actions);
            self.stats.cells_built = 0;
        } else if let Some(view) = &self.duplicates {
            duplicates::central(ui, view, &mut self.thumbnails, &mut actions);
            if view.confirming {
                duplicates::confirm_trash(ui.ctx(), view, &mut actions);
            }
            self.stats.cells_built = 0;
        } else {
            if let Some(similar) = &self.similar {
                similar_strip::strip(ui, similar, &mut self.thumbnails, &mut actions);
            }
            self.photos.set_roots(&self.settings.last_paths);
            let total = self.photos.len();
            let folder = self.photos.folder().map(Path::to_owned);
            let sidebar = sidebar::Sidebar {
                roots: &self.settings.last_paths,
                counts: self.photos.root_counts(),
                total,
                folder: folder.as_deref(),
            };
            sidebar::panel(ui, &sidebar, &mut actions);
            let details = details::Details {
                selected: self.selection.focus().map(|index| (index, self.photos.photo(index))),
                selected_count: self.selection.len(),
            };
            details::panel(ui, &details, &mut self.thumbnails, &mut actions);
            let scroll_to_selected = std::mem::take(&mut self.scroll_to_selected);
            let scroll_to_top = std::mem::take(&mut self.scroll_to_top);
            let (photos, visible) = self.photos.with_visible();
            let tile = self.settings.tile_size.clamp(*grid::TILE_SIZES.start(), *grid::TILE_SIZES.end());
            let filter = photos.filter().trim().to_lowercase();
            let grid = grid::Grid {
                photos,
                visible,
                selection: &self.selection,
                scroll_to_selected,
                scroll_to_top,
                tile,
                filter: &filter,
            };
            self.stats.cells_built = grid::central(ui, &grid, &mut self.thumbnails, &mut actions);
        }
        if self.show_settings {
            self.measure_cache(ui.ctx());
            let running_on = match &self.model_status {
                ModelStatus::Loading { device } | ModelStatus::Ready { device, .. } => Some(device.as_str()),
                _ => None,
            };
            let model_dir = match &self.options.worker.source {
                ModelSource::Dir(dir) => Some(dir.as_path()),
                ModelSource::Hub { .. } => None,
            };
            let facts = Facts {
                model: self.options.model,
                device: self.options.worker.device,
                precision: self.options.worker.dtype,
                model_dir,
                running_on,
                folder: self.options.worker.cache_dir.as_deref(),
                bytes: self.cache_bytes,
            };
            settings::window(ui.ctx(), under_toolbar, &self.settings, &facts, &mut actions);
        }
        if let Some(plan) = &self.confirm_sidecars {
            confirm::sidecars(ui.ctx(), plan, &mut actions);
        }
        if self.confirm_clear_cache {
            confirm::clear_cache(ui.ctx(), self.cache_bytes, &mut actions);
        }
        if let Some(entry) = &self.path_entry {
            picker::entry(ui.ctx(), entry, &mut actions);
        }
        actions
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

/// Sets `stop` and asks for a frame when the process gets SIGTERM, SIGINT or SIGHUP (a
/// logout, a kill, Ctrl-C in the terminal), so that the next frame saves everything and closes
/// the window: an idle window has no frame coming otherwise.
#[cfg(unix)]
fn watch_stop_signals(ctx: &egui::Context, stop: &Arc<AtomicBool>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            tracing::warn!("signals cannot be watched ({e}); a logout may lose the last seconds' changes");
            return;
        }
    };
    let (ctx, stop) = (ctx.clone(), Arc::clone(stop));
    let watching = std::thread::Builder::new().name("evatag-signals".into()).spawn(move || {
        for signal in signals.forever() {
            tracing::info!("signal {signal}");
            stop.store(true, Ordering::SeqCst);
            ctx.request_repaint();
        }
    });
    if let Err(e) = watching {
        tracing::warn!("signals cannot be watched ({e})");
    }
}

/// Windows and others close the window at logoff, which saves through `on_exit`.
#[cfg(not(unix))]
fn watch_stop_signals(_ctx: &egui::Context, _stop: &Arc<AtomicBool>) {}

/// What a restarted worker is given: every path of the unfinished job (folders whose scan may
/// not have finished among them), and the queued photos those do not already hold.
fn paths_to_send_again<'a>(job_paths: Vec<PathBuf>, queued: impl Iterator<Item = &'a Path>) -> Vec<PathBuf> {
    let outside: Vec<PathBuf> =
        queued.filter(|photo| !job_paths.iter().any(|path| photo.starts_with(path))).map(Path::to_owned).collect();
    job_paths.into_iter().chain(outside).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_worker_gets_the_unfinished_job_and_the_queued_photos_outside_it() {
        let job = vec![PathBuf::from("/photos/trip"), PathBuf::from("/photos/cat.jpg")];
        let queued = [Path::new("/photos/trip/1.jpg"), Path::new("/photos/cat.jpg"), Path::new("/elsewhere/2.jpg")];
        let again = paths_to_send_again(job, queued.into_iter());
        let expected = ["/photos/trip", "/photos/cat.jpg", "/elsewhere/2.jpg"].map(PathBuf::from);
        assert_eq!(again, expected);
        // A folder added but not yet scanned has no queued photo, and is sent again all the same.
        assert_eq!(paths_to_send_again(vec![PathBuf::from("/new")], std::iter::empty()), [PathBuf::from("/new")]);
        assert!(paths_to_send_again(Vec::new(), std::iter::empty()).is_empty());
    }
}

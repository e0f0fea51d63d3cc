//! What the worker and the desktop say, applied to the app: worker events, dropped files,
//! picked files.

use std::path::PathBuf;

use crate::gui::photos::{PhotoId, PhotoState};
use crate::gui::picker::{self, PathEntry, Picked};
use crate::library::trash::TrashReport;
use crate::model::weights::ModelSource;
use crate::worker::{Event, ModelStatus, PhotoErrorKind};

use super::{App, EVENTS_PER_FRAME, Modal};

impl App {
    pub(super) fn handle_events(&mut self, ctx: &egui::Context) {
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

    pub(super) fn handle(&mut self, event: Event) {
        let path = match &event {
            Event::Queued { path, .. } | Event::Listed { path, .. } | Event::Image { path, .. } => Some(path),
            _ => None,
        };
        // A photo not in the list, outside the library's folders, is of a folder taken out of
        // the library while it was being scanned.
        if path.is_some_and(|path| self.photos.id_of(path).is_none() && !self.photos.in_library(path)) {
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
            Event::Queued { path, modified } if self.cancel_unconfirmed => self.photos.list_untagged(path, modified),
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
                        if self.photos.id_of(&path).is_some() {
                            self.photos.finish(&path, PhotoState::NotTagged);
                        }
                        return;
                    }
                    Err(error) => {
                        self.errors.push((path.clone(), error.to_string()));
                        PhotoState::Failed(error)
                    }
                };
                self.photos.finish(&path, state);
            }
            Event::Progress(progress) => {
                self.model_speed = progress.model_speed.or(self.model_speed);
                self.progress = progress;
            }
            Event::Similar { query, outcome } => {
                if let Some(view) = self.similar.as_mut().filter(|v| v.query == query) {
                    view.results = Some(outcome);
                }
            }
            Event::CacheCleared(outcome) => match outcome {
                Ok(()) => {
                    self.notices.push("The cache is empty.".to_owned());
                    // Measured again now that the database has shrunk.
                    self.cache_changed();
                }
                Err(e) => self.notices.push(format!("The cache could not be cleared: {e}")),
            },
            Event::Idle => {
                self.busy = false;
                self.cancel_unconfirmed = false;
                self.job_paths.clear();
            }
        }
    }

    /// Takes what went to the trash out of the library and says how to get it back.
    pub(super) fn trashed(&mut self, report: TrashReport) {
        let gone: Vec<PhotoId> = report.moved.iter().filter_map(|path| self.photos.id_of(path)).collect();
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
            "Moved {} photos{sidecars} to the trash. To get them back, restore them from the trash in your file \
             manager, then Scan again.{failed}",
            report.moved.len()
        ));
        if self.duplicates.is_some() {
            self.show_duplicates(true);
        }
    }

    pub(super) fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_owned()).collect());
        self.add_paths(dropped);
    }

    /// Asks for paths with the system's picker, or with the app's own entry where the system
    /// has none.
    pub(super) fn pick(&mut self, ctx: &egui::Context, pick: picker::Wanted) {
        match picker::show(pick) {
            Picked::Paths(paths) => self.use_picked(ctx, pick, paths),
            Picked::Cancelled => {}
            Picked::Unavailable => {
                tracing::warn!("no system file picker could be shown; asking for the path in the window");
                self.modal = Some(Modal::PathEntry(PathEntry::new(pick)));
            }
        }
    }

    /// Does what the picked paths were asked for.
    pub(super) fn use_picked(&mut self, ctx: &egui::Context, pick: picker::Wanted, mut paths: Vec<PathBuf>) {
        match pick {
            picker::Wanted::Images | picker::Wanted::Folders => self.add_paths(paths),
            picker::Wanted::ModelFolder => {
                let Some(dir) = paths.pop() else { return };
                self.settings.model_dir = Some(dir.clone());
                self.options.worker.source = ModelSource::Dir(dir);
                self.retry_model(ctx);
            }
            picker::Wanted::CsvFile => {
                if let Some(file) = paths.pop() {
                    self.export(ctx, Some(file));
                }
            }
        }
    }
}

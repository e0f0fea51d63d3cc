//! The actions the views return, applied once per frame, and what they set going.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::gui::action::Action;
use crate::gui::duplicates::DuplicatesView;
use crate::gui::grid;
use crate::gui::photos::{Photo, PhotoId, PhotoState};
use crate::gui::picker;
use crate::gui::selection::Pick;
use crate::gui::similar_strip::SimilarView;
use crate::gui::viewer::ViewerState;
use crate::worker::{Command, ModelStatus};

use super::{App, Modal, SIMILAR_COUNT};

impl App {
    /// Applies the actions the views returned this frame, in order. When one of them changed
    /// what the views show, egui is asked to draw the frame again, so that it shows the result
    /// of its own input.
    pub(super) fn apply(&mut self, ctx: &egui::Context, actions: Vec<Action>) {
        let mut redraw = false;
        for action in actions {
            redraw |= action.changes_views();
            self.apply_one(ctx, action);
        }
        if redraw {
            ctx.request_discard("a view's action changed the app");
            if !ctx.will_discard() {
                ctx.request_repaint();
            }
        }
    }

    pub(super) fn apply_one(&mut self, ctx: &egui::Context, action: Action) {
        match action {
            Action::OpenImages => self.pick(ctx, picker::Wanted::Images),
            Action::OpenFolder => self.pick(ctx, picker::Wanted::Folders),
            Action::TypePath(text) => {
                if let Some(Modal::PathEntry(entry)) = &mut self.modal {
                    entry.text = text;
                    entry.error = None;
                }
            }
            Action::UseTypedPath => {
                if let Some(Modal::PathEntry(entry)) = &mut self.modal {
                    match picker::parse_typed(entry.pick, &entry.text) {
                        Ok(paths) => {
                            let pick = entry.pick;
                            self.modal = None;
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
            Action::RescanFolder(root) => self.rescan(ctx, &root),
            Action::RemoveFolder(root) => self.remove_root(&root),
            Action::ShowSettings(show) => self.show_settings = show,
            Action::ShowErrors(show) => self.show_errors = show,
            Action::ClearErrors => {
                self.errors.clear();
                self.show_errors = false;
            }
            Action::Cancel => self.cancel(),
            Action::Resume => self.resume(),
            Action::Select { id, pick, scroll } => {
                if !self.photos.contains(id) {
                    return;
                }
                let visible = self.photos.visible();
                self.selection.pick(id, pick, visible);
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
            Action::OpenViewer(id) => {
                if !self.photos.contains(id) {
                    return;
                }
                self.viewer = Some(ViewerState::open(id));
                if !self.selection.contains(id) {
                    self.selection.pick(id, Pick::Only, &[]);
                }
            }
            Action::CloseViewer => {
                self.viewer = None;
                self.scroll_to_selected = true;
            }
            Action::ViewerStep(step) => self.step_viewer(step),
            Action::ViewerZoom(zoom) => self.viewer.iter_mut().for_each(|state| state.zoom_to(zoom)),
            Action::ViewerZoomBy(factor) => self.viewer.iter_mut().for_each(|state| state.zoom_by(factor)),
            Action::OpenExternally(path) => self.open_externally(&path),
            Action::ShowInFolder(path) => self.open_externally(path.parent().unwrap_or(&path)),
            Action::RemoveSelected => {
                let selected: Vec<PhotoId> = self.selection.ids().collect();
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
            Action::FindSimilar(id) => self.find_similar(id),
            Action::CloseSimilar => self.similar = None,
            Action::RetryModel => self.retry_model(ctx),
            Action::ChooseModelFolder => self.pick(ctx, picker::Wanted::ModelFolder),
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
            Action::ClearCache => self.modal = Some(Modal::ConfirmClearCache),
            Action::ConfirmClearCache => {
                self.modal = None;
                self.worker.send(Command::ClearCache);
                if let Some(dir) = self.options.thumbnail_cache.clone() {
                    self.jobs.run(ctx, move || {
                        let _ = std::fs::remove_dir_all(dir);
                        None
                    });
                }
                self.cache_changed();
            }
            Action::ExportSidecars => self.modal = Some(Modal::ConfirmSidecars(self.sidecar_plan())),
            Action::WriteSidecars => {
                self.modal = None;
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
                if self.duplicates.is_some() {
                    self.modal = Some(Modal::ConfirmTrashDuplicates);
                }
            }
            Action::TrashDuplicates => {
                self.modal = None;
                if let Some(view) = self.duplicates.as_mut() {
                    view.moving = true;
                    self.worker.send(Command::MoveToTrash(view.other_paths()));
                }
            }
            Action::CloseConfirmation => self.modal = None,
            Action::ExportCsv => self.pick(ctx, picker::Wanted::CsvFile),
        }
    }

    /// Stops the running job.
    pub(super) fn cancel(&mut self) {
        self.worker.cancel();
        self.photos.cancel_queued();
        self.busy = false;
        self.cancel_unconfirmed = true;
    }

    /// Moves the viewer `step` photos on in the grid's order (clamped to its ends).
    pub(super) fn step_viewer(&mut self, step: isize) {
        let Some(state) = self.viewer.as_mut() else { return };
        let Some(id) = state.step(self.photos.visible(), step) else { return };
        self.selection.pick(id, Pick::Only, &[]);
        self.forget_similar_of_others();
    }

    /// Hides similar photos found for a photo other than the selected one: they would read
    /// as its own.
    pub(super) fn forget_similar_of_others(&mut self) {
        if self.similar.as_ref().is_some_and(|s| Some(s.query.as_path()) != self.selected_path()) {
            self.similar = None;
        }
    }

    /// Opens a file or folder with the desktop's own program; a failure is shown as a notice.
    pub(super) fn open_externally(&mut self, path: &Path) {
        if let Err(e) = opener::open(path) {
            self.notices.push(format!("{} could not be opened: {e}", path.display()));
        }
    }

    /// Takes a root and its photos out of the library (never off the disk).
    pub(super) fn remove_root(&mut self, root: &Path) {
        self.photos.remove_root(root);
        self.library_changed();
        let doomed: Vec<PhotoId> = self
            .photos
            .iter()
            .filter(|(_, photo)| photo.path.starts_with(root) && !self.photos.in_library(&photo.path))
            .map(|(id, _)| id)
            .collect();
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

    /// Takes photos out of the list (never off the disk) and out of the selection and the
    /// viewer, and has the saved list written again; the other photos stay selected.
    pub(super) fn take_out(&mut self, ids: impl IntoIterator<Item = PhotoId>) -> Vec<Arc<Photo>> {
        let removed = self.photos.remove(ids);
        if removed.is_empty() {
            return removed;
        }
        let photos = &self.photos;
        self.selection.retain(|id| photos.contains(id));
        self.viewer = self.viewer.filter(|state| photos.contains(state.id));
        self.forget_similar_of_others();
        self.library_changed();
        removed
    }

    /// Tags the photos a cancel left untagged.
    pub(super) fn resume(&mut self) {
        let paths = self.photos.resume_not_tagged();
        if !paths.is_empty() {
            self.tag(paths);
        }
    }

    /// Opens the Duplicates view, comparing the library's tagged photos, or closes it.
    pub(super) fn show_duplicates(&mut self, show: bool) {
        if !show {
            self.duplicates = None;
            return;
        }
        self.viewer = None;
        let tagged = self.photos.tagged_paths();
        self.worker.send(Command::FindDuplicates { within: Some(tagged) });
        self.duplicates = Some(DuplicatesView::waiting(self.settings.duplicate_threshold));
    }

    /// Asks for the photos most similar to this one.
    pub(super) fn find_similar(&mut self, id: PhotoId) {
        let Some(query) = self.photos.get(id).map(|photo| photo.path.clone()) else { return };
        self.worker.send(Command::FindSimilar { query: query.clone(), k: SIMILAR_COUNT, within: None });
        self.similar = Some(SimilarView { query, results: None });
    }

    /// Selects a photo by path, adding it to the list if it is not there yet.
    pub(super) fn select_path(&mut self, path: &Path) {
        let id = match self.photos.id_of(path) {
            Some(id) => id,
            None => {
                let id = self.photos.queue(path.to_owned(), None);
                self.add_paths(vec![path.to_owned()]);
                id
            }
        };
        if self.selection.focus() != Some(id) {
            self.selection.pick(id, Pick::Only, &[]);
        }
        self.scroll_to_selected = true;
    }

    /// Starts a worker with the current options; queued photos are sent again.
    pub(super) fn restart_worker(&mut self, ctx: &egui::Context) {
        let wake = ctx.clone();
        self.worker.restart(self.options.worker.clone(), Box::new(move || wake.request_repaint()));
        // The old worker's events, its confirmation of a cancel among them, are gone with it.
        self.cancel_unconfirmed = false;
        self.model_status = ModelStatus::Locating;
        let queued = self.photos.iter().map(|(_, photo)| photo).filter(|photo| photo.state == PhotoState::Queued);
        let again = paths_to_send_again(std::mem::take(&mut self.job_paths), queued.map(|p| p.path.as_path()));
        if !again.is_empty() {
            self.tag(again);
        }
    }

    /// Starts the model again, then scans the remembered folders and tags what is waiting.
    pub(super) fn retry_model(&mut self, ctx: &egui::Context) {
        self.restart_worker(ctx);
        let roots: Vec<PathBuf> = self.photos.roots().iter().filter(|p| p.exists()).cloned().collect();
        self.resume();
        if !roots.is_empty() {
            self.tag(roots);
        }
    }
}

/// What a restarted worker is given: every path of the unfinished job (folders whose scan may
/// not have finished among them), and the queued photos those do not already hold.
fn paths_to_send_again<'a>(job_paths: Vec<PathBuf>, queued: impl Iterator<Item = &'a Path>) -> Vec<PathBuf> {
    let outside: Vec<PathBuf> =
        queued.filter(|photo| !job_paths.iter().any(|path| photo.starts_with(path))).map(Path::to_owned).collect();
    job_paths.into_iter().chain(outside).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn a_restarted_worker_gets_the_unfinished_job_and_the_queued_photos_outside_it() {
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

//! The window's layout: every view drawn from the app's state, and the keyboard shortcuts,
//! collected as actions.

use std::path::Path;

use crate::gui::action::Action;
use crate::gui::confirm;
use crate::gui::duplicates;
use crate::gui::picker;
use crate::gui::settings::{self, Facts};
use crate::gui::{details, grid, sidebar, similar_strip, status, viewer};
use crate::model::weights::ModelSource;
use crate::worker::ModelStatus;

use super::{App, Modal};

impl App {
    /// The keyboard shortcuts that act on the whole window.
    pub(super) fn shortcuts(&self, ctx: &egui::Context, actions: &mut Vec<Action>) {
        let typing = ctx.egui_wants_keyboard_input();
        let control_focused = ctx.memory(|m| m.focused().is_some());
        let dialog_open = self.modal.is_some();
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
            if let Some(id) = self.selection.focus().filter(|_| !control_focused)
                && (i.consume_key(egui::Modifiers::NONE, egui::Key::Enter)
                    || i.consume_key(egui::Modifiers::NONE, egui::Key::Space))
            {
                actions.push(Action::OpenViewer(id));
            }
            if let Some(id) = self.selection.focus()
                && i.consume_key(egui::Modifiers::NONE, egui::Key::S)
            {
                actions.push(Action::FindSimilar(id));
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
    pub(super) fn views(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
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
        let viewed = self.viewer.filter(|state| self.photos.contains(state.id));
        if let Some(state) = viewed {
            let (photos, visible) = self.photos.with_visible();
            let position = (visible.iter().position(|&id| id == state.id).unwrap_or(0), visible.len());
            let photo = photos.get(state.id).expect("the viewer's photo is in the list");
            let view = viewer::Viewer { photo, position, zoom: state.zoom };
            viewer::show(ui, &view, &mut self.thumbnails, &mut actions);
            self.stats.cells_built = 0;
        } else if let Some(view) = &self.duplicates {
            duplicates::central(ui, view, &mut self.thumbnails, &mut actions);
            self.stats.cells_built = 0;
        } else {
            if let Some(similar) = &self.similar {
                similar_strip::strip(ui, similar, &mut self.thumbnails, &mut actions);
            }
            let total = self.photos.len();
            let folder = self.photos.folder().map(Path::to_owned);
            let sidebar = sidebar::Sidebar {
                roots: self.photos.roots(),
                counts: self.photos.root_counts(),
                total,
                folder: folder.as_deref(),
            };
            sidebar::panel(ui, &sidebar, &mut actions);
            let details = details::Details {
                selected: self.selection.focus().and_then(|id| Some((id, self.photos.get(id)?))),
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
            self.measure_peak(ui.ctx());
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
                speed: self.model_speed,
                peak: self.cpu_peak,
            };
            settings::window(ui.ctx(), under_toolbar, &self.settings, &facts, &mut actions);
        }
        match &self.modal {
            Some(Modal::ConfirmSidecars(plan)) => confirm::sidecars(ui.ctx(), plan, &mut actions),
            Some(Modal::ConfirmClearCache) => confirm::clear_cache(ui.ctx(), self.cache_bytes, &mut actions),
            Some(Modal::ConfirmTrashDuplicates) => {
                if let Some(view) = &self.duplicates {
                    duplicates::confirm_trash(ui.ctx(), view, &mut actions);
                }
            }
            Some(Modal::PathEntry(entry)) => picker::entry(ui.ctx(), entry, &mut actions),
            None => {}
        }
        actions
    }

    pub(super) fn drop_overlay(&self, ctx: &egui::Context) {
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

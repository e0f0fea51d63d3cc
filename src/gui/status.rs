//! The toolbar (adding photos, sorting, filtering), the status bar (model state, progress,
//! cancel) and the errors panel.

use std::path::PathBuf;

use crate::worker::{ModelStatus, Progress, Task};

use super::action::Action;
use super::photos::{Counts, SortKey};
use crate::units::human_bytes;

/// What the toolbar shows.
pub struct Toolbar<'a> {
    /// The grid's order.
    pub sort: SortKey,
    /// The grid's filter text.
    pub filter: &'a str,
    /// With a filter: how many photos match it, of how many.
    pub matching: Option<(usize, usize)>,
    /// Whether the filter box takes the keyboard focus now (Ctrl+F).
    pub focus_filter: bool,
    /// Side of the grid's tiles, in points.
    pub tile_size: f32,
    /// Whether the settings window is open.
    pub settings_open: bool,
}

/// The top bar.
pub fn toolbar(ui: &mut egui::Ui, view: &Toolbar<'_>, actions: &mut Vec<Action>) {
    egui::Panel::top("toolbar").show(ui, |ui| {
        ui.horizontal(|ui| {
            if ui.button("Open images…").clicked() {
                actions.push(Action::OpenImages);
            }
            if ui.button("Open folder…").clicked() {
                actions.push(Action::OpenFolder);
            }
            ui.separator();
            let sort_label = ui.label("Sort by");
            let mut sort = view.sort;
            egui::ComboBox::from_id_salt("sort")
                .selected_text(sort.name())
                .show_ui(ui, |ui| {
                    for key in SortKey::ALL {
                        ui.selectable_value(&mut sort, key, key.name());
                    }
                })
                .response
                .labelled_by(sort_label.id);
            if sort != view.sort {
                actions.push(Action::SetSort(sort));
            }
            ui.separator();
            let filter_label = ui.label("Filter");
            let mut filter = view.filter.to_owned();
            let edit =
                ui.add(egui::TextEdit::singleline(&mut filter).hint_text("label, name or folder").desired_width(180.0));
            if view.focus_filter {
                edit.request_focus();
            }
            edit.labelled_by(filter_label.id);
            if filter != view.filter {
                actions.push(Action::SetFilter(filter));
            }
            if let Some((shown, total)) = view.matching {
                ui.label(format!("{shown} of {total} match"));
            }
            ui.separator();
            let mut tile_size = view.tile_size;
            let size_label = ui.label("Size");
            ui.add(egui::Slider::new(&mut tile_size, super::grid::TILE_SIZES).show_value(false))
                .labelled_by(size_label.id);
            if tile_size != view.tile_size {
                actions.push(Action::SetTileSize(tile_size));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Settings").clicked() {
                    actions.push(Action::ShowSettings(!view.settings_open));
                }
                let duplicates =
                    ui.button("Duplicates").on_hover_text("Find exact and near copies among the photos (D)");
                if duplicates.clicked() {
                    actions.push(Action::ShowDuplicates(true));
                }
            });
        });
    });
}

/// What the status bar shows.
pub struct StatusBar<'a> {
    /// The model's state.
    pub model: &'a ModelStatus,
    /// The running or last job's progress.
    pub progress: Progress,
    /// The whole list's photos in each state.
    pub counts: Counts,
    /// Whether a job is running.
    pub busy: bool,
    /// A long task besides tagging and how far it is: `(task, done, total)`.
    pub working: Option<(Task, u64, u64)>,
    /// How many files failed.
    pub errors: usize,
    /// Whether the errors panel is open.
    pub errors_open: bool,
    /// The latest notice, if any.
    pub notice: Option<&'a str>,
}

/// The bottom bar: model state, tagging progress with Cancel, errors toggle, notices.
pub fn status_bar(ui: &mut egui::Ui, view: &StatusBar<'_>, actions: &mut Vec<Action>) {
    egui::Panel::bottom("status").show(ui, |ui| {
        ui.horizontal(|ui| {
            model_state(ui, view.model, actions);
            ui.separator();
            let p = view.progress;
            if let Some((task, done, total)) = view.working {
                let fraction = if total > 0 { done as f32 / total as f32 } else { 0.0 };
                let text = format!("{}: {done} of {total}", task.describe());
                ui.add(egui::ProgressBar::new(fraction).desired_width(320.0).text(text));
                if ui.button("Cancel").clicked() {
                    actions.push(Action::Cancel);
                }
            } else if view.busy {
                let fraction = if p.total > 0 { p.done as f32 / p.total as f32 } else { 0.0 };
                let eta = p.eta_secs.map(|s| format!(", {} left", duration(s))).unwrap_or_default();
                let text = format!("{} of {} photos, {:.2}/s{eta}", p.done, p.total, p.images_per_second);
                ui.add(egui::ProgressBar::new(fraction).desired_width(320.0).text(text));
                if ui.button("Cancel").clicked() {
                    actions.push(Action::Cancel);
                }
            } else if view.counts.total > 0 {
                let c = view.counts;
                let mut text = format!("{} photos: {} tagged, {} failed", c.total, c.tagged, c.failed);
                if c.not_tagged > 0 {
                    text.push_str(&format!(", {} not tagged yet", c.not_tagged));
                }
                ui.label(text);
                if c.not_tagged > 0 && ui.button("Resume").clicked() {
                    actions.push(Action::Resume);
                }
            } else {
                ui.label("Drop photos or folders here, or use Open.");
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let count = view.errors;
                if count > 0 && ui.button(format!("Errors ({count})")).clicked() {
                    actions.push(Action::ShowErrors(!view.errors_open));
                }
                if let Some(notice) = view.notice {
                    ui.label(notice);
                }
            });
        });
    });
}

fn model_state(ui: &mut egui::Ui, status: &ModelStatus, actions: &mut Vec<Action>) {
    match status {
        ModelStatus::Locating => {
            ui.spinner();
            ui.label("Looking for the model…");
        }
        ModelStatus::Downloading { file, done, total, eta_secs } => {
            let fraction = if *total > 0 { *done as f32 / *total as f32 } else { 0.0 };
            let eta = eta_secs.map(|s| format!(", {} left", duration(s))).unwrap_or_default();
            let text = format!("Downloading {file}: {} of {}{eta}", human_bytes(*done), human_bytes(*total));
            ui.add(egui::ProgressBar::new(fraction).desired_width(360.0).text(text));
        }
        ModelStatus::Loading { device } => {
            ui.spinner();
            ui.label(format!("Loading the model on the {device}…"));
        }
        ModelStatus::Ready { device, .. } => {
            ui.label(format!("Model ready on the {device}"));
        }
        ModelStatus::Failed(error) => {
            // One short line: the whole reason is in the errors panel, behind Details.
            ui.colored_label(ui.visuals().error_fg_color, "Model unavailable").on_hover_text(error.to_string());
            if ui.button("Details").clicked() {
                actions.push(Action::ShowErrors(true));
            }
            if error.files_missing() && ui.button("Choose model folder…").clicked() {
                actions.push(Action::ChooseModelFolder);
            }
            if ui.button("Retry").clicked() {
                actions.push(Action::RetryModel);
            }
        }
    }
}

/// The list of files that failed, one line each, under the model's failure if it failed.
pub fn errors_panel(ui: &mut egui::Ui, errors: &[(PathBuf, String)], model: &ModelStatus, actions: &mut Vec<Action>) {
    egui::Panel::bottom("errors").resizable(true).default_size(140.0).show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.strong(format!("{} files could not be tagged", errors.len()));
            if ui.button("Clear").clicked() {
                actions.push(Action::ClearErrors);
            }
        });
        if let ModelStatus::Failed(error) = model {
            ui.colored_label(ui.visuals().error_fg_color, error.to_string());
        }
        let row = ui.text_style_height(&egui::TextStyle::Body);
        egui::ScrollArea::vertical().auto_shrink([false, false]).show_rows(ui, row, errors.len(), |ui, rows| {
            for (_, error) in &errors[rows] {
                ui.label(error);
            }
        });
    });
}

/// Seconds as a person would say them.
fn duration(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

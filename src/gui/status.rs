//! The toolbar (adding photos, sorting, filtering), the status bar (model state, progress,
//! cancel) and the errors panel.

use crate::worker::ModelStatus;

use super::app::App;
use super::library::SortKey;
use super::settings::human_bytes;

/// The top bar.
pub fn toolbar(ui: &mut egui::Ui, app: &mut App) {
    egui::Panel::top("toolbar").show(ui, |ui| {
        ui.horizontal(|ui| {
            if ui.button("Open images…").clicked() {
                app.open_images_dialog();
            }
            if ui.button("Open folder…").clicked() {
                app.open_folder_dialog();
            }
            ui.separator();
            let sort_label = ui.label("Sort by");
            let mut sort = app.library.sort();
            egui::ComboBox::from_id_salt("sort")
                .selected_text(sort.name())
                .show_ui(ui, |ui| {
                    for key in SortKey::ALL {
                        ui.selectable_value(&mut sort, key, key.name());
                    }
                })
                .response
                .labelled_by(sort_label.id);
            app.library.set_sort(sort);
            ui.separator();
            let filter_label = ui.label("Filter");
            let mut filter = app.library.filter().to_owned();
            let edit =
                ui.add(egui::TextEdit::singleline(&mut filter).hint_text("label, e.g. cat").desired_width(180.0));
            edit.labelled_by(filter_label.id);
            app.library.set_filter(&filter);
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Settings").clicked() {
                    app.show_settings = !app.show_settings;
                }
            });
        });
    });
}

/// The bottom bar: model state, tagging progress with Cancel, errors toggle, notices.
pub fn status_bar(ui: &mut egui::Ui, app: &mut App) {
    egui::Panel::bottom("status").show(ui, |ui| {
        ui.horizontal(|ui| {
            model_state(ui, &app.model_status);
            ui.separator();
            let p = app.progress;
            if app.busy {
                let fraction = if p.total > 0 { p.done as f32 / p.total as f32 } else { 0.0 };
                let eta = p.eta_secs.map(|s| format!(", {} left", duration(s))).unwrap_or_default();
                let text = format!("{} of {} photos, {:.2}/s{eta}", p.done, p.total, p.images_per_second);
                ui.add(egui::ProgressBar::new(fraction).desired_width(320.0).text(text));
                if ui.button("Cancel").clicked() {
                    app.cancel();
                }
            } else if p.total > 0 {
                ui.label(format!(
                    "{} photos: {} tagged, {} from cache, {} failed",
                    p.done, p.inferred, p.cached, p.failed
                ));
            } else {
                ui.label("Drop photos or folders here, or use Open.");
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let count = app.errors.len();
                if count > 0 && ui.button(format!("Errors ({count})")).clicked() {
                    app.show_errors = !app.show_errors;
                }
                if let Some(notice) = app.notices.last() {
                    ui.label(notice);
                }
            });
        });
    });
}

fn model_state(ui: &mut egui::Ui, status: &ModelStatus) {
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
        ModelStatus::Failed(reason) => {
            let first_line = reason.lines().next().unwrap_or(reason);
            ui.colored_label(ui.visuals().error_fg_color, format!("Model unavailable: {first_line}"))
                .on_hover_text(reason);
        }
    }
}

/// The list of files that failed, one line each.
pub fn errors_panel(ui: &mut egui::Ui, app: &mut App) {
    egui::Panel::bottom("errors").resizable(true).default_size(140.0).show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.strong(format!("{} files could not be tagged", app.errors.len()));
            if ui.button("Clear").clicked() {
                app.errors.clear();
                app.show_errors = false;
            }
        });
        if let ModelStatus::Failed(reason) = &app.model_status {
            ui.colored_label(ui.visuals().error_fg_color, reason);
        }
        let row = ui.text_style_height(&egui::TextStyle::Body);
        egui::ScrollArea::vertical().auto_shrink([false, false]).show_rows(ui, row, app.errors.len(), |ui, rows| {
            for (_, error) in &app.errors[rows] {
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

//! The details pane: the selected photo large, its path, its labels with probability bars,
//! and photos that look like it.

use egui::Vec2;

use super::app::App;
use super::library::PhotoState;
use super::thumbnails::Size;

/// The right-hand panel.
pub fn panel(ui: &mut egui::Ui, app: &mut App) {
    egui::Panel::right("details").resizable(true).default_size(380.0).min_size(260.0).show(ui, |ui| {
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            let Some(index) = app.selected else {
                ui.label("Select a photo to see its labels.");
                return;
            };
            photo(ui, app, index);
            ui.separator();
            similar(ui, app);
        });
    });
}

fn photo(ui: &mut egui::Ui, app: &mut App, index: usize) {
    let photo = app.library.photo(index).clone();
    let width = ui.available_width();
    match app.thumbnails.get(&photo.path, Size::Preview) {
        Some(texture) => {
            let size = texture.size_vec2();
            let scale = (width / size.x).min(width / size.y);
            ui.add(egui::Image::new((texture.id(), size * scale)));
        }
        None if app.thumbnails.failed(&photo.path, Size::Preview) => {}
        None => {
            ui.allocate_ui(Vec2::new(width, width * 0.66), |ui| {
                ui.centered_and_justified(|ui| ui.spinner());
            });
        }
    }
    ui.add(egui::Label::new(egui::RichText::new(photo.path.display().to_string()).weak()).wrap());
    match &photo.state {
        PhotoState::Queued => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Waiting to be tagged…");
            });
        }
        PhotoState::Failed(error) => {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        PhotoState::Tagged(labels) => {
            ui.heading("Labels");
            for label in labels {
                ui.label(&label.label);
                let bar = egui::ProgressBar::new(label.prob).text(format!("{:.1}%", label.prob * 100.0));
                ui.add(bar);
            }
            ui.add_space(6.0);
            if ui.button("Find similar").clicked() {
                app.find_similar(index);
            }
        }
    }
}

fn similar(ui: &mut egui::Ui, app: &mut App) {
    let Some(view) = &app.similar else { return };
    let query_name = view.query.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    ui.heading(format!("Similar to {query_name}"));
    let results = match &view.results {
        None => {
            ui.spinner();
            return;
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
            return;
        }
        Some(Ok(results)) => results.clone(),
    };
    if results.is_empty() {
        ui.label("No other tagged photos yet.");
    }
    let mut clicked = None;
    for (rank, m) in results.iter().enumerate() {
        let name = m.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        ui.horizontal(|ui| {
            // A fixed square slot keeps the list aligned whatever the photos' shapes.
            let (slot, _) = ui.allocate_exact_size(Vec2::splat(56.0), egui::Sense::hover());
            if let Some(texture) = app.thumbnails.get(&m.path, Size::Thumb) {
                let size = texture.size_vec2();
                let fitted = egui::Rect::from_center_size(slot.center(), size * (56.0 / size.x.max(size.y)));
                let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
                ui.painter().image(texture.id(), fitted, uv, egui::Color32::WHITE);
            }
            let text = format!("{}. {name}  ({:.3})", rank + 1, m.score);
            if ui.button(text).on_hover_text(m.path.display().to_string()).clicked() {
                clicked = Some(m.path.clone());
            }
        });
    }
    if let Some(path) = clicked {
        app.select_path(&path);
    }
}

//! The details pane: the selected photo large, its path, its labels with probability bars,
//! and photos that look like it.

use egui::Vec2;

use super::app::{Action, SimilarView};
use super::photos::{Photo, PhotoState};
use super::thumbnails::{Size, Thumbnails};

/// What the details pane shows.
pub struct Details<'a> {
    /// The selected photo and its index, if any.
    pub selected: Option<(usize, &'a Photo)>,
    /// The last "Find similar" query and its results, if any.
    pub similar: Option<&'a SimilarView>,
}

/// The right-hand panel.
pub fn panel(ui: &mut egui::Ui, view: &Details<'_>, thumbnails: &mut Thumbnails, actions: &mut Vec<Action>) {
    egui::Panel::right("details").resizable(true).default_size(380.0).min_size(260.0).show(ui, |ui| {
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            let Some((index, selected)) = view.selected else {
                ui.label("Select a photo to see its labels.");
                return;
            };
            photo(ui, index, selected, thumbnails, actions);
            ui.separator();
            if let Some(similar_view) = view.similar {
                similar(ui, similar_view, thumbnails, actions);
            }
        });
    });
}

fn photo(ui: &mut egui::Ui, index: usize, photo: &Photo, thumbnails: &mut Thumbnails, actions: &mut Vec<Action>) {
    let width = ui.available_width();
    match thumbnails.get(&photo.path, Size::Preview) {
        Some(texture) => {
            let size = texture.size_vec2();
            let scale = (width / size.x).min(width / size.y);
            ui.add(egui::Image::new((texture.id(), size * scale)));
        }
        None if thumbnails.failed(&photo.path, Size::Preview) => {}
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
        PhotoState::NotTagged => {
            ui.label("Not tagged yet: the job was cancelled before its turn. Resume tags it.");
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
                actions.push(Action::FindSimilar(index));
            }
        }
    }
}

fn similar(ui: &mut egui::Ui, view: &SimilarView, thumbnails: &mut Thumbnails, actions: &mut Vec<Action>) {
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
        Some(Ok(results)) => results,
    };
    if results.is_empty() {
        ui.label("No other tagged photos yet.");
    }
    for (rank, m) in results.iter().enumerate() {
        let name = m.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        ui.horizontal(|ui| {
            // A fixed square slot keeps the list aligned whatever the photos' shapes.
            let (slot, _) = ui.allocate_exact_size(Vec2::splat(56.0), egui::Sense::hover());
            if let Some(texture) = thumbnails.get(&m.path, Size::Thumb) {
                let size = texture.size_vec2();
                let fitted = egui::Rect::from_center_size(slot.center(), size * (56.0 / size.x.max(size.y)));
                let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
                ui.painter().image(texture.id(), fitted, uv, egui::Color32::WHITE);
            }
            let text = format!("{}. {name}  ({:.3})", rank + 1, m.score);
            if ui.button(text).on_hover_text(m.path.display().to_string()).clicked() {
                actions.push(Action::SelectPath(m.path.clone()));
            }
        });
    }
}

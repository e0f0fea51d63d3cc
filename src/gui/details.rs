//! The details pane: the selected photo large, its path and its labels with probability bars.

use egui::Vec2;

use crate::library::photo_info;

use super::action::Action;
use super::photos::{Photo, PhotoId, PhotoState};
use super::thumbnails::{Size, Thumbnails};

/// What the details pane shows.
pub struct Details<'a> {
    /// The selected photo with the focus and its id, if any.
    pub selected: Option<(PhotoId, &'a Photo)>,
    /// How many photos are selected.
    pub selected_count: usize,
}

/// The right-hand panel.
pub fn panel(ui: &mut egui::Ui, view: &Details<'_>, thumbnails: &mut Thumbnails, actions: &mut Vec<Action>) {
    egui::Panel::right("details").resizable(true).default_size(340.0).min_size(240.0).show(ui, |ui| {
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            let Some((id, selected)) = view.selected else {
                ui.label("Select a photo to see its labels.");
                return;
            };
            if view.selected_count > 1 {
                ui.strong(format!("{} photos selected", view.selected_count));
                ui.label("Right-click one of them for what can be done with all of them.");
                ui.separator();
            }
            photo(ui, id, selected, thumbnails, actions);
        });
    });
}

fn photo(ui: &mut egui::Ui, id: PhotoId, photo: &Photo, thumbnails: &mut Thumbnails, actions: &mut Vec<Action>) {
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
    let taken = photo_info::taken_text(&photo.info).map(|t| format!("Taken {t}"));
    let facts: Vec<String> = taken.into_iter().chain(photo.info.camera.clone()).collect();
    if !facts.is_empty() {
        ui.label(facts.join(" · "));
    }
    match &photo.state {
        PhotoState::Queued => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Waiting to be tagged…");
            });
        }
        PhotoState::Failed(error) => {
            ui.colored_label(ui.visuals().error_fg_color, error.to_string());
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
            if ui.button("Find similar").on_hover_text("Photos that look like this one (S)").clicked() {
                actions.push(Action::FindSimilar(id));
            }
        }
    }
}

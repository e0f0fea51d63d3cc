//! The viewer: one photo as large as the window allows, zoomable, with the previous and next
//! photos of the grid one key away.

use egui::{Rect, Sense, Vec2};

use super::action::Action;
use super::photos::Photo;
use super::thumbnails::{Size, Thumbnails};

/// What the viewer shows.
pub struct Viewer<'a> {
    /// The photo.
    pub photo: &'a Photo,
    /// Its position in the grid's order, and how many the grid shows.
    pub position: (usize, usize),
    /// Magnification over the fitted size (1 fits the photo in the window).
    pub zoom: f32,
}

/// Draws the viewer over the central area; its buttons and keys become actions.
pub fn show(ui: &mut egui::Ui, view: &Viewer<'_>, thumbnails: &mut Thumbnails, actions: &mut Vec<Action>) {
    keys(ui, actions);
    egui::CentralPanel::default().show(ui, |ui| {
        ui.horizontal(|ui| {
            if ui.button("Previous").clicked() {
                actions.push(Action::ViewerStep(-1));
            }
            if ui.button("Next").clicked() {
                actions.push(Action::ViewerStep(1));
            }
            ui.label(format!("{} of {}: {}", view.position.0 + 1, view.position.1, view.photo.name));
            ui.separator();
            if ui.button("Zoom out").clicked() {
                actions.push(Action::ViewerZoom(view.zoom / 1.25));
            }
            if ui.button("Fit").clicked() {
                actions.push(Action::ViewerZoom(1.0));
            }
            if ui.button("Zoom in").clicked() {
                actions.push(Action::ViewerZoom(view.zoom * 1.25));
            }
            ui.separator();
            if ui.button("Open with the system viewer").clicked() {
                actions.push(Action::OpenExternally(view.photo.path.clone()));
            }
            if ui.button("Show in folder").clicked() {
                actions.push(Action::ShowInFolder(view.photo.path.clone()));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Close").clicked() {
                    actions.push(Action::CloseViewer);
                }
            });
        });
        ui.separator();
        let Some(texture) = thumbnails.get(&view.photo.path, Size::Full) else {
            if thumbnails.failed(&view.photo.path, Size::Full) {
                ui.colored_label(ui.visuals().error_fg_color, "This photo cannot be shown.");
            } else {
                ui.centered_and_justified(|ui| ui.spinner());
            }
            return;
        };
        let available = ui.available_size();
        let image = texture.size_vec2();
        let fit = (available.x / image.x).min(available.y / image.y).min(1.0);
        let size = image * fit * view.zoom;
        egui::ScrollArea::both().auto_shrink([false, false]).show(ui, |ui| {
            let area = Vec2::new(size.x.max(ui.available_width()), size.y.max(ui.available_height()));
            let (rect, response) = ui.allocate_exact_size(area, Sense::click());
            let image_rect = Rect::from_center_size(rect.center(), size);
            ui.painter().image(
                texture.id(),
                image_rect,
                Rect::from_min_max([0.0, 0.0].into(), [1.0, 1.0].into()),
                egui::Color32::WHITE,
            );
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, &view.photo.name));
            if response.double_clicked() {
                actions.push(Action::ViewerZoom(if view.zoom > 1.0 { 1.0 } else { 2.0 }));
            }
        });
    });
}

/// Left and Right step through the grid's photos, + and - zoom, Escape closes.
fn keys(ui: &egui::Ui, actions: &mut Vec<Action>) {
    if ui.ctx().egui_wants_keyboard_input() {
        return;
    }
    ui.input(|i| {
        if i.key_pressed(egui::Key::ArrowRight) || i.key_pressed(egui::Key::Space) {
            actions.push(Action::ViewerStep(1));
        }
        if i.key_pressed(egui::Key::ArrowLeft) {
            actions.push(Action::ViewerStep(-1));
        }
        if i.key_pressed(egui::Key::Plus) || i.key_pressed(egui::Key::Equals) {
            actions.push(Action::ViewerZoomBy(1.25));
        }
        if i.key_pressed(egui::Key::Minus) {
            actions.push(Action::ViewerZoomBy(0.8));
        }
        if i.key_pressed(egui::Key::Escape) {
            actions.push(Action::CloseViewer);
        }
    });
}

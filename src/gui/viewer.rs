//! The viewer: one photo as large as the window allows, zoomable, with the previous and next
//! photos of the grid one key away.

use egui::{Rect, Sense, Vec2};

use super::action::Action;
use super::photos::{Photo, PhotoId};
use super::thumbnails::{Size, Thumbnails};

/// Magnifications the viewer allows, over the fitted size.
const ZOOM: std::ops::RangeInclusive<f32> = 0.1..=16.0;

/// The viewer's state while it is open: which photo, at what magnification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewerState {
    /// The photo shown.
    pub id: PhotoId,
    /// Magnification over the fitted size.
    pub zoom: f32,
}

impl ViewerState {
    /// The viewer opened on a photo, fitted to the window.
    pub fn open(id: PhotoId) -> Self {
        Self { id, zoom: 1.0 }
    }

    /// Sets the magnification, within what the viewer allows.
    pub fn zoom_to(&mut self, zoom: f32) {
        self.zoom = zoom.clamp(*ZOOM.start(), *ZOOM.end());
    }

    /// Multiplies the magnification, within what the viewer allows.
    pub fn zoom_by(&mut self, factor: f32) {
        self.zoom_to(self.zoom * factor);
    }

    /// Moves `step` photos on in `visible` (the grid's order), stopping at its ends, and fits
    /// the new photo; `None` when the photo shown is not among them.
    pub fn step(&mut self, visible: &[PhotoId], step: isize) -> Option<PhotoId> {
        let position = visible.iter().position(|&id| id == self.id)?;
        let next = (position as isize + step).clamp(0, visible.len() as isize - 1) as usize;
        *self = Self::open(visible[next]);
        Some(self.id)
    }
}

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

#[cfg(test)]
mod state_tests {
    use super::*;
    use crate::gui::photos::PhotoList;

    #[test]
    fn the_viewer_steps_through_the_grid_order_and_stops_at_its_ends() {
        let mut list = PhotoList::default();
        let id: Vec<PhotoId> = (0..10).map(|i| list.queue(format!("/p/{i}.jpg").into(), None)).collect();
        let visible = [id[4], id[1], id[7]];
        let mut state = ViewerState::open(id[1]);
        state.zoom_by(3.0);
        assert_eq!(state.step(&visible, 1), Some(id[7]));
        assert_eq!(state.zoom, 1.0, "a new photo is fitted");
        assert_eq!(state.step(&visible, 5), Some(id[7]), "the last photo stays");
        assert_eq!(state.step(&visible, -9), Some(id[4]), "the first photo stays");
        assert_eq!(ViewerState::open(id[9]).step(&visible, 1), None, "a photo no longer shown");
    }

    #[test]
    fn zoom_stays_within_bounds() {
        let mut list = PhotoList::default();
        let mut state = ViewerState::open(list.queue("/p/a.jpg".into(), None));
        state.zoom_by(1000.0);
        assert_eq!(state.zoom, 16.0);
        state.zoom_to(0.0);
        assert_eq!(state.zoom, 0.1);
    }
}

//! The strip of photos that look like the selected one, along the bottom of the grid: a
//! single row that scrolls sideways, so it fits a small window and leaves the grid in view.

use std::path::PathBuf;

use egui::{Sense, Vec2};

use super::action::Action;
use super::card;
use super::thumbnails::Thumbnails;
use crate::library::search::Match;
use crate::worker::PhotoError;

/// The similarity results shown in the strip under the grid.
pub struct SimilarView {
    /// The query photo.
    pub query: PathBuf,
    /// Ranked matches, an error, or `None` while waiting.
    pub results: Option<Result<Vec<Match>, PhotoError>>,
}

/// Side of a result's thumbnail, in points.
const THUMB: f32 = 96.0;
/// Height of the two caption lines under it.
const CAPTION: f32 = 2.0 * card::LINE + 2.0;

/// The strip, as a panel at the bottom of the window's remaining space.
pub fn strip(ui: &mut egui::Ui, view: &SimilarView, thumbnails: &mut Thumbnails, actions: &mut Vec<Action>) {
    egui::Panel::bottom("similar").resizable(false).show(ui, |ui| {
        ui.horizontal(|ui| {
            let query_name = view.query.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            ui.strong(format!("Similar to {query_name}"));
            if let Some(Ok(results)) = &view.results {
                ui.label(format!("{} photos, most alike first", results.len()));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Close").on_hover_text("Hide the similar photos").clicked() {
                    actions.push(Action::CloseSimilar);
                }
            });
        });
        match &view.results {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Comparing with every tagged photo…");
                });
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e.to_string());
            }
            Some(Ok(results)) if results.is_empty() => {
                ui.label("No other tagged photos yet.");
            }
            Some(Ok(results)) => {
                egui::ScrollArea::horizontal().auto_shrink([false, true]).show(ui, |ui| {
                    ui.horizontal(|ui| {
                        for (rank, m) in results.iter().enumerate() {
                            card(ui, rank + 1, m, thumbnails, actions);
                        }
                    });
                });
            }
        }
    });
}

/// One result: its thumbnail, name and score; a click selects it.
fn card(
    ui: &mut egui::Ui,
    rank: usize,
    m: &crate::library::search::Match,
    thumbnails: &mut Thumbnails,
    actions: &mut Vec<Action>,
) {
    let name = m.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (rect, response) = ui.allocate_exact_size(Vec2::new(THUMB, THUMB + CAPTION), Sense::click());
    let label = format!("{rank}. {name}");
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    if response.clicked() {
        actions.push(Action::SelectPath(m.path.clone()));
    }
    if !ui.is_rect_visible(rect) {
        return;
    }
    let captions =
        [(label, ui.visuals().text_color()), (format!("similarity {:.3}", m.score), ui.visuals().weak_text_color())];
    card::paint(ui, rect, THUMB, response.hovered(), &m.path, thumbnails, &captions);
    response.on_hover_text(m.path.display().to_string());
}

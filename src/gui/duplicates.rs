//! The Duplicates view: groups of copies side by side, the photo to keep marked, a threshold
//! slider that regroups at once, and a move of the other copies to the system trash after a
//! confirmation that lists them.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::TimeZone;
use egui::{Sense, Vec2};

use crate::library::duplicates::{DuplicateGraph, DuplicatePhoto, Group, LOWEST_THRESHOLD, Member};

use super::action::Action;
use super::card;
use super::thumbnails::Thumbnails;
use crate::units::human_bytes;
use crate::worker::LibraryError;

/// Side of a copy's thumbnail, in points.
const THUMB: f32 = 112.0;
/// Height of the three caption lines under it.
const CAPTION: f32 = 3.0 * card::LINE + 3.0;
/// Height of a group's heading line.
const HEADING: f32 = 22.0;

/// What the view shows: the graph once it has come, grouped at the slider's threshold.
pub struct DuplicatesView {
    /// The photos and their similarities, an error, or `None` while they are compared.
    pub graph: Option<Result<Arc<DuplicateGraph>, String>>,
    /// The similarity from which photos group.
    pub threshold: f32,
    /// The groups at `threshold`.
    pub groups: Vec<Group>,
    /// Whether a move to the trash is under way.
    pub moving: bool,
}

impl DuplicatesView {
    /// A view waiting for the comparison, grouping at `threshold`.
    pub fn waiting(threshold: f32) -> Self {
        Self { graph: None, threshold, groups: Vec::new(), moving: false }
    }

    /// Shows the comparison's outcome.
    pub fn set_graph(&mut self, graph: Result<Arc<DuplicateGraph>, LibraryError>) {
        self.graph = Some(graph.map_err(|e| format!("duplicates could not be looked for: {e}")));
        self.regroup();
    }

    /// Groups again at a new threshold.
    pub fn set_threshold(&mut self, threshold: f32) {
        self.threshold = threshold;
        self.regroup();
    }

    fn regroup(&mut self) {
        self.groups = match &self.graph {
            Some(Ok(graph)) => graph.groups(self.threshold),
            _ => Vec::new(),
        };
    }

    /// The photos that would go to the trash: every group's members but the one to keep.
    pub fn others(&self) -> Vec<&DuplicatePhoto> {
        let Some(Ok(graph)) = &self.graph else { return Vec::new() };
        self.groups.iter().flat_map(|g| g.members.iter().filter(|m| !m.keep)).map(|m| &graph.photos[m.photo]).collect()
    }

    /// The paths of [`Self::others`].
    pub fn other_paths(&self) -> Vec<PathBuf> {
        self.others().into_iter().map(|p| p.path.clone()).collect()
    }
}

/// The view, filling the window's central area.
pub fn central(ui: &mut egui::Ui, view: &DuplicatesView, thumbnails: &mut Thumbnails, actions: &mut Vec<Action>) {
    egui::CentralPanel::default().show(ui, |ui| {
        let others = view.others();
        let bytes: u64 = others.iter().map(|p| p.bytes).sum();
        ui.horizontal(|ui| {
            ui.heading("Duplicates");
            ui.separator();
            let label = ui.label("Similarity at least");
            let mut threshold = view.threshold;
            ui.add(egui::Slider::new(&mut threshold, LOWEST_THRESHOLD..=1.0).fixed_decimals(3).step_by(0.001))
                .labelled_by(label.id)
                .on_hover_text("Exact copies always group; lower the similarity to take in looser copies");
            if threshold != view.threshold {
                actions.push(Action::SetDuplicateThreshold(threshold));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Close").on_hover_text("Back to the photos").clicked() {
                    actions.push(Action::ShowDuplicates(false));
                }
                let trash = ui.add_enabled(
                    !others.is_empty() && !view.moving,
                    egui::Button::new(format!("Move the others to the trash ({})…", others.len())),
                );
                if trash.clicked() {
                    actions.push(Action::AskToTrashDuplicates);
                }
            });
        });
        match &view.graph {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Comparing every tagged photo with its nearest neighbours…");
                });
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Some(Ok(_)) if view.groups.is_empty() => {
                ui.label("No duplicates among the tagged photos at this similarity.");
            }
            Some(Ok(graph)) => {
                ui.label(format!(
                    "{} groups; the suggested photo to keep (most pixels, then the largest file, then the oldest) \
                     is first in each. The other {} photos take {}.",
                    view.groups.len(),
                    others.len(),
                    human_bytes(bytes)
                ));
                if view.moving {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("Moving to the trash…");
                    });
                }
                ui.separator();
                let row_height = HEADING + THUMB + CAPTION + ui.spacing().item_spacing.y * 2.0;
                egui::ScrollArea::vertical().auto_shrink([false, false]).show_rows(
                    ui,
                    row_height,
                    view.groups.len(),
                    |ui, rows| {
                        for index in rows {
                            group_row(ui, index, &view.groups[index], graph, thumbnails, actions);
                        }
                    },
                );
            }
        }
    });
}

/// One group: a heading, then its photos in a row that scrolls sideways.
fn group_row(
    ui: &mut egui::Ui,
    index: usize,
    group: &Group,
    graph: &DuplicateGraph,
    thumbnails: &mut Thumbnails,
    actions: &mut Vec<Action>,
) {
    let spare: u64 = group.members.iter().filter(|m| !m.keep).map(|m| graph.photos[m.photo].bytes).sum();
    ui.strong(format!("Group {} · {} photos · {} could be freed", index + 1, group.members.len(), human_bytes(spare)));
    egui::ScrollArea::horizontal().id_salt(("duplicate-group", index)).auto_shrink([false, true]).show(ui, |ui| {
        ui.horizontal(|ui| {
            for member in &group.members {
                card(ui, member, &graph.photos[member.photo], thumbnails, actions);
            }
        });
    });
}

/// One photo of a group: thumbnail, name, size, dimensions and date, and whether to keep it.
fn card(
    ui: &mut egui::Ui,
    member: &Member,
    photo: &DuplicatePhoto,
    thumbnails: &mut Thumbnails,
    actions: &mut Vec<Action>,
) {
    let name = photo.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (rect, response) = ui.allocate_exact_size(Vec2::new(THUMB, THUMB + CAPTION), Sense::click());
    let verdict = if member.keep { "keep".to_owned() } else { format!("similarity {:.3}", member.score) };
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, format!("{name}, {verdict}")));
    if response.double_clicked() {
        actions.push(Action::OpenExternally(photo.path.clone()));
    }
    if !ui.is_rect_visible(rect) {
        return;
    }
    let visuals = ui.visuals();
    let strong = if member.keep { visuals.selection.stroke.color } else { visuals.text_color() };
    let weak = visuals.weak_text_color();
    let first_line = if member.keep { format!("Keep · {name}") } else { format!("{:.3} · {name}", member.score) };
    let captions = [
        (first_line, strong),
        (format!("{}×{} · {}", photo.width, photo.height, human_bytes(photo.bytes)), weak),
        (date_text(photo), weak),
    ];
    card::paint(ui, rect, THUMB, response.hovered(), &photo.path, thumbnails, &captions);
    if member.keep {
        let outline = (2.0, ui.visuals().selection.bg_fill);
        ui.painter().rect_stroke(rect, 4.0, outline, egui::StrokeKind::Inside);
    }
    response.on_hover_text(format!("{}\nDouble-click to open", photo.path.display()));
}

/// The photo's date on the local calendar, and whether it is the date taken or the file's.
fn date_text(photo: &DuplicatePhoto) -> String {
    let Some(date) = photo.time.and_then(|t| chrono::Local.timestamp_opt(t, 0).single()) else {
        return "date unknown".to_owned();
    };
    let day = date.format("%Y-%m-%d");
    if photo.time_is_taken { format!("taken {day}") } else { format!("file {day}") }
}

/// Asks before the other copies go to the trash, listing them; "Move" and "Cancel" become
/// actions.
pub fn confirm_trash(ctx: &egui::Context, view: &DuplicatesView, actions: &mut Vec<Action>) {
    let others = view.others();
    let bytes: u64 = others.iter().map(|p| p.bytes).sum();
    let modal = egui::Modal::new(egui::Id::unique("confirm-trash")).show(ctx, |ui| {
        ui.set_max_width(560.0);
        ui.heading(format!("Move {} photos to the trash?", others.len()));
        ui.label(format!(
            "These photos ({}) and their XMP sidecars go to the system trash, from where they can be restored. \
             The photo kept in each group stays where it is.",
            human_bytes(bytes)
        ));
        egui::ScrollArea::vertical().max_height(240.0).show(ui, |ui| {
            for photo in &others {
                ui.label(photo.path.display().to_string());
            }
        });
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.button(format!("Move {} photos to the trash", others.len())).clicked() {
                actions.push(Action::TrashDuplicates);
            }
            if ui.button("Cancel").clicked() {
                actions.push(Action::CloseConfirmation);
            }
        });
    });
    super::confirm::close_when_dismissed(&modal, &Action::TrashDuplicates, actions);
}

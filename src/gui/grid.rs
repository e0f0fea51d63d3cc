//! The virtualised thumbnail grid: only the rows on screen are built.

use egui::{Color32, Rect, Sense, Vec2};

use super::action::Action;
use super::photos::{Photo, PhotoId, PhotoList, PhotoState};
use super::selection::{Pick, Selection};
use super::thumbnails::{Size, Thumbnails};
use crate::worker::PhotoErrorKind;

/// The smallest and largest side of a tile's image area, in points (the size slider's range).
pub const TILE_SIZES: std::ops::RangeInclusive<f32> = 100.0..=400.0;
/// Thumbnails are loaded at this many pixels at most; larger tiles use the preview size.
const THUMB_PIXELS: f32 = 256.0;
/// Height of the caption under the image.
const CAPTION: f32 = 36.0;
/// Space between tiles.
const GAP: f32 = 8.0;

/// What the grid shows.
pub struct Grid<'a> {
    /// Every photo.
    pub photos: &'a PhotoList,
    /// Indices of the photos to show, in display order.
    pub visible: &'a [PhotoId],
    /// The selected photos.
    pub selection: &'a Selection,
    /// Whether to scroll the selected photo into view.
    pub scroll_to_selected: bool,
    /// Whether to show the top of the grid (the filter changed).
    pub scroll_to_top: bool,
    /// Side of a tile's image area, in points.
    pub tile: f32,
    /// The filter text, lower case; a tile shows the label that matched it.
    pub filter: &'a str,
}

/// The central area: the grid, or a hint when there are no photos. Returns how many cells
/// were built.
pub fn central(ui: &mut egui::Ui, view: &Grid<'_>, thumbnails: &mut Thumbnails, actions: &mut Vec<Action>) -> usize {
    egui::CentralPanel::default()
        .show(ui, |ui| {
            if view.photos.is_empty() {
                ui.centered_and_justified(|ui| {
                    ui.heading("Drop photos or folders here, or use Open images… / Open folder…");
                });
                return 0;
            }
            if view.visible.is_empty() {
                ui.centered_and_justified(|ui| ui.heading("No photos match the filter"));
                return 0;
            }
            let columns = (((ui.available_width() + GAP) / (view.tile + GAP)).floor() as usize).max(1);
            move_selection_with_keys(ui, view, columns, actions);
            grid(ui, view, columns, thumbnails, actions)
        })
        .inner
}

fn grid(
    ui: &mut egui::Ui,
    view: &Grid<'_>,
    columns: usize,
    thumbnails: &mut Thumbnails,
    actions: &mut Vec<Action>,
) -> usize {
    let visible = view.visible;
    let rows = visible.len().div_ceil(columns);
    let row_height = view.tile + CAPTION + GAP;
    let mut built = 0;
    let mut scroll = egui::ScrollArea::vertical().auto_shrink([false, false]);
    if view.scroll_to_top {
        scroll = scroll.vertical_scroll_offset(0.0);
    } else if view.scroll_to_selected
        && let Some(position) = view.selection.focus().and_then(|s| visible.iter().position(|&i| i == s))
    {
        let row = position / columns;
        let target = row as f32 * (row_height + ui.spacing().item_spacing.y);
        let viewport = ui.available_height();
        scroll = scroll.vertical_scroll_offset((target - viewport / 2.0 + row_height / 2.0).max(0.0));
    }
    scroll.show_rows(ui, row_height, rows, |ui, row_range| {
        for row in row_range {
            ui.horizontal(|ui| {
                ui.spacing_mut().item_spacing.x = GAP;
                for &id in visible.iter().skip(row * columns).take(columns) {
                    let Some(photo) = view.photos.get(id) else { continue };
                    let selected = view.selection.contains(id);
                    let look =
                        Look { selected, selected_count: view.selection.len(), side: view.tile, filter: view.filter };
                    tile(ui, id, photo, &look, thumbnails, actions);
                    built += 1;
                }
            });
        }
    });
    built
}

/// How one tile is drawn.
struct Look<'a> {
    selected: bool,
    /// How many photos are selected, for the context menu's wording.
    selected_count: usize,
    side: f32,
    filter: &'a str,
}

/// One tile: thumbnail, name, and the top label, a spinner while queued, or a failure mark.
/// A click selects it (Ctrl adds, Shift extends), a double click opens it, a right click
/// opens the menu of what can be done with the selection.
fn tile(
    ui: &mut egui::Ui,
    id: PhotoId,
    photo: &Photo,
    look: &Look<'_>,
    thumbnails: &mut Thumbnails,
    actions: &mut Vec<Action>,
) {
    let (selected, side) = (look.selected, look.side);
    let size = if side * ui.ctx().pixels_per_point() > THUMB_PIXELS { Size::Preview } else { Size::Thumb };
    let (rect, response) = ui.allocate_exact_size(Vec2::new(side, side + CAPTION), Sense::click());
    response.widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, selected, &photo.name));
    if response.clicked() {
        let pick = Pick::from_modifiers(ui.input(|i| i.modifiers));
        actions.push(Action::Select { id, pick, scroll: false });
    }
    if response.double_clicked() {
        actions.push(Action::OpenViewer(id));
    }
    if response.secondary_clicked() && !selected {
        // The menu acts on the selection, so a right click outside it selects this photo.
        actions.push(Action::Select { id, pick: Pick::Only, scroll: false });
    }
    let count = if selected { look.selected_count.max(1) } else { 1 };
    response.context_menu(|ui| context_menu(ui, id, photo, count, actions));
    if !ui.is_rect_visible(rect) {
        return;
    }
    let visuals = ui.visuals();
    let image_rect = Rect::from_min_size(rect.min, Vec2::splat(side));
    let background = if selected { visuals.selection.bg_fill } else { visuals.extreme_bg_color };
    ui.painter().rect_filled(rect, 4.0, background);
    if response.has_focus() {
        // Where Tab has put the keyboard.
        ui.painter().rect_stroke(rect, 4.0, visuals.selection.stroke, egui::StrokeKind::Inside);
    }
    match thumbnails.get(&photo.path, size) {
        Some(texture) => {
            let fitted = fit(texture.size_vec2(), image_rect.shrink(4.0));
            ui.painter().image(
                texture.id(),
                fitted,
                Rect::from_min_max([0.0, 0.0].into(), [1.0, 1.0].into()),
                Color32::WHITE,
            );
        }
        None if matches!(photo.state, PhotoState::Failed(_)) || thumbnails.failed(&photo.path, size) => {}
        None => {
            ui.painter().rect_filled(image_rect.shrink(4.0), 2.0, visuals.faint_bg_color);
        }
    }
    let caption = Rect::from_min_max([rect.min.x + 4.0, image_rect.max.y].into(), rect.max - Vec2::new(4.0, 0.0));
    let text_color = if selected { ui.visuals().selection.stroke.color } else { ui.visuals().text_color() };
    caption_line(ui, caption.min, caption.width(), &photo.name, text_color, false);
    let second_line = caption.min + Vec2::new(0.0, CAPTION / 2.0);
    match &photo.state {
        PhotoState::Queued => {
            let spinner = Rect::from_min_size(second_line, Vec2::splat(12.0));
            egui::Spinner::new().size(12.0).paint_at(ui, spinner);
            caption_line(ui, second_line + Vec2::new(16.0, 0.0), caption.width() - 16.0, "queued", text_color, false);
        }
        PhotoState::Tagged(labels) => {
            // With a filter, the label that matched it; otherwise the most probable one.
            let matched = (!look.filter.is_empty())
                .then(|| labels.iter().find(|l| l.label.to_lowercase().contains(look.filter)))
                .flatten();
            if let Some(shown) = matched.or(labels.first()) {
                let text = format!("{} {:.0}%", shown.keyword(), shown.prob * 100.0);
                caption_line(ui, second_line, caption.width(), &text, ui.visuals().strong_text_color(), true);
            }
        }
        PhotoState::Failed(error) => {
            let text = failure_caption(error.kind);
            caption_line(ui, second_line, caption.width(), text, ui.visuals().error_fg_color, true);
        }
        PhotoState::NotTagged => {
            caption_line(ui, second_line, caption.width(), "not tagged yet", ui.visuals().weak_text_color(), false);
        }
    }
    match &photo.state {
        PhotoState::Failed(error) => {
            response.on_hover_text(error.to_string());
        }
        PhotoState::Tagged(labels) => {
            let all: Vec<String> = labels.iter().map(|l| format!("{} {:.1}%", l.label, l.prob * 100.0)).collect();
            response.on_hover_text(all.join("\n"));
        }
        PhotoState::Queued | PhotoState::NotTagged => {}
    }
}

/// What can be done with the selected photos; `id` is the tile right-clicked, and `count`
/// how many photos the selection holds.
fn context_menu(ui: &mut egui::Ui, id: PhotoId, photo: &Photo, count: usize, actions: &mut Vec<Action>) {
    let mut item = |ui: &mut egui::Ui, text: &str, shortcut: &str, action: Action| {
        let button = egui::Button::new(text);
        let button = if shortcut.is_empty() { button } else { button.shortcut_text(shortcut) };
        if ui.add(button).clicked() {
            actions.push(action);
            ui.close();
        }
    };
    item(ui, "Open", "Enter", Action::OpenViewer(id));
    item(ui, "Open with the system viewer", "", Action::OpenExternally(photo.path.clone()));
    item(ui, "Show in folder", "", Action::ShowInFolder(photo.path.clone()));
    if matches!(photo.state, PhotoState::Tagged(_)) {
        item(ui, "Find similar", "S", Action::FindSimilar(id));
    }
    ui.separator();
    let (sidecars, paths, remove) = match count {
        1 => ("Write XMP sidecar…".to_owned(), "Copy path".to_owned(), "Remove from library".to_owned()),
        n => (
            format!("Write XMP sidecars for {n} photos…"),
            format!("Copy {n} paths"),
            format!("Remove {n} photos from library"),
        ),
    };
    item(ui, &sidecars, "", Action::ExportSidecars);
    item(ui, &paths, "", Action::CopyPaths);
    item(ui, &remove, "Delete", Action::RemoveSelected);
}

/// The tile's second line for a photo that could not be tagged: the kind of problem in a
/// word or two (the whole message is in its tooltip and the details pane).
fn failure_caption(kind: PhotoErrorKind) -> &'static str {
    match kind {
        PhotoErrorKind::NotAPhoto => "not a photo",
        PhotoErrorKind::File => "cannot be read",
        PhotoErrorKind::Model | PhotoErrorKind::Unexpected => "failed",
        PhotoErrorKind::ModelUnavailable => "no model",
        PhotoErrorKind::Cancelled => "not tagged yet",
    }
}

/// One line of caption text, cut with an ellipsis to `width`. Painted, not a widget, so the
/// tile itself is the one accessible element and carries the photo's name.
fn caption_line(ui: &egui::Ui, at: egui::Pos2, width: f32, text: &str, color: Color32, strong: bool) {
    let font = if strong { egui::FontId::proportional(13.0) } else { egui::FontId::proportional(12.0) };
    let mut job = egui::text::LayoutJob::single_section(text.to_owned(), egui::TextFormat::simple(font, color));
    job.wrap = egui::text::TextWrapping { max_width: width, max_rows: 1, break_anywhere: true, ..Default::default() };
    let galley = ui.painter().layout_job(job);
    ui.painter().galley(at, galley, color);
}

/// The largest rectangle of `size`'s aspect ratio centred in `area`.
fn fit(size: Vec2, area: Rect) -> Rect {
    let scale = (area.width() / size.x).min(area.height() / size.y);
    Rect::from_center_size(area.center(), size * scale)
}

/// Arrow keys move the selection through the grid (unless a text field has the keyboard).
fn move_selection_with_keys(ui: &egui::Ui, view: &Grid<'_>, columns: usize, actions: &mut Vec<Action>) {
    if ui.ctx().egui_wants_keyboard_input() {
        return;
    }
    let row_height = view.tile + CAPTION + GAP;
    let page = columns * ((ui.available_height() / row_height).floor() as usize).max(1);
    let (columns, page, last) = (columns as isize, page as isize, view.visible.len() as isize);
    let step: isize = ui.input(|i| {
        if i.key_pressed(egui::Key::ArrowRight) {
            1
        } else if i.key_pressed(egui::Key::ArrowLeft) {
            -1
        } else if i.key_pressed(egui::Key::ArrowDown) {
            columns
        } else if i.key_pressed(egui::Key::ArrowUp) {
            -columns
        } else if i.key_pressed(egui::Key::PageDown) {
            page
        } else if i.key_pressed(egui::Key::PageUp) {
            -page
        } else if i.key_pressed(egui::Key::End) {
            last
        } else if i.key_pressed(egui::Key::Home) {
            -last
        } else {
            0
        }
    });
    let visible = view.visible;
    if step == 0 || visible.is_empty() {
        return;
    }
    // Without a selection any key selects the first photo, End the last.
    let current = view.selection.focus().and_then(|s| visible.iter().position(|&i| i == s));
    let next = match current {
        Some(position) => (position as isize + step).clamp(0, last - 1) as usize,
        None if step == last => visible.len() - 1,
        None => 0,
    };
    // Shift with the keys extends the selection, as it does with a click.
    let pick = if ui.input(|i| i.modifiers.shift) { Pick::Range } else { Pick::Only };
    actions.push(Action::Select { id: visible[next], pick, scroll: true });
}

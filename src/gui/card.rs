//! A photo card, as the similar strip and the Duplicates view show them: the photo fitted in a
//! square, with one-line captions under it.

use std::path::Path;

use egui::{Color32, Rect, Vec2};

use super::thumbnails::{Size, Thumbnails};

/// Height of one caption line, in points.
pub const LINE: f32 = 15.0;

/// Paints a card in `rect`: its background (lighter while `hovered`), the photo at `path`
/// fitted in the square of side `thumb` at the top, and `captions` under it, a line each,
/// cut to the card's width.
pub fn paint(
    ui: &egui::Ui,
    rect: Rect,
    thumb: f32,
    hovered: bool,
    path: &Path,
    thumbnails: &mut Thumbnails,
    captions: &[(String, Color32)],
) {
    let visuals = ui.visuals();
    let fill = if hovered { visuals.widgets.hovered.bg_fill } else { visuals.extreme_bg_color };
    ui.painter().rect_filled(rect, 4.0, fill);
    let image_area = Rect::from_min_size(rect.min, Vec2::splat(thumb)).shrink(3.0);
    if let Some(texture) = thumbnails.get(path, Size::Thumb) {
        let size = texture.size_vec2();
        let fitted = Rect::from_center_size(image_area.center(), size * (image_area.width() / size.x.max(size.y)));
        let uv = Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        ui.painter().image(texture.id(), fitted, uv, Color32::WHITE);
    }
    for (line, (text, color)) in captions.iter().enumerate() {
        let font = egui::FontId::proportional(12.0);
        let mut job = egui::text::LayoutJob::single_section(text.clone(), egui::TextFormat::simple(font, *color));
        job.wrap = egui::text::TextWrapping {
            max_width: thumb - 6.0,
            max_rows: 1,
            break_anywhere: true,
            ..Default::default()
        };
        let galley = ui.painter().layout_job(job);
        let at = egui::pos2(rect.min.x + 3.0, rect.min.y + thumb + line as f32 * LINE);
        ui.painter().galley(at, galley, *color);
    }
}

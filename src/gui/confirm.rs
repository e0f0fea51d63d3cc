//! Questions asked before changes that cannot be undone from the app: writing XMP sidecars
//! beside the photos (how many, at which threshold, what one will hold, which photos get no
//! keyword) and clearing the cache.

use super::action::Action;
use crate::units::human_bytes;

/// What writing sidecars now would do.
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarPlan {
    /// Tagged photos that would get a sidecar.
    pub photos: usize,
    /// Whether they are the selected photos rather than every tagged photo.
    pub selected: bool,
    /// The probability a label needs to become a keyword.
    pub min_prob: f32,
    /// One photo's name and the keywords its sidecar would hold.
    pub preview: Option<(String, Vec<String>)>,
    /// Photos whose sidecar would hold no keyword at this threshold.
    pub without_keywords: usize,
}

/// Shows the confirmation; "Write" and "Cancel" become actions.
pub fn sidecars(ctx: &egui::Context, plan: &SidecarPlan, actions: &mut Vec<Action>) {
    let modal = egui::Modal::new(egui::Id::unique("confirm-sidecars")).show(ctx, |ui| {
        ui.set_max_width(440.0);
        ui.heading("Write XMP sidecars?");
        if plan.photos == 0 {
            let which = if plan.selected { "None of the selected photos" } else { "No photo" };
            ui.label(format!("{which} is tagged yet, so there is nothing to write."));
            if ui.button("Close").clicked() {
                actions.push(Action::CloseConfirmation);
            }
            return;
        }
        let which = if plan.selected { "selected" } else { "tagged" };
        ui.label(format!(
            "An XMP sidecar beside each of the {} {which} photos, with the labels at or above {:.0}% \
             as keywords. The photos themselves are not changed; existing sidecars keep their other fields.",
            plan.photos,
            plan.min_prob * 100.0
        ));
        if let Some((name, keywords)) = &plan.preview {
            let shown = if keywords.is_empty() { "no keyword".to_owned() } else { keywords.join(", ") };
            ui.label(format!("For example, {name}: {shown}"));
        }
        if plan.without_keywords > 0 {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "{} of the {} photos have no label at or above {:.0}% and get no keyword; lower the minimum \
                     probability in Settings to include more.",
                    plan.without_keywords,
                    plan.photos,
                    plan.min_prob * 100.0
                ),
            );
        }
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.button(format!("Write {} sidecars", plan.photos)).clicked() {
                actions.push(Action::WriteSidecars);
            }
            if ui.button("Cancel").clicked() {
                actions.push(Action::CloseConfirmation);
            }
        });
    });
    close_when_dismissed(&modal, &Action::WriteSidecars, actions);
}

/// Asks before the cache is cleared; "Clear the cache" and "Cancel" become actions.
pub fn clear_cache(ctx: &egui::Context, bytes: Option<u64>, actions: &mut Vec<Action>) {
    let modal = egui::Modal::new(egui::Id::unique("confirm-clear-cache")).show(ctx, |ui| {
        ui.set_max_width(440.0);
        ui.heading("Clear the cache?");
        let size = bytes.map(|b| format!(" ({})", human_bytes(b))).unwrap_or_default();
        ui.label(format!(
            "Every stored result and thumbnail{size} is deleted. Photos are tagged again, by the model, the next \
             time they are opened. The photos themselves are not touched."
        ));
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.button("Clear the cache").clicked() {
                actions.push(Action::ConfirmClearCache);
            }
            if ui.button("Cancel").clicked() {
                actions.push(Action::CloseConfirmation);
            }
        });
    });
    close_when_dismissed(&modal, &Action::ConfirmClearCache, actions);
}

/// Closes a dialog dismissed (Escape, a click outside it) without its `answer`.
pub fn close_when_dismissed<T>(modal: &egui::ModalResponse<T>, answer: &Action, actions: &mut Vec<Action>) {
    if modal.should_close() && !actions.contains(answer) {
        actions.push(Action::CloseConfirmation);
    }
}

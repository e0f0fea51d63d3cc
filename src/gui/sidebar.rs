//! The folder sidebar: the files and folders the library is made of, with their photo
//! counts; a click narrows the grid to one of them, and each can be scanned again or taken
//! out of the library.

use std::path::{Path, PathBuf};

use super::action::Action;

/// What the sidebar shows.
pub struct Sidebar<'a> {
    /// The library's files and folders, in the order they were added.
    pub roots: &'a [PathBuf],
    /// How many photos each holds.
    pub counts: &'a [usize],
    /// Every photo in the library.
    pub total: usize,
    /// The folder the grid is narrowed to, if any.
    pub folder: Option<&'a Path>,
}

/// The left-hand panel.
pub fn panel(ui: &mut egui::Ui, view: &Sidebar<'_>, actions: &mut Vec<Action>) {
    egui::Panel::left("folders").resizable(true).default_size(170.0).min_size(120.0).show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.strong("Library");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Add…").on_hover_text("Add a folder to the library").clicked() {
                    actions.push(Action::OpenFolder);
                }
            });
        });
        let all = format!("All photos ({})", view.total);
        if ui.selectable_label(view.folder.is_none(), all).clicked() {
            actions.push(Action::ShowFolder(None));
        }
        ui.separator();
        if let Some(folder) = view.folder {
            // The shown folder's actions, as buttons too, so that the keyboard reaches them.
            ui.horizontal_wrapped(|ui| {
                if ui.button("Scan again").clicked() {
                    actions.push(Action::RescanFolder(folder.to_owned()));
                }
                if ui.button("Remove from library").clicked() {
                    actions.push(Action::RemoveFolder(folder.to_owned()));
                }
            });
            ui.separator();
        }
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            for (root, count) in view.roots.iter().zip(view.counts) {
                root_row(ui, root, *count, view.folder == Some(root.as_path()), actions);
            }
        });
    });
}

/// One file or folder of the library: a click shows only its photos; its menu scans it again
/// or removes it.
fn root_row(ui: &mut egui::Ui, root: &Path, count: usize, shown: bool, actions: &mut Vec<Action>) {
    let name = root.file_name().map_or_else(|| root.display().to_string(), |n| n.to_string_lossy().into_owned());
    let row = ui.selectable_label(shown, format!("{name} ({count})")).on_hover_text(root.display().to_string());
    if row.clicked() {
        actions.push(Action::ShowFolder(Some(root.to_owned())));
    }
    row.context_menu(|ui| {
        if ui.button("Scan again").clicked() {
            actions.push(Action::RescanFolder(root.to_owned()));
            ui.close();
        }
        if ui.button("Show in file manager").clicked() {
            actions.push(Action::OpenExternally(root.to_owned()));
            ui.close();
        }
        if ui.button("Remove from library").clicked() {
            actions.push(Action::RemoveFolder(root.to_owned()));
            ui.close();
        }
    });
}

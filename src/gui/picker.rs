//! The system's file and folder pickers (through rfd), and what the app does where there is
//! none: rfd tries the desktop portal, then zenity; where both are missing it returns nothing
//! at once, exactly as when the user cancels. A dialog that "closed" faster than a person
//! can cancel one, on a system without zenity, is taken as missing, and the app asks for the
//! path in its own window instead.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::library::scan::IMAGE_EXTENSIONS;

use super::action::Action;

/// What the user is asked to pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Photos to add.
    Images,
    /// Folders to add.
    Folders,
    /// The folder that holds the model.
    ModelFolder,
    /// Where to write a CSV export.
    CsvFile,
}

impl Wanted {
    /// What the in-window path entry asks for.
    pub fn prompt(self) -> &'static str {
        match self {
            Wanted::Images => "Photos to add (one path per line)",
            Wanted::Folders => "Folders to add (one path per line)",
            Wanted::ModelFolder => "The model folder",
            Wanted::CsvFile => "The CSV file to write",
        }
    }

    /// Whether the paths must exist already (everything but a file to write).
    pub fn must_exist(self) -> bool {
        self != Wanted::CsvFile
    }
}

/// How a picker closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picked {
    /// The user picked these.
    Paths(Vec<PathBuf>),
    /// The user closed it without picking.
    Cancelled,
    /// No picker could be shown on this system.
    Unavailable,
}

/// A dialog closed sooner than this, with nothing picked, never reached the user.
const FASTER_THAN_A_PERSON: Duration = Duration::from_millis(300);

/// Shows the system picker for `pick` and waits for it.
pub fn show(pick: Wanted) -> Picked {
    let started = Instant::now();
    let dialog = rfd::FileDialog::new();
    let picked: Option<Vec<PathBuf>> = match pick {
        Wanted::Images => dialog.add_filter("Images", IMAGE_EXTENSIONS).pick_files(),
        Wanted::Folders => dialog.pick_folders(),
        Wanted::ModelFolder => dialog.set_title("Choose the model folder").pick_folder().map(|p| vec![p]),
        Wanted::CsvFile => dialog.add_filter("CSV", &["csv"]).set_file_name("evatag.csv").save_file().map(|p| vec![p]),
    };
    match picked {
        Some(paths) if !paths.is_empty() => Picked::Paths(paths),
        _ if started.elapsed() < FASTER_THAN_A_PERSON && !has_fallback_picker() => Picked::Unavailable,
        _ => Picked::Cancelled,
    }
}

/// Whether rfd has a picker to fall back on when the desktop portal is missing: zenity on
/// Linux and the BSDs; the native dialogs elsewhere are always there.
fn has_fallback_picker() -> bool {
    if !cfg!(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd", target_os = "netbsd")) {
        return true;
    }
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("zenity").is_file()))
}

/// Reads the paths typed in the in-window entry, one per line; names the first that does
/// not exist when `pick` needs existing ones.
pub fn parse_typed(pick: Wanted, text: &str) -> Result<Vec<PathBuf>, String> {
    let paths: Vec<PathBuf> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| PathBuf::from(expand_home(l))).collect();
    if paths.is_empty() {
        return Err("Type a path first.".to_owned());
    }
    if pick.must_exist()
        && let Some(missing) = paths.iter().find(|p| !p.exists())
    {
        return Err(format!("{} does not exist.", missing.display()));
    }
    if matches!(pick, Wanted::Folders | Wanted::ModelFolder)
        && let Some(file) = paths.iter().find(|p| !p.is_dir())
    {
        return Err(format!("{} is not a folder.", file.display()));
    }
    Ok(paths)
}

/// The app's own path entry, shown where the system has no picker.
#[derive(Debug, Clone, PartialEq)]
pub struct PathEntry {
    /// What it asks for.
    pub pick: Wanted,
    /// What has been typed.
    pub text: String,
    /// Why the typed paths were refused, if they were.
    pub error: Option<String>,
}

impl PathEntry {
    /// An empty entry asking for `pick`.
    pub fn new(pick: Wanted) -> Self {
        Self { pick, text: String::new(), error: None }
    }
}

/// Shows the path entry as a modal; edits, "Use" and "Cancel" become actions.
pub fn entry(ctx: &egui::Context, entry: &PathEntry, actions: &mut Vec<Action>) {
    let modal = egui::Modal::new(egui::Id::unique("path-entry")).show(ctx, |ui| {
        ui.set_max_width(480.0);
        ui.heading("No file picker on this system");
        ui.label(
            "The system's file picker could not be opened (neither the desktop portal nor zenity is installed). \
             Type or paste the path here, or drop files and folders on the window.",
        );
        let prompt = ui.label(entry.pick.prompt());
        let mut text = entry.text.clone();
        let edit = ui
            .add(egui::TextEdit::multiline(&mut text).desired_rows(2).desired_width(f32::INFINITY))
            .labelled_by(prompt.id);
        if entry.text.is_empty() && ui.memory(|m| m.focused().is_none()) {
            edit.request_focus();
        }
        if text != entry.text {
            actions.push(Action::TypePath(text));
        }
        if let Some(error) = &entry.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        ui.horizontal(|ui| {
            if ui.button("Use").clicked() {
                actions.push(Action::UseTypedPath);
            }
            if ui.button("Cancel").clicked() {
                actions.push(Action::CloseConfirmation);
            }
        });
    });
    super::confirm::close_when_dismissed(&modal, &Action::UseTypedPath, actions);
}

/// `~/x` as the home folder's `x`, as a shell reads it.
fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), directories::BaseDirs::new()) {
        (Some(rest), Some(dirs)) => dirs.home_dir().join(rest).to_string_lossy().into_owned(),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_paths_are_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.jpg");
        std::fs::write(&file, b"x").unwrap();
        let typed = format!("  {}\n\n{}\n", dir.path().display(), file.display());
        assert_eq!(parse_typed(Wanted::Images, &typed).unwrap(), [dir.path().to_owned(), file.clone()]);
        let missing = dir.path().join("gone");
        let error = parse_typed(Wanted::Images, &missing.display().to_string()).unwrap_err();
        assert!(error.contains("gone") && error.contains("does not exist"), "{error}");
        let error = parse_typed(Wanted::Folders, &file.display().to_string()).unwrap_err();
        assert!(error.contains("is not a folder"), "{error}");
        assert!(parse_typed(Wanted::CsvFile, &missing.display().to_string()).is_ok(), "a file to write is new");
        assert!(parse_typed(Wanted::Folders, " \n").is_err());
    }
}

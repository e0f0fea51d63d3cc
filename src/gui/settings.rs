//! User settings that survive a restart, and the settings window.

use std::path::{Path, PathBuf};

use crate::library::export::SidecarNaming;
use crate::model::device::{self, DTypeChoice, DeviceChoice};
use crate::model::peak::Peak;
use crate::model::registry::{self, RegisteredModel};

use super::action::Action;
use super::photos::SortKey;
use super::precision;
use crate::units::human_bytes;
use crate::worker::ModelSpeed;

/// What is remembered between runs, in `settings.json` (written whenever it changes).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where the model runs.
    pub device: DeviceChoice,
    /// The precision chosen; `None` until the first start has chosen one from the computer's
    /// memory.
    pub precision: Option<DTypeChoice>,
    /// Labels below this probability are left out of exported tags.
    pub min_prob: f32,
    /// How XMP sidecars are named.
    pub sidecar_naming: SidecarNaming,
    /// Grid order.
    pub sort: SortKey,
    /// The library's files and folders as settings files once held them (the saved library
    /// holds them now): read, for a library saved without them, and never written.
    #[serde(rename = "last_paths", deserialize_with = "super::persist::paths::deserialize", skip_serializing)]
    pub legacy_folders: Vec<PathBuf>,
    /// Side of the grid's tiles, in points.
    pub tile_size: f32,
    /// The local model folder chosen last (here or with `--model-dir`); `None` uses the Hub.
    #[serde(with = "super::persist::optional_path")]
    pub model_dir: Option<PathBuf>,
    /// The registered model chosen last (here or with `--model`), by name; `None` is the
    /// default, EVA-giant.
    pub model: Option<String>,
    /// The similarity from which the Duplicates view groups photos.
    pub duplicate_threshold: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            device: DeviceChoice::Auto,
            precision: None,
            min_prob: 0.1,
            sidecar_naming: SidecarNaming::Appended,
            sort: SortKey::Name,
            legacy_folders: Vec::new(),
            model_dir: None,
            model: None,
            tile_size: 150.0,
            duplicate_threshold: crate::library::duplicates::DEFAULT_THRESHOLD,
        }
    }
}

/// Writes the settings to `file`, replacing it in one step.
pub fn write(file: &Path, settings: &Settings) -> std::io::Result<()> {
    super::persist::write_atomically(file, |out| Ok(serde_json::to_writer_pretty(out, settings)?))
}

/// The settings saved in `file`: `None` when there is no such file, defaults for what it
/// lacks or cannot be read (with a line in the log).
pub fn read(file: &Path) -> Option<Settings> {
    let text = std::fs::read(file).ok()?;
    Some(serde_json::from_slice(&text).unwrap_or_else(|e| {
        tracing::warn!("{}: the settings could not be read ({e}); the defaults are used", file.display());
        Settings::default()
    }))
}

/// Facts the settings window shows.
pub struct Facts<'a> {
    /// The registered model in use (from the Hub; a model folder brings its own).
    pub model: &'static RegisteredModel,
    /// The device choice in effect (the command line's, or the remembered one).
    pub device: DeviceChoice,
    /// The precision in effect (the command line's, or the remembered one).
    pub precision: DTypeChoice,
    /// The local model folder in use; `None` when the model comes from the Hub.
    pub model_dir: Option<&'a std::path::Path>,
    /// Where the model runs now, with its CPU kernel path, e.g.
    /// `CPU (AVX-512 kernels, 2 threads)`; `None` until it is loading.
    pub running_on: Option<&'a str>,
    /// The cache folder, if caching is on.
    pub folder: Option<&'a std::path::Path>,
    /// Its size on disk in bytes, once measured.
    pub bytes: Option<u64>,
    /// The model's own speed in the last job that ran it.
    pub speed: Option<ModelSpeed>,
    /// This machine's floating-point peak, once measured.
    pub peak: Option<Peak>,
}

/// The settings window: shows `settings` and `facts`, and returns what the user changed or
/// asked for as actions, closing included. It opens at the top right of `area` (the space
/// under the toolbar) and stays inside it, so the toolbar is never covered.
pub fn window(
    ctx: &egui::Context,
    area: egui::Rect,
    settings: &Settings,
    facts: &Facts<'_>,
    actions: &mut Vec<Action>,
) {
    let mut open = true;
    egui::Window::new("Settings")
        .open(&mut open)
        .resizable(false)
        .constrain_to(area)
        .pivot(egui::Align2::RIGHT_TOP)
        .default_pos(area.right_top() + egui::vec2(-8.0, 8.0))
        .show(ctx, |ui| {
            egui::ScrollArea::vertical().max_height(area.height() - 48.0).show(ui, |ui| {
                show(ui, settings, facts, actions);
            });
        });
    if !open {
        actions.push(Action::ShowSettings(false));
    }
}

/// The model's speed: seconds per photo and GFLOP/s, and on the CPU a second line with its
/// share of the machine's peak (or when that is measured).
fn speed_lines(speed: ModelSpeed, peak: Option<Peak>) -> (String, Option<String>) {
    let rate = format!("{:.2} s per photo, {:.0} GFLOP/s", speed.seconds_per_image, speed.gflops);
    let share = match peak {
        _ if !speed.on_cpu => None,
        Some(peak) => Some(format!(
            "{:.0} % of this CPU's peak of {:.0} GFLOP/s ({} on {} threads)",
            100.0 * speed.gflops / peak.all_threads,
            peak.all_threads,
            peak.level,
            peak.threads
        )),
        None => Some("This CPU's peak is measured once nothing is being tagged".to_owned()),
    };
    (rate, share)
}

/// The window's contents.
fn show(ui: &mut egui::Ui, settings: &Settings, facts: &Facts<'_>, actions: &mut Vec<Action>) {
    ui.heading("Model");
    let mut chosen = facts.model;
    ui.horizontal(|ui| {
        let label = ui.label("Model");
        egui::ComboBox::from_id_salt("model")
            .selected_text(chosen.architecture)
            .width(260.0)
            .show_ui(ui, |ui| {
                for model in registry::MODELS {
                    ui.selectable_value(&mut chosen, model, model.architecture).on_hover_text(model_facts(model));
                }
            })
            .response
            .labelled_by(label.id);
    });
    if chosen != facts.model {
        actions.push(Action::ChooseModel(chosen));
    }
    match facts.model_dir {
        Some(dir) => ui.label(format!("From the folder {}", dir.display())),
        None => ui.label(model_facts(facts.model)),
    };
    ui.horizontal(|ui| {
        if ui.button("Choose model folder…").clicked() {
            actions.push(Action::ChooseModelFolder);
        }
        if facts.model_dir.is_some() && ui.button("Use the Hub").clicked() {
            actions.push(Action::UseHubModel);
        }
    });
    let mut device_choice = facts.device;
    ui.horizontal(|ui| {
        let label = ui.label("Device");
        egui::ComboBox::from_id_salt("device")
            .selected_text(device_choice.name())
            .show_ui(ui, |ui| {
                for choice in device::compiled_choices() {
                    ui.selectable_value(&mut device_choice, choice, choice.name());
                }
            })
            .response
            .labelled_by(label.id);
    });
    if device_choice != facts.device {
        actions.push(Action::ChangeDevice(device_choice));
    }
    let mut precision_choice = facts.precision;
    ui.horizontal(|ui| {
        let label = ui.label("Precision");
        egui::ComboBox::from_id_salt("precision")
            .selected_text(precision::label(precision_choice, facts.model))
            .show_ui(ui, |ui| {
                for choice in precision::CHOICES {
                    ui.selectable_value(&mut precision_choice, choice, precision::label(choice, facts.model));
                }
            })
            .response
            .labelled_by(label.id)
            .on_hover_text(
                "Half precision holds the model's weights in bf16: half the memory; faster than full precision \
                 where the processor has AMX (Intel Xeon since Sapphire Rapids) or an AVX512_BF16 dot product that \
                 outruns its f32 arithmetic (AMD Zen 4 and 5), as fast elsewhere; the labels stay the same for \
                 nearly every photo",
            );
    });
    if precision_choice != facts.precision {
        actions.push(Action::ChangePrecision(precision_choice));
    }
    ui.label(format!("Running on: {}", facts.running_on.unwrap_or("not loaded yet")));
    ui.separator();
    ui.heading("Export");
    let mut min_prob = settings.min_prob;
    ui.add(egui::Slider::new(&mut min_prob, 0.0..=1.0).text("Minimum probability for tags"));
    if min_prob != settings.min_prob {
        actions.push(Action::SetMinProb(min_prob));
    }
    let mut replaced = settings.sidecar_naming == SidecarNaming::Replaced;
    if ui.checkbox(&mut replaced, "Name sidecars photo.xmp instead of photo.jpg.xmp").changed() {
        let naming = if replaced { SidecarNaming::Replaced } else { SidecarNaming::Appended };
        actions.push(Action::SetSidecarNaming(naming));
    }
    ui.horizontal(|ui| {
        if ui.button("Write XMP sidecars").clicked() {
            actions.push(Action::ExportSidecars);
        }
        if ui.button("Export CSV…").clicked() {
            actions.push(Action::ExportCsv);
        }
    });
    ui.separator();
    ui.heading("Cache");
    match facts.folder {
        Some(folder) => {
            ui.label(format!("Location: {}", folder.display()));
            let size = facts.bytes.map_or_else(|| "measuring…".to_owned(), human_bytes);
            ui.label(format!("Size: {size}"));
            if ui.button("Clear cache").clicked() {
                actions.push(Action::ClearCache);
            }
        }
        None => {
            ui.label("Results are not cached (--no-cache).");
        }
    }
    // Last, so that its lines, which change as the speed and the peak are measured, move
    // nothing else.
    if let Some(speed) = facts.speed {
        ui.separator();
        ui.heading("Speed");
        let (rate, share) = speed_lines(speed, facts.peak);
        ui.add(egui::Label::new(rate).wrap()).on_hover_text(
            "The forward passes alone, without reading the photos; a multiply-add counts as two operations",
        );
        if let Some(share) = share {
            ui.add(egui::Label::new(share).wrap()).on_hover_text(
                "The peak is what this machine's vector units reach in a loop of nothing but multiply-adds",
            );
        }
    }
}

/// What to decide a model by: accuracy, download, memory and speed, as measured.
fn model_facts(model: &RegisteredModel) -> String {
    format!(
        "ImageNet top-1 {:.1} %, {} download, {} of memory, {:.2} s per photo on a 2-core CPU",
        model.imagenet_top1,
        human_bytes(model.size_bytes),
        human_bytes(model.peak_memory_bytes),
        model.seconds_per_photo
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_speed_lines_give_the_share_of_the_peak_only_for_the_cpu() {
        let speed = ModelSpeed { seconds_per_image: 2.1, gflops: 254.3, on_cpu: true };
        let peak = Peak { level: "AVX-512", one_thread: 280.0, all_threads: 552.0, threads: 2 };
        let (rate, share) = speed_lines(speed, Some(peak));
        assert_eq!(rate, "2.10 s per photo, 254 GFLOP/s");
        assert_eq!(share.as_deref(), Some("46 % of this CPU's peak of 552 GFLOP/s (AVX-512 on 2 threads)"));
        assert_eq!(
            speed_lines(speed, None).1.as_deref(),
            Some("This CPU's peak is measured once nothing is being tagged")
        );
        let gpu = ModelSpeed { on_cpu: false, ..speed };
        assert_eq!(speed_lines(gpu, Some(peak)), ("2.10 s per photo, 254 GFLOP/s".to_owned(), None));
    }

    #[test]
    fn folders_in_an_older_settings_file_are_read_and_not_written_again() {
        let old = br#"{"last_paths": ["/photos", {"bytes": "2f6361669e"}], "min_prob": 0.3}"#;
        let settings: Settings = serde_json::from_slice(old).unwrap();
        assert_eq!(settings.min_prob, 0.3);
        assert_eq!(settings.legacy_folders.len(), 2);
        assert_eq!(settings.legacy_folders[0], PathBuf::from("/photos"));
        let written = serde_json::to_string(&settings).unwrap();
        assert!(!written.contains("last_paths"), "{written}");
    }
}

//! How the app starts: the command line settled against the remembered settings. What the
//! command line names wins; what it leaves open comes from the settings; and what the command
//! line chose is remembered for the next start.

use crate::gui::Settings;
use crate::gui::precision;
use crate::model::device::{DTypeChoice, DeviceChoice};
use crate::model::registry::{self, RegisteredModel};
use crate::model::weights::ModelSource;

use super::AppOptions;

/// The start the app makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// Where the model comes from.
    pub source: ModelSource,
    /// The registered model in use (a model folder brings its own architecture).
    pub model: &'static RegisteredModel,
    /// Where it runs.
    pub device: DeviceChoice,
    /// In which precision.
    pub dtype: DTypeChoice,
    /// The settings, with the command line's choices remembered.
    pub settings: Settings,
    /// A sentence for the window about a choice made for the user, if any.
    pub notice: Option<String>,
}

/// Settles `options` (the command line) against the remembered `settings`. `memory` is the
/// computer's memory in bytes, which decides the precision of a first start.
pub fn resolve(options: &AppOptions, mut settings: Settings, memory: Option<u64>) -> Start {
    let device = match options.device_from_command_line {
        true => options.worker.device,
        false => settings.device,
    };
    let mut notice = None;
    let dtype = match (options.dtype_from_command_line, settings.precision) {
        (true, _) => options.worker.dtype,
        (false, Some(remembered)) => remembered,
        (false, None) => {
            let (choice, why) = precision::first_choice(memory, options.model);
            notice = why;
            settings.precision = Some(choice);
            choice
        }
    };
    let offline = matches!(options.worker.source, ModelSource::Hub { offline: true, .. });
    let (source, model) = if options.model_from_command_line {
        // A folder or a registered model named on the command line is remembered; another
        // repository is used this time only.
        match &options.worker.source {
            ModelSource::Dir(dir) => settings.model_dir = Some(dir.clone()),
            ModelSource::Hub { repo, .. } if *repo == options.model.repo => {
                settings.model = Some(options.model.name.to_owned());
                settings.model_dir = None;
            }
            ModelSource::Hub { .. } => {}
        }
        (options.worker.source.clone(), options.model)
    } else if let Some(dir) = &settings.model_dir {
        (ModelSource::Dir(dir.clone()), options.model)
    } else if let Some(remembered) = settings.model.as_deref().and_then(|name| registry::find(name).ok()) {
        (remembered.source(offline), remembered)
    } else {
        (options.worker.source.clone(), options.model)
    };
    Start { source, model, device, dtype, settings, notice }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::worker::WorkerConfig;

    const GIB: u64 = 1 << 30;

    /// The app's options as `evatag` with the given model source makes them; `chose_model`
    /// when the command line named the model (a folder, a repository or a registered model).
    fn options(model: &'static RegisteredModel, source: ModelSource, chose_model: bool) -> AppOptions {
        AppOptions {
            worker: WorkerConfig { source, ..WorkerConfig::default() },
            device_from_command_line: false,
            dtype_from_command_line: false,
            model_from_command_line: chose_model,
            paths: Vec::new(),
            thumbnail_cache: None,
            model,
            library_file: None,
            settings_file: None,
            handle_signals: false,
        }
    }

    fn small() -> &'static RegisteredModel {
        registry::find("eva02_tiny_patch14_336").unwrap()
    }

    fn remembered_folder() -> Settings {
        Settings {
            model_dir: Some(PathBuf::from("/models/mine")),
            precision: Some(DTypeChoice::F32),
            ..Settings::default()
        }
    }

    #[test]
    fn the_command_line_wins_and_what_it_leaves_open_is_remembered() {
        let default = registry::default_model();
        // Nothing on the command line: the remembered folder.
        let start = resolve(&options(default, default.source(false), false), remembered_folder(), Some(64 * GIB));
        assert_eq!(start.source, ModelSource::Dir("/models/mine".into()));
        // --model NAME beats the remembered folder, and is remembered instead of it.
        let start = resolve(&options(small(), small().source(false), true), remembered_folder(), Some(64 * GIB));
        assert_eq!((start.source, start.model.name), (small().source(false), small().name));
        assert_eq!((start.settings.model_dir, start.settings.model.as_deref()), (None, Some(small().name)));
        // --model-dir is used and remembered.
        let folder = ModelSource::Dir("/models/other".into());
        let start = resolve(&options(default, folder.clone(), true), remembered_folder(), Some(64 * GIB));
        assert_eq!((start.source, start.settings.model_dir), (folder, Some(PathBuf::from("/models/other"))));
        // --repo is used this time only.
        let repo = ModelSource::Hub { repo: "me/my-eva".into(), offline: false };
        let start = resolve(&options(default, repo.clone(), true), remembered_folder(), Some(64 * GIB));
        assert_eq!(start.source, repo);
        assert_eq!(start.settings.model_dir, Some(PathBuf::from("/models/mine")), "the folder stays remembered");
    }

    #[test]
    fn a_remembered_model_keeps_the_command_lines_offline() {
        let remembered = Settings { model: Some(small().name.to_owned()), ..Settings::default() };
        let default = registry::default_model();
        let offline = ModelSource::Hub { repo: default.repo.to_owned(), offline: true };
        let start = resolve(&options(default, offline, false), remembered, Some(64 * GIB));
        assert_eq!(start.model.name, small().name);
        assert_eq!(start.source, ModelSource::Hub { repo: small().repo.to_owned(), offline: true });
    }

    #[test]
    fn device_and_precision_come_from_the_command_line_else_the_settings_else_the_memory() {
        let default = registry::default_model();
        let remembered =
            Settings { device: DeviceChoice::Cpu, precision: Some(DTypeChoice::Bf16), ..Settings::default() };
        let mut chosen = options(default, default.source(false), false);
        chosen.device_from_command_line = true;
        chosen.dtype_from_command_line = true;
        chosen.worker.device = DeviceChoice::Cuda;
        chosen.worker.dtype = DTypeChoice::F32;
        let start = resolve(&chosen, remembered.clone(), Some(64 * GIB));
        assert_eq!((start.device, start.dtype), (DeviceChoice::Cuda, DTypeChoice::F32));
        let start = resolve(&options(default, default.source(false), false), remembered, Some(64 * GIB));
        assert_eq!((start.device, start.dtype), (DeviceChoice::Cpu, DTypeChoice::Bf16));
        // A first start on a small computer chooses half precision, says so, and remembers it.
        let start = resolve(&options(default, default.source(false), false), Settings::default(), Some(4 * GIB));
        assert_eq!((start.dtype, start.settings.precision), (DTypeChoice::Bf16, Some(DTypeChoice::Bf16)));
        assert!(start.notice.is_some());
    }
}

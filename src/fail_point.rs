//! Panics on demand, so that tests can prove a panic at any stage fails only the photo it is
//! about: the decoder, the model, the worker and the exporter each call [`fail_point`] with
//! the photo at hand. Only debug builds (the ones tests run) can be armed; in a release build
//! every call does nothing.

use std::path::Path;

/// The environment variable that arms the binary: `STAGE:FILE_NAME`, e.g. `model:cat.jpg`.
pub const FAIL_POINT_ENV: &str = "EVATAG_PANIC_AT";

/// The stages that call [`fail_point`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading, decoding and preprocessing a photo.
    Decode,
    /// The model's forward pass over a batch holding the photo.
    Model,
    /// The worker recording the photo's result.
    Worker,
    /// Writing the photo's sidecar.
    Export,
}

#[cfg(debug_assertions)]
impl Stage {
    fn name(self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Model => "model",
            Self::Worker => "worker",
            Self::Export => "export",
        }
    }
}

#[cfg(debug_assertions)]
static ARMED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Arms the process (debug builds): every [`fail_point`] of `stage` for a file named
/// `file_name` panics. The environment variable [`FAIL_POINT_ENV`] does the same for a binary.
#[cfg(debug_assertions)]
pub fn arm(stage: Stage, file_name: &str) {
    *ARMED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(format!("{}:{file_name}", stage.name()));
}

/// Panics when this `stage` for `path` is the one armed (debug builds only).
pub fn fail_point(stage: Stage, path: &Path) {
    #[cfg(debug_assertions)]
    {
        let Some(name) = path.file_name() else { return };
        let here = format!("{}:{}", stage.name(), name.to_string_lossy());
        let armed = ARMED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let from_env = std::env::var(FAIL_POINT_ENV).ok();
        if armed.as_deref() == Some(here.as_str()) || from_env.as_deref() == Some(here.as_str()) {
            panic!("injected panic at {here}");
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = (stage, path);
}

/// The message a panic was raised with, for an error line.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(message), _) => (*message).to_owned(),
        (None, Some(message)) => message.clone(),
        (None, None) => "no message".to_owned(),
    }
}

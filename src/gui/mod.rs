//! The desktop app.

use std::path::PathBuf;

use crate::cli::ModelArgs;

/// Opens the main window.
pub fn run(_model: ModelArgs, _paths: Vec<PathBuf>) -> anyhow::Result<()> {
    anyhow::bail!("the desktop app is not built yet")
}

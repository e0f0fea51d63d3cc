//! The desktop app: an eframe window over the [`crate::worker`].
//!
//! The UI thread holds view state only: tagging, searching and everything else about the model
//! goes to the worker as a command and comes back as an event, drained once per frame; file
//! work (exports, saves, thumbnails) runs on threads of its own. The views draw what they are
//! given and return actions, which the app applies once per frame.

mod action;
mod app;
mod card;
mod confirm;
mod details;
mod duplicates;
mod grid;
mod persist;
pub mod photos;
mod picker;
mod precision;
mod saved;
mod selection;
mod settings;
mod sidebar;
mod similar_strip;
mod status;
mod thumbnails;
mod viewer;

use std::path::PathBuf;

pub use app::{App, AppOptions, FrameStats};
pub use settings::Settings;

use crate::options::Options;

/// The window's application id (Wayland app id, X11 class), matching the desktop file.
pub const APP_ID: &str = "org.evatag.Evatag";

/// Opens the main window and runs until it is closed.
pub fn run(options: Options, paths: Vec<PathBuf>) -> anyhow::Result<()> {
    let icon = eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icons/evatag-256.png"))?;
    let viewport = egui::ViewportBuilder::default()
        .with_title("evatag")
        .with_app_id(APP_ID)
        .with_inner_size([1280.0, 820.0])
        .with_min_inner_size([720.0, 480.0])
        .with_drag_and_drop(true)
        .with_icon(icon);
    let native = eframe::NativeOptions {
        viewport,
        renderer: eframe::Renderer::Glow,
        persist_window: true,
        ..Default::default()
    };
    eframe::run_native(
        "evatag",
        native,
        Box::new(move |cc| Ok(Box::new(App::new(cc, AppOptions::new(&options, paths))))),
    )
    .map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))
}

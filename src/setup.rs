//! Where evatag keeps its files, and where its log goes.

use std::path::PathBuf;

/// The platform's folders for this app (`~/.cache/evatag`, `~/.local/share/evatag` on Linux).
fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("org", "evatag", "evatag")
}

/// The result cache's folder: `EVATAG_CACHE_DIR` if set, else the platform's cache location.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("EVATAG_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    project_dirs().map(|d| d.cache_dir().to_owned())
}

/// The app's configuration folder (`~/.config/evatag` on Linux): the settings.
pub fn config_dir() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().to_owned())
}

/// The app's data folder (`~/.local/share/evatag` on Linux): the saved photo list, the log.
pub fn data_dir() -> Option<PathBuf> {
    project_dirs().map(|d| d.data_dir().to_owned())
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    /// `evatag.log` in the app's data folder: the desktop app often has no terminal.
    File,
    /// Standard error, coloured only on a terminal.
    Stderr,
}

/// Sets up logging: quiet by default (warnings and errors), `RUST_LOG` raises it.
pub fn init_logging(to: LogTo) {
    use std::io::IsTerminal;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
    };
    let log_file = (to == LogTo::File).then(log_file).flatten();
    let _ = match log_file {
        Some(file) => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init(),
        None => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init(),
    };
}

/// The desktop app's log file, opened for appending.
fn log_file() -> Option<std::fs::File> {
    let dir = data_dir()?;
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::OpenOptions::new().create(true).append(true).open(dir.join("evatag.log")).ok()
}

//! The model loader: finds the model's files (downloading them with progress if needed) and
//! loads the weights, on a thread of its own so that the worker keeps answering meanwhile.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};

use super::Notifier;
use super::protocol::{ModelError, ModelStatus, WorkerConfig};
use crate::model::Model;
use crate::model::config::ModelConfig;
use crate::model::device::{self, DTypeChoice, DeviceChoice};
use crate::model::weights::{self, DownloadProgress, ModelSource};

/// What the loader thread reports.
pub(super) enum LoaderMsg {
    /// The model's state changed.
    Status(ModelStatus),
    /// The files are found: the configuration is known, the weights are still loading.
    Located { config: ModelConfig, model_id: String },
    /// The weights are loaded.
    Loaded(Box<Model>),
}

/// Locates the model's files (downloading them if needed) and loads it, on its own thread, so
/// the worker keeps answering commands meanwhile. With a `predecessor` (the thread of the
/// worker this one replaces), nothing is loaded before it has ended and released its model,
/// so that two models are never held at once.
pub(super) fn spawn_loader(
    config: &WorkerConfig,
    notifier: Notifier,
    predecessor: Option<JoinHandle<()>>,
) -> (Receiver<LoaderMsg>, JoinHandle<()>) {
    let (tx, rx) = unbounded();
    let source = config.source.clone();
    let (device_choice, dtype_choice) = (config.device, config.dtype);
    let wake = notifier.wake.clone();
    let thread = std::thread::Builder::new()
        .name("evatag-model".into())
        .spawn(move || {
            if let Some(predecessor) = predecessor {
                let _ = predecessor.join();
            }
            let send = |msg| {
                let _ = tx.send(msg);
                wake();
            };
            // A panic while loading is a failed load, said like any other: without this the
            // worker would wait for the model forever.
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                load(source, device_choice, dtype_choice, &send);
            }));
            if let Err(payload) = loaded {
                let what = crate::fail_point::panic_message(payload.as_ref());
                send(LoaderMsg::Status(ModelStatus::Failed(ModelError::Unexpected(what))));
            }
        })
        .expect("spawning the model loader thread");
    (rx, thread)
}

/// Locates and loads the model, saying each step through `send`.
fn load(source: ModelSource, device_choice: DeviceChoice, dtype_choice: DTypeChoice, send: &dyn Fn(LoaderMsg)) {
    send(LoaderMsg::Status(ModelStatus::Locating));
    let placement = device::place(device_choice, dtype_choice);
    for warning in &placement.warnings {
        tracing::warn!("{warning}");
    }
    let mut progress = StatusProgress::new(|status| send(LoaderMsg::Status(status)));
    let located = weights::locate(&source, &mut progress).and_then(|files| {
        let config = weights::read_config(&files.config)?;
        let model_id = weights::model_id(&config, &files, placement.precision())?;
        Ok((files, config, model_id))
    });
    let (files, config, model_id) = match located {
        Ok(found) => found,
        Err(e) => {
            send(LoaderMsg::Status(ModelStatus::Failed(e.into())));
            return;
        }
    };
    send(LoaderMsg::Located { config, model_id });
    send(LoaderMsg::Status(ModelStatus::Loading { device: placement.device_name() }));
    match Model::load(&files, &placement) {
        Ok(model) => {
            let ready = ModelStatus::Ready { device: placement.device_name(), model_id: model.id().to_owned() };
            send(LoaderMsg::Loaded(Box::new(model)));
            send(LoaderMsg::Status(ready));
        }
        Err(e) => send(LoaderMsg::Status(ModelStatus::Failed(e.into()))),
    }
}

/// Turns download callbacks into [`ModelStatus::Downloading`] updates, a few per second.
struct StatusProgress<F: FnMut(ModelStatus)> {
    report: F,
    file: String,
    done: u64,
    total: u64,
    started: Instant,
    resumed_from: u64,
    last: Option<Instant>,
}

impl<F: FnMut(ModelStatus)> StatusProgress<F> {
    fn new(report: F) -> Self {
        Self { report, file: String::new(), done: 0, total: 0, started: Instant::now(), resumed_from: 0, last: None }
    }

    fn emit(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        let fetched = self.done.saturating_sub(self.resumed_from) as f64;
        let eta_secs = (secs > 1.0 && fetched > 0.0).then(|| (self.total - self.done) as f64 * secs / fetched);
        (self.report)(ModelStatus::Downloading {
            file: self.file.clone(),
            done: self.done,
            total: self.total,
            eta_secs,
        });
    }
}

impl<F: FnMut(ModelStatus)> DownloadProgress for StatusProgress<F> {
    fn start(&mut self, file: &str, total_bytes: u64) {
        self.file = file.to_owned();
        self.total = total_bytes;
        self.done = 0;
        self.resumed_from = 0;
        self.started = Instant::now();
    }

    fn advance(&mut self, bytes: u64) {
        if self.done == 0 && bytes > 0 && self.last.is_none() {
            self.resumed_from = bytes;
        }
        self.done += bytes;
        if self.last.is_none_or(|t| t.elapsed() >= Duration::from_millis(200)) {
            self.last = Some(Instant::now());
            self.emit();
        }
    }

    fn finish(&mut self) {
        self.done = self.total;
        self.emit();
    }
}

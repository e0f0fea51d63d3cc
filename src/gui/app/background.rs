//! Work off the UI thread: saving the photo list and the settings, exports, the cache's
//! size, and the signals that end the app.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::gui::confirm::SidecarPlan;
use crate::gui::photos::{Photo, PhotoId, PhotoState};
use crate::gui::saved;
use crate::gui::settings;
use crate::library::export::{self, ExportReport, ExportRequest, PhotoTags};
use crate::library::photo_info::PhotoInfo;
use crate::model::labels::Label;
use crate::model::peak::{self, Peak};

use super::App;

/// What finished off the UI thread, for the next frame to apply.
pub(super) enum Done {
    /// An export finished.
    Exported(Exported),
    /// This machine's floating-point peak.
    PeakMeasured(Peak),
    /// The result cache's size on disk, in bytes, measured for the cache as it was at
    /// `epoch` (a clear since makes it stale).
    CacheMeasured { bytes: u64, epoch: u64 },
    /// A folder looked at again: the photos of it whose files are gone, or `None` when the
    /// folder itself cannot be found (a disconnected drive).
    Rescanned { root: PathBuf, gone: Option<Vec<PathBuf>> },
}

/// What an export did, for the notice that tells it and the errors panel.
pub(super) struct Exported {
    /// The CSV file written, or `None` for XMP sidecars.
    csv: Option<PathBuf>,
    /// How many photos were exported.
    photos: usize,
    /// What was written and what failed.
    report: ExportReport,
}

impl Exported {
    /// One line that says what was written and how many files failed (the failures
    /// themselves go to the errors panel).
    fn notice(&self) -> String {
        let report = &self.report;
        let failed = match report.errors.len() {
            0 => String::new(),
            1 => "; 1 file failed (see Errors)".to_owned(),
            n => format!("; {n} files failed (see Errors)"),
        };
        match &self.csv {
            Some(file) if report.errors.is_empty() => format!("Wrote {} photos to {}", self.photos, file.display()),
            Some(file) => format!("{} could not be written (see Errors)", file.display()),
            None if report.sidecars_without_keywords > 0 => format!(
                "Wrote {} XMP sidecars; {} have no keyword at this threshold{failed}",
                report.sidecars, report.sidecars_without_keywords
            ),
            None => format!("Wrote {} XMP sidecars{failed}", report.sidecars),
        }
    }
}

/// Runs the app's file work off the UI thread, one thread per job, and hands back what each
/// finished with; a frame is asked for when one finishes.
pub(super) struct Jobs {
    done_tx: Sender<Done>,
    done_rx: Receiver<Done>,
}

impl Default for Jobs {
    fn default() -> Self {
        let (done_tx, done_rx) = unbounded();
        Self { done_tx, done_rx }
    }
}

impl Jobs {
    /// Runs `work` on a thread of its own.
    pub(super) fn run(&self, ctx: &egui::Context, work: impl FnOnce() -> Option<Done> + Send + 'static) {
        let (done_tx, ctx) = (self.done_tx.clone(), ctx.clone());
        std::thread::spawn(move || {
            if let Some(done) = work() {
                let _ = done_tx.send(done);
            }
            ctx.request_repaint();
        });
    }

    /// What finished since the last frame.
    fn finished(&self) -> Vec<Done> {
        self.done_rx.try_iter().collect()
    }
}

impl App {
    /// The photo list changed and is to be saved.
    pub(super) fn library_changed(&mut self) {
        if let Some(saver) = self.library_saver.as_mut() {
            saver.changed();
        }
    }

    /// Saves the photo list and the settings where they changed: soon, on a background
    /// thread; with `now` (at exit, or on a signal), at once and on this thread. A save that
    /// fails is said once in the window and tried again.
    pub(super) fn save_state(&mut self, ctx: Option<&egui::Context>, now: bool) {
        let mut notices = Vec::new();
        if let Some(saver) = self.library_saver.as_mut() {
            let photos = &self.photos;
            notices.extend(saver.save(ctx, now, || {
                let snapshot = saved::snapshot(photos);
                move |file: &Path| saved::write(file, &snapshot)
            }));
        }
        self.settings.sort = self.photos.sort();
        if let Some((saver, written)) = self.settings_saver.as_mut() {
            if *written != self.settings {
                *written = self.settings.clone();
                saver.changed();
            }
            notices.extend(saver.save(ctx, now, || {
                let snapshot = written.clone();
                move |file: &Path| settings::write(file, &snapshot)
            }));
        }
        self.notices.extend(notices);
    }

    /// Writes XMP sidecars (no `csv`) or one CSV file, on a background thread.
    pub(super) fn export(&mut self, ctx: &egui::Context, csv: Option<PathBuf>) {
        let tagged: Vec<(PathBuf, Vec<Label>, PhotoInfo)> = self
            .export_targets()
            .map(|(path, labels)| {
                let info = self.photos.id_of(path).and_then(|id| self.photos.get(id)).map(|p| p.info.clone());
                (path.to_owned(), labels.to_vec(), info.unwrap_or_default())
            })
            .collect();
        let request = ExportRequest {
            sidecars: csv.is_none().then_some(self.settings.sidecar_naming),
            csv,
            json: None,
            min_prob: self.settings.min_prob,
        };
        self.jobs.run(ctx, move || {
            let photos: Vec<PhotoTags> =
                tagged.iter().map(|(path, labels, info)| PhotoTags { path, labels, info: Some(info) }).collect();
            let report = request.run(&photos, &AtomicBool::new(false));
            Some(Done::Exported(Exported { csv: request.csv, photos: photos.len(), report }))
        });
    }

    /// The photos an export writes, with their labels, in the order they were added: the
    /// selected tagged photos, or every tagged photo when none is selected.
    pub(super) fn export_targets(&self) -> impl Iterator<Item = (&Path, &[Label])> {
        let photos: Box<dyn Iterator<Item = &Photo>> = if self.selection.is_empty() {
            Box::new(self.photos.iter().map(|(_, photo)| photo))
        } else {
            Box::new(self.selection.ids().filter_map(|id| self.photos.get(id)))
        };
        photos.filter_map(|photo| match &photo.state {
            PhotoState::Tagged(labels) => Some((photo.path.as_path(), labels.as_slice())),
            _ => None,
        })
    }

    /// What writing sidecars now would do, for the confirmation.
    pub(super) fn sidecar_plan(&self) -> SidecarPlan {
        let min_prob = self.settings.min_prob;
        let mut plan = SidecarPlan {
            photos: 0,
            selected: !self.selection.is_empty(),
            min_prob,
            preview: None,
            without_keywords: 0,
        };
        for (path, labels) in self.export_targets() {
            let keywords = export::keywords(labels, min_prob);
            plan.photos += 1;
            plan.without_keywords += usize::from(keywords.is_empty());
            if plan.preview.is_none() {
                let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
                plan.preview = Some((name, keywords));
            }
        }
        plan
    }

    /// Applies what the jobs off the UI thread finished with.
    pub(super) fn poll_background(&mut self) {
        for done in self.jobs.finished() {
            match done {
                Done::Exported(exported) => {
                    self.notices.push(exported.notice());
                    let failed = exported.report.errors.iter();
                    self.errors.extend(failed.map(|error| (error.path().to_owned(), error.to_string())));
                }
                Done::PeakMeasured(peak) => {
                    self.measuring_peak = false;
                    self.cpu_peak = Some(peak);
                }
                Done::CacheMeasured { bytes, epoch } if epoch == self.cache_epoch => {
                    self.measuring_cache = false;
                    self.cache_bytes = Some(bytes);
                }
                // Measured before the cache was cleared.
                Done::CacheMeasured { .. } => {}
                Done::Rescanned { root, gone: None } => {
                    // A disconnected drive or an unmounted share: its photos are kept.
                    self.notices.push(format!("{} cannot be found; is its drive connected?", root.display()));
                }
                Done::Rescanned { root, gone: Some(gone) } => {
                    let ids: Vec<PhotoId> = gone.iter().filter_map(|path| self.photos.id_of(path)).collect();
                    if !ids.is_empty() {
                        let removed = self.take_out(ids);
                        self.notices.push(format!(
                            "{} photos of {} are gone from the disk",
                            removed.len(),
                            root.display()
                        ));
                    }
                    self.add_paths(vec![root]);
                }
            }
        }
    }

    /// The cache changed (it was cleared): its size is measured again, and a measurement
    /// still running is of the old cache.
    pub(super) fn cache_changed(&mut self) {
        self.cache_epoch += 1;
        self.measuring_cache = false;
        self.cache_bytes = None;
    }

    /// Looks at a folder of the library again, off the UI thread: its photos whose files are
    /// gone leave the list, and new ones join.
    pub(super) fn rescan(&mut self, ctx: &egui::Context, root: &Path) {
        let photos: Vec<PathBuf> =
            self.photos.iter().filter(|(_, p)| p.path.starts_with(root)).map(|(_, p)| p.path.clone()).collect();
        let root = root.to_owned();
        self.jobs.run(ctx, move || {
            let gone = root.exists().then(|| photos.into_iter().filter(|path| !path.exists()).collect());
            Some(Done::Rescanned { root, gone })
        });
    }

    /// Measures this machine's peak off the UI thread, once, when the model has run on the CPU
    /// and nothing is being tagged (tagging would take the cores the probe needs).
    pub(super) fn measure_peak(&mut self, ctx: &egui::Context) {
        let ran_on_cpu = self.model_speed.is_some_and(|speed| speed.on_cpu);
        if !ran_on_cpu || self.busy || self.cpu_peak.is_some() || self.measuring_peak {
            return;
        }
        self.measuring_peak = true;
        let threads = rayon::current_num_threads();
        self.jobs.run(ctx, move || Some(Done::PeakMeasured(peak::measure(threads))));
    }

    pub(super) fn measure_cache(&mut self, ctx: &egui::Context) {
        let Some(dir) = self.options.worker.cache_dir.clone() else { return };
        if self.cache_bytes.is_some() || self.measuring_cache {
            return;
        }
        self.measuring_cache = true;
        let epoch = self.cache_epoch;
        self.jobs.run(ctx, move || Some(Done::CacheMeasured { bytes: folder_size(&dir), epoch }));
    }
}

/// Total size of the files in a folder tree.
fn folder_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Sets `stop` and asks for a frame when the process gets SIGTERM, SIGINT or SIGHUP (a
/// logout, a kill, Ctrl-C in the terminal), so that the next frame saves everything and closes
/// the window: an idle window has no frame coming otherwise.
#[cfg(unix)]
pub(super) fn watch_stop_signals(ctx: &egui::Context, stop: &Arc<AtomicBool>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            tracing::warn!("signals cannot be watched ({e}); a logout may lose the last seconds' changes");
            return;
        }
    };
    let (ctx, stop) = (ctx.clone(), Arc::clone(stop));
    let watching = std::thread::Builder::new().name("evatag-signals".into()).spawn(move || {
        for signal in signals.forever() {
            tracing::info!("signal {signal}");
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            ctx.request_repaint();
        }
    });
    if let Err(e) = watching {
        tracing::warn!("signals cannot be watched ({e})");
    }
}

/// Windows and others close the window at logoff, which saves through `on_exit`.
#[cfg(not(unix))]
pub(super) fn watch_stop_signals(_ctx: &egui::Context, _stop: &Arc<AtomicBool>) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::export::ExportError;

    fn exported(csv: Option<&str>, sidecars: usize, without_keywords: usize, failed: &[&str]) -> Exported {
        let errors = failed.iter().map(|path| ExportError::ReadOnly { path: PathBuf::from(path) }).collect();
        let report = ExportReport { sidecars, sidecars_without_keywords: without_keywords, errors, stopped: false };
        Exported { csv: csv.map(PathBuf::from), photos: 7, report }
    }

    #[test]
    fn an_export_is_told_in_one_line_with_its_failures_counted() {
        assert_eq!(exported(None, 5, 0, &[]).notice(), "Wrote 5 XMP sidecars");
        assert_eq!(
            exported(None, 5, 2, &["/p/a.xmp"]).notice(),
            "Wrote 5 XMP sidecars; 2 have no keyword at this threshold; 1 file failed (see Errors)"
        );
        assert_eq!(
            exported(None, 3, 0, &["/p/a.xmp", "/p/b.xmp"]).notice(),
            "Wrote 3 XMP sidecars; 2 files failed (see Errors)"
        );
        assert_eq!(exported(Some("/out/tags.csv"), 0, 0, &[]).notice(), "Wrote 7 photos to /out/tags.csv");
        assert_eq!(
            exported(Some("/out/tags.csv"), 0, 0, &["/out/tags.csv"]).notice(),
            "/out/tags.csv could not be written (see Errors)"
        );
    }
}

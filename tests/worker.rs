//! The worker through its protocol, with the tiny fixture model.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use evatag::model::weights::ModelSource;
use evatag::worker::{Command, Event, ModelStatus, PhotoErrorKind, Worker, WorkerConfig};

#[test]
fn a_cancelled_folder_is_still_listed_in_full_and_nothing_is_failed() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let count = 400;
    let png = {
        let mut bytes = Vec::new();
        let image = image::RgbImage::from_fn(48, 32, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, 60]));
        image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        bytes
    };
    for i in 0..count {
        std::fs::write(photos.path().join(format!("p{i:04}.png")), &png).unwrap();
    }
    let config = WorkerConfig {
        source: ModelSource::Dir(model_dir("eva_tiny")),
        cache_dir: Some(cache.path().to_owned()),
        batch_size: 1,
        ..WorkerConfig::default()
    };
    let worker = Worker::spawn(config, Box::new(|| {}));
    let events = worker.events();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(events.recv_timeout(Duration::from_secs(60)), Ok(Event::Model(ModelStatus::Ready { .. }))) {
        assert!(Instant::now() < deadline, "the model did not load");
    }
    worker.send(Command::Add(vec![photos.path().to_owned()]));
    worker.send(Command::Cancel);
    let mut seen: HashSet<PathBuf> = HashSet::new();
    while seen.len() < count && Instant::now() < deadline {
        match events.recv_timeout(Duration::from_secs(10)) {
            Ok(Event::Queued { path, .. } | Event::Listed { path, .. }) => {
                seen.insert(path);
            }
            Ok(Event::Image { path, outcome: Err(error) }) => {
                assert_eq!(error.kind, PhotoErrorKind::Cancelled, "{}: {error}", path.display());
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(seen.len(), count, "every photo of the folder is listed");
    worker.shutdown();
}

/// Sets its flag when dropped: captured by a worker's wake function, it tells when every
/// thread of that worker has ended.
struct EndedWhenDropped(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for EndedWhenDropped {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A restarted worker (a device or precision change) says anything, and so starts on its
/// model, only once the old worker has ended and released its own. The old worker is in the
/// middle of a job whose every event takes a while to tell, so that a new worker that did not
/// wait would be heard from long before the old one ends.
#[test]
fn a_restarted_worker_loads_its_model_only_after_the_old_one_is_gone() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let photos = tempfile::tempdir().unwrap();
    let png = {
        let mut bytes = Vec::new();
        let image = image::RgbImage::from_fn(48, 32, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, 90]));
        image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        bytes
    };
    for i in 0..40 {
        std::fs::write(photos.path().join(format!("p{i:02}.png")), &png).unwrap();
    }
    let config = WorkerConfig {
        source: ModelSource::Dir(model_dir("eva_tiny")),
        cache_dir: None,
        batch_size: 1,
        ..WorkerConfig::default()
    };
    let (ended, slow) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let guard = EndedWhenDropped(ended.clone());
    let slow_wake = slow.clone();
    let mut worker = Worker::spawn(
        config.clone(),
        Box::new(move || {
            let _ = &guard;
            if slow_wake.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }),
    );
    let wait_for = |worker: &Worker, wanted: &dyn Fn(&Event) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let event = worker.events().recv_timeout(deadline.saturating_duration_since(Instant::now()));
            if wanted(&event.expect("the worker answers within a minute")) {
                return;
            }
        }
    };
    wait_for(&worker, &|event| matches!(event, Event::Model(ModelStatus::Ready { .. })));
    worker.send(Command::Add(vec![photos.path().to_owned()]));
    wait_for(&worker, &|event| matches!(event, Event::Image { .. }));
    slow.store(true, Ordering::SeqCst);
    worker.restart(config, Box::new(|| {}));
    let first = worker.events().recv_timeout(Duration::from_secs(60)).expect("the new worker says something");
    assert!(matches!(first, Event::Model(ModelStatus::Locating)), "{first:?}");
    assert!(ended.load(Ordering::SeqCst), "the new worker started before the old one ended");
    wait_for(&worker, &|event| matches!(event, Event::Model(ModelStatus::Ready { .. })));
    worker.shutdown();
}

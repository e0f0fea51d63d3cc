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

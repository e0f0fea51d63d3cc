//! Moving photos to the system trash: sidecars go with their photos, the cache forgets them, and
//! an interrupted move leaves every file either in place or in the trash.
//!
//! One test in this binary: it points the Freedesktop trash at a temporary folder through
//! `XDG_DATA_HOME` before any thread starts.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use evatag::library::cache::Cache;
use evatag::library::trash::move_to_trash;
use evatag::model::weights::ModelSource;
use evatag::worker::{Command, Event, Worker, WorkerConfig};

use common::{copy_photos, model_dir};

fn in_trash(trash: &Path, name: &str) -> bool {
    trash.join("files").join(name).exists() && trash.join("info").join(format!("{name}.trashinfo")).exists()
}

/// `count` small files in `dir`, named `PREFIX-NNNN.jpg` and holding their number.
fn numbered_files(dir: &Path, prefix: &str, count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let path = dir.join(format!("{prefix}-{i:04}.jpg"));
            std::fs::write(&path, i.to_string()).unwrap();
            path
        })
        .collect()
}

fn wait_for<T>(worker: &Worker, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    loop {
        let event = worker.events().recv_timeout(Duration::from_secs(120)).expect("the worker answers");
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn photos_go_to_the_trash_with_their_sidecars_and_nothing_is_lost_when_interrupted() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: this binary's only test sets the variable before it starts any thread.
    unsafe { std::env::set_var("XDG_DATA_HOME", home.path()) };
    let trash = home.path().join("Trash");

    // Through the worker: photos tagged, one moved with both its sidecars.
    let photos_dir = home.path().join("photos");
    std::fs::create_dir(&photos_dir).unwrap();
    let photos = copy_photos(&photos_dir);
    let cache_dir = home.path().join("cache");
    let config = WorkerConfig {
        source: ModelSource::Dir(model_dir("eva_tiny")),
        cache_dir: Some(cache_dir.clone()),
        ..WorkerConfig::default()
    };
    let worker = Worker::spawn(config, Box::new(|| {}));
    worker.send(Command::Add(vec![photos_dir.clone()]));
    wait_for(&worker, |e| matches!(e, Event::Idle).then_some(()));
    let doomed = photos[0].clone();
    let name = doomed.file_name().unwrap().to_string_lossy().into_owned();
    let appended = PathBuf::from(format!("{}.xmp", doomed.display()));
    let replaced = doomed.with_extension("xmp");
    std::fs::write(&appended, b"<x:xmpmeta/>").unwrap();
    std::fs::write(&replaced, b"<x:xmpmeta/>").unwrap();
    let other_sidecar = PathBuf::from(format!("{}.xmp", photos[1].display()));
    std::fs::write(&other_sidecar, b"<x:xmpmeta/>").unwrap();
    let missing = photos_dir.join("not-there.jpg");

    worker.send(Command::MoveToTrash(vec![doomed.clone(), missing.clone()]));
    let report = wait_for(&worker, |e| match e {
        Event::Trashed(report) => Some(report),
        _ => None,
    });
    assert_eq!(report.moved, std::slice::from_ref(&doomed));
    assert_eq!(report.sidecars, [appended.clone(), replaced.clone()]);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.errors[0].0, missing);
    assert!(report.errors[0].1.contains("not-there.jpg"), "{:?}", report.errors);
    assert!(!doomed.exists() && !appended.exists() && !replaced.exists());
    assert!(in_trash(&trash, &name), "the photo is in the trash, with its restore information");
    assert!(in_trash(&trash, &format!("{name}.xmp")));
    assert!(other_sidecar.exists(), "another photo's sidecar stays");
    // The library forgets it: it is no longer among the files compared for duplicates.
    worker.send(Command::FindDuplicates { within: None });
    let graph = wait_for(&worker, |e| match e {
        Event::Duplicates(outcome) => Some(outcome.unwrap()),
        _ => None,
    });
    assert!(graph.photos.iter().all(|p| p.path != doomed));

    // A long move tells its progress and stops at a cancel.
    let long_dir = home.path().join("long");
    std::fs::create_dir(&long_dir).unwrap();
    let long = numbered_files(&long_dir, "long", 2000);
    worker.send(Command::MoveToTrash(long.clone()));
    // Cancelled as soon as the move says it has begun.
    let (task, total) = wait_for(&worker, |e| match e {
        Event::Working { task, total, .. } => Some((task, total)),
        _ => None,
    });
    assert_eq!((task, total), (evatag::worker::Task::MovingToTrash, long.len() as u64));
    worker.cancel();
    let report = wait_for(&worker, |e| match e {
        Event::Trashed(report) => Some(report),
        _ => None,
    });
    assert!(report.stopped && report.moved.len() < long.len(), "{} moved", report.moved.len());
    assert_eq!(long.iter().filter(|path| path.exists()).count(), long.len() - report.moved.len());
    worker.shutdown();
    let cache = Cache::open_reader(&cache_dir.join(evatag::library::cache::DATABASE_FILE)).unwrap();
    let hash = evatag::library::cache::hash_bytes(&std::fs::read(trash.join("files").join(&name)).unwrap());
    assert!(cache.paths_of(&hash).unwrap().is_empty(), "the cache no longer lists it");

    // Interrupted part-way: each file is in place or in the trash, never both or neither.
    let many_dir = home.path().join("many");
    std::fs::create_dir(&many_dir).unwrap();
    let files = numbered_files(&many_dir, "burst", 300);
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = stop.clone();
        let many_dir = many_dir.clone();
        std::thread::spawn(move || {
            while std::fs::read_dir(&many_dir).unwrap().count() > 250 {
                std::thread::yield_now();
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    let reported = std::sync::Mutex::new(Vec::new());
    let report_progress = |done: usize, total: usize| reported.lock().unwrap().push((done, total));
    let report = move_to_trash(&files, evatag::library::watch::Watch::new(&stop, &report_progress));
    stopper.join().unwrap();
    assert!(report.stopped, "the stop came before the end");
    assert!(report.moved.len() >= 50 && report.moved.len() < files.len(), "{}", report.moved.len());
    // Told before each photo how many were done, and not told the batch was complete.
    let reported = reported.into_inner().unwrap();
    assert_eq!(reported.len(), report.moved.len() + 1);
    assert!(reported.iter().enumerate().all(|(i, &(done, total))| done == i && total == files.len()), "{reported:?}");
    for (i, file) in files.iter().enumerate() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let trashed = in_trash(&trash, &name);
        assert_ne!(file.exists(), trashed, "{name} must be in exactly one place");
        assert_eq!(trashed, i < report.moved.len(), "{name}: moved in order, up to the stop");
        if trashed {
            assert_eq!(std::fs::read_to_string(trash.join("files").join(&name)).unwrap(), i.to_string());
        }
    }
}

//! The result cache end to end: nothing computed twice, renamed photos hit, edited photos
//! miss, a killed run loses at most its batch in flight, a corrupt database is replaced.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::path::Path;

use common::*;

fn labels_by_name(run: &Run) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = run
        .lines
        .iter()
        .map(|l| {
            let name = Path::new(l["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
            (name, l["labels"].to_string())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_second_run_computes_nothing_and_says_the_same() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let copied = copy_photos(photos.path());
    let args = tag_args("eva_tiny", &[photos.path()]);
    let first = run_evatag(&os(&args), Some(cache.path()));
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(first.summary(), (copied.len() as u64, 0, 0));
    let second = run_evatag(&os(&args), Some(cache.path()));
    assert_eq!(second.summary(), (0, copied.len() as u64, 0));
    assert_eq!(labels_by_name(&first), labels_by_name(&second));

    // A renamed photo is recognised by its content.
    let renamed = photos.path().join("renamed.jpg");
    std::fs::rename(&copied[0], &renamed).unwrap();
    let third = run_evatag(&os(&args), Some(cache.path()));
    assert_eq!(third.summary(), (0, copied.len() as u64, 0));
    assert!(third.line_for(&renamed)["labels"].is_array());

    // A photo edited in place is tagged again.
    let image = image::open(&copied[1]).unwrap();
    image.rotate180().save(&copied[1]).unwrap();
    let fourth = run_evatag(&os(&args), Some(cache.path()));
    assert_eq!(fourth.summary(), (1, copied.len() as u64 - 1, 0));

    // --no-cache computes everything.
    let fifth = run_evatag(&os(&args), None);
    assert_eq!(fifth.summary(), (copied.len() as u64, 0, 0));
}

#[test]
fn a_corrupt_database_is_set_aside_with_a_warning() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let copied = copy_photos(photos.path());
    let noise: Vec<u8> = (0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    std::fs::write(cache.path().join(evatag::library::cache::DATABASE_FILE), noise).unwrap();
    let run = run_evatag(&os(&tag_args("eva_tiny", &[photos.path()])), Some(cache.path()));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("warning") && run.stderr.contains("moved it to"), "{}", run.stderr);
    assert_eq!(run.summary(), (copied.len() as u64, 0, 0));
    let again = run_evatag(&os(&tag_args("eva_tiny", &[photos.path()])), Some(cache.path()));
    assert_eq!(again.summary(), (0, copied.len() as u64, 0));
    assert!(!again.stderr.contains("warning"), "{}", again.stderr);
}

/// Writes `count` distinct photos (a fixture resized to different widths).
fn many_photos(dir: &Path, count: u32) {
    let base = image::open(fixtures().join("photos/cat_landscape.jpg")).unwrap();
    for i in 0..count {
        let resized = base.resize_exact(120 + i, 90 + i % 7, image::imageops::FilterType::Triangle);
        resized.save(dir.join(format!("p{i:03}.png"))).unwrap();
    }
}

#[cfg(unix)]
#[test]
fn a_killed_run_loses_at_most_its_batch_and_the_rerun_does_the_rest() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let total = 150;
    many_photos(photos.path(), total);
    let mut args = tag_args("eva_tiny", &[photos.path()]);
    args.extend(["--batch", "2"].map(Into::into));
    let mut child = Command::new(env!("CARGO_BIN_EXE_evatag"))
        .args(&args)
        .env("EVATAG_CACHE_DIR", cache.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut printed = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    while printed.len() < 20 {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "evatag ended early");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        printed.push(value["path"].as_str().unwrap().to_owned());
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let conn = rusqlite::Connection::open(cache.path().join(evatag::library::cache::DATABASE_FILE)).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let stored: Vec<String> = conn
        .prepare("SELECT path FROM files")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|p| String::from_utf8(p.unwrap()).unwrap())
        .collect();
    drop(conn);
    for path in &printed {
        assert!(stored.contains(path), "{path} was reported but not stored");
    }
    assert!(stored.len() < total as usize, "the run finished before it was killed");

    let rerun = run_evatag(&os(&args), Some(cache.path()));
    assert_eq!(rerun.code, Some(0), "{}", rerun.stderr);
    let (inferred, cached, failed) = rerun.summary();
    assert_eq!((inferred, cached, failed), (u64::from(total) - stored.len() as u64, stored.len() as u64, 0));
}

/// The names in `dir` of cache databases that were moved aside.
fn moved_aside(dir: &Path) -> Vec<String> {
    let names = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned());
    names.filter(|name| name.contains(".broken-")).collect()
}

/// A cache written by a newer evatag (its layout version one above this one's) keeps its
/// bytes: its results are served, new ones are not stored, and the run says why.
#[test]
fn a_cache_from_a_newer_version_is_read_and_keeps_its_bytes() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    many_photos(photos.path(), 2);
    let (first, second) = (photos.path().join("p000.png"), photos.path().join("p001.png"));
    let run = run_evatag(&os(&tag_args("eva_tiny", &[&first])), Some(cache.path()));
    assert_eq!(run.summary(), (1, 0, 0), "{}", run.stderr);
    let database = cache.path().join(evatag::library::cache::DATABASE_FILE);
    let newer = evatag::library::cache::SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&database).unwrap().pragma_update(None, "user_version", newer).unwrap();
    let before = std::fs::read(&database).unwrap();

    let run = run_evatag(&os(&tag_args("eva_tiny", &[&first, &second])), Some(cache.path()));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.summary(), (1, 1, 0), "the first photo comes from the cache: {}", run.stderr);
    assert!(run.stderr.contains("written by a newer evatag"), "{}", run.stderr);
    assert!(std::fs::read(&database).unwrap() == before, "the database was written");
    let version: i64 =
        rusqlite::Connection::open(&database).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, newer);
    assert!(moved_aside(cache.path()).is_empty());
}

/// Eight processes opening one empty cache folder at the same moment: each creates or finds
/// the tables, none moves another's database aside, and every result is stored.
#[test]
fn eight_processes_starting_on_an_empty_cache_all_store_their_results() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let count = 8;
    many_photos(photos.path(), count);
    let folder = cache.path().join("new");
    let runs: Vec<_> = (0..count)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_evatag"))
                .args(tag_args("eva_tiny", &[&photos.path().join(format!("p{i:03}.png"))]))
                .env("EVATAG_CACHE_DIR", &folder)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("warning"), "{stderr}");
    }
    assert!(moved_aside(&folder).is_empty(), "{:?}", moved_aside(&folder));
    let again = run_evatag(&os(&tag_args("eva_tiny", &[photos.path()])), Some(&folder));
    assert_eq!(again.summary(), (0, u64::from(count), 0), "{}", again.stderr);
}

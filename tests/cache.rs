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

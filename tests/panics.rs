//! A panic at any stage fails only the photo it is about: the run goes on, the photo gets one
//! error line naming it, and the exit status is 1. Panics are injected through the debug
//! build's fail points (`EVATAG_PANIC_AT=STAGE:FILE_NAME`, see `evatag::fail_point`).
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const CULPRIT: &str = "cat_landscape.jpg";

/// Runs the binary with a panic armed at `stage` for the culprit photo.
fn evatag_panicking_at(stage: &str, args: &[std::ffi::OsString]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_evatag"))
        .args(args)
        .arg("--no-cache")
        .env(evatag::fail_point::FAIL_POINT_ENV, format!("{stage}:{CULPRIT}"))
        .output()
        .unwrap()
}

#[test]
fn a_panic_while_decoding_running_the_model_or_recording_fails_only_that_photo() {
    let dir = tempfile::tempdir().unwrap();
    let photos = copy_photos(dir.path());
    let culprit = dir.path().join(CULPRIT);
    for (stage, says) in [
        ("decode", "the decoder failed unexpectedly (injected panic at decode:"),
        ("model", "evatag failed unexpectedly while running the model on it: injected panic at model:"),
        ("worker", "evatag failed unexpectedly while recording its labels: injected panic at worker:"),
    ] {
        let mut args = tag_args("eva_tiny", &[dir.path()]);
        args.extend(["--batch", "4"].map(Into::into));
        let output = evatag_panicking_at(stage, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stage}: {stderr}");
        let lines: Vec<serde_json::Value> =
            String::from_utf8_lossy(&output.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines.len(), photos.len(), "{stage}: {lines:?}");
        for line in &lines {
            let path = Path::new(line["path"].as_str().unwrap());
            if path == culprit {
                let error = line["error"].as_str().unwrap();
                assert!(error.starts_with(&format!("{}: ", culprit.display())), "{stage}: {error}");
                assert!(error.contains(says) && !error.contains('\n'), "{stage}: {error}");
            } else {
                assert!(line["labels"].is_array(), "{stage}: {line}");
            }
        }
    }
}

#[test]
fn a_panic_while_exporting_one_photo_leaves_the_others_written() {
    let dir = tempfile::tempdir().unwrap();
    let photos = copy_photos(dir.path());
    let mut args = tag_args("eva_tiny", &[dir.path()]);
    args[0] = "export".into();
    args.push("--xmp".into());
    let output = evatag_panicking_at("export", &args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let culprit = dir.path().join(CULPRIT);
    let expected = format!("{}: evatag failed unexpectedly while exporting it: injected panic", culprit.display());
    assert!(stderr.lines().any(|line| line.contains(&expected)), "{stderr}");
    for photo in &photos {
        let sidecar = evatag::library::export::sidecar_path(photo, Default::default());
        assert_eq!(sidecar.exists(), *photo != culprit, "{}", sidecar.display());
    }
}

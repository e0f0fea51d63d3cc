//! The real download path (hf-hub) against a local server in the Hub's URL layout.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::hub::{self, Mode};
use common::*;

const REPO: &str = "timm/eva-tiny-fixture";

fn evatag(hf_home: &Path, endpoint: &str, extra: &[&str]) -> Output {
    let photo = fixtures().join("photos/cat_landscape.jpg");
    Command::new(env!("CARGO_BIN_EXE_evatag"))
        .args(["tag", "--no-cache", "--device", "cpu", "--repo", REPO])
        .args(extra)
        .arg(photo)
        .env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap()
}

/// Files in the Hub cache's snapshot folder of the repository, which is what later runs trust.
fn snapshot_files(hf_home: &Path) -> Vec<String> {
    let snapshots = hf_home.join("hub").join(format!("models--{}", REPO.replace('/', "--"))).join("snapshots");
    let mut names = Vec::new();
    for commit in std::fs::read_dir(snapshots).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(commit.path()).unwrap().flatten() {
            names.push(file.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
}

#[test]
fn downloads_caches_and_loads_from_the_hub() {
    let home = tempfile::tempdir().unwrap();
    let hub = hub::serve(REPO, &model_dir("eva_tiny"), Mode::Healthy);
    let out = evatag(home.path(), &hub.endpoint, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.contains("\"labels\""), "{line}");
    assert_eq!(snapshot_files(home.path()), ["config.json", "model.safetensors"]);
    let cached = std::fs::read(
        home.path()
            .join("hub/models--timm--eva-tiny-fixture/snapshots")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join("model.safetensors"),
    )
    .unwrap();
    assert_eq!(cached, std::fs::read(model_dir("eva_tiny").join("model.safetensors")).unwrap());

    // Offline, from the cache alone, with the server unreachable.
    let again = evatag(home.path(), "http://127.0.0.1:9", &["--offline"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(String::from_utf8(again.stdout).unwrap(), line);
}

#[test]
fn an_interrupted_download_fails_clearly_and_resumes() {
    let home = tempfile::tempdir().unwrap();
    let size = std::fs::metadata(model_dir("eva_tiny").join("model.safetensors")).unwrap().len() as usize;
    let cut = size / 2;
    let broken = hub::serve(REPO, &model_dir("eva_tiny"), Mode::CutWeightsAfter(cut));
    let out = evatag(home.path(), &broken.endpoint, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not download model.safetensors"), "{stderr}");
    assert!(out.stdout.is_empty());
    // Nothing that passes for a complete weights file.
    assert_eq!(snapshot_files(home.path()), ["config.json"]);
    let offline = evatag(home.path(), "http://127.0.0.1:9", &["--offline"]);
    assert_eq!(offline.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&offline.stderr).contains("not in the Hugging Face cache"));

    // A healthy server later: the download resumes where it stopped.
    let healthy = hub::serve(REPO, &model_dir("eva_tiny"), Mode::Healthy);
    let out = evatag(home.path(), &healthy.endpoint, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed =
        healthy.requests.lock().unwrap().iter().any(|(path, range)| {
            path.ends_with("model.safetensors") && range.as_deref() == Some(&format!("bytes={cut}-"))
        });
    assert!(resumed, "expected a range request from byte {cut}: {:?}", healthy.requests.lock().unwrap());
    assert_eq!(snapshot_files(home.path()), ["config.json", "model.safetensors"]);
}

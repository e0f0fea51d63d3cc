//! `evatag duplicates` on copies made from the fixture photos: an exact copy, near copies
//! (resized, re-encoded, turned by EXIF, cropped by 3%) and different photos.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use image::{DynamicImage, ImageEncoder, RgbImage};

use common::{fixtures, model_dir, run_evatag};

/// The model whose embeddings separate the fixture photos (different photos score at most
/// 0.81 with it, near copies at least 0.96).
const MODEL: &str = "eva02_packed";

fn original() -> RgbImage {
    image::open(fixtures().join("photos/cat_landscape.jpg")).unwrap().to_rgb8()
}

fn save_jpeg(image: &RgbImage, path: &Path, quality: u8, exif: Option<Vec<u8>>) {
    let mut bytes = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality);
    if let Some(exif) = exif {
        encoder.set_exif_metadata(exif).unwrap();
    }
    encoder.write_image(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgb8).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A little-endian TIFF block holding only an Orientation tag.
fn orientation_exif(orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes());
    tiff.extend(1u16.to_le_bytes());
    tiff.extend(0x0112u16.to_le_bytes());
    tiff.extend(3u16.to_le_bytes());
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(u32::from(orientation).to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    tiff
}

fn set_age(path: &Path, seconds_ago: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(seconds_ago)).unwrap();
}

/// Writes the copies into `dir`: (name, whether it is a copy of the cat).
fn make_library(dir: &Path) -> Vec<(&'static str, bool)> {
    let cat = original();
    save_jpeg(&cat, &dir.join("cat.jpg"), 95, None);
    std::fs::copy(dir.join("cat.jpg"), dir.join("cat-copy.jpg")).unwrap();
    // Same pixels and bytes: the older file is the one to keep.
    set_age(&dir.join("cat.jpg"), 3600);
    set_age(&dir.join("cat-copy.jpg"), 60);
    let half =
        DynamicImage::ImageRgb8(cat.clone()).resize(cat.width() / 2, cat.height() / 2, image::imageops::CatmullRom);
    save_jpeg(&half.to_rgb8(), &dir.join("cat-half.jpg"), 90, None);
    save_jpeg(&cat, &dir.join("cat-q50.jpg"), 50, None);
    // Stored turned a quarter to the left; orientation 6 turns it upright when shown.
    save_jpeg(&image::imageops::rotate270(&cat), &dir.join("cat-turned.jpg"), 90, Some(orientation_exif(6)));
    let (w, h) = (cat.width(), cat.height());
    let (dx, dy) = (w * 3 / 100, h * 3 / 100);
    let cropped = image::imageops::crop_imm(&cat, dx, dy, w - 2 * dx, h - 2 * dy).to_image();
    save_jpeg(&cropped, &dir.join("cat-crop.jpg"), 90, None);
    for other in ["coffee_landscape.jpg", "astronaut_portrait.jpg"] {
        std::fs::copy(fixtures().join("photos").join(other), dir.join(other)).unwrap();
    }
    vec![
        ("cat.jpg", true),
        ("cat-copy.jpg", true),
        ("cat-half.jpg", true),
        ("cat-q50.jpg", true),
        ("cat-turned.jpg", true),
        ("cat-crop.jpg", true),
        ("coffee_landscape.jpg", false),
        ("astronaut_portrait.jpg", false),
    ]
}

fn duplicates(dir: &Path, cache: &Path, extra: &[&str]) -> common::Run {
    let model = model_dir(MODEL);
    let mut args: Vec<&std::ffi::OsStr> =
        ["duplicates", "--json", "--device", "cpu", "--model-dir"].iter().map(std::ffi::OsStr::new).collect();
    args.push(model.as_os_str());
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    args.push(dir.as_os_str());
    run_evatag(&args, Some(cache))
}

fn name(member: &serde_json::Value) -> String {
    Path::new(member["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn copies_group_with_the_original_and_other_photos_stay_out() {
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let library = make_library(dir.path());
    let run = duplicates(dir.path(), cache.path(), &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.lines.len(), 1, "one group: {:#?}", run.lines);
    let group = run.lines[0]["group"].as_array().unwrap();
    let mut names: Vec<String> = group.iter().map(name).collect();
    assert_eq!(names[0], "cat.jpg", "the older of the two largest files is kept");
    names.sort();
    let mut expected: Vec<String> = library.iter().filter(|(_, copy)| *copy).map(|(n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);

    let keeper = &group[0];
    let original = original();
    assert_eq!(keeper["keep"], true);
    assert_eq!((keeper["width"].as_u64(), keeper["height"].as_u64()), (Some(451), Some(300)));
    assert_eq!(keeper["bytes"].as_u64(), Some(std::fs::metadata(dir.path().join("cat.jpg")).unwrap().len()));
    assert_eq!((original.width(), original.height()), (451, 300));
    for member in &group[1..] {
        assert_eq!(member["keep"], false);
        let score = member["score"].as_f64().unwrap();
        assert!((0.95..=1.0).contains(&score), "{member}");
    }
    let score_of = |n: &str| group.iter().find(|m| name(m) == n).unwrap()["score"].as_f64().unwrap();
    assert_eq!(score_of("cat-copy.jpg"), 1.0, "an exact copy scores 1");
    let turned = group.iter().find(|m| name(m) == "cat-turned.jpg").unwrap();
    assert_eq!((turned["width"].as_u64(), turned["height"].as_u64()), (Some(451), Some(300)), "as shown");
    let scores: Vec<f64> = group[1..].iter().map(|m| m["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "most alike first: {scores:?}");

    // A threshold of 1 keeps only the exact copies together; the second run reads the cache.
    let strict = duplicates(dir.path(), cache.path(), &["--threshold", "1"]);
    assert_eq!(strict.lines.len(), 1);
    let names: Vec<String> = strict.lines[0]["group"].as_array().unwrap().iter().map(name).collect();
    assert_eq!(names, ["cat.jpg", "cat-copy.jpg"]);
    assert!(strict.stderr.contains("1 groups"), "{}", strict.stderr);
}

#[test]
fn without_paths_the_whole_cache_is_searched_and_bad_thresholds_are_refused() {
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    make_library(dir.path());
    assert_eq!(duplicates(dir.path(), cache.path(), &[]).code, Some(0));
    std::fs::remove_file(dir.path().join("cat-half.jpg")).unwrap();
    let model = model_dir(MODEL);
    let args: Vec<&std::ffi::OsStr> =
        vec!["duplicates".as_ref(), "--json".as_ref(), "--model-dir".as_ref(), model.as_os_str()];
    let run = run_evatag(&args, Some(cache.path()));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let paths: Vec<PathBuf> =
        run.lines[0]["group"].as_array().unwrap().iter().map(|m| PathBuf::from(m["path"].as_str().unwrap())).collect();
    assert_eq!(paths.len(), 5, "a deleted file is left out: {paths:?}");
    assert!(paths.iter().all(|p| p.exists()));

    let model = model_dir(MODEL);
    for bad in ["0.5", "1.5", "high"] {
        let args: Vec<&std::ffi::OsStr> = vec![
            "duplicates".as_ref(),
            "--threshold".as_ref(),
            bad.as_ref(),
            "--model-dir".as_ref(),
            model.as_os_str(),
        ];
        let run = run_evatag(&args, Some(cache.path()));
        assert_eq!(run.code, Some(2), "{bad}");
        assert!(run.stderr.contains(bad), "{}", run.stderr);
    }
}

/// A camera's RAW file and the JPEG it wrote beside it are two photos; their contents differ, so
/// only their embeddings can pair them.
#[test]
fn a_raw_file_and_its_jpeg_pair_by_embedding_not_by_content() {
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Stored on its side (144x240) with orientation 6; the camera's JPEG of it is upright.
    std::fs::copy(fixtures().join("camera/preview.dng"), dir.path().join("IMG_0001.DNG")).unwrap();
    let camera_jpeg = image::open(fixtures().join("camera/expected/preview.dng.png")).unwrap().to_rgb8();
    save_jpeg(&camera_jpeg, &dir.path().join("IMG_0001.JPG"), 90, None);
    std::fs::copy(fixtures().join("photos/astronaut_portrait.jpg"), dir.path().join("IMG_0002.JPG")).unwrap();

    let run = duplicates(dir.path(), cache.path(), &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.lines.len(), 1, "one group: {:#?}", run.lines);
    let group = run.lines[0]["group"].as_array().unwrap();
    let names: Vec<String> = group.iter().map(name).collect();
    assert_eq!(names, ["IMG_0001.DNG", "IMG_0001.JPG"], "as many pixels shown: the larger file, the RAW, is kept");
    for member in group {
        assert_eq!((member["width"].as_u64(), member["height"].as_u64()), (Some(240), Some(144)), "{member}");
    }
    let score = group[1]["score"].as_f64().unwrap();
    assert!((0.95..1.0).contains(&score), "a near copy, not an exact one: {score}");

    let exact_only = duplicates(dir.path(), cache.path(), &["--threshold", "1"]);
    assert!(exact_only.lines.is_empty(), "{:#?}", exact_only.lines);
}

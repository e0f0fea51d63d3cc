//! Photos as phones and cameras store them: HEIC (through the system's libheif) and camera RAW,
//! against fixtures made by pillow-heif and timm (tests/fixtures/make_heif_fixtures.py) and by
//! tifffile (tests/fixtures/make_raw_fixtures.py).
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use evatag::library::photo_info::PhotoInfo;
use evatag::preprocess::{PreprocessError, decode_for_display, decode_rgb8};

fn camera(name: &str) -> PathBuf {
    fixtures().join("camera").join(name)
}

fn expected_picture(name: &str) -> image::RgbImage {
    image::open(camera("expected").join(format!("{name}.png"))).unwrap().into_rgb8()
}

fn decode_fixture(name: &str) -> Result<image::RgbImage, PreprocessError> {
    let path = camera(name);
    decode_rgb8(&std::fs::read(&path).unwrap(), &path, 100)
}

/// The largest difference, in levels, between two pictures of the same size inside their
/// outermost ring of pixels, and the mean difference on that ring.
fn level_differences(a: &image::RgbImage, b: &image::RgbImage) -> (u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions());
    let (width, height) = a.dimensions();
    let (mut inside, mut ring_sum, mut ring_count) = (0u8, 0u64, 0u64);
    for (x, y, pixel) in a.enumerate_pixels() {
        let worst = pixel.0.iter().zip(b.get_pixel(x, y).0).map(|(p, q)| p.abs_diff(q)).max().unwrap();
        if x == 0 || y == 0 || x == width - 1 || y == height - 1 {
            ring_sum += u64::from(worst);
            ring_count += 1;
        } else {
            inside = inside.max(worst);
        }
    }
    (inside, ring_sum as f64 / ring_count as f64)
}

/// The mean difference, in levels, between two pictures of the same size.
fn mean_level_difference(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let total: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    total as f64 / a.as_raw().len() as f64
}

/// The size `decode_rgb8` reports when a fixture is refused under a limit of 0 megapixels,
/// which must happen before its pixels are decoded.
fn size_refused_at_zero_megapixels(name: &str) -> (u32, u32) {
    let bytes = std::fs::read(camera(name)).unwrap();
    match decode_rgb8(&bytes, Path::new(name), 0) {
        Err(PreprocessError::TooLarge { width, height, limit_mp: 0, .. }) => (width, height),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(image) => panic!("decoded as {:?}", image.dimensions()),
    }
}

/// One error line for `path` from a batch run, naming the file.
fn single_error_line(run: &Run, path: &Path) -> String {
    let line = run.line_for(path);
    let error = line["error"].as_str().unwrap_or_else(|| panic!("no error for {}: {line}", path.display())).to_owned();
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains(&*path.file_name().unwrap().to_string_lossy()), "{error}");
    error
}

mod heif {
    use super::*;

    /// Whether the loaded libheif interpolates 4:2:0 chroma, as pillow-heif's does (1.16 and
    /// later); earlier releases repeat each chroma sample.
    fn libheif_interpolates_chroma() -> bool {
        let version = evatag::preprocess::libheif_version().expect("libheif is installed");
        let mut parts = version.split('.').map(|part| part.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (1, 16)
    }

    /// With libheif 1.16 or later every pixel inside the outermost ring equals pillow-heif's;
    /// on the ring, releases differ in how they upsample 4:2:0 chroma at the picture's edge
    /// (1.19 against pillow-heif's 1.23: a mean of 7 levels there on these files). Older
    /// releases (1.15 on Debian 12) repeat chroma samples instead of interpolating them, which
    /// moves colour edges: on these files a mean of 0.26 and 0.56 levels, up to 11 at a few
    /// pixels.
    #[test]
    fn heic_pixels_match_pillow_heif_with_the_phone_rotation_applied_once() {
        let interpolated = libheif_interpolates_chroma();
        for name in ["cat_exif6.heic", "coffee_10bit.heic"] {
            let decoded = decode_fixture(name).unwrap();
            let expected = expected_picture(name);
            assert_eq!(decoded.dimensions(), expected.dimensions(), "{name}");
            let (inside, ring_mean) = level_differences(&decoded, &expected);
            let mean = mean_level_difference(&decoded, &expected);
            eprintln!("{name}: up to {inside} levels inside, mean {mean:.3}, edge ring mean {ring_mean:.2}");
            if interpolated {
                assert_eq!(inside, 0, "{name}: pixels differ from pillow-heif's by up to {inside} levels");
                assert!(ring_mean < 8.0, "{name}: the edge pixels differ by {ring_mean} levels on average");
            } else {
                assert!(inside <= 12 && mean < 0.75, "{name}: {mean} levels on average, up to {inside}");
            }
        }
        // Stored on its side with EXIF orientation 6 and a container rotation: turned once (a
        // second turn would keep this size; the pixels above would show it).
        assert_eq!(decode_fixture("cat_exif6.heic").unwrap().dimensions(), (451, 300));
    }

    /// AVIF through libheif's AV1 decoder against Pillow's own AVIF plugin (libavif): two
    /// libraries upsampling and converting the same decoded planes to RGB, which differ along
    /// sharp colour edges (on this file a mean of 0.69 levels, up to 27 at a few pixels).
    #[test]
    fn avif_pixels_match_pillows_libavif_decode() {
        let decoded = decode_fixture("astronaut.avif").unwrap();
        let expected = expected_picture("astronaut.avif");
        assert_eq!(decoded.dimensions(), expected.dimensions());
        let (inside, ring_mean) = level_differences(&decoded, &expected);
        let mean = mean_level_difference(&decoded, &expected);
        eprintln!("astronaut.avif: up to {inside} levels inside, mean {mean:.3}, edge ring mean {ring_mean:.2}");
        assert!(mean < 1.0, "{mean} levels from Pillow's decode on average");
    }

    #[test]
    fn heif_photos_are_tagged_like_timm_tags_their_reference_decode() {
        let model = load_model("eva_tiny");
        let preprocessor = fixture_preprocessor();
        let expected = camera_outputs();
        for name in ["cat_exif6.heic", "coffee_10bit.heic", "astronaut.avif"] {
            let input = preprocessor.run(&decode_fixture(name).unwrap());
            let prediction = &model.predict(&[&input]).unwrap()[0];
            let cos = cosine(&prediction.embedding, &expected[&format!("{name}/embedding")]);
            assert!(cos >= 0.9995, "{name}: embedding cosine {cos} against timm");
            eprintln!("{name}: embedding cosine {cos:.7} against timm on the reference decode");
            let want = top_indices(&expected[&format!("{name}/logits")], 5);
            assert_eq!(top_indices(&prediction.logits, 5), want, "{name}: top-5 classes differ from timm's");
        }
    }

    fn camera_outputs() -> std::collections::HashMap<String, Vec<f32>> {
        let path = camera("expected").join("eva_tiny.safetensors");
        let tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
        tensors.into_iter().map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect()
    }

    #[test]
    fn a_truncated_heic_is_one_clear_error() {
        let err = decode_fixture("truncated.heic").unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, PreprocessError::Decode { .. }), "{message}");
        assert!(message.contains("truncated.heic") && message.contains("HEIC"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn the_megapixel_limit_applies_to_heic_before_decoding() {
        // libheif takes the size from the HEVC parameters, so a forged size box cannot make a
        // bomb of this file; a limit under its size shows the check comes first.
        assert_eq!(size_refused_at_zero_megapixels("cat_exif6.heic"), (451, 300));
    }

    #[test]
    fn the_date_and_camera_of_a_heic_come_from_its_exif() {
        let info = PhotoInfo::from_bytes(&std::fs::read(camera("cat_exif6.heic")).unwrap());
        assert_eq!(info.camera.as_deref(), Some("Apple iPhone 15 Pro"));
        // 2024-05-01 14:03:27 at +02:00.
        assert_eq!(info.taken, Some(1_714_565_007));
        assert_eq!(info.taken_offset, Some(7200));
    }
}

/// On a computer without libheif, each HEIF file is one error line that says what to install,
/// the other photos are tagged, and `--version` says the same.
#[test]
fn without_libheif_each_heic_is_one_line_saying_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let heic = dir.path().join("IMG_0001.HEIC");
    std::fs::copy(camera("cat_exif6.heic"), &heic).unwrap();
    let jpeg = dir.path().join("cat.jpg");
    std::fs::copy(fixtures().join("photos/cat_landscape.jpg"), &jpeg).unwrap();
    let missing = dir.path().join("no-such-libheif.so.1");
    let evatag = |args: &[std::ffi::OsString]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_evatag"))
            .args(args)
            .env(evatag::preprocess::LIBHEIF_ENV, &missing)
            .output()
            .unwrap()
    };
    let mut args = tag_args("eva_tiny", &[dir.path()]);
    args.push("--no-cache".into());
    let output = evatag(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let line_for = |path: &Path| lines.iter().find(|line| line["path"] == *path.to_string_lossy()).unwrap().clone();
    assert!(line_for(&jpeg)["labels"].is_array(), "{lines:?}");
    let error = line_for(&heic)["error"].as_str().unwrap().to_owned();
    assert!(
        error.starts_with(&format!("{}: cannot read HEIC/HEIF photos: libheif was not found", heic.display())),
        "{error}"
    );
    assert!(error.contains("no-such-libheif.so.1") && error.contains("apt install libheif1"), "{error}");
    assert!(!error.contains('\n'), "{error}");

    let version = String::from_utf8_lossy(&evatag(&["--version".into()]).stdout).into_owned();
    assert!(version.contains("HEIC, HEIF and AVIF: libheif was not found"), "{version}");
}

/// The default binary names no libheif among the libraries it needs to start.
#[cfg(target_os = "linux")]
#[test]
fn the_binary_starts_without_libheif() {
    let output = std::process::Command::new("ldd").arg(env!("CARGO_BIN_EXE_evatag")).output().unwrap();
    let needed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && needed.contains("libc.so"), "{needed}");
    assert!(!needed.contains("libheif"), "{needed}");
}

#[test]
fn a_raw_with_a_full_size_preview_shows_the_preview_upright() {
    let decoded = decode_fixture("preview.dng").unwrap();
    let expected = expected_picture("preview.dng");
    assert_eq!(decoded.dimensions(), expected.dimensions());
    // The camera's JPEG through the decoder every JPEG gets (libjpeg-turbo, as Pillow).
    let (inside, ring_mean) = level_differences(&decoded, &expected);
    assert_eq!((inside, ring_mean), (0, 0.0), "the preview differs from Pillow's decode of it");
}

#[test]
fn a_raw_without_a_preview_is_developed_from_its_sensor_data() {
    let decoded = decode_fixture("developed.dng").unwrap();
    let source = expected_picture("developed.dng");
    assert_eq!(decoded.dimensions(), source.dimensions());
    let mean = mean_level_difference(&decoded, &source);
    assert!(mean < 4.0, "the developed picture is {mean} levels from the one the sensor data was made from");
    eprintln!("developed.dng: mean difference {mean:.2} levels from the source picture");
}

/// Shown small (a thumbnail), a RAW file without a preview is developed at half size: a
/// quarter of the pixels, the same picture.
#[test]
fn a_raw_without_a_preview_is_shown_small_from_a_half_size_develop() {
    let path = camera("developed.dng");
    let bytes = std::fs::read(&path).unwrap();
    let full = decode_fixture("developed.dng").unwrap();
    let (width, height) = full.dimensions();
    let small = decode_for_display(&bytes, &path, 100, width.max(height) / 2).unwrap().into_rgb8();
    assert_eq!(small.dimensions(), (width / 2, height / 2));
    let halved = image::imageops::resize(&full, width / 2, height / 2, image::imageops::FilterType::Triangle);
    let mean = mean_level_difference(&small, &halved);
    eprintln!("developed.dng at half size: mean difference {mean:.2} levels from the full develop halved");
    assert!(mean < 6.0, "the half-size picture is {mean} levels from the full one halved");
    // Asked for more than half the sensor, it is developed whole.
    let larger = decode_for_display(&bytes, &path, 100, width.max(height) / 2 + 1).unwrap();
    assert_eq!(larger.into_rgb8(), full);
}

#[test]
fn a_raw_with_a_damaged_preview_is_developed_instead() {
    let decoded = decode_fixture("damaged_preview.dng").unwrap();
    // The upright picture the sensor data was made from (the same scene as developed.dng's).
    let source = expected_picture("developed.dng");
    assert_eq!(decoded.dimensions(), source.dimensions(), "not turned upright");
    let mean = mean_level_difference(&decoded, &source);
    assert!(mean < 4.0, "the developed picture is {mean} levels from the one the sensor data was made from");
    assert_ne!(decoded, expected_picture("preview.dng"), "the damaged preview was shown");
}

#[test]
fn the_megapixel_limit_applies_to_raw_before_decoding() {
    // The sensor's whole size, as stored (the camera was turned), before its default crop.
    assert_eq!(size_refused_at_zero_megapixels("preview.dng"), (160, 256));
}

#[test]
fn the_date_and_camera_of_a_raw_come_from_its_exif() {
    let info = PhotoInfo::from_bytes(&std::fs::read(camera("preview.dng")).unwrap());
    assert_eq!(info.camera.as_deref(), Some("Evatag Test DNG One"));
    // 2021-07-14 09:30:00 at +02:00.
    assert_eq!(info.taken, Some(1_626_247_800));
    assert_eq!(info.taken_offset, Some(7200));
}

/// A camera card's folder with broken files among good ones: each broken file gets one error
/// line naming it, every other photo is tagged, and the run goes on.
#[test]
fn broken_camera_files_are_one_error_each_and_the_rest_is_tagged() {
    let dir = tempfile::tempdir().unwrap();
    let card = dir.path();
    let copy = |name: &str| {
        let to = card.join(name);
        std::fs::copy(camera(name), &to).unwrap();
        to
    };
    let good = [copy("preview.dng"), copy("developed.dng"), copy("damaged_preview.dng")];
    let truncated_heic = copy("truncated.heic");
    let empty_cr2 = card.join("IMG_0001.CR2");
    std::fs::write(&empty_cr2, b"").unwrap();
    // The damaged preview's DNG with its sensor strip said to start near the end of the file:
    // nothing left to show.
    let broken_dng = card.join("broken.dng");
    let mut damaged = std::fs::read(camera("damaged_preview.dng")).unwrap();
    let strip_offset = [0x11, 0x01, 4, 0, 1, 0, 0, 0, 0xDC, 0x04, 0, 0]; // StripOffsets 1244
    let at = damaged.windows(12).position(|w| w == strip_offset).unwrap();
    let near_the_end = (damaged.len() - 1_000) as u32;
    damaged[at + 8..at + 12].copy_from_slice(&near_the_end.to_le_bytes());
    std::fs::write(&broken_dng, &damaged).unwrap();

    let args = tag_args("eva_tiny", &[card]);
    let run = run_evatag(&os(&args), None);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for photo in &good {
        assert!(run.line_for(photo)["labels"].is_array(), "{}: {}", photo.display(), run.line_for(photo));
    }
    let heic_error = single_error_line(&run, &truncated_heic);
    assert!(heic_error.contains("cannot decode"), "{heic_error}");
    let cr2_error = single_error_line(&run, &empty_cr2);
    assert!(cr2_error.contains("empty (0 bytes)"), "{cr2_error}");
    let dng_error = single_error_line(&run, &broken_dng);
    assert!(dng_error.contains("preview") && dng_error.contains("sensor data"), "{dng_error}");
    assert_eq!(run.summary(), (good.len() as u64, 0, 3));
}

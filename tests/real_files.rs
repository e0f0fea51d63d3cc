//! Real phone and camera files (tests/fixtures/real, sources and licences in its README):
//! each decodes to the size its reference decoder gives (a JPEG named `.nef` as the JPEG it
//! is), the container's rotation, mirroring and cropping are applied as their authors meant,
//! and camera files that only hold metadata are refused with one line naming them.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::path::PathBuf;

use evatag::preprocess::decode_rgb8;

fn real(name: &str) -> PathBuf {
    common::fixtures().join("real").join(name)
}

fn decode(name: &str) -> Result<image::RgbImage, evatag::preprocess::PreprocessError> {
    let path = real(name);
    decode_rgb8(&std::fs::read(&path).unwrap(), &path, 200)
}

/// The mean difference, in levels, between two pictures of the same size.
fn mean_difference(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    total as f64 / a.as_raw().len() as f64
}

#[test]
fn each_real_file_decodes_to_its_references_size_or_is_refused_in_one_line() {
    let expected: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(real("expected.json")).unwrap()).unwrap();
    assert!(expected.len() >= 16, "{} files", expected.len());
    for (name, want) in &expected {
        let decoded = decode(name);
        if want["expect_error"] == true {
            let message = decoded.err().unwrap_or_else(|| panic!("{name} was decoded")).to_string();
            assert!(message.contains(name.as_str()) && !message.contains('\n'), "{message}");
        } else {
            let picture = decoded.unwrap_or_else(|e| panic!("{e}"));
            let size = (want["width"].as_u64().unwrap() as u32, want["height"].as_u64().unwrap() as u32);
            assert_eq!(picture.dimensions(), size, "{name}");
        }
    }
}

/// link-u's AVIF samples store one picture with `irot`, `imir` and `clap` boxes: each decodes
/// to the plain file's picture turned, mirrored and cropped as those boxes say.
#[test]
fn avif_rotation_mirroring_and_cropping_are_applied_as_their_author_meant() {
    let plain = decode("linku__kimono.avif").unwrap();
    let rotated = decode("linku__kimono.rotate90.avif").unwrap();
    let mirrored = decode("linku__kimono.mirror-horizontal.avif").unwrap();
    // Each sample's picture was turned or mirrored before encoding, so that the boxes bring
    // it back upright: each decodes to the plain picture (up to compression), and is far from
    // it turned half round or mirrored.
    for (name, picture) in [("rotate90", &rotated), ("mirror-horizontal", &mirrored)] {
        let upright = mean_difference(picture, &plain);
        let turned = mean_difference(picture, &image::imageops::rotate180(&plain));
        let flipped = mean_difference(picture, &image::imageops::flip_horizontal(&plain));
        eprintln!(
            "kimono.{name}: {upright:.3} levels from kimono.avif; turned half round {turned:.1}, mirrored {flipped:.1}"
        );
        assert!(upright < 4.0, "{name}: {upright} levels from the plain picture");
        assert!(turned > 5.0 * upright && flipped > 5.0 * upright, "{name}: {turned}, {flipped}");
    }
    let cropped = decode("linku__kimono.mirror-vertical.rotate270.crop.avif").unwrap();
    let expected = image::open(real("linku__kimono.mirror-vertical.rotate270.crop.avif.expected.png")).unwrap();
    let mean = mean_difference(&cropped, &expected.into_rgb8());
    eprintln!("kimono.mirror-vertical.rotate270.crop: mean difference {mean:.3} levels from its author's picture");
    assert!(mean < 4.0, "{mean} levels from the author's picture");
}

//! evatag's preprocessing against the pixels timm's eval transform produced, for photos of odd
//! sizes in both orientations and for every supported file format.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use common::*;
use evatag::preprocess::decode_rgb8;

/// Mean and worst absolute difference in 8-bit pixel units.
fn crop_difference(folder: &str, name: &str) -> (f64, u8) {
    let path = fixtures().join(folder).join(name);
    let image = decode_rgb8(&std::fs::read(&path).unwrap(), &path, 100).unwrap();
    let ours = fixture_preprocessor().crop(&image);
    let theirs = expected_crop(name);
    assert_eq!(ours.dimensions(), theirs.dimensions(), "{name}");
    let diffs: Vec<u8> = ours.as_raw().iter().zip(theirs.as_raw()).map(|(a, b)| a.abs_diff(*b)).collect();
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    (mean, diffs.iter().copied().max().unwrap_or(0))
}

#[test]
fn photos_match_timm_within_half_a_level() {
    for name in photo_names() {
        let (mean, worst) = crop_difference("photos", &name);
        assert!(mean <= 0.5 && worst <= 3, "{name}: mean {mean:.3}, worst {worst} (in 1/255)");
    }
}

#[test]
fn every_format_decodes_like_pil() {
    let names = format_names();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let (mean, worst) = crop_difference("formats", &name);
        assert!(mean <= 0.5 && worst <= 3, "{name}: mean {mean:.3}, worst {worst} (in 1/255)");
    }
}

#[test]
fn normalised_tensor_is_timms_exactly() {
    let p = fixture_preprocessor();
    let crop = expected_crop("cat_landscape.jpg");
    let tensor = p.normalize(&crop);
    // ToTensor + Normalize of pixel (0, 0), red channel, recomputed the way torchvision does.
    let expected = (f32::from(crop.get_pixel(0, 0)[0]) / 255.0 - 0.481_454_66) / 0.268_629_54;
    assert_eq!(tensor[0], expected);
    assert_eq!(tensor.len(), 3 * 224 * 224);
}

/// Stronger than the promise above: decoding (libjpeg-turbo for JPEG) and resizing (Pillow's
/// arithmetic) reproduce timm's pixels exactly. CMYK JPEGs are the exception: Pillow converts
/// CMYK itself and may differ by one level.
#[test]
fn crops_are_bit_exact_except_cmyk() {
    for (folder, names) in [("photos", photo_names()), ("formats", format_names())] {
        for name in names {
            let (mean, worst) = crop_difference(folder, &name);
            let allowed = if name == "cmyk.jpg" { 1 } else { 0 };
            assert!(worst <= allowed, "{name}: mean {mean:.4}, worst {worst}");
        }
    }
}

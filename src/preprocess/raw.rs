//! Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2 and the other formats flashraw
//! reads), in pure Rust.
//!
//! Where the camera embedded a full-size JPEG preview, that is the photo: it is what the
//! photographer saw on the camera, with the camera's own colour rendering, and decoding it
//! takes a fraction of the time of developing the sensor data. Otherwise (or when the preview
//! is damaged) the sensor data is developed by flashraw: demosaiced, white-balanced and
//! converted to sRGB.

use std::path::Path;

use flashraw::{CorruptionPolicy, DecodeOptions, FlashRaw, Limits, OutputFormat, PreviewEncoding, PreviewInfo};
use image::RgbImage;
use image::metadata::Orientation;

use super::decode::{PreprocessError, check_pixels, decode_stored, upright_size};

/// How much of the picture, in each dimension, an embedded preview must cover to stand for it:
/// cameras embed either a full-size JPEG or screen-sized ones (about 1600x1080), and a preview
/// under this share is developed from the sensor data instead.
const FULL_SIZE_SHARE: f64 = 0.9;

/// Whether `bytes` start a camera RAW file that flashraw reads.
pub fn is_raw(bytes: &[u8]) -> bool {
    flashraw::supports(bytes).is_some()
}

/// flashraw's limits for developing under the megapixel limit: four samples per developed
/// pixel (RGBA); the sensor data has fewer.
fn develop_limits(max_megapixels: u64) -> Limits {
    Limits::default().with_max_samples(max_megapixels.saturating_mul(4_000_000))
}

/// Parses a RAW file's structure, without decoding any picture, under flashraw's own limits
/// (the megapixel limit applies before decoding, with the size read here). A plain TIFF that
/// names a camera maker looks like a RAW file from its first bytes; it fails here, and
/// [`is_other_format`] tells so.
pub fn open(bytes: &[u8]) -> Result<FlashRaw<'_>, flashraw::Error> {
    FlashRaw::open(bytes)
}

/// Whether flashraw refused a file as not a RAW file: not one at all, or one with no raw image
/// in it (a TIFF from a camera maker's software). Damaged RAW files and unsupported cameras
/// or compressions are errors of their own, never read as the TIFF thumbnail they begin with.
pub fn is_other_format(error: &flashraw::Error) -> bool {
    matches!(error, flashraw::Error::UnsupportedFormat(_) | flashraw::Error::InvalidMetadata(_))
}

/// The picture of an opened RAW file, and the orientation still to apply to it.
pub fn decode(
    raw: &FlashRaw<'_>,
    path: &Path,
    max_megapixels: u64,
) -> Result<(RgbImage, Option<Orientation>), PreprocessError> {
    let broken = |e: flashraw::Error| PreprocessError::decode(path, e);
    let metadata = raw.metadata();
    check_pixels(path, metadata.width, metadata.height, max_megapixels)?;
    let preview = full_size_preview(raw.previews(), metadata.width, metadata.height);
    let preview_failure = match preview.map(|preview| decode_preview(raw, preview, path, max_megapixels)) {
        Some(Ok(decoded)) => return Ok(decoded),
        Some(Err(e)) => Some(e),
        None => None,
    };
    let options = DecodeOptions {
        output: OutputFormat::Rgba8,
        limits: develop_limits(max_megapixels),
        corruption_policy: CorruptionPolicy::Strict,
        ..DecodeOptions::default()
    };
    let developed = raw.decode(options).map_err(|e| match &preview_failure {
        Some(preview) => {
            PreprocessError::decode(path, format!("{preview}; developing the sensor data failed too: {e}"))
        }
        None => broken(e),
    })?;
    let rgba = developed.as_u8().ok_or_else(|| PreprocessError::decode(path, "flashraw gave no 8-bit picture"))?;
    let rgb: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    // flashraw applies the orientation to 8-bit output.
    RgbImage::from_raw(developed.width(), developed.height(), rgb)
        .map(|image| (image, None))
        .ok_or_else(|| PreprocessError::decode(path, "flashraw's picture is smaller than its size says"))
}

/// The size of a RAW file's picture as it is shown.
pub fn shown_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let metadata = flashraw::read_metadata(bytes).ok()?;
    let orientation = Orientation::from_exif(metadata.orientation as u8);
    Some(upright_size(metadata.width, metadata.height, orientation))
}

/// The largest JPEG preview that covers the picture (either way round: previews may be stored
/// turned), if the camera embedded one.
fn full_size_preview(previews: &[PreviewInfo], width: u32, height: u32) -> Option<&PreviewInfo> {
    let covers = |w: u32, h: u32| {
        f64::from(w) >= f64::from(width) * FULL_SIZE_SHARE && f64::from(h) >= f64::from(height) * FULL_SIZE_SHARE
    };
    previews
        .iter()
        .filter(|p| p.encoding == PreviewEncoding::Jpeg && (covers(p.width, p.height) || covers(p.height, p.width)))
        .max_by_key(|p| u64::from(p.width) * u64::from(p.height))
}

/// Decodes an embedded JPEG preview with the JPEG decoder every other photo gets, and the
/// orientation flashraw resolved for it (the RAW file's, or the preview's own).
fn decode_preview(
    raw: &FlashRaw<'_>,
    preview: &PreviewInfo,
    path: &Path,
    max_megapixels: u64,
) -> Result<(RgbImage, Option<Orientation>), String> {
    let bytes = raw.preview_bytes(preview).map_err(|e| format!("the embedded preview cannot be read: {e}"))?;
    let (image, _own_exif) = decode_stored(bytes, path, max_megapixels).map_err(|e| match e {
        PreprocessError::Decode { reason, .. } => format!("the embedded preview is damaged: {reason}"),
        other => format!("the embedded preview cannot be used: {other}"),
    })?;
    let orientation = Orientation::from_exif(preview.orientation as u8).filter(|o| *o != Orientation::NoTransforms);
    Ok((image.into_rgb8(), orientation))
}

//! Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2 and the other formats flashraw
//! reads), in pure Rust.
//!
//! Where the camera embedded a full-size JPEG preview, that is the photo: it is what the
//! photographer saw on the camera, with the camera's own colour rendering, and decoding it
//! takes a fraction of the time of developing the sensor data. Otherwise (or when the preview
//! is damaged) the sensor data is developed by flashraw: demosaiced, white-balanced and
//! converted to sRGB.

use std::path::Path;

use flashraw::{
    CorruptionPolicy, DecodeOptions, Demosaic, FlashRaw, Limits, OutputFormat, PreviewEncoding, PreviewInfo, RawFormat,
};
use image::RgbImage;
use image::metadata::Orientation;

use super::error::{PreprocessError, check_pixels};
use super::stored::{decode_stored, upright_size};

/// How much of the picture, in each dimension, an embedded preview must cover to stand for it:
/// cameras embed either a full-size JPEG or screen-sized ones (about 1600x1080), and a preview
/// under this share is developed from the sensor data instead.
const FULL_SIZE_SHARE: f64 = 0.9;

/// Whether `bytes`, not in TIFF layout, start a camera RAW file that flashraw knows by its
/// signature (CR3, RAF, ORF, RW2, CRW, MRW, X3F, IIQ). Sensor dumps that flashraw knows only by
/// their size are not taken for photos.
pub fn is_raw(bytes: &[u8]) -> bool {
    match flashraw::supports(bytes) {
        Some(RawFormat::Mrw) => bytes.starts_with(b"\0MRM"),
        Some(_) => true,
        None => false,
    }
}

/// Whether a file in TIFF layout is a camera's RAW file rather than a TIFF: a DNG always (it
/// says so in its first directory); another layout flashraw recognises (NEF, CR2, ARW, PEF and
/// the like) unless it is named as a TIFF. Raw converters and scanners keep the camera's make
/// in the TIFFs they write, and at first sight the make is all that tells a NEF from them.
pub fn is_raw_tiff(bytes: &[u8], path: &Path) -> bool {
    let named_as_tiff = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"));
    match flashraw::supports(bytes) {
        Some(RawFormat::Dng) => true,
        Some(_) => !named_as_tiff,
        None => false,
    }
}

/// flashraw's limits for developing under the megapixel limit: four samples per developed
/// pixel (RGBA); the sensor data has one.
fn develop_limits(max_megapixels: u64) -> Limits {
    Limits::default().with_max_samples(max_megapixels.saturating_mul(4_000_000))
}

/// How much of a RAW file's picture is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// All of it: the full-size preview, or the sensor data developed at full size.
    Full,
    /// Enough to show it at this many pixels on its longer side: the smallest embedded preview
    /// of the picture's shape that is as large, or else the sensor data developed at half
    /// size where that is large enough.
    Display(u32),
}

/// The picture of a RAW file at `detail`, and the orientation still to apply to it. The
/// sensor's size is checked against `max_megapixels` before anything is decoded.
pub fn decode(
    bytes: &[u8],
    path: &Path,
    max_megapixels: u64,
    detail: Detail,
) -> Result<(RgbImage, Option<Orientation>), PreprocessError> {
    let broken = |e: flashraw::Error| PreprocessError::decode(path, e);
    // Parsing reads the structure only, under flashraw's own limits.
    let raw = FlashRaw::open(bytes).map_err(broken)?;
    let metadata = raw.metadata();
    let (width, height) = (metadata.raw_width.max(metadata.width), metadata.raw_height.max(metadata.height));
    check_pixels(path, width, height, max_megapixels)?;
    let preview = match detail {
        Detail::Full => full_size_preview(raw.previews(), metadata.width, metadata.height),
        Detail::Display(edge) => display_preview(raw.previews(), metadata.width, metadata.height, edge)
            .or_else(|| full_size_preview(raw.previews(), metadata.width, metadata.height)),
    };
    let half_is_enough = matches!(detail, Detail::Display(edge) if metadata.width.max(metadata.height) / 2 >= edge);
    let preview_failure = match preview.map(|preview| decode_preview(&raw, preview, path, max_megapixels)) {
        Some(Ok(decoded)) => return Ok(decoded),
        Some(Err(e)) => Some(e),
        None => None,
    };
    let options = DecodeOptions {
        output: OutputFormat::Rgba8,
        limits: develop_limits(max_megapixels),
        corruption_policy: CorruptionPolicy::Strict,
        demosaic: if half_is_enough { Demosaic::HalfSize } else { Demosaic::Bilinear },
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

/// The largest JPEG preview that covers the picture, stored the way the sensor data is (so
/// that the file's orientation turns both alike), if the camera embedded one.
fn full_size_preview(previews: &[PreviewInfo], width: u32, height: u32) -> Option<&PreviewInfo> {
    let covers = |p: &PreviewInfo| {
        f64::from(p.width) >= f64::from(width) * FULL_SIZE_SHARE
            && f64::from(p.height) >= f64::from(height) * FULL_SIZE_SHARE
    };
    previews
        .iter()
        .filter(|p| p.encoding == PreviewEncoding::Jpeg && covers(p))
        .max_by_key(|p| u64::from(p.width) * u64::from(p.height))
}

/// The smallest embedded JPEG preview of the picture's shape (within 2 %, so that no preview
/// with bars is shown) whose longer side is at least `edge`.
fn display_preview(previews: &[PreviewInfo], width: u32, height: u32, edge: u32) -> Option<&PreviewInfo> {
    let aspect = f64::from(width.max(1)) / f64::from(height.max(1));
    let same_shape = |p: &PreviewInfo| {
        let own = f64::from(p.width.max(1)) / f64::from(p.height.max(1));
        ((own - aspect) / aspect).abs() < 0.02
    };
    previews
        .iter()
        .filter(|p| p.encoding == PreviewEncoding::Jpeg && p.width.max(p.height) >= edge && same_shape(p))
        .min_by_key(|p| u64::from(p.width) * u64::from(p.height))
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
        PreprocessError::TooLarge { width, height, .. } => {
            format!("the embedded preview ({width}x{height}) is over the megapixel limit")
        }
        _ => "the embedded preview is not a JPEG".to_owned(),
    })?;
    let orientation = Orientation::from_exif(preview.orientation as u8).filter(|o| *o != Orientation::NoTransforms);
    Ok((image.into_rgb8(), orientation))
}

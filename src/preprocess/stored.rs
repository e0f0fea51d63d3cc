//! The formats the `image` crate reads (JPEG through libjpeg-turbo, PNG, WebP, TIFF, BMP,
//! GIF), decoded as stored, with the EXIF orientation still to apply.

use std::io::Cursor;
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};

use super::error::{PreprocessError, check_pixels};
use super::jpeg;

/// Decodes one of the `image` crate's formats as stored, with the orientation its EXIF data
/// asks for (if any) still to apply.
pub(super) fn decode_stored(
    bytes: &[u8],
    path: &Path,
    max_megapixels: u64,
) -> Result<(DynamicImage, Option<Orientation>), PreprocessError> {
    let broken = |e: image::ImageError| PreprocessError::decode(path, e);
    let reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| PreprocessError::decode(path, e))?;
    match reader.format() {
        None => return Err(PreprocessError::UnknownFormat { path: path.to_owned() }),
        Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(PreprocessError::decode(
                path,
                "the JPEG data is truncated (no end-of-image marker after the last scan)",
            ));
        }
        Some(_) => {}
    }
    let mut decoder = reader.into_decoder().map_err(broken)?;
    let (width, height) = decoder.dimensions();
    check_pixels(path, width, height, max_megapixels)?;
    let orientation = decoder.orientation().ok().filter(|o| *o != Orientation::NoTransforms);
    let is_jpeg = decoder.original_color_type() != image::ExtendedColorType::Cmyk8 && looks_like_jpeg(bytes);
    let image = match is_jpeg {
        true => match jpeg::decode_rgb(bytes) {
            Ok(Some(rgb)) => DynamicImage::ImageRgb8(rgb),
            Ok(None) => DynamicImage::from_decoder(decoder).map_err(broken)?,
            Err(reason) => return Err(PreprocessError::decode(path, reason)),
        },
        false => DynamicImage::from_decoder(decoder).map_err(broken)?,
    };
    Ok((image, orientation))
}

/// The size of a `width` x `height` picture once `orientation` is applied.
pub(super) fn upright_size(width: u32, height: u32, orientation: Option<Orientation>) -> (u32, u32) {
    use Orientation::{Rotate90, Rotate90FlipH, Rotate270, Rotate270FlipH};
    match orientation {
        Some(Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH) => (height, width),
        _ => (width, height),
    }
}

/// Whether `bytes` start like a JPEG file.
fn looks_like_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// Whether a JPEG stream ends its last scan with an end-of-image marker.
///
/// The JPEG decoder fills missing data with grey instead of failing, so a photo cut short by
/// a failed copy would otherwise be tagged as if it were whole. Markers cannot occur inside
/// entropy-coded data (0xFF is stuffed as 0xFF00 there), and an EXIF thumbnail's own markers
/// come before the main image's scans, so looking after the last start-of-scan is exact.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    last_scan.is_some_and(|start| bytes[start..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

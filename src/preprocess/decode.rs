//! From a photo file's bytes to upright pixels, whatever its format: the file's first bytes
//! choose the decoder (the `image` crate's formats in `stored`, HEIC and AVIF through libheif
//! in `heif`, camera RAW through flashraw in `raw`).

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::error::PreprocessError;
use super::stored::{decode_stored, upright_size};
use super::{heif, raw};

/// Default ceiling on decoded pixels: larger than any camera sensor, far smaller than a
/// decompression bomb.
pub const DEFAULT_MAX_MEGAPIXELS: u64 = 200;

/// Default ceiling on a photo file's size: above any camera's RAW or 16-bit TIFF, far below
/// what would exhaust memory.
pub const DEFAULT_MAX_FILE_MB: u64 = 1024;

/// How many leading bytes identify every supported format.
pub const HEADER_LEN: usize = 64;

/// What a photo file holds, as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    /// HEIF images in an ISO base media file: HEIC, AVIF.
    Heif,
    /// A camera's RAW file.
    Raw,
    /// One of the `image` crate's formats.
    Image(image::ImageFormat),
}

impl Container {
    /// What `bytes` (a whole file or its head) hold. A camera's RAW file and a TIFF written from
    /// one share their layout, and often the camera's make: `path`'s extension decides between
    /// them (see [`raw::is_raw_tiff`]).
    fn identify(bytes: &[u8], path: &Path) -> Option<Self> {
        if heif::is_heif(bytes) {
            return Some(Self::Heif);
        }
        match image::guess_format(bytes) {
            Ok(image::ImageFormat::Tiff) if raw::is_raw_tiff(bytes, path) => Some(Self::Raw),
            Ok(format) => Some(Self::Image(format)),
            Err(_) => raw::is_raw(bytes).then_some(Self::Raw),
        }
    }
}

/// Decodes an image, turns it upright and converts it to 8-bit RGB (alpha dropped, 16-bit
/// scaled, grey expanded). `path` only names the file in errors.
///
/// The header is read first and an image over `max_megapixels` is refused before any pixel
/// buffer is allocated.
pub fn decode_rgb8(bytes: &[u8], path: &Path, max_megapixels: u64) -> Result<RgbImage, PreprocessError> {
    decode(bytes, path, max_megapixels).map(|image| image.into_rgb8())
}

/// Decodes an image and turns it upright, keeping its pixel format where the format has
/// several: EXIF orientation for JPEG, TIFF and the like, the container's rotation and mirroring
/// for HEIF, the camera's orientation for RAW.
pub fn decode(bytes: &[u8], path: &Path, max_megapixels: u64) -> Result<DynamicImage, PreprocessError> {
    decode_at(bytes, path, max_megapixels, raw::Detail::Full)
}

/// [`decode`], for showing the picture at `edge` pixels on its longer side: a RAW file gives
/// an embedded preview of that size, or its sensor data developed at half size, where either
/// is large enough (other formats are decoded whole).
pub fn decode_for_display(
    bytes: &[u8],
    path: &Path,
    max_megapixels: u64,
    edge: u32,
) -> Result<DynamicImage, PreprocessError> {
    decode_at(bytes, path, max_megapixels, raw::Detail::Display(edge))
}

fn decode_at(
    bytes: &[u8],
    path: &Path,
    max_megapixels: u64,
    detail: raw::Detail,
) -> Result<DynamicImage, PreprocessError> {
    let (mut image, orientation) = match Container::identify(bytes, path) {
        None => return Err(PreprocessError::UnknownFormat { path: path.to_owned() }),
        // libheif applies the container's transformations itself; the EXIF orientation that
        // phones also write describes the same turn and must not be applied twice.
        Some(Container::Heif) => (DynamicImage::ImageRgb8(heif::decode(bytes, path, max_megapixels)?), None),
        Some(Container::Raw) => {
            let (image, orientation) = raw::decode(bytes, path, max_megapixels, detail)?;
            (DynamicImage::ImageRgb8(image), orientation)
        }
        Some(Container::Image(_)) => decode_stored(bytes, path, max_megapixels)?,
    };
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image)
}

/// How much of a file is read to tell a DNG from another TIFF: flashraw needs the first
/// directory whole, and cameras' are a few kilobytes.
const RAW_HEAD_LEN: u64 = 64 * 1024;

/// A photo's width and height as it is shown, after its orientation, from its header, or
/// `None` when it cannot be read. HEIF and RAW files are read whole (up to
/// [`DEFAULT_MAX_FILE_MB`]), since their structure must be parsed; other formats only as far
/// as their header.
pub fn shown_size(path: &Path) -> Option<(u32, u32)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut head = Vec::new();
    (&mut file).take(RAW_HEAD_LEN).read_to_end(&mut head).ok()?;
    let container = Container::identify(&head, path)?;
    if matches!(container, Container::Heif | Container::Raw) {
        file.take(DEFAULT_MAX_FILE_MB * 1_000_000).read_to_end(&mut head).ok()?;
    }
    let (width, height, orientation) = match container {
        Container::Heif => return heif::shown_size(&head),
        Container::Raw => return raw::shown_size(&head),
        Container::Image(_) => {
            let mut decoder = ImageReader::open(path).ok()?.with_guessed_format().ok()?.into_decoder().ok()?;
            let (width, height) = decoder.dimensions();
            (width, height, decoder.orientation().ok())
        }
    };
    Some(upright_size(width, height, orientation))
}

/// Refuses a file whose first bytes (at least [`HEADER_LEN`] of them, or the whole file if
/// shorter) are not those of a supported format, so that the rest need not be read.
pub fn check_header(head: &[u8], path: &Path) -> Result<(), PreprocessError> {
    match Container::identify(head, path) {
        Some(_) => Ok(()),
        None => Err(PreprocessError::UnknownFormat { path: path.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::preprocess::stored::jpeg_is_complete;

    #[test]
    fn truncated_jpegs_are_detected() {
        let mut jpeg = Vec::new();
        let image = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 77]));
        image.write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
        assert!(jpeg_is_complete(&jpeg));
        assert!(decode_rgb8(&jpeg, Path::new("whole.jpg"), 10).is_ok());
        let cut = &jpeg[..jpeg.len() - 40];
        assert!(!jpeg_is_complete(cut));
        let err = decode_rgb8(cut, Path::new("cut.jpg"), 10).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn garbage_is_an_unknown_format() {
        let err = decode_rgb8(b"hello, world", Path::new("note.jpg"), 10).unwrap_err();
        assert!(matches!(err, PreprocessError::UnknownFormat { .. }), "{err}");
        assert!(err.to_string().contains("note.jpg"));
    }

    /// A TIFF with a camera maker's make, as raw converters and scanners write them.
    fn tiff_from(make: &str, pixels: &[u16], sixteen_bits: bool) -> Vec<u8> {
        use tiff::encoder::{TiffEncoder, colortype};
        let mut file = Cursor::new(Vec::new());
        let mut tiff = TiffEncoder::new(&mut file).unwrap();
        if sixteen_bits {
            let mut image = tiff.new_image::<colortype::RGB16>(4, 3).unwrap();
            image.encoder().write_tag(tiff::tags::Tag::Make, make).unwrap();
            image.write_data(pixels).unwrap();
        } else {
            let mut image = tiff.new_image::<colortype::RGB8>(4, 3).unwrap();
            image.encoder().write_tag(tiff::tags::Tag::Make, make).unwrap();
            let bytes: Vec<u8> = pixels.iter().map(|&v| v as u8).collect();
            image.write_data(&bytes).unwrap();
        }
        file.into_inner()
    }

    #[test]
    fn a_tiff_from_a_camera_makers_software_is_read_as_a_tiff() {
        let levels: Vec<u16> = (0..36).map(|v| v * 7).collect();
        for (make, sixteen_bits) in [("NIKON CORPORATION", false), ("SONY", true), ("Canon", true)] {
            let scale = if sixteen_bits { 257 } else { 1 };
            let samples: Vec<u16> = levels.iter().map(|v| v * scale).collect();
            let bytes = tiff_from(make, &samples, sixteen_bits);
            assert!(flashraw::supports(&bytes).is_some(), "{make}: flashraw takes it for a RAW file");
            let decoded = decode_rgb8(&bytes, Path::new("scan.TIF"), 1).unwrap();
            let expected: Vec<u8> = levels.iter().map(|&v| v as u8).collect();
            assert_eq!(decoded.as_raw(), &expected, "{make}");
        }
        // Named as a RAW file, it is taken for one, and one without sensor data: an error rather
        // than the pixels of what would be its thumbnail.
        let nikon = tiff_from("NIKON CORPORATION", &levels, false);
        let err = decode_rgb8(&nikon, Path::new("DSC_0001.NEF"), 1).unwrap_err();
        assert!(matches!(err, PreprocessError::Decode { .. }), "{err}");
    }

    #[test]
    fn camera_files_pass_the_header_check_on_their_first_bytes() {
        let head = |magic: &[u8]| {
            let mut head = magic.to_vec();
            head.resize(HEADER_LEN, 0);
            head
        };
        let heads = [
            ("IMG_0001.CR3", head(b"\0\0\0\x18ftypcrx ")),
            ("DSCF0001.RAF", head(b"FUJIFILMCCD-RAW 0201")),
            ("P0000001.ORF", head(b"IIRO\x08\0\0\0")),
            ("P1000001.RW2", head(b"IIU\0\x08\0\0\0")),
            ("DSC_0001.NEF", head(b"II*\0\x08\0\0\0")),
            ("IMG_0001.HEIC", head(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic")),
        ];
        for (name, head) in heads {
            assert!(check_header(&head, Path::new(name)).is_ok(), "{name}");
        }
        assert!(check_header(&head(b"\0\0\0\x18ftypisom"), Path::new("clip.mp4")).is_err());
    }
}

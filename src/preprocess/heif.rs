//! HEIC, HEIF and AVIF photos, decoded by libheif (the `heif` feature), the decoder that other
//! photo libraries use. Without the feature these files are recognised and refused with a
//! message that names it.

use std::path::Path;

#[cfg(feature = "heif")]
use image::RgbImage;

use super::decode::PreprocessError;

/// ISO base media brands of HEIF image files: HEVC-coded (HEIC), AV1-coded (AVIF) and the
/// generic image brands they list.
const IMAGE_BRANDS: &[&[u8; 4]] = &[
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"mif2", b"msf1", b"avif", b"avis",
];

/// The brands of the `ftyp` box that starts `bytes`: the major brand, then the compatible
/// ones that lie within `bytes`.
fn brands(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let is_ftyp = bytes.len() >= 12 && &bytes[4..8] == b"ftyp";
    let box_len = if is_ftyp { u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize } else { 0 };
    let listed = bytes.get(16..box_len.min(bytes.len())).unwrap_or_default();
    let major = if is_ftyp { &bytes[8..12] } else { &[][..] };
    std::iter::once(major).filter(|b| !b.is_empty()).chain(listed.chunks_exact(4))
}

/// Whether `bytes` start a HEIF image file (HEIC, AVIF), as opposed to another ISO base media
/// file such as a video or a Canon CR3.
pub fn is_heif(bytes: &[u8]) -> bool {
    brands(bytes).any(|brand| IMAGE_BRANDS.iter().any(|known| known[..] == *brand))
}

/// The format's name for messages: AVIF when an AV1 brand is listed, else HEIC/HEIF.
fn format_name(bytes: &[u8]) -> &'static str {
    match brands(bytes).any(|brand| brand == b"avif" || brand == b"avis") {
        true => "AVIF",
        false => "HEIC/HEIF",
    }
}

/// Decodes the primary image of a HEIF file to 8-bit RGB, with the file's rotation, mirroring
/// and cropping applied. 10- and 12-bit images are reduced to 8 bits by libheif, as other
/// applications built on it do. The size is checked against `max_megapixels` before decoding.
#[cfg(feature = "heif")]
pub fn decode(bytes: &[u8], path: &Path, max_megapixels: u64) -> Result<RgbImage, PreprocessError> {
    use std::sync::LazyLock;

    use libheif_rs::{ColorSpace, DecodingOptions, HeifContext, HeifError, LibHeif, RgbChroma};

    /// libheif's plugins are loaded once, for the life of the process.
    static LIBHEIF: LazyLock<LibHeif> = LazyLock::new(LibHeif::new);

    let broken = |e: HeifError| {
        let message = e.message.split_whitespace().collect::<Vec<_>>().join(" ");
        PreprocessError::decode(path, format!("{} data: {message}", format_name(bytes)))
    };
    let context = HeifContext::read_from_bytes(bytes).map_err(broken)?;
    let handle = context.primary_image_handle().map_err(broken)?;
    super::decode::check_pixels(path, handle.width(), handle.height(), max_megapixels)?;
    let mut options = DecodingOptions::new()
        .ok_or_else(|| PreprocessError::decode(path, "libheif could not allocate its decoding options"))?;
    options.set_convert_hdr_to_8bit(true);
    let image = LIBHEIF.decode(&handle, ColorSpace::Rgb(RgbChroma::Rgb), Some(options)).map_err(broken)?;
    let planes = image.planes();
    let plane = planes
        .interleaved
        .filter(|plane| plane.storage_bits_per_pixel == 24)
        .ok_or_else(|| PreprocessError::decode(path, "libheif gave no 8-bit RGB picture"))?;
    let row_len = plane.width as usize * 3;
    let mut pixels = Vec::with_capacity(row_len * plane.height as usize);
    for row in plane.data.chunks(plane.stride).take(plane.height as usize) {
        pixels.extend_from_slice(&row[..row_len]);
    }
    RgbImage::from_raw(plane.width, plane.height, pixels)
        .ok_or_else(|| PreprocessError::decode(path, "libheif's picture is smaller than its size says"))
}

/// The size of a HEIF file's primary image as it is shown (its rotation applied).
#[cfg(feature = "heif")]
pub fn shown_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let context = libheif_rs::HeifContext::read_from_bytes(bytes).ok()?;
    let handle = context.primary_image_handle().ok()?;
    Some((handle.width(), handle.height()))
}

/// A build without libheif cannot read a HEIF file's size.
#[cfg(not(feature = "heif"))]
pub fn shown_size(_bytes: &[u8]) -> Option<(u32, u32)> {
    None
}

/// Refuses a HEIF file in a build without libheif, naming the feature that reads it.
#[cfg(not(feature = "heif"))]
pub fn decode(bytes: &[u8], path: &Path, _max_megapixels: u64) -> Result<image::RgbImage, PreprocessError> {
    Err(PreprocessError::NotInThisBuild { path: path.to_owned(), format: format_name(bytes), feature: "heif" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let len = 16 + 4 * compatible.len();
        let mut bytes = (len as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(b"ftyp");
        bytes.extend_from_slice(major);
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        compatible.iter().for_each(|brand| bytes.extend_from_slice(*brand));
        bytes.extend_from_slice(&[0, 0, 0, 8, b'm', b'e', b't', b'a']);
        bytes
    }

    #[test]
    fn heif_images_are_told_from_other_media_files() {
        assert!(is_heif(&ftyp(b"heic", &[b"mif1", b"heic"])));
        assert!(is_heif(&ftyp(b"mif1", &[b"heic"])));
        assert!(is_heif(&ftyp(b"avif", &[b"mif1"])));
        assert_eq!(format_name(&ftyp(b"mif1", &[b"avif"])), "AVIF");
        assert_eq!(format_name(&ftyp(b"heic", &[b"mif1"])), "HEIC/HEIF");
        // A Canon CR3, an MP4 video, a JPEG and a cut-off box.
        assert!(!is_heif(&ftyp(b"crx ", &[b"isom", b"crx "])));
        assert!(!is_heif(&ftyp(b"isom", &[b"iso2", b"mp41"])));
        assert!(!is_heif(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1]));
        assert!(!is_heif(b"\0\0\0\x18ftyp"));
    }

    #[cfg(not(feature = "heif"))]
    #[test]
    fn without_libheif_the_message_names_the_feature() {
        let err = decode(&ftyp(b"heic", &[b"mif1"]), Path::new("IMG_0001.HEIC"), 100).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("IMG_0001.HEIC: this build of evatag cannot read HEIC/HEIF photos"), "{message}");
        assert!(message.contains("`heif` feature"), "{message}");
    }
}

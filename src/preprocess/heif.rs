//! HEIC, HEIF and AVIF photos, decoded by the system's libheif (the decoder other photo
//! applications use), which is loaded when the first such file is met. Where libheif is
//! missing these files are recognised and refused with a line that says what to install.

use std::path::Path;

use image::RgbImage;

use super::error::PreprocessError;

mod libheif;

pub use libheif::{LIBHEIF_ENV, version as libheif_version};

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
pub fn decode(bytes: &[u8], path: &Path, max_megapixels: u64) -> Result<RgbImage, PreprocessError> {
    let format = format_name(bytes);
    let unavailable = |reason: libheif::Unavailable| PreprocessError::NoDecoder {
        path: path.to_owned(),
        format,
        reason: reason.to_string(),
    };
    let failed = |error: libheif::CallError| match error.missing_codec {
        true => {
            PreprocessError::NoDecoder { path: path.to_owned(), format, reason: missing_codec_reason(bytes, &error) }
        }
        false => {
            let version = libheif::version().unwrap_or("?");
            PreprocessError::decode(path, format!("{format} data (libheif {version}): {}", error.message))
        }
    };
    let context = libheif::Context::read(bytes).map_err(unavailable)?.map_err(failed)?;
    let handle = context.primary_image().map_err(failed)?;
    let (width, height) = handle.size();
    super::error::check_pixels(path, width, height, max_megapixels)?;
    let (width, height, pixels) = handle.decode_rgb8().map_err(failed)?;
    RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| PreprocessError::decode(path, "libheif's picture is smaller than its size says"))
}

/// What to install when libheif has no decoder for the file's codec (Debian 13 and later
/// package them apart from libheif itself).
fn missing_codec_reason(bytes: &[u8], error: &libheif::CallError) -> String {
    let version = libheif::version().unwrap_or("?");
    let (codec, package) = match format_name(bytes) {
        "AVIF" => ("AV1", "libheif-plugin-dav1d"),
        _ => ("HEVC", "libheif-plugin-libde265"),
    };
    format!(
        "libheif {version} has no {codec} decoder ({}); install {package} or your system's equivalent",
        error.message
    )
}

/// The size of a HEIF file's primary image as it is shown (its rotation applied), or `None`
/// where the file cannot be parsed or libheif is missing.
pub fn shown_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let context = libheif::Context::read(bytes).ok()?.ok()?;
    let handle = context.primary_image().ok()?;
    Some(handle.size())
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

    #[test]
    fn a_missing_codec_names_the_package_to_install() {
        let error = libheif::CallError { message: "Unsupported codec".into(), missing_codec: true };
        let hevc = missing_codec_reason(&ftyp(b"heic", &[b"mif1"]), &error);
        assert!(
            hevc.contains("no HEVC decoder (Unsupported codec)") && hevc.contains("libheif-plugin-libde265"),
            "{hevc}"
        );
        let av1 = missing_codec_reason(&ftyp(b"avif", &[b"mif1"]), &error);
        assert!(av1.contains("no AV1 decoder") && av1.contains("libheif-plugin-dav1d"), "{av1}");
    }
}

//! JPEG decoding with libjpeg-turbo's decoder (through mozjpeg), the one Pillow uses.
//!
//! The pure-Rust decoder behind the `image` crate differs from libjpeg-turbo in its inverse
//! DCT and chroma upsampling: on the fixture photos its pixels were off by up to 4 levels, and
//! timm's crops by up to 4 after resizing. libjpeg-turbo's own code gives the very pixels
//! Pillow gives, so crops of YCbCr and greyscale JPEGs match timm's to the level.

use image::RgbImage;

/// Decodes a YCbCr or greyscale JPEG to RGB. Returns `Ok(None)` for colour spaces this path
/// does not convert (CMYK, YCCK), which the caller decodes another way.
pub fn decode_rgb(bytes: &[u8]) -> Result<Option<RgbImage>, String> {
    use mozjpeg::ColorSpace;
    let decoded = std::panic::catch_unwind(|| -> std::io::Result<Option<RgbImage>> {
        let decompress = mozjpeg::Decompress::new_mem(bytes)?;
        if !matches!(decompress.color_space(), ColorSpace::JCS_YCbCr | ColorSpace::JCS_GRAYSCALE | ColorSpace::JCS_RGB)
        {
            return Ok(None);
        }
        let mut started = decompress.rgb()?;
        let (width, height) = (started.width() as u32, started.height() as u32);
        let pixels = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok(RgbImage::from_raw(width, height, pixels))
    });
    match decoded {
        Ok(Ok(image)) => Ok(image),
        Ok(Err(e)) => Err(e.to_string()),
        // libjpeg reports fatal errors by unwinding with its message.
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .map(|m| m.trim_start_matches("libjpeg fatal error: ").to_owned())
            .unwrap_or_else(|| "the JPEG decoder failed".to_owned())),
    }
}

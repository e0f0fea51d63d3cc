//! From a file's bytes to the model's input: decode, orient, resize, crop, normalise, exactly
//! as timm's eval transform does it (plus EXIF orientation, which a photo app must honour).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::model::config::{CropMode, Interpolation, PretrainedCfg};

mod jpeg;
mod resample;

/// Default ceiling on decoded pixels: larger than any camera sensor, far smaller than a
/// decompression bomb.
pub const DEFAULT_MAX_MEGAPIXELS: u64 = 200;

/// Default ceiling on a photo file's size: above any camera's RAW or 16-bit TIFF, far below
/// what would exhaust memory.
pub const DEFAULT_MAX_FILE_MB: u64 = 1024;

/// How many leading bytes identify every supported format.
pub const HEADER_LEN: usize = 64;

/// Why a file could not be turned into model input.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The bytes are not in a supported image format.
    #[error("{path}: not a supported image (JPEG, PNG, WebP, TIFF, BMP or GIF)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than allowed.
    #[error(
        "{path}: the file is {} MB, over the {limit_mb} MB limit \
         (raise --max-file-mb if it is a genuine photo)", bytes.div_ceil(1_000_000)
    )]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The limit in megabytes.
        limit_mb: u64,
    },
    /// The header declares more pixels than allowed.
    #[error(
        "{path}: {width}x{height} pixels is over the {limit_mp} megapixel limit \
         (a damaged file or a decompression bomb; raise --max-megapixels if it is genuine)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit in megapixels.
        limit_mp: u64,
    },
    /// The image data is damaged or truncated.
    #[error("{path}: cannot decode: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
}

/// Decodes an image, applies its EXIF orientation and converts it to 8-bit RGB (alpha dropped,
/// 16-bit scaled, grey expanded). `path` only names the file in errors.
///
/// The header is read first and an image over `max_megapixels` is refused before any pixel
/// buffer is allocated.
pub fn decode_rgb8(bytes: &[u8], path: &Path, max_megapixels: u64) -> Result<RgbImage, PreprocessError> {
    decode(bytes, path, max_megapixels).map(|image| image.into_rgb8())
}

/// Decodes and orients an image, keeping its pixel format.
pub fn decode(bytes: &[u8], path: &Path, max_megapixels: u64) -> Result<DynamicImage, PreprocessError> {
    let broken = |e: image::ImageError| PreprocessError::Decode { path: path.to_owned(), reason: e.to_string() };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Decode { path: path.to_owned(), reason: e.to_string() })?;
    match reader.format() {
        None => return Err(PreprocessError::UnknownFormat { path: path.to_owned() }),
        Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(PreprocessError::Decode {
                path: path.to_owned(),
                reason: "the JPEG data is truncated (no end-of-image marker after the last scan)".to_owned(),
            });
        }
        Some(_) => {}
    }
    let mut decoder = reader.into_decoder().map_err(broken)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_megapixels.saturating_mul(1_000_000) {
        return Err(PreprocessError::TooLarge { path: path.to_owned(), width, height, limit_mp: max_megapixels });
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let is_jpeg = decoder.original_color_type() != image::ExtendedColorType::Cmyk8 && looks_like_jpeg(bytes);
    let mut image = match is_jpeg {
        true => match jpeg::decode_rgb(bytes) {
            Ok(Some(rgb)) => DynamicImage::ImageRgb8(rgb),
            Ok(None) => DynamicImage::from_decoder(decoder).map_err(broken)?,
            Err(reason) => return Err(PreprocessError::Decode { path: path.to_owned(), reason }),
        },
        false => DynamicImage::from_decoder(decoder).map_err(broken)?,
    };
    image.apply_orientation(orientation);
    Ok(image)
}

/// Refuses a file whose first bytes (at least [`HEADER_LEN`] of them, or the whole file if
/// shorter) are not those of a supported format, so that the rest need not be read.
pub fn check_header(head: &[u8], path: &Path) -> Result<(), PreprocessError> {
    match image::guess_format(head) {
        Ok(_) => Ok(()),
        Err(_) => Err(PreprocessError::UnknownFormat { path: path.to_owned() }),
    }
}

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

/// timm's eval transform for one model: resize, centre crop, normalise to CHW f32.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    cfg: PretrainedCfg,
}

impl Preprocessor {
    /// The transform described by a model's `pretrained_cfg`.
    pub fn new(cfg: &PretrainedCfg) -> Self {
        Self { cfg: cfg.clone() }
    }

    /// Side length of the square model input.
    pub fn input_size(&self) -> usize {
        self.cfg.input_size[1]
    }

    /// Number of f32 values in one preprocessed image.
    pub fn tensor_len(&self) -> usize {
        3 * self.input_size() * self.input_size()
    }

    /// The size the whole image is resized to before cropping, as torchvision computes it.
    pub fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        let input = self.input_size() as f64;
        let scale = (input / self.cfg.crop_pct).floor() as u32;
        match self.cfg.crop_mode {
            CropMode::Squash => (scale, scale),
            CropMode::Center => {
                // torchvision: the short side becomes `scale`, the long one `int(scale * long / short)`.
                let (short, long) = if width <= height { (width, height) } else { (height, width) };
                let new_long = (f64::from(scale) * f64::from(long) / f64::from(short)) as u32;
                if width <= height { (scale, new_long) } else { (new_long, scale) }
            }
        }
    }

    /// The 8-bit pixels the model sees: the centre crop of the image resized with PIL's
    /// antialiased filter. Only the cropped pixels are computed, so an extreme aspect ratio
    /// costs no more memory than a square photo.
    pub fn crop(&self, image: &RgbImage) -> RgbImage {
        let (width, height) = self.resized_size(image.width(), image.height());
        let (width, height) = (width.max(1), height.max(1));
        let side = self.input_size() as u32;
        // torchvision's CenterCrop: offsets rounded half to even, as Python's round does.
        let top = (f64::from(height.saturating_sub(side)) / 2.0).round_ties_even() as u32;
        let left = (f64::from(width.saturating_sub(side)) / 2.0).round_ties_even() as u32;
        let window = resample::Window { left, top, width: side.min(width - left), height: side.min(height - top) };
        let filter = match self.cfg.interpolation {
            Interpolation::Bicubic => resample::Filter::Bicubic,
            Interpolation::Bilinear => resample::Filter::Bilinear,
        };
        resample::resize_window(image, width, height, window, filter)
    }

    /// Scales a crop to [0, 1] and normalises it per channel, laid out CHW.
    pub fn normalize(&self, crop: &RgbImage) -> Vec<f32> {
        let plane = (crop.width() * crop.height()) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, pixel) in crop.pixels().enumerate() {
            for c in 0..3 {
                // Same operation order as torchvision's ToTensor + Normalize, so results agree bit for bit.
                out[c * plane + i] = (f32::from(pixel[c]) / 255.0 - self.cfg.mean[c]) / self.cfg.std[c];
            }
        }
        out
    }

    /// The full transform of a decoded image.
    pub fn run(&self, image: &RgbImage) -> Vec<f32> {
        self.normalize(&self.crop(image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{OPENAI_CLIP_MEAN, OPENAI_CLIP_STD};

    fn eva_cfg() -> PretrainedCfg {
        PretrainedCfg {
            input_size: [3, 224, 224],
            interpolation: Interpolation::Bicubic,
            crop_pct: 0.9,
            crop_mode: CropMode::Center,
            mean: OPENAI_CLIP_MEAN,
            std: OPENAI_CLIP_STD,
        }
    }

    #[test]
    fn resize_follows_torchvision() {
        let p = Preprocessor::new(&eva_cfg());
        assert_eq!(p.resized_size(451, 300), (372, 248));
        assert_eq!(p.resized_size(300, 451), (248, 372));
        assert_eq!(p.resized_size(100, 100), (248, 248));
        let squash = Preprocessor::new(&PretrainedCfg { crop_mode: CropMode::Squash, crop_pct: 1.0, ..eva_cfg() });
        assert_eq!(squash.resized_size(451, 300), (224, 224));
    }

    #[test]
    fn crop_is_input_sized_and_normalised() {
        let p = Preprocessor::new(&eva_cfg());
        let image = RgbImage::from_pixel(333, 250, image::Rgb([255, 0, 128]));
        let crop = p.crop(&image);
        assert_eq!(crop.dimensions(), (224, 224));
        let t = p.run(&image);
        assert_eq!(t.len(), p.tensor_len());
        let plane = 224 * 224;
        assert!((t[0] - (1.0 - OPENAI_CLIP_MEAN[0]) / OPENAI_CLIP_STD[0]).abs() < 1e-6);
        assert!((t[plane] - (0.0 - OPENAI_CLIP_MEAN[1]) / OPENAI_CLIP_STD[1]).abs() < 1e-6);
    }

    #[test]
    fn extreme_aspect_ratios_are_cropped_without_resizing_everything() {
        let p = Preprocessor::new(&eva_cfg());
        // Resized whole, this strip would be 24,800,000 x 248 pixels (18 GB).
        let strip = RgbImage::from_fn(100_000, 1, |x, _| image::Rgb([(x % 256) as u8, 7, 200]));
        assert_eq!(p.resized_size(100_000, 1), (24_800_000, 248));
        let crop = p.crop(&strip);
        assert_eq!(crop.dimensions(), (224, 224));
        let column = RgbImage::from_fn(1, 100_000, |_, y| image::Rgb([9, (y % 256) as u8, 100]));
        assert_eq!(p.crop(&column).dimensions(), (224, 224));
    }

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
}

//! From a file's bytes to the model's input: decode, orient, resize, crop, normalise, exactly
//! as timm's eval transform does it (plus the photo's orientation, which a photo app must honour).

use image::RgbImage;

use crate::model::config::{CropMode, Interpolation, PretrainedCfg};

mod decode;
mod error;
mod heif;
mod jpeg;
mod raw;
mod resample;
mod stored;

pub use decode::{
    DEFAULT_MAX_FILE_MB, DEFAULT_MAX_MEGAPIXELS, HEADER_LEN, check_header, decode, decode_for_display, decode_rgb8,
    shown_size,
};
pub use error::PreprocessError;
pub use heif::{LIBHEIF_ENV, libheif_version};
pub use stored::jpeg_is_complete;

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
}

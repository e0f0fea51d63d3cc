//! Any bytes through decoding and timm's transform: a result or an error, never a crash.
#![no_main]

use std::path::Path;

use evatag::model::config::{CropMode, Interpolation, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PretrainedCfg};
use evatag::preprocess::{self, Preprocessor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let preprocessor = Preprocessor::new(&PretrainedCfg {
        input_size: [3, 224, 224],
        interpolation: Interpolation::Bicubic,
        crop_pct: 0.9,
        crop_mode: CropMode::Center,
        mean: OPENAI_CLIP_MEAN,
        std: OPENAI_CLIP_STD,
    });
    if let Ok(image) = preprocess::decode_rgb8(bytes, Path::new("fuzz"), 16) {
        assert_eq!(preprocessor.run(&image).len(), preprocessor.tensor_len());
    }
});

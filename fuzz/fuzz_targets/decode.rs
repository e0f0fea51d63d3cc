//! Any bytes through decoding and timm's transform: a result or an error, never a crash.
#![no_main]

use std::path::Path;

use evatag::model::config::DEFAULT_ARCHITECTURE;
use evatag::model::registry;
use evatag::preprocess::{self, Preprocessor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // EVA-giant's own eval transform.
    let config = registry::builtin_config(DEFAULT_ARCHITECTURE).expect("the default model is built in");
    let preprocessor = Preprocessor::new(&config.pretrained_cfg);
    if let Ok(image) = preprocess::decode_rgb8(bytes, Path::new("fuzz"), 16) {
        assert_eq!(preprocessor.run(&image).len(), preprocessor.tensor_len());
    }
});

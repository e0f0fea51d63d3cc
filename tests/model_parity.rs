//! evatag's EVA against timm's, on fixture models and photos made by timm itself
//! (tests/fixtures/make_fixtures.py).
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use common::*;
use evatag::preprocess::{Preprocessor, decode_rgb8};

/// Compares evatag's outputs for every fixture photo against timm's, given timm's own input
/// tensors, with the tolerances the project promises.
fn assert_parity(model_name: &str) {
    let model = load_model(model_name);
    let expected = expected_outputs(model_name);
    let preprocessor = Preprocessor::new(&model.config().pretrained_cfg);
    let names = photo_names();
    let inputs: Vec<Vec<f32>> = names.iter().map(|n| preprocessor.normalize(&expected_crop(n))).collect();
    let slices: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let predictions = model.predict(&slices).unwrap();
    assert_eq!(predictions.len(), names.len());
    for (name, prediction) in names.iter().zip(&predictions) {
        let want_embedding = &expected[&format!("{name}/embedding")];
        let want_logits = &expected[&format!("{name}/logits")];
        let cos = cosine(&prediction.embedding, want_embedding);
        assert!(cos >= 0.99999, "{model_name} {name}: embedding cosine {cos}");
        let range =
            want_logits.iter().copied().fold(f32::MIN, f32::max) - want_logits.iter().copied().fold(f32::MAX, f32::min);
        let worst = prediction.logits.iter().zip(want_logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-3 * range, "{model_name} {name}: logit error {worst} over range {range}");
        assert_eq!(
            top_indices(&prediction.logits, 5),
            top_indices(want_logits, 5),
            "{model_name} {name}: top-5 classes differ"
        );
    }
}

#[test]
fn tiny_eva_matches_timm() {
    assert_parity("eva_tiny");
}

#[test]
fn eva_with_large_activation_offset_matches_timm() {
    assert_parity("eva_offset");
}

#[test]
fn batching_does_not_change_results() {
    let model = load_model("eva_tiny");
    let preprocessor = Preprocessor::new(&model.config().pretrained_cfg);
    let names = photo_names();
    let inputs: Vec<Vec<f32>> = names.iter().map(|n| preprocessor.normalize(&expected_crop(n))).collect();
    let slices: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let batched = model.predict(&slices).unwrap();
    for (input, together) in slices.iter().zip(&batched) {
        let alone = &model.predict(&[input]).unwrap()[0];
        let worst = alone.logits.iter().zip(&together.logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "batch of one differs by {worst}");
    }
}

#[test]
fn whole_pipeline_from_photo_files_agrees_with_timm() {
    let model = load_model("eva_tiny");
    let expected = expected_outputs("eva_tiny");
    let preprocessor = Preprocessor::new(&model.config().pretrained_cfg);
    for name in photo_names() {
        let path = fixtures().join("photos").join(&name);
        let bytes = std::fs::read(&path).unwrap();
        let input = preprocessor.run(&decode_rgb8(&bytes, &path, 100).unwrap());
        let prediction = &model.predict(&[&input]).unwrap()[0];
        let cos = cosine(&prediction.embedding, &expected[&format!("{name}/embedding")]);
        assert!(cos >= 0.99999, "{name}: end-to-end embedding cosine {cos}");
        let want = top_indices(&expected[&format!("{name}/logits")], 5);
        assert_eq!(top_indices(&prediction.logits, 5), want, "{name}: top-5 differs end to end");
    }
}

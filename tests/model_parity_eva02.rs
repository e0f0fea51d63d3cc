//! evatag's EVA-02 (rotary position embedding, SwiGLU) against timm's, on fixture models and
//! photos made by timm itself (tests/fixtures/make_fixtures.py): `eva02_packed` has a fused qkv
//! projection and a packed SwiGLU, `eva02_split` separate q/k/v projections, SwiGLU with its
//! LayerNorm and the attention's inner LayerNorm.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use candle_core::DType;
use common::*;
use evatag::model::Model;

const MODELS: [&str; 2] = ["eva02_packed", "eva02_split"];

/// Runs `model` on timm's own input tensors and compares embeddings, logits and top five.
fn assert_parity_on_timm_inputs(model: &Model, name: &str, path: &str) {
    let expected = expected_outputs(name);
    let photos = photo_names();
    let inputs: Vec<&[f32]> = photos.iter().map(|p| expected[&format!("{p}/input")].as_slice()).collect();
    let predictions = model.predict(&inputs).unwrap();
    assert_eq!(predictions.len(), photos.len());
    for (photo, prediction) in photos.iter().zip(&predictions) {
        assert_matches_timm(prediction, &expected, photo, &format!("{name} ({path})"));
    }
}

#[test]
fn eva02_matches_timm_on_timm_inputs_with_the_cpu_kernels() {
    for name in MODELS {
        assert_parity_on_timm_inputs(&load_model(name), name, "f32 CPU kernels");
    }
}

#[test]
fn eva02_matches_timm_on_timm_inputs_through_the_generic_path() {
    for name in MODELS {
        assert_parity_on_timm_inputs(&load_model_generic(name, DType::F32), name, "generic candle operations, f32");
    }
}

#[test]
fn eva02_fixtures_exercise_their_own_transform() {
    // The fixtures' transforms are the EVA-02 ones: crop_pct 1.0, center crop (tiny) or squash (base).
    for (name, mode) in [("eva02_packed", "Center"), ("eva02_split", "Squash")] {
        let model = load_model(name);
        let cfg = &model.config().pretrained_cfg;
        assert_eq!(cfg.input_size, [3, 56, 56], "{name}");
        assert_eq!(cfg.crop_pct, 1.0, "{name}");
        assert_eq!(format!("{:?}", cfg.crop_mode), mode, "{name}");
        assert!(model.config().eva.rope.is_some(), "{name} has no rotary embedding");
    }
}

#[test]
fn eva02_whole_pipeline_from_photo_files_agrees_with_timm() {
    for name in MODELS {
        let model = load_model(name);
        let expected = expected_outputs(name);
        for photo in photo_names() {
            let input = photo_input(&model, &photo);
            assert_eq!(input.len(), 3 * 56 * 56, "{name} {photo}: input size");
            let prediction = &model.predict(&[&input]).unwrap()[0];
            assert_end_to_end_matches_timm(prediction, &expected, &photo, name);
        }
    }
}

#[test]
fn eva02_batching_does_not_change_results() {
    let model = load_model("eva02_split");
    let expected = expected_outputs("eva02_split");
    let photos = photo_names();
    let inputs: Vec<&[f32]> = photos.iter().map(|p| expected[&format!("{p}/input")].as_slice()).collect();
    let batched = model.predict(&inputs).unwrap();
    for (input, together) in inputs.iter().zip(&batched) {
        let alone = &model.predict(&[input]).unwrap()[0];
        let worst = alone.logits.iter().zip(&together.logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "batch of one differs by {worst}");
    }
}

#[test]
fn each_model_has_its_own_cache_identity() {
    let ids: Vec<String> = ["eva_tiny", "eva02_packed", "eva02_split"].map(|n| load_model(n).id().to_owned()).into();
    assert!(ids[0].starts_with("eva_giant_patch14_224@"), "{}", ids[0]);
    assert!(ids[1].starts_with("eva02_tiny_patch14_336@"), "{}", ids[1]);
    assert!(ids[2].starts_with("eva02_base_patch14_448@"), "{}", ids[2]);
    assert_eq!(load_model("eva02_split").id(), ids[2], "the identity is stable");
}

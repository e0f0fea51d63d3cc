//! evatag's EVA against timm's, on fixture models and photos made by timm itself
//! (tests/fixtures/make_fixtures.py).
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use common::*;
use evatag::model::simd;
use evatag::preprocess::Preprocessor;

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
        assert_matches_timm(prediction, &expected, name, model_name);
    }
}

#[test]
fn tiny_eva_matches_timm() {
    assert_parity("eva_tiny");
}

/// The bounds hold on every path the CPU kernels can take here (AVX-512, AVX2 and the portable
/// one on an AVX-512 machine), matrix products included.
#[test]
fn every_simd_level_matches_timm() {
    for level in simd::available_levels() {
        simd::with_level_everywhere(level, || {
            assert_eq!(simd::SimdLevel::detect(), level);
            assert_parity("eva_tiny");
            assert_parity("eva_offset");
        });
    }
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
    for name in photo_names() {
        let prediction = &model.predict(&[&photo_input(&model, &name)]).unwrap()[0];
        assert_end_to_end_matches_timm(prediction, &expected, &name, "eva_tiny");
    }
}

/// Every fixture model through the generic graph (candle's operations only, the graph GPUs run)
/// in f32 meets the same bounds as the fused CPU kernels; in f16 and bf16 its embeddings keep a
/// cosine of 0.999 with timm's and its top class.
#[test]
fn the_generic_graph_matches_timm_in_full_and_half_precision() {
    for model_name in ["eva_tiny", "eva_offset", "eva02_packed", "eva02_split"] {
        let expected = expected_outputs(model_name);
        let names = photo_names();
        // timm's own input tensors where the fixtures keep them (EVA-02), else timm's crops.
        let preprocessor = Preprocessor::new(&load_model(model_name).config().pretrained_cfg);
        let inputs: Vec<Vec<f32>> = names
            .iter()
            .map(|n| {
                expected
                    .get(&format!("{n}/input"))
                    .cloned()
                    .unwrap_or_else(|| preprocessor.normalize(&expected_crop(n)))
            })
            .collect();
        let inputs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        for dtype in [candle_core::DType::F32, candle_core::DType::F16, candle_core::DType::BF16] {
            let predictions = load_model_generic(model_name, dtype).predict(&inputs).unwrap();
            let worst = names
                .iter()
                .zip(&predictions)
                .map(|(name, p)| cosine(&p.embedding, &expected[&format!("{name}/embedding")]))
                .fold(1.0, f64::min);
            eprintln!("{model_name}, generic graph in {dtype:?}: worst embedding cosine {worst:.7}");
            for (name, prediction) in names.iter().zip(&predictions) {
                let what = format!("{model_name} {name}, generic graph in {dtype:?}");
                if dtype == candle_core::DType::F32 {
                    assert_matches_timm(prediction, &expected, name, &what);
                    continue;
                }
                let cos = cosine(&prediction.embedding, &expected[&format!("{name}/embedding")]);
                assert!(cos >= 0.999, "{what}: embedding cosine {cos}");
                let want = top_indices(&expected[&format!("{name}/logits")], 1);
                assert_eq!(top_indices(&prediction.logits, 1), want, "{what}: top class");
            }
        }
    }
}

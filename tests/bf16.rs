//! The CPU's half-memory mode (`--dtype bf16`: linear layers' weights in bf16, activations in
//! f32) against f32, on timm's fixture models and on EVA-giant at full size with random weights.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use common::*;
use evatag::model::device::{DTypeChoice, DeviceChoice, place};
use evatag::model::{Model, Prediction};

/// Smallest embedding cosine between bf16 and f32 that is accepted.
const MIN_COSINE: f64 = 0.999;

/// How bf16 predictions compare with f32 ones.
#[derive(Debug, Default)]
struct Agreement {
    worst_cosine: f64,
    same_top1: usize,
    same_top5: usize,
    photos: usize,
}

fn agreement(full: &[Prediction], half: &[Prediction]) -> Agreement {
    let mut agreement = Agreement { worst_cosine: 1.0, ..Agreement::default() };
    for (f, h) in full.iter().zip(half) {
        agreement.worst_cosine = agreement.worst_cosine.min(cosine(&f.embedding, &h.embedding));
        let (top_f, top_h) = (top_indices(&f.logits, 5), top_indices(&h.logits, 5));
        agreement.same_top1 += usize::from(top_f[0] == top_h[0]);
        agreement.same_top5 += usize::from(top_f == top_h);
        agreement.photos += 1;
    }
    agreement
}

#[test]
fn bf16_weights_keep_every_fixture_models_embeddings_and_top_class() {
    for name in ["eva_tiny", "eva_offset", "eva02_packed", "eva02_split"] {
        let (full, half) = (load_model(name), load_model_bf16(name));
        assert_eq!(half.id(), format!("{}+bf16", full.id()), "bf16 results are cached apart");
        let inputs: Vec<Vec<f32>> = photo_names().iter().map(|photo| photo_input(&full, photo)).collect();
        let inputs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let (f, h) = (full.predict(&inputs).unwrap(), half.predict(&inputs).unwrap());
        let found = agreement(&f, &h);
        eprintln!("{name}: {found:?}");
        assert!(found.worst_cosine >= MIN_COSINE, "{name}: {found:?}");
        assert_eq!(found.same_top1, found.photos, "{name}: {found:?}");
        let expected = expected_outputs(name);
        for (photo, prediction) in photo_names().iter().zip(&h) {
            let cos = cosine(&prediction.embedding, &expected[&format!("{photo}/embedding")]);
            assert!(cos >= MIN_COSINE, "{name} {photo}: cosine {cos} with timm's f32 embedding");
        }
    }
}

#[test]
fn bf16_weights_keep_eva_giant_at_full_size() {
    let config = evatag::model::registry::builtin_config("eva_giant_patch14_224").unwrap();
    let preprocessor = evatag::preprocess::Preprocessor::new(&config.pretrained_cfg);
    let inputs: Vec<Vec<f32>> = photo_names()
        .iter()
        .take(2)
        .map(|photo| {
            let path = fixtures().join("photos").join(photo);
            let bytes = std::fs::read(&path).unwrap();
            preprocessor.run(&evatag::preprocess::decode_rgb8(&bytes, &path, 100).unwrap())
        })
        .collect();
    let inputs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    // One model at a time: f32 EVA-giant alone takes 4 GB.
    let run =
        |dtype| Model::random(config.clone(), &place(DeviceChoice::Cpu, dtype)).unwrap().predict(&inputs).unwrap();
    let full = run(DTypeChoice::F32);
    let half = run(DTypeChoice::Bf16);
    let found = agreement(&full, &half);
    eprintln!("eva_giant_patch14_224, random weights: {found:?}");
    assert!(found.worst_cosine >= MIN_COSINE, "{found:?}");
}

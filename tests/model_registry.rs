//! The registered models against what timm says about them (tests/fixtures/expected/registry.json,
//! written by tests/fixtures/make_fixtures.py from timm's own model definitions and
//! pretrained_cfg), and the model choice on the command line.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use common::*;
use evatag::model::config::{AttentionLayout, CropMode, EvaConfig, MlpKind};
use evatag::model::registry::{self, MODELS};
use serde_json::{Map, Value};

fn timm_facts() -> Map<String, Value> {
    let text = std::fs::read_to_string(fixtures().join("expected/registry.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap().as_object().unwrap().clone()
}

fn int(facts: &Value, key: &str) -> usize {
    facts[key].as_u64().unwrap_or_else(|| panic!("{key} is not an integer")) as usize
}

#[test]
fn every_timm_model_is_registered_and_every_registered_model_is_timms() {
    let facts = timm_facts();
    let mut timm_names: Vec<&str> = facts.keys().map(String::as_str).collect();
    let mut ours = registry::known_names();
    timm_names.sort_unstable();
    ours.sort_unstable();
    assert_eq!(ours, timm_names);
}

#[test]
fn architectures_parse_to_timms_sizes() {
    for (name, facts) in timm_facts() {
        let model = registry::find(&name).unwrap();
        assert_eq!(model.architecture, facts["architecture"].as_str().unwrap(), "{name}");
        let c = EvaConfig::for_architecture(model.architecture, &Map::new()).unwrap();
        assert_eq!(c.embed_dim, int(&facts, "embed_dim"), "{name}: embed_dim");
        assert_eq!(c.depth, int(&facts, "depth"), "{name}: depth");
        assert_eq!(c.num_heads, int(&facts, "num_heads"), "{name}: num_heads");
        assert_eq!(c.mlp_hidden, int(&facts, "mlp_hidden"), "{name}: mlp hidden width");
        assert_eq!(c.img_size, int(&facts, "img_size"), "{name}: img_size");
        assert_eq!(c.patch_size, int(&facts, "patch_size"), "{name}: patch_size");
        let mlp = match c.mlp {
            MlpKind::Gelu => "Mlp",
            MlpKind::SwiGluPacked => "GluMlp",
            MlpKind::SwiGlu => "SwiGLU",
        };
        assert_eq!(mlp, facts["mlp"].as_str().unwrap(), "{name}: feed-forward");
        assert_eq!(c.attention == AttentionLayout::Fused, facts["qkv_fused"].as_bool().unwrap(), "{name}: qkv");
        assert_eq!(c.rope.is_some(), facts["rope"].as_bool().unwrap(), "{name}: rotary embedding");
    }
}

#[test]
fn preprocessing_and_sizes_are_timms() {
    for (name, facts) in timm_facts() {
        let model = registry::find(&name).unwrap();
        assert_eq!(model.repo, facts["hf_hub_id"].as_str().unwrap(), "{name}: repo");
        assert_eq!(model.params, facts["num_params"].as_u64().unwrap(), "{name}: parameters");
        let cfg = evatag::model::registry::builtin_config(model.architecture).unwrap().pretrained_cfg;
        assert_eq!(cfg, model.pretrained_cfg(), "{name}: built-in config");
        assert_eq!(cfg.input_size, [3, int(&facts, "img_size"), int(&facts, "img_size")], "{name}: input size");
        assert_eq!(cfg.crop_pct, facts["crop_pct"].as_f64().unwrap(), "{name}: crop_pct");
        let mode = match cfg.crop_mode {
            CropMode::Center => "center",
            CropMode::Squash => "squash",
        };
        assert_eq!(mode, facts["crop_mode"].as_str().unwrap(), "{name}: crop_mode");
        assert_eq!(format!("{:?}", cfg.interpolation).to_lowercase(), facts["interpolation"].as_str().unwrap());
        for (ours, theirs) in [(cfg.mean, &facts["mean"]), (cfg.std, &facts["std"])] {
            let theirs: Vec<f32> = theirs.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            assert_eq!(ours.to_vec(), theirs, "{name}: mean/std");
        }
        // The checkpoint is the f32 tensors plus a safetensors header of a few tens of KB.
        let data = facts["state_dict_bytes"].as_u64().unwrap();
        assert!(model.size_bytes > data && model.size_bytes < data + 100_000, "{name}: {} bytes", model.size_bytes);
    }
}

#[test]
fn the_default_model_is_eva_giant() {
    let model = registry::default_model();
    assert_eq!(model.name, "eva_giant_patch14_224.clip_ft_in1k");
    assert_eq!(evatag::options::Options::default().model, model);
}

#[test]
fn measured_figures_are_recorded_for_every_model() {
    for m in MODELS {
        assert!(m.seconds_per_photo > 0.0 && m.peak_memory_bytes > m.size_bytes, "{}", m.name);
        assert!((70.0..100.0).contains(&m.imagenet_top1), "{}", m.name);
    }
}

#[test]
fn an_unknown_model_is_a_usage_error_listing_the_known_ones() {
    let args = ["--model", "eva02_enormous", "tag", "photo.jpg"].map(std::ffi::OsString::from);
    let run = run_evatag(&os(&args), None);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("eva02_enormous"), "{}", run.stderr);
    for name in registry::known_names() {
        assert!(run.stderr.contains(name), "{} lacks {name}", run.stderr);
    }
}

//! The models evatag offers by name: EVA-giant and the EVA-02 family, each with its Hub
//! repository, its preprocessing and the facts a model picker shows (size, accuracy, speed).
//!
//! A name is timm's model name with its pretrained tag, e.g.
//! `eva02_small_patch14_336.mim_in22k_ft_in1k`; the name without the tag finds the same model.

use super::config::{
    ConfigError, CropMode, EvaConfig, Interpolation, ModelConfig, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PretrainedCfg,
};
use super::weights::{ModelSource, offline_from_env};

/// One model evatag can download and run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegisteredModel {
    /// timm's name with the pretrained tag, e.g. `eva02_small_patch14_336.mim_in22k_ft_in1k`.
    pub name: &'static str,
    /// timm's architecture, the name before the tag.
    pub architecture: &'static str,
    /// The Hugging Face Hub repository holding `config.json` and `model.safetensors`.
    pub repo: &'static str,
    /// Learned parameters.
    pub params: u64,
    /// Bytes of the f32 `model.safetensors` timm writes for it.
    pub size_bytes: u64,
    /// ImageNet-1k top-1 accuracy in percent, from timm's `results/results-imagenet.csv`
    /// (huggingface/pytorch-image-models, commit 0173a139).
    pub imagenet_top1: f32,
    /// Seconds per photo with the default release build in f32 on the CPU at batch 1, model
    /// only: `evatag bench` on a random checkpoint (`bench/compare_models.sh`, 3 timed
    /// iterations, median) on an AMD EPYC Zen 5 with 2 vCPUs, 2026-11-28; the fastest of five
    /// rounds, since other load on that shared machine only slows it down.
    pub seconds_per_photo: f32,
    /// Peak resident memory in bytes of that benchmark's process, weights included
    /// (`/usr/bin/time -v`, maximum resident set size; the largest of the five rounds, rounded
    /// to 10 MB).
    pub peak_memory_bytes: u64,
    /// Side of the square network input in pixels.
    pub input_size: usize,
    /// Fraction of the resized photo kept by the centre crop.
    pub crop_pct: f64,
    /// How the photo is fitted to the input.
    pub crop_mode: CropMode,
}

impl RegisteredModel {
    /// The preprocessing of the model's `pretrained_cfg` (bicubic, OpenAI CLIP mean and std).
    pub fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg {
            input_size: [3, self.input_size, self.input_size],
            interpolation: Interpolation::Bicubic,
            crop_pct: self.crop_pct,
            crop_mode: self.crop_mode,
            mean: OPENAI_CLIP_MEAN,
            std: OPENAI_CLIP_STD,
        }
    }

    /// Peak resident memory with the linear layers' weights in bf16 (`--dtype bf16` on the
    /// CPU): the f32 figure less half the weights.
    pub fn peak_memory_bf16_bytes(&self) -> u64 {
        self.peak_memory_bytes - self.size_bytes / 2
    }

    /// The model's Hub repository; offline when asked or when `HF_HUB_OFFLINE` says so.
    pub fn source(&self, offline: bool) -> ModelSource {
        ModelSource::Hub { repo: self.repo.to_owned(), offline: offline || offline_from_env() }
    }
}

/// The configuration of an EVA architecture with no overrides and the preprocessing of its
/// registered model (EVA's for the others), for building a model without a `config.json`
/// (benchmarks).
pub fn builtin_config(architecture: &str) -> Result<ModelConfig, ConfigError> {
    let eva = EvaConfig::for_architecture(architecture, &serde_json::Map::new())?;
    let registered = MODELS.iter().find(|m| m.architecture == architecture);
    let pretrained_cfg = registered.map(RegisteredModel::pretrained_cfg).unwrap_or(PretrainedCfg {
        input_size: [eva.in_chans, eva.img_size, eva.img_size],
        interpolation: Interpolation::Bicubic,
        crop_pct: if eva.img_size == 224 { 0.9 } else { 1.0 },
        crop_mode: CropMode::Center,
        mean: OPENAI_CLIP_MEAN,
        std: OPENAI_CLIP_STD,
    });
    Ok(ModelConfig { architecture: architecture.to_owned(), eva, pretrained_cfg })
}

/// The name of the default model, EVA-CLIP giant.
pub const DEFAULT_MODEL: &str = "eva_giant_patch14_224.clip_ft_in1k";

/// Every registered model, largest first.
pub const MODELS: &[RegisteredModel] = &[
    RegisteredModel {
        name: DEFAULT_MODEL,
        architecture: "eva_giant_patch14_224",
        repo: "timm/eva_giant_patch14_224.clip_ft_in1k",
        params: 1_012_555_112,
        size_bytes: 4_050_271_240,
        imagenet_top1: 88.880,
        seconds_per_photo: GIANT_SECONDS,
        peak_memory_bytes: GIANT_PEAK,
        input_size: 224,
        crop_pct: 0.9,
        crop_mode: CropMode::Center,
    },
    RegisteredModel {
        name: "eva02_large_patch14_448.mim_m38m_ft_in22k_in1k",
        architecture: "eva02_large_patch14_448",
        repo: "timm/eva02_large_patch14_448.mim_m38m_ft_in22k_in1k",
        params: 305_080_232,
        size_bytes: 1_220_365_904,
        imagenet_top1: 90.052,
        seconds_per_photo: LARGE_SECONDS,
        peak_memory_bytes: LARGE_PEAK,
        input_size: 448,
        crop_pct: 1.0,
        crop_mode: CropMode::Squash,
    },
    RegisteredModel {
        name: "eva02_base_patch14_448.mim_in22k_ft_in22k_in1k",
        architecture: "eva02_base_patch14_448",
        repo: "timm/eva02_base_patch14_448.mim_in22k_ft_in22k_in1k",
        params: 87_117_544,
        size_bytes: 348_492_488,
        imagenet_top1: 88.692,
        seconds_per_photo: BASE_SECONDS,
        peak_memory_bytes: BASE_PEAK,
        input_size: 448,
        crop_pct: 1.0,
        crop_mode: CropMode::Squash,
    },
    RegisteredModel {
        name: "eva02_small_patch14_336.mim_in22k_ft_in1k",
        architecture: "eva02_small_patch14_336",
        repo: "timm/eva02_small_patch14_336.mim_in22k_ft_in1k",
        params: 22_129_000,
        size_bytes: 88_530_864,
        imagenet_top1: 85.716,
        seconds_per_photo: SMALL_SECONDS,
        peak_memory_bytes: SMALL_PEAK,
        input_size: 336,
        crop_pct: 1.0,
        crop_mode: CropMode::Center,
    },
    RegisteredModel {
        name: "eva02_tiny_patch14_336.mim_in22k_ft_in1k",
        architecture: "eva02_tiny_patch14_336",
        repo: "timm/eva02_tiny_patch14_336.mim_in22k_ft_in1k",
        params: 5_756_584,
        size_bytes: 23_041_064,
        imagenet_top1: 80.630,
        seconds_per_photo: TINY_SECONDS,
        peak_memory_bytes: TINY_PEAK,
        input_size: 336,
        crop_pct: 1.0,
        crop_mode: CropMode::Center,
    },
];

// Measured figures (see `RegisteredModel::seconds_per_photo` and `peak_memory_bytes`).
const GIANT_SECONDS: f32 = 1.556;
const GIANT_PEAK: u64 = 4_280_000_000;
const LARGE_SECONDS: f32 = 2.385;
const LARGE_PEAK: u64 = 1_420_000_000;
const BASE_SECONDS: f32 = 0.646;
const BASE_PEAK: u64 = 500_000_000;
const SMALL_SECONDS: f32 = 0.111;
const SMALL_PEAK: u64 = 190_000_000;
const TINY_SECONDS: f32 = 0.045;
const TINY_PEAK: u64 = 130_000_000;

/// A model name that is not registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model `{name}`; evatag knows: {}", known_names().join(", "))]
pub struct UnknownModel {
    /// The name asked for.
    pub name: String,
}

/// The registered model of that name, given with or without its pretrained tag.
pub fn find(name: &str) -> Result<&'static RegisteredModel, UnknownModel> {
    let name = name.trim();
    MODELS
        .iter()
        .find(|m| m.name == name || m.architecture == name)
        .ok_or_else(|| UnknownModel { name: name.to_owned() })
}

/// The default model, EVA-CLIP giant.
pub fn default_model() -> &'static RegisteredModel {
    &MODELS[0]
}

/// Names of every registered model, with their tags.
pub fn known_names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_with_and_without_the_tag() {
        let small = find("eva02_small_patch14_336.mim_in22k_ft_in1k").unwrap();
        assert_eq!(find("eva02_small_patch14_336").unwrap(), small);
        assert_eq!(small.repo, "timm/eva02_small_patch14_336.mim_in22k_ft_in1k");
        assert_eq!(default_model().name, DEFAULT_MODEL);
        assert_eq!(find(DEFAULT_MODEL).unwrap(), default_model());
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let err = find("eva02_huge").unwrap_err().to_string();
        assert!(err.contains("eva02_huge"), "{err}");
        for name in known_names() {
            assert!(err.contains(name), "{err} lacks {name}");
        }
    }

    #[test]
    fn every_repo_is_the_timm_name() {
        for m in MODELS {
            assert_eq!(m.repo, format!("timm/{}", m.name));
            assert!(m.name.starts_with(&format!("{}.", m.architecture)), "{}", m.name);
        }
    }
}

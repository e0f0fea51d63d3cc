//! Architecture registry and timm's `config.json`.
//!
//! A timm model folder (on the Hub or on disk) names an `architecture`, optionally overrides its
//! constructor arguments with `model_args`, and describes its preprocessing in `pretrained_cfg`.
//! [`ModelConfig::from_json`] turns that file into the sizes the model is built with, so no code
//! downstream assumes the sizes of any one architecture.

use serde::Deserialize;
use serde_json::{Map, Value};

/// What can go wrong while reading a model's `config.json`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid JSON or lacks a required field.
    #[error("config.json is malformed: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The architecture is not one evatag knows how to build.
    #[error("unknown architecture `{name}`; evatag can build: {}", known_architectures().join(", "))]
    UnknownArchitecture {
        /// The name found in `config.json`.
        name: String,
    },
    /// A constructor argument asks for a feature evatag does not implement.
    #[error("model_args.{key} = {value} is not supported by evatag")]
    Unsupported {
        /// The argument name.
        key: String,
        /// Its value in `config.json`.
        value: Value,
    },
    /// A constructor argument has the wrong type or an impossible value.
    #[error("model_args.{key} is invalid: {reason}")]
    Invalid {
        /// The argument name.
        key: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// How the token sequence is pooled into one feature vector before the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalPool {
    /// Mean over the patch tokens (prefix tokens excluded).
    Avg,
    /// The class token.
    Token,
}

/// The feed-forward layer of each block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlpKind {
    /// `fc1`, exact (erf) GELU, `fc2` (EVA).
    Gelu,
    /// SwiGLU with one packed `fc1` holding the gate's rows, then the value's: timm's `GluMlp`
    /// with SiLU (EVA-02 `swiglu_mlp` without `scale_mlp`).
    SwiGluPacked,
    /// SwiGLU with separate `fc1_g` (gate) and `fc1_x` (value): timm's `SwiGLU` (EVA-02
    /// `swiglu_mlp` with `scale_mlp`).
    SwiGlu,
}

/// How the attention's query, key and value projections are stored in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionLayout {
    /// One `qkv.weight` with `q_bias` and `v_bias` beside it (timm's `qkv_fused=True`).
    Fused,
    /// `q_proj`, `k_proj` (no bias) and `v_proj` (timm's `qkv_fused=False`).
    Separate,
}

/// Rotary position embedding of the patch tokens (timm's `RotaryEmbeddingCat`, interleaved
/// pairs, integer grid positions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeConfig {
    /// The patch grid the positions are rescaled to (timm's `ref_feat_shape`, the pretraining
    /// grid); `None` keeps the integer positions of the actual grid.
    pub ref_feat_shape: Option<[usize; 2]>,
    /// Base of the inverse frequencies (`rope_temperature`).
    pub temperature: f64,
}

/// Sizes and switches of an EVA vision transformer, as timm's `Eva` constructor takes them.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaConfig {
    /// Input side length in pixels (square input).
    pub img_size: usize,
    /// Patch side length in pixels.
    pub patch_size: usize,
    /// Input channels.
    pub in_chans: usize,
    /// Token width.
    pub embed_dim: usize,
    /// Number of transformer blocks.
    pub depth: usize,
    /// Attention heads per block.
    pub num_heads: usize,
    /// MLP hidden width, `int(embed_dim * mlp_ratio)` as in timm.
    pub mlp_hidden: usize,
    /// Whether q and v carry a bias (k never does).
    pub qkv_bias: bool,
    /// Whether a class token is prepended.
    pub class_token: bool,
    /// Pooling before the head.
    pub global_pool: GlobalPool,
    /// Whether a LayerNorm follows the pooling (`fc_norm`); otherwise `norm` follows the blocks.
    pub use_fc_norm: bool,
    /// Classifier outputs; 0 means no head.
    pub num_classes: usize,
    /// LayerNorm epsilon.
    pub norm_eps: f64,
    /// How q, k and v are projected.
    pub attention: AttentionLayout,
    /// Whether a LayerNorm follows the attention heads, before `proj` (`scale_attn_inner`).
    pub attn_inner_norm: bool,
    /// The feed-forward variant.
    pub mlp: MlpKind,
    /// Whether a LayerNorm precedes `fc2` (`scale_mlp`).
    pub mlp_norm: bool,
    /// Rotary position embedding on the patch tokens, besides the absolute one.
    pub rope: Option<RopeConfig>,
}

impl EvaConfig {
    /// Patches along one side of the input.
    pub fn grid_size(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// Patch tokens per image.
    pub fn num_patches(&self) -> usize {
        self.grid_size() * self.grid_size()
    }

    /// Tokens placed before the patch tokens (the class token, if any).
    pub fn num_prefix_tokens(&self) -> usize {
        usize::from(self.class_token)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }

    /// Multiply-adds one image takes: the patch embedding, every block's projections, attention
    /// products and feed-forward, and the head (norms, softmax and activations, a fraction of a
    /// percent, left out, as timm's own count leaves them out).
    pub fn macs_per_image(&self) -> u64 {
        let tokens = (self.num_patches() + self.num_prefix_tokens()) as u64;
        let attention = 2 * tokens * tokens * self.embed_dim as u64;
        self.matrix_product_macs_per_image() + self.depth as u64 * attention
    }

    /// Of [`Self::macs_per_image`], those of the matrix products with weights: the patch
    /// embedding, the linear layers and the head.
    pub fn matrix_product_macs_per_image(&self) -> u64 {
        let (dim, hidden) = (self.embed_dim as u64, self.mlp_hidden as u64);
        let tokens = (self.num_patches() + self.num_prefix_tokens()) as u64;
        let patch = (self.in_chans * self.patch_size * self.patch_size) as u64;
        let feed_forward_widths = match self.mlp {
            MlpKind::Gelu => 2,
            MlpKind::SwiGlu | MlpKind::SwiGluPacked => 3,
        };
        let per_block = tokens * dim * dim * 4 + tokens * dim * hidden * feed_forward_widths;
        self.num_patches() as u64 * patch * dim + self.depth as u64 * per_block + dim * self.num_classes as u64
    }
}

/// One registered architecture: its timm name and the constructor defaults it sets.
struct Architecture {
    name: &'static str,
    img_size: usize,
    patch_size: usize,
    embed_dim: usize,
    depth: usize,
    num_heads: usize,
    mlp_ratio: f64,
    /// What EVA-02 adds; `None` for EVA (v1).
    eva02: Option<Eva02Args>,
}

/// The constructor arguments an EVA-02 architecture sets besides the sizes.
struct Eva02Args {
    qkv_fused: bool,
    scale_mlp: bool,
    ref_feat_shape: usize,
}

/// timm's `mlp_ratio` for EVA-02: `4 * 2 / 3`, a SwiGLU as wide as a 4x GELU MLP.
const EVA02_MLP_RATIO: f64 = 4.0 * 2.0 / 3.0;

/// The EVA (v1) family as registered in timm's `eva.py`.
const ARCHITECTURES: &[Architecture] = &[
    Architecture {
        name: "eva_giant_patch14_224",
        img_size: 224,
        patch_size: 14,
        embed_dim: 1408,
        depth: 40,
        num_heads: 16,
        mlp_ratio: 6144.0 / 1408.0,
        eva02: None,
    },
    Architecture {
        name: "eva_giant_patch14_336",
        img_size: 336,
        patch_size: 14,
        embed_dim: 1408,
        depth: 40,
        num_heads: 16,
        mlp_ratio: 6144.0 / 1408.0,
        eva02: None,
    },
    Architecture {
        name: "eva_giant_patch14_560",
        img_size: 560,
        patch_size: 14,
        embed_dim: 1408,
        depth: 40,
        num_heads: 16,
        mlp_ratio: 6144.0 / 1408.0,
        eva02: None,
    },
    Architecture {
        name: "eva02_tiny_patch14_336",
        img_size: 336,
        patch_size: 14,
        embed_dim: 192,
        depth: 12,
        num_heads: 3,
        mlp_ratio: EVA02_MLP_RATIO,
        eva02: Some(Eva02Args { qkv_fused: true, scale_mlp: false, ref_feat_shape: 16 }),
    },
    Architecture {
        name: "eva02_small_patch14_336",
        img_size: 336,
        patch_size: 14,
        embed_dim: 384,
        depth: 12,
        num_heads: 6,
        mlp_ratio: EVA02_MLP_RATIO,
        eva02: Some(Eva02Args { qkv_fused: true, scale_mlp: false, ref_feat_shape: 16 }),
    },
    Architecture {
        name: "eva02_base_patch14_448",
        img_size: 448,
        patch_size: 14,
        embed_dim: 768,
        depth: 12,
        num_heads: 12,
        mlp_ratio: EVA02_MLP_RATIO,
        eva02: Some(Eva02Args { qkv_fused: false, scale_mlp: true, ref_feat_shape: 16 }),
    },
    Architecture {
        name: "eva02_large_patch14_448",
        img_size: 448,
        patch_size: 14,
        embed_dim: 1024,
        depth: 24,
        num_heads: 16,
        mlp_ratio: EVA02_MLP_RATIO,
        eva02: Some(Eva02Args { qkv_fused: false, scale_mlp: true, ref_feat_shape: 16 }),
    },
];

/// The default architecture: EVA-CLIP giant at 224 pixels.
pub const DEFAULT_ARCHITECTURE: &str = "eva_giant_patch14_224";

/// Names of every architecture [`EvaConfig::for_architecture`] accepts.
pub fn known_architectures() -> Vec<&'static str> {
    ARCHITECTURES.iter().map(|a| a.name).collect()
}

/// Constructor arguments that only matter for training and are ignored at inference.
const TRAINING_ONLY_ARGS: &[&str] = &[
    "drop_rate",
    "pos_drop_rate",
    "patch_drop_rate",
    "proj_drop_rate",
    "attn_drop_rate",
    "drop_path_rate",
    "head_init_scale",
    "pretrained_cfg",
    "pretrained_cfg_overlay",
    "rope_shift_coords",
    "rope_jitter_coords",
    "rope_rescale_coords",
];

/// Constructor arguments evatag does not implement, with the value that is harmless.
const UNSUPPORTED_UNLESS_DEFAULT: &[(&str, Value)] = &[
    ("use_post_norm", Value::Bool(false)),
    ("use_pre_transformer_norm", Value::Bool(false)),
    ("qk_norm", Value::Bool(false)),
    ("no_embed_class", Value::Bool(false)),
    ("use_abs_pos_emb", Value::Bool(true)),
    ("dynamic_img_size", Value::Bool(false)),
    ("swiglu_align_to", Value::Null),
    ("attn_only_layer_scale", Value::Bool(false)),
    ("num_reg_tokens", Value::Null),
    ("init_values", Value::Null),
    ("num_kv_heads", Value::Null),
];

impl EvaConfig {
    /// The configuration of a registered architecture with `model_args` applied on top, the
    /// way timm's `create_model(name, **model_args)` builds it.
    pub fn for_architecture(name: &str, model_args: &Map<String, Value>) -> Result<Self, ConfigError> {
        let arch = ARCHITECTURES
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| ConfigError::UnknownArchitecture { name: name.to_owned() })?;
        let mut args = ArgReader::new(model_args);
        let eva02 = arch.eva02.as_ref();
        let scale_mlp = args.bool("scale_mlp", eva02.is_some_and(|e| e.scale_mlp))?;
        let embed_dim = args.usize("embed_dim", arch.embed_dim)?;
        let mlp_ratio = args.f64("mlp_ratio", arch.mlp_ratio)?;
        let global_pool = match args.string("global_pool", "avg")?.as_str() {
            "avg" => GlobalPool::Avg,
            "token" => GlobalPool::Token,
            other => return Err(unsupported("global_pool", Value::String(other.to_owned()))),
        };
        let config = EvaConfig {
            img_size: args.usize("img_size", arch.img_size)?,
            patch_size: args.usize("patch_size", arch.patch_size)?,
            in_chans: args.usize("in_chans", 3)?,
            embed_dim,
            depth: args.usize("depth", arch.depth)?,
            num_heads: args.usize("num_heads", arch.num_heads)?,
            // Python's `int(dim * mlp_ratio)` truncates the float64 product; so does `as`.
            mlp_hidden: (embed_dim as f64 * mlp_ratio) as usize,
            qkv_bias: args.bool("qkv_bias", true)?,
            class_token: args.bool("class_token", true)?,
            use_fc_norm: args.optional_bool("use_fc_norm")?.unwrap_or(global_pool == GlobalPool::Avg),
            global_pool,
            num_classes: args.usize("num_classes", 1000)?,
            norm_eps: 1e-6,
            attention: if args.bool("qkv_fused", eva02.is_none_or(|e| e.qkv_fused))? {
                AttentionLayout::Fused
            } else {
                AttentionLayout::Separate
            },
            attn_inner_norm: args.bool("scale_attn_inner", false)?,
            mlp: match (args.bool("swiglu_mlp", eva02.is_some())?, scale_mlp) {
                (false, _) => MlpKind::Gelu,
                (true, false) => MlpKind::SwiGluPacked,
                (true, true) => MlpKind::SwiGlu,
            },
            mlp_norm: scale_mlp,
            rope: if args.bool("use_rot_pos_emb", eva02.is_some())? {
                Some(read_rope(&mut args, eva02.map(|e| e.ref_feat_shape))?)
            } else {
                None
            },
        };
        args.reject_unknown()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid { key: key.to_owned(), reason };
        if self.patch_size == 0 || !self.img_size.is_multiple_of(self.patch_size) {
            return Err(invalid(
                "img_size",
                format!("{} is not a multiple of patch_size {}", self.img_size, self.patch_size),
            ));
        }
        if self.num_heads == 0 || !self.embed_dim.is_multiple_of(self.num_heads) {
            return Err(invalid(
                "num_heads",
                format!("embed_dim {} is not divisible by {} heads", self.embed_dim, self.num_heads),
            ));
        }
        if self.global_pool == GlobalPool::Token && !self.class_token {
            return Err(invalid("global_pool", "token pooling needs the class token".to_owned()));
        }
        if self.use_fc_norm && self.global_pool == GlobalPool::Token {
            return Err(unsupported("use_fc_norm", Value::Bool(true)));
        }
        if self.rope.is_some() && !self.head_dim().is_multiple_of(4) {
            return Err(invalid(
                "use_rot_pos_emb",
                format!("rotary embedding needs a head width divisible by 4, not {}", self.head_dim()),
            ));
        }
        Ok(())
    }
}

/// The rotary embedding's arguments: timm's `RotaryEmbeddingCat` as EVA-02 builds it, with
/// every other RoPE variant refused.
fn read_rope(args: &mut ArgReader, default_ref: Option<usize>) -> Result<RopeConfig, ConfigError> {
    let must_be = |key: &str, found: Value, expected: Value| {
        if found.is_null() || found == expected { Ok(()) } else { Err(unsupported(key, found)) }
    };
    must_be("rope_type", args.raw("rope_type"), Value::from("cat"))?;
    must_be("rope_grid_indexing", args.raw("rope_grid_indexing"), Value::from("ij"))?;
    must_be("rope_rotate_half", args.raw("rope_rotate_half"), Value::Bool(false))?;
    must_be("rope_mrope_section", args.raw("rope_mrope_section"), Value::Null)?;
    let offset = args.f64("rope_grid_offset", 0.0)?;
    if offset != 0.0 {
        return Err(unsupported("rope_grid_offset", Value::from(offset)));
    }
    let ref_feat_shape = match args.raw("ref_feat_shape") {
        Value::Null => default_ref.map(|side| [side, side]),
        Value::Array(pair) if pair.len() == 2 => {
            let side = |v: &Value| v.as_u64().filter(|&s| s > 0).map(|s| s as usize);
            match (side(&pair[0]), side(&pair[1])) {
                (Some(h), Some(w)) => Some([h, w]),
                _ => return Err(ArgReader::invalid("ref_feat_shape", "two positive integers", &Value::Array(pair))),
            }
        }
        other => match other.as_u64().filter(|&s| s > 0) {
            Some(side) => Some([side as usize, side as usize]),
            None => return Err(ArgReader::invalid("ref_feat_shape", "a positive integer or a pair", &other)),
        },
    };
    Ok(RopeConfig { ref_feat_shape, temperature: args.f64("rope_temperature", 10000.0)? })
}

fn unsupported(key: &str, value: Value) -> ConfigError {
    ConfigError::Unsupported { key: key.to_owned(), value }
}

/// Reads typed constructor arguments and remembers which ones were consumed.
struct ArgReader<'a> {
    args: &'a Map<String, Value>,
    consumed: Vec<&'static str>,
}

impl<'a> ArgReader<'a> {
    fn new(args: &'a Map<String, Value>) -> Self {
        Self { args, consumed: Vec::new() }
    }

    fn take(&mut self, key: &'static str) -> Option<&'a Value> {
        self.consumed.push(key);
        self.args.get(key).filter(|v| !v.is_null())
    }

    fn invalid(key: &str, expected: &str, found: &Value) -> ConfigError {
        ConfigError::Invalid { key: key.to_owned(), reason: format!("expected {expected}, found {found}") }
    }

    /// The argument as it is written, `Null` when absent.
    fn raw(&mut self, key: &'static str) -> Value {
        self.take(key).cloned().unwrap_or(Value::Null)
    }

    fn usize(&mut self, key: &'static str, default: usize) -> Result<usize, ConfigError> {
        match self.take(key) {
            None => Ok(default),
            // timm accepts `img_size` and `patch_size` as a pair; only square pairs are supported.
            Some(Value::Array(pair)) if pair.len() == 2 && pair[0] == pair[1] => {
                pair[0].as_u64().map(|v| v as usize).ok_or_else(|| Self::invalid(key, "a positive integer", &pair[0]))
            }
            Some(v) => v.as_u64().map(|v| v as usize).ok_or_else(|| Self::invalid(key, "a positive integer", v)),
        }
    }

    fn f64(&mut self, key: &'static str, default: f64) -> Result<f64, ConfigError> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| Self::invalid(key, "a number", v)),
        }
    }

    fn bool(&mut self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        Ok(self.optional_bool(key)?.unwrap_or(default))
    }

    fn optional_bool(&mut self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| Self::invalid(key, "true or false", v)),
        }
    }

    fn string(&mut self, key: &'static str, default: &str) -> Result<String, ConfigError> {
        match self.take(key) {
            None => Ok(default.to_owned()),
            Some(v) => v.as_str().map(str::to_owned).ok_or_else(|| Self::invalid(key, "a string", v)),
        }
    }

    /// Fails on any argument that would change the network in a way evatag does not implement.
    fn reject_unknown(&self) -> Result<(), ConfigError> {
        for (key, value) in self.args {
            if self.consumed.contains(&key.as_str()) || TRAINING_ONLY_ARGS.contains(&key.as_str()) {
                continue;
            }
            let harmless = UNSUPPORTED_UNLESS_DEFAULT
                .iter()
                .find(|(name, _)| name == key)
                .is_some_and(|(_, default)| value == default || value.is_null() || value == &Value::from(0));
            if !harmless {
                return Err(unsupported(key, value.clone()));
            }
        }
        Ok(())
    }
}

/// How an image is resized before it is cropped to the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CropMode {
    /// Shorter side to `input / crop_pct`, then a centred square crop.
    Center,
    /// Both sides to the input size, ignoring the aspect ratio.
    Squash,
}

/// Resampling filter named by `pretrained_cfg.interpolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Bicubic (Keys, a = -0.5), antialiased when shrinking, as PIL does it.
    Bicubic,
    /// Bilinear, antialiased when shrinking, as PIL does it.
    Bilinear,
}

/// The eval-time preprocessing that timm's `pretrained_cfg` prescribes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PretrainedCfg {
    /// `[channels, height, width]` of the network input.
    pub input_size: [usize; 3],
    /// Resampling filter.
    #[serde(default = "default_interpolation")]
    pub interpolation: Interpolation,
    /// Fraction of the resized image kept by the centre crop.
    #[serde(default = "default_crop_pct")]
    pub crop_pct: f64,
    /// Resize-and-crop strategy.
    #[serde(default = "default_crop_mode")]
    pub crop_mode: CropMode,
    /// Per-channel mean subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after the mean.
    pub std: [f32; 3],
}

fn default_interpolation() -> Interpolation {
    Interpolation::Bicubic
}

fn default_crop_pct() -> f64 {
    0.875
}

fn default_crop_mode() -> CropMode {
    CropMode::Center
}

/// The parts of timm's `config.json` evatag reads.
#[derive(Debug, Deserialize)]
struct TimmConfigFile {
    architecture: String,
    num_classes: Option<usize>,
    global_pool: Option<String>,
    #[serde(default)]
    model_args: Map<String, Value>,
    pretrained_cfg: PretrainedCfg,
}

/// Everything a model folder's `config.json` says: the network and its preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// timm architecture name, e.g. `eva_giant_patch14_224`.
    pub architecture: String,
    /// The network's sizes.
    pub eva: EvaConfig,
    /// The preprocessing the weights were trained with.
    pub pretrained_cfg: PretrainedCfg,
}

impl ModelConfig {
    /// Parses timm's `config.json` text.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let file: TimmConfigFile = serde_json::from_str(text)?;
        let mut args = file.model_args;
        // Top-level fields are what timm passes to `create_model` unless model_args overrides them.
        if let Some(n) = file.num_classes {
            args.entry("num_classes").or_insert(Value::from(n));
        }
        if let Some(pool) = file.global_pool {
            args.entry("global_pool").or_insert(Value::String(pool));
        }
        let eva = EvaConfig::for_architecture(&file.architecture, &args)?;
        let [_, height, width] = file.pretrained_cfg.input_size;
        if height != eva.img_size || width != eva.img_size {
            return Err(ConfigError::Invalid {
                key: "pretrained_cfg.input_size".to_owned(),
                reason: format!("{height}x{width} does not match img_size {}", eva.img_size),
            });
        }
        Ok(Self { architecture: file.architecture, eva, pretrained_cfg: file.pretrained_cfg })
    }
}

/// Channel means of OpenAI CLIP's preprocessing.
pub const OPENAI_CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// Channel standard deviations of OpenAI CLIP's preprocessing.
pub const OPENAI_CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_multiply_adds_match_the_published_counts() {
        // timm's model cards: EVA-giant 267.2 GMACs, EVA-02 base at 448 pixels 107.1, EVA-02
        // small at 336 pixels 15.5 (norms and activations aside, which the cards count too).
        for (architecture, published) in
            [(DEFAULT_ARCHITECTURE, 267.2e9), ("eva02_base_patch14_448", 107.1e9), ("eva02_small_patch14_336", 15.5e9)]
        {
            let config = EvaConfig::for_architecture(architecture, &Map::new()).unwrap();
            let macs = config.macs_per_image() as f64;
            assert!((macs / published - 1.0).abs() < 0.01, "{architecture}: {macs:e} against {published:e}");
        }
    }

    #[test]
    fn giant_has_the_published_sizes() {
        let c = EvaConfig::for_architecture(DEFAULT_ARCHITECTURE, &Map::new()).unwrap();
        assert_eq!((c.embed_dim, c.depth, c.num_heads, c.mlp_hidden), (1408, 40, 16, 6144));
        assert_eq!((c.head_dim(), c.num_patches(), c.num_prefix_tokens()), (88, 256, 1));
        assert!(c.use_fc_norm);
    }

    #[test]
    fn model_args_override_the_architecture() {
        let a = args(json!({"embed_dim": 64, "depth": 2, "num_heads": 4, "mlp_ratio": 3.0, "drop_path_rate": 0.1}));
        let c = EvaConfig::for_architecture(DEFAULT_ARCHITECTURE, &a).unwrap();
        assert_eq!((c.embed_dim, c.depth, c.num_heads, c.mlp_hidden), (64, 2, 4, 192));
    }

    #[test]
    fn unsupported_features_are_named() {
        let a = args(json!({"qk_norm": true}));
        let err = EvaConfig::for_architecture(DEFAULT_ARCHITECTURE, &a).unwrap_err();
        assert!(err.to_string().contains("qk_norm"), "{err}");
        let rope = args(json!({"rope_rotate_half": true}));
        let err = EvaConfig::for_architecture("eva02_tiny_patch14_336", &rope).unwrap_err();
        assert!(err.to_string().contains("rope_rotate_half"), "{err}");
        let harmless = args(json!({"use_rot_pos_emb": false, "qk_norm": false, "init_values": null}));
        assert!(EvaConfig::for_architecture(DEFAULT_ARCHITECTURE, &harmless).is_ok());
    }

    #[test]
    fn unknown_architecture_lists_the_known_ones() {
        let err = EvaConfig::for_architecture("resnet50", &Map::new()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("resnet50") && msg.contains(DEFAULT_ARCHITECTURE), "{msg}");
    }

    #[test]
    fn indivisible_sizes_are_rejected() {
        let a = args(json!({"embed_dim": 65, "num_heads": 4}));
        assert!(matches!(EvaConfig::for_architecture(DEFAULT_ARCHITECTURE, &a), Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn reads_timm_config_json() {
        let text = json!({
            "architecture": "eva_giant_patch14_224",
            "num_classes": 10,
            "global_pool": "avg",
            "model_args": {"embed_dim": 64, "depth": 2, "num_heads": 4},
            "pretrained_cfg": {
                "input_size": [3, 224, 224], "interpolation": "bicubic", "crop_pct": 0.9,
                "crop_mode": "center", "mean": OPENAI_CLIP_MEAN, "std": OPENAI_CLIP_STD,
                "num_classes": 10, "first_conv": "patch_embed.proj"
            }
        })
        .to_string();
        let c = ModelConfig::from_json(&text).unwrap();
        assert_eq!(c.eva.num_classes, 10);
        assert_eq!(c.pretrained_cfg.crop_pct, 0.9);
        assert_eq!(c.pretrained_cfg.crop_mode, CropMode::Center);
    }
}

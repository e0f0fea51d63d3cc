//! The EVA vision transformer (timm's `Eva` class): EVA, and EVA-02 with its additions (rotary
//! position embedding, SwiGLU feed-forward, separate q/k/v projections, sub-LayerNorms).
//!
//! One struct per layer, each built from a [`VarBuilder`] with the checkpoint's own tensor names,
//! so timm's `model.safetensors` loads as it is.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::attention;
use super::config::{AttentionLayout, EvaConfig, GlobalPool, MlpKind};
use super::cpu::ops::{CpuAdd, CpuLayerNorm, CpuSwiGlu};
use super::linear::{Linear, LinearWeights};
use super::rope::RotaryEmbedding;

/// LayerNorm over the last dimension, computed in two passes (mean, then variance of the
/// centred values) in f32: `(x - mean) / sqrt(var + eps) * weight + bias`. The result has the
/// weight's dtype, whatever the input's: the f32 residual stream comes out in the half precision
/// of the layers that follow.
///
/// EVA's residual stream carries a large mean; the one-pass `E[x^2] - E[x]^2` form loses most
/// of the variance's significant digits there, so candle-nn's fused layer norm is not used.
/// f32 tensors on the CPU go through one fused kernel (`model::cpu::ops`); other devices and
/// precisions use candle's operations.
#[derive(Debug, Clone)]
pub struct StableLayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl StableLayerNorm {
    /// Loads `weight` and `bias` of width `dim`.
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get(dim, "weight")?, bias: vb.get(dim, "bias")?, eps })
    }
}

impl Module for StableLayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if super::cpu::fused(x) && self.weight.dtype() == DType::F32 {
            return x.contiguous()?.apply_op3_no_bwd(&self.weight, &self.bias, &CpuLayerNorm { eps: self.eps as f32 });
        }
        let dtype = self.weight.dtype();
        let x = x.to_dtype(DType::F32)?;
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(variance + self.eps)?.sqrt()?)?;
        normed.to_dtype(dtype)?.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// Non-overlapping patches projected to tokens: timm's `PatchEmbed` (a strided Conv2d).
///
/// With stride equal to the kernel, the convolution is exactly a matrix product over flattened
/// patches, which runs on every backend at matmul speed. The bias, which starts the residual
/// stream and can be large, is held and added in f32 in every precision.
#[derive(Debug, Clone)]
struct PatchEmbed {
    proj: Linear,
    bias: Tensor,
    patch_size: usize,
}

impl PatchEmbed {
    fn new(cfg: &EvaConfig, vb: VarBuilder, format: LinearWeights) -> Result<Self> {
        let p = cfg.patch_size;
        let vb = vb.pp("proj");
        let weight = vb.get((cfg.embed_dim, cfg.in_chans, p, p), "weight")?;
        let weight = weight.reshape((cfg.embed_dim, cfg.in_chans * p * p))?;
        let bias = residual(&vb, cfg.embed_dim, "bias")?;
        Ok(Self { proj: Linear::new(weight, None, format)?, bias, patch_size: p })
    }

    /// `[B, C, H, W]` pixels to `[B, (H/p)*(W/p), D]` f32 tokens in row-major patch order.
    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = images.dims4()?;
        let p = self.patch_size;
        let (gh, gw) = (h / p, w / p);
        let patches = images.reshape((b, c, gh, p, gw, p))?.permute((0, 2, 4, 1, 3, 5))?.contiguous()?.reshape((
            b,
            gh * gw,
            c * p * p,
        ))?;
        self.proj.forward(&patches)?.to_dtype(DType::F32)?.broadcast_add(&self.bias)
    }
}

/// Multi-head self-attention: one q/k/v projection (k has no bias), the rotary embedding if the
/// model has one, scaled dot-product attention per head, an optional LayerNorm, and the output
/// projection.
#[derive(Debug, Clone)]
struct Attention {
    qkv: Linear,
    norm: Option<StableLayerNorm>,
    proj: Linear,
    num_heads: usize,
    scale: f64,
}

impl Attention {
    fn new(cfg: &EvaConfig, vb: VarBuilder, format: LinearWeights) -> Result<Self> {
        let dim = cfg.embed_dim;
        Ok(Self {
            qkv: load_qkv(cfg, &vb, format)?,
            norm: cfg.attn_inner_norm.then(|| StableLayerNorm::new(dim, cfg.norm_eps, vb.pp("norm"))).transpose()?,
            proj: Linear::load(dim, dim, vb.pp("proj"), format)?,
            num_heads: cfg.num_heads,
            scale: (cfg.head_dim() as f64).powf(-0.5),
        })
    }

    fn forward(&self, x: &Tensor, rope: Option<&RotaryEmbedding>) -> Result<Tensor> {
        let mut qkv = self.qkv.forward(x)?;
        if let Some(rope) = rope {
            qkv = rope.apply_to_qkv(&qkv)?;
        }
        let mut mixed = attention(&qkv, self.num_heads, self.scale)?;
        if let Some(norm) = &self.norm {
            mixed = norm.forward(&mixed)?;
        }
        self.proj.forward(&mixed)
    }
}

/// The q, k and v projections as one layer of `3 * dim` outputs, q then k then v, whichever way
/// the checkpoint stores them; k's bias is zero.
fn load_qkv(cfg: &EvaConfig, vb: &VarBuilder, format: LinearWeights) -> Result<Linear> {
    let dim = cfg.embed_dim;
    let (weight, q_bias, v_bias) = match cfg.attention {
        AttentionLayout::Fused => {
            let weight = vb.pp("qkv").get((3 * dim, dim), "weight")?;
            let biases = if cfg.qkv_bias { Some((vb.get(dim, "q_bias")?, vb.get(dim, "v_bias")?)) } else { None };
            (weight, biases.as_ref().map(|b| b.0.clone()), biases.map(|b| b.1))
        }
        AttentionLayout::Separate => {
            let weight = |name: &str| vb.pp(name).get((dim, dim), "weight");
            let bias = |name: &str| cfg.qkv_bias.then(|| vb.pp(name).get(dim, "bias")).transpose();
            let weight = Tensor::cat(&[&weight("q_proj")?, &weight("k_proj")?, &weight("v_proj")?], 0)?;
            (weight, bias("q_proj")?, bias("v_proj")?)
        }
    };
    let bias = match (q_bias, v_bias) {
        (Some(q), Some(v)) => Some(Tensor::cat(&[&q, &q.zeros_like()?, &v], 0)?),
        _ => None,
    };
    Linear::new(weight, bias, format)
}

/// The feed-forward block: fc1, exact (erf) GELU, fc2 (EVA); or SwiGLU, `silu(gate) * value`
/// then fc2 (EVA-02); either with an optional LayerNorm before fc2.
#[derive(Debug, Clone)]
struct Mlp {
    /// For SwiGLU, the gate's rows then the value's, in one layer.
    fc1: Linear,
    norm: Option<StableLayerNorm>,
    fc2: Linear,
    kind: MlpKind,
    hidden: usize,
}

impl Mlp {
    fn new(cfg: &EvaConfig, vb: VarBuilder, format: LinearWeights) -> Result<Self> {
        let (dim, hidden) = (cfg.embed_dim, cfg.mlp_hidden);
        let fc1 = match cfg.mlp {
            MlpKind::Gelu => Linear::load(dim, hidden, vb.pp("fc1"), format)?,
            MlpKind::SwiGluPacked => Linear::load(dim, 2 * hidden, vb.pp("fc1"), format)?,
            MlpKind::SwiGlu => {
                let (gate, value) = (vb.pp("fc1_g"), vb.pp("fc1_x"));
                let weight =
                    Tensor::cat(&[&gate.get((hidden, dim), "weight")?, &value.get((hidden, dim), "weight")?], 0)?;
                let bias = Tensor::cat(&[&gate.get(hidden, "bias")?, &value.get(hidden, "bias")?], 0)?;
                Linear::new(weight, Some(bias), format)?
            }
        };
        Ok(Self {
            fc1,
            norm: cfg.mlp_norm.then(|| StableLayerNorm::new(hidden, cfg.norm_eps, vb.pp("norm"))).transpose()?,
            fc2: Linear::load(hidden, dim, vb.pp("fc2"), format)?,
            kind: cfg.mlp,
            hidden,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut hidden = match self.kind {
            MlpKind::Gelu => self.fc1.forward_gelu(x)?,
            MlpKind::SwiGluPacked | MlpKind::SwiGlu => swiglu(&self.fc1.forward(x)?, self.hidden)?,
        };
        if let Some(norm) = &self.norm {
            hidden = norm.forward(&hidden)?;
        }
        self.fc2.forward(&hidden)
    }
}

/// `silu(gate) * value` of a `[.., 2 * hidden]` tensor holding the gate, then the value. f32
/// tensors on the CPU go through one fused kernel (`model::cpu::ops`); other devices and
/// precisions use candle's operations.
fn swiglu(both: &Tensor, hidden: usize) -> Result<Tensor> {
    if super::cpu::fused(both) {
        return both.contiguous()?.apply_op1_no_bwd(&CpuSwiGlu);
    }
    let last = both.rank() - 1;
    both.narrow(last, 0, hidden)?.silu()? * both.narrow(last, hidden, hidden)?
}

/// A pre-norm transformer block. The residual stream it adds to is f32 in every precision: EVA's
/// carries values in the hundreds, where f16 and bf16 keep too few digits for the updates.
#[derive(Debug, Clone)]
struct Block {
    norm1: StableLayerNorm,
    attn: Attention,
    norm2: StableLayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(cfg: &EvaConfig, vb: VarBuilder, format: LinearWeights) -> Result<Self> {
        Ok(Self {
            norm1: StableLayerNorm::new(cfg.embed_dim, cfg.norm_eps, vb.pp("norm1"))?,
            attn: Attention::new(cfg, vb.pp("attn"), format)?,
            norm2: StableLayerNorm::new(cfg.embed_dim, cfg.norm_eps, vb.pp("norm2"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"), format)?,
        })
    }

    fn forward(&self, x: &Tensor, rope: Option<&RotaryEmbedding>) -> Result<Tensor> {
        let x = add_to_residual(x, &self.attn.forward(&self.norm1.forward(x)?, rope)?)?;
        add_to_residual(&x, &self.mlp.forward(&self.norm2.forward(&x)?)?)
    }
}

/// `x + update` for the f32 residual stream `x`, `update` taken to f32: on the CPU through
/// evatag's own kernel (`model::cpu::ops::CpuAdd`), on GPUs and in the generic graph through
/// candle's addition.
fn add_to_residual(x: &Tensor, update: &Tensor) -> Result<Tensor> {
    let update = update.to_dtype(DType::F32)?;
    if super::cpu::fused(x) {
        return x.contiguous()?.apply_op2_no_bwd(&update.contiguous()?, &CpuAdd);
    }
    x + update
}

/// A parameter added to the residual stream, held in f32 in every precision.
fn residual(vb: &VarBuilder, shape: impl Into<candle_core::Shape>, name: &str) -> Result<Tensor> {
    vb.get_with_hints_dtype(shape, name, candle_nn::Init::Const(0.0), DType::F32)
}

/// The image embedding and class logits of a batch.
#[derive(Debug, Clone)]
pub struct EvaOutput {
    /// `[B, embed_dim]` pooled, normalised features (timm's `pre_logits`), f32.
    pub embeddings: Tensor,
    /// `[B, num_classes]` classifier outputs, f32.
    pub logits: Tensor,
}

/// An EVA vision transformer with its classifier head.
#[derive(Debug, Clone)]
pub struct Eva {
    config: EvaConfig,
    patch_embed: PatchEmbed,
    cls_token: Option<Tensor>,
    pos_embed: Tensor,
    rope: Option<RotaryEmbedding>,
    blocks: Vec<Block>,
    norm: Option<StableLayerNorm>,
    fc_norm: Option<StableLayerNorm>,
    head: Option<Linear>,
}

impl Eva {
    /// Builds the network from weights named as in timm's checkpoint, its linear layers holding
    /// their weights as `format` says.
    pub fn new(config: &EvaConfig, vb: VarBuilder, format: LinearWeights) -> Result<Self> {
        let dim = config.embed_dim;
        let num_tokens = config.num_patches() + config.num_prefix_tokens();
        let blocks = (0..config.depth)
            .map(|i| Block::new(config, vb.pp(format!("blocks.{i}")), format))
            .collect::<Result<Vec<_>>>()?;
        let layer_norm = |name: &str| StableLayerNorm::new(dim, config.norm_eps, vb.pp(name));
        Ok(Self {
            patch_embed: PatchEmbed::new(config, vb.pp("patch_embed"), format)?,
            cls_token: config.class_token.then(|| residual(&vb, (1, 1, dim), "cls_token")).transpose()?,
            pos_embed: residual(&vb, (1, num_tokens, dim), "pos_embed")?,
            rope: config.rope.map(|rope| RotaryEmbedding::new(config, &rope, vb.dtype(), vb.device())).transpose()?,
            blocks,
            norm: (!config.use_fc_norm).then(|| layer_norm("norm")).transpose()?,
            fc_norm: config.use_fc_norm.then(|| layer_norm("fc_norm")).transpose()?,
            head: (config.num_classes > 0)
                .then(|| Linear::load(dim, config.num_classes, vb.pp("head"), format))
                .transpose()?,
            config: config.clone(),
        })
    }

    /// The architecture this network was built with.
    pub fn config(&self) -> &EvaConfig {
        &self.config
    }

    /// `[B, C, H, W]` normalised pixels to `[B, tokens, D]` features after the last block, in
    /// the model's dtype (f32 without a final norm).
    pub fn forward_features(&self, images: &Tensor) -> Result<Tensor> {
        let mut x = self.patch_embed.forward(images)?;
        if let Some(cls) = &self.cls_token {
            let batch = x.dim(0)?;
            let cls = cls.broadcast_as((batch, 1, self.config.embed_dim))?;
            x = Tensor::cat(&[&cls, &x], 1)?;
        }
        x = x.broadcast_add(&self.pos_embed)?;
        for block in &self.blocks {
            x = block.forward(&x, self.rope.as_ref())?;
        }
        match &self.norm {
            Some(norm) => norm.forward(&x),
            None => Ok(x),
        }
    }

    /// Pools features into the `[B, D]` embedding (timm's `forward_head(pre_logits=True)`).
    pub fn pre_logits(&self, features: &Tensor) -> Result<Tensor> {
        let pooled = match self.config.global_pool {
            GlobalPool::Avg => {
                // Summed in f32: hundreds of tokens of a residual stream whose values run into the
                // hundreds overflow f16.
                let prefix = self.config.num_prefix_tokens();
                let patches = features.dim(1)? - prefix;
                let dtype = features.dtype();
                features.narrow(1, prefix, patches)?.to_dtype(DType::F32)?.mean(1)?.to_dtype(dtype)?
            }
            GlobalPool::Token => features.narrow(1, 0, 1)?.squeeze(1)?,
        };
        match &self.fc_norm {
            Some(norm) => norm.forward(&pooled),
            None => Ok(pooled),
        }
    }

    /// Embeddings and logits for a batch of preprocessed images, both as f32.
    pub fn embed_and_classify(&self, images: &Tensor) -> Result<EvaOutput> {
        let embeddings = self.pre_logits(&self.forward_features(images)?)?;
        let logits = match &self.head {
            Some(head) => head.forward(&embeddings)?,
            None => embeddings.zeros_like()?.narrow(1, 0, 0)?,
        };
        Ok(EvaOutput { embeddings: embeddings.to_dtype(DType::F32)?, logits: logits.to_dtype(DType::F32)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn layer_norm_generic_path_matches_the_cpu_kernel_under_a_large_mean() -> Result<()> {
        // f64 takes the path GPUs use; a row mean of 300 with unit spread, as in EVA's residual stream.
        let device = Device::Cpu;
        let x = (Tensor::randn(0f32, 1.0, (2, 3, 1408), &device)? + 300.0)?;
        let norm = StableLayerNorm {
            weight: Tensor::randn(1f32, 0.1, 1408, &device)?,
            bias: Tensor::randn(0f32, 0.1, 1408, &device)?,
            eps: 1e-6,
        };
        let norm64 = StableLayerNorm {
            weight: norm.weight.to_dtype(DType::F64)?,
            bias: norm.bias.to_dtype(DType::F64)?,
            eps: norm.eps,
        };
        let kernel = norm.forward(&x)?;
        let generic = norm64.forward(&x.to_dtype(DType::F64)?)?.to_dtype(DType::F32)?;
        assert_eq!(kernel.dims(), generic.dims());
        let diff = (kernel - generic)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 2e-4, "{diff}");
        Ok(())
    }
}

//! Scaled dot-product attention over a fused q/k/v projection.
//!
//! f32 tensors on the CPU go through the kernel in `model::cpu::attention`, which reads q, k
//! and v in place and keeps each head's scores in cache; every other device and precision (and
//! the generic graph, see `model::cpu`) uses candle's operations.

use candle_core::{DType, Result, Tensor};

use super::cpu::attention::CpuAttention;

/// Multi-head attention of a `[batch, tokens, 3 * heads * head_dim]` tensor holding q, k and v
/// side by side (timm's `qkv` projection), with the scores scaled by `scale`. Returns
/// `[batch, tokens, heads * head_dim]`, heads concatenated.
pub fn attention(qkv: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    let (batch, tokens, width) = qkv.dims3()?;
    if heads == 0 || width % (3 * heads) != 0 {
        candle_core::bail!("attention: width {width} is not three times a multiple of {heads} heads");
    }
    if super::cpu::fused(qkv) {
        return qkv.contiguous()?.apply_op1_no_bwd(&CpuAttention { heads, scale: scale as f32 });
    }
    let (dim, head_dim) = (width / 3, width / 3 / heads);
    // [b, n, dim] -> [b, heads, n, head_dim]
    let per_head = |i: usize| {
        qkv.narrow(2, i * dim, dim)?.reshape((batch, tokens, heads, head_dim))?.transpose(1, 2)?.contiguous()
    };
    let (q, k, v) = ((per_head(0)? * scale)?, per_head(1)?, per_head(2)?);
    let scores = q.matmul(&k.t()?)?;
    let weights = match scores.dtype() {
        DType::F16 | DType::BF16 => {
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(scores.dtype())?
        }
        _ => candle_nn::ops::softmax_last_dim(&scores)?,
    };
    weights.matmul(&v)?.transpose(1, 2)?.reshape((batch, tokens, dim))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn generic_path_matches_the_cpu_kernel() -> Result<()> {
        // f64 takes the path GPUs use.
        let qkv = Tensor::randn(0f32, 1.0, (1, 9, 3 * 2 * 5), &Device::Cpu)?;
        let kernel = attention(&qkv, 2, 0.7)?;
        let generic = attention(&qkv.to_dtype(DType::F64)?, 2, 0.7)?.to_dtype(DType::F32)?;
        let diff = (kernel - generic)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    #[test]
    fn a_width_that_does_not_split_into_heads_is_refused() {
        let qkv = Tensor::zeros((1, 3, 10), DType::F32, &Device::Cpu).unwrap();
        assert!(attention(&qkv, 4, 1.0).is_err());
    }
}

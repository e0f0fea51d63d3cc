//! The CPU kernel behind `attention`: `softmax(q kᵀ · scale) v` for every image and head.
//!
//! One task per image and head runs two single-threaded GEMMs that read q, k and v in place
//! from the fused projection's output and write the head's slice of the result, so no per-head
//! copies are made, and the score matrix (tokens x tokens: 257 x 257 for EVA at 224 pixels)
//! stays in cache between the products and the softmax.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use rayon::prelude::*;

use super::gemm::{self, Operand};
use super::{SendPtr, f32_slice, ops};

/// Multi-head attention of a contiguous f32 `[batch, tokens, 3 * heads * head_dim]` tensor
/// holding q, k and v side by side, giving `[batch, tokens, heads * head_dim]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuAttention {
    /// Number of heads; the width must be three times a multiple of it.
    pub(crate) heads: usize,
    /// The factor applied to the scores before the softmax.
    pub(crate) scale: f32,
}

impl CustomOp1 for CpuAttention {
    fn name(&self) -> &'static str {
        "attention-cpu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = f32_slice(self.name(), storage, layout)?;
        let (batch, tokens, width) = layout.shape().dims3()?;
        if self.heads == 0 || width % (3 * self.heads) != 0 {
            candle_core::bail!("attention-cpu: width {width} is not three times a multiple of {} heads", self.heads);
        }
        let (dim, head_dim) = (width / 3, width / 3 / self.heads);
        let mut out = vec![0f32; batch * tokens * dim];
        let out_ptr = SendPtr(out.as_mut_ptr());
        (0..batch * self.heads).into_par_iter().for_each_init(
            || vec![0f32; tokens * tokens],
            |scores, task| {
                let (image, head) = (task / self.heads, task % self.heads);
                let base = image * tokens * width + head * head_dim;
                let (q, k, v) = (qkv[base..].as_ptr(), qkv[base + dim..].as_ptr(), qkv[base + 2 * dim..].as_ptr());
                // SAFETY: q, k and v are `tokens x head_dim` blocks with rows `width` apart
                // inside `qkv`; `scores` is tokens x tokens; this task alone writes columns
                // `head * head_dim..` of its image's rows of `out`.
                unsafe {
                    gemm::sgemm(
                        tokens,
                        tokens,
                        head_dim,
                        self.scale,
                        Operand::rows(q, width),
                        Operand::transposed(k, width),
                        0.0,
                        scores.as_mut_ptr(),
                        tokens,
                    );
                }
                scores.chunks_exact_mut(tokens).for_each(ops::softmax_in_place);
                // SAFETY: as above.
                unsafe {
                    gemm::sgemm(
                        tokens,
                        head_dim,
                        tokens,
                        1.0,
                        Operand::rows(scores.as_ptr(), tokens),
                        Operand::rows(v, width),
                        0.0,
                        out_ptr.get().add(image * tokens * dim + head * head_dim),
                        dim,
                    );
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from_dims(&[batch, tokens, dim])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device, Tensor};

    /// Attention written out head by head with candle's own operations.
    fn reference(qkv: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
        let (_, _, width) = qkv.dims3()?;
        let (dim, head_dim) = (width / 3, width / 3 / heads);
        let mut outputs = Vec::new();
        for h in 0..heads {
            let part = |i: usize| qkv.narrow(2, i * dim + h * head_dim, head_dim)?.contiguous();
            let scores = (part(0)?.matmul(&part(1)?.t()?)? * scale)?;
            let max = scores.max_keepdim(D::Minus1)?;
            let exp = scores.broadcast_sub(&max)?.exp()?;
            let weights = exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?;
            outputs.push(weights.matmul(&part(2)?)?);
        }
        Tensor::cat(&outputs, 2)
    }

    #[test]
    fn kernel_matches_attention_written_out() -> Result<()> {
        let qkv = Tensor::randn(0f32, 1.0, (2, 13, 3 * 4 * 6), &Device::Cpu)?;
        let ours = qkv.apply_op1_no_bwd(&CpuAttention { heads: 4, scale: 0.4 })?;
        let expected = reference(&qkv, 4, 0.4)?;
        assert_eq!(ours.dims(), &[2, 13, 24]);
        let diff = (ours - expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }
}

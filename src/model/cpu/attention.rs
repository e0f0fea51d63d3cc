//! The CPU kernel behind `attention`: `softmax(q kᵀ · scale) v` for every image and head.
//!
//! One task per image and head runs two single-threaded GEMMs that read q, k and v in place
//! from the fused projection's output and write the head's slice of the result, so no per-head
//! copies are made, and the score matrix (tokens x tokens: 257 x 257 for EVA at 224 pixels)
//! stays in cache between the products and the softmax. With fewer images and heads than twice
//! the threads (EVA-02 tiny's 3 heads), or with so many tokens that the scores would not stay in
//! cache (EVA-02 at 448 pixels: 1025 tokens), each task takes a share of the queries instead.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use rayon::prelude::*;

use super::gemm::{self, Operand};
use super::profile::{self, Part};
use super::{SendPtr, f32_slice, ops, written_vec};

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
        profile::timed(Part::Attention, || {
            let qkv = f32_slice(self.name(), storage, layout)?;
            let (batch, tokens, width) = layout.shape().dims3()?;
            if self.heads == 0 || width % (3 * self.heads) != 0 {
                candle_core::bail!(
                    "attention-cpu: width {width} is not three times a multiple of {} heads",
                    self.heads
                );
            }
            let dim = width / 3;
            let tasks = query_chunks(batch * self.heads, tokens, rayon::current_num_threads());
            let run_tasks = |out: &mut [MaybeUninit<f32>]| {
                let out = SendPtr(out.as_mut_ptr().cast());
                tasks.into_par_iter().for_each_init(
                    || vec![0f32; tokens * tokens],
                    // SAFETY: `out` holds `batch * tokens * dim` values, and the tasks take
                    // distinct queries or heads.
                    |scores, task| unsafe { self.run_task(qkv, (tokens, width), scores, task, out.get()) },
                );
            };
            // SAFETY: the tasks cover every query of every head of every image once, and each
            // writes its head's columns of its queries' rows whole (`run_task`).
            let out = unsafe { written_vec(batch * tokens * dim, run_tasks) };
            Ok((CpuStorage::F32(out), Shape::from_dims(&[batch, tokens, dim])))
        })
    }
}

impl CpuAttention {
    /// Attention for one task of [`query_chunks`], `(image * heads + head, first query,
    /// queries)`, on `qkv` of `tokens` rows of `width` values per image: writes that head's
    /// columns of those queries' rows of `out`, whole, using `scores` as the space for their
    /// scores.
    ///
    /// # Safety
    /// `out` must hold the `[batch, tokens, dim]` output of `qkv`, and no other thread may
    /// touch this task's part of it during the call.
    unsafe fn run_task(
        &self,
        qkv: &[f32],
        (tokens, width): (usize, usize),
        scores: &mut [f32],
        (task, first_query, queries): (usize, usize, usize),
        out: *mut f32,
    ) {
        let (dim, head_dim) = (width / 3, width / 3 / self.heads);
        let (image, head) = (task / self.heads, task % self.heads);
        let base = image * tokens * width + head * head_dim;
        let q = qkv[base + first_query * width..].as_ptr();
        let (k, v) = (qkv[base + dim..].as_ptr(), qkv[base + 2 * dim..].as_ptr());
        let scores = &mut scores[..queries * tokens];
        // SAFETY: q is a `queries x head_dim` block, k and v `tokens x head_dim` blocks, with
        // rows `width` apart inside `qkv`; `scores` is queries x tokens.
        unsafe {
            gemm::sgemm(
                queries,
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
        // SAFETY: as above; this task's part of `out` is the caller's to write, and with `beta`
        // 0 it is written without being read.
        unsafe {
            gemm::sgemm(
                queries,
                head_dim,
                tokens,
                1.0,
                Operand::rows(scores.as_ptr(), tokens),
                Operand::rows(v, width),
                0.0,
                out.add((image * tokens + first_query) * dim + head * head_dim),
                dim,
            );
        }
    }
}

/// Fewest queries a task takes when heads are split.
const MIN_QUERIES_PER_TASK: usize = 32;

/// Most score elements one task holds (512 KiB of f32), so that they stay in the core's cache
/// between the two products; EVA-giant's 257 x 257 scores are below it.
const MAX_SCORES_PER_TASK: usize = 128 * 1024;

/// The tasks `(image * heads + head, first query, queries)`: every query of a head at once when
/// there are at least two heads per thread and the scores fit [`MAX_SCORES_PER_TASK`],
/// otherwise the queries split into chunks.
fn query_chunks(heads: usize, tokens: usize, threads: usize) -> Vec<(usize, usize, usize)> {
    let for_threads = if heads >= 2 * threads { 1 } else { (4 * threads).div_ceil(heads.max(1)) };
    let for_cache = (tokens * tokens).div_ceil(MAX_SCORES_PER_TASK);
    let chunks = for_threads.max(for_cache).min(tokens / MIN_QUERIES_PER_TASK).max(1);
    let per_chunk = tokens.div_ceil(chunks).max(1);
    (0..heads)
        .flat_map(|task| (0..tokens).step_by(per_chunk).map(move |first| (task, first, per_chunk.min(tokens - first))))
        .collect()
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

    #[test]
    fn few_heads_are_split_by_queries_with_the_same_result() -> Result<()> {
        // One image of 3 heads and 100 tokens on 2 threads: the queries are split.
        assert!(query_chunks(3, 100, 2).len() > 3);
        assert_eq!(query_chunks(16, 257, 2).len(), 16, "EVA-giant's heads are not split");
        assert!(query_chunks(12, 1025, 2).iter().all(|&(_, _, q)| q * 1025 <= MAX_SCORES_PER_TASK));
        let qkv = Tensor::randn(0f32, 1.0, (1, 100, 3 * 3 * 8), &Device::Cpu)?;
        let ours = qkv.apply_op1_no_bwd(&CpuAttention { heads: 3, scale: 0.3 })?;
        let diff = (ours - reference(&qkv, 3, 0.3)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    #[test]
    fn query_chunks_cover_every_query_of_every_head_once() {
        for (heads, tokens, threads) in [(3, 577, 2), (1, 5, 8), (6, 577, 16), (16, 257, 2)] {
            let mut seen = vec![0u8; heads * tokens];
            for (task, first, queries) in query_chunks(heads, tokens, threads) {
                seen[task * tokens + first..task * tokens + first + queries].iter_mut().for_each(|s| *s += 1);
            }
            assert!(seen.iter().all(|&s| s == 1), "{heads} heads, {tokens} tokens, {threads} threads");
        }
    }
}

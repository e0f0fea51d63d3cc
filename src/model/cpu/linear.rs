//! The CPU kernel behind `Linear`: `y = x Wᵀ + b`, optionally followed by the exact GELU.
//!
//! At EVA's shapes (a few hundred to a thousand rows, thousands of features) one multi-threaded
//! GEMM call over the whole product, which is what candle's CPU matmul does, is slower than
//! independent blocks of output features with one single-threaded GEMM each (narrow products,
//! with too few such blocks for the threads, are split by rows as well). Each block starts
//! from the bias, so the addition costs no extra pass, and the GELU is applied to a block as soon
//! as it completes, while it is still in cache. The measurements are in `bench/README.md`
//! ("Kernel notes").

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape};
use rayon::prelude::*;

use super::gemm::{self, Operand};
use super::{SendPtr, f32_slice, ops};

/// `x Wᵀ + b` for a contiguous f32 input `[..., in]`, weight `[out, in]` and bias `[out]`,
/// optionally followed by the exact GELU.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuLinear {
    /// Whether GELU is applied to the result.
    pub(crate) gelu: bool,
}

impl CustomOp3 for CpuLinear {
    fn name(&self) -> &'static str {
        "linear-cpu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (x, w, bias) = (f32_slice(name, xs, xl)?, f32_slice(name, ws, wl)?, f32_slice(name, bs, bl)?);
        let dims = xl.dims();
        let k = dims[dims.len() - 1];
        let (n, wk) = wl.shape().dims2()?;
        if wk != k || bias.len() != n {
            candle_core::bail!("linear-cpu: input width {k}, weight {n}x{wk}, bias {}", bias.len());
        }
        let m = x.len() / k.max(1);
        let mut y = vec![0f32; m * n];
        for_each_block(m, n, &mut y, |Block { first_row, rows: m, first, count }, out| {
            let rows = || {
                (0..m).map(|row| {
                    // SAFETY: `out` is column `first` of row `first_row` of the matrix `y`; this
                    // task alone touches these rows' columns `first..first + count`.
                    unsafe { std::slice::from_raw_parts_mut(out.add(row * n), count) }
                })
            };
            // Every row starts as the bias; the product accumulates onto it.
            for row in rows() {
                row.copy_from_slice(&bias[first..first + count]);
            }
            // SAFETY: x is m x k and w is n x k, row-major; rows `first..first + count` of w
            // give this task's columns of y, which only it writes.
            unsafe {
                gemm::sgemm(
                    m,
                    count,
                    k,
                    1.0,
                    Operand::rows(x.as_ptr().add(first_row * k), k),
                    Operand::transposed(w.as_ptr().add(first * k), k),
                    1.0,
                    out,
                    n,
                );
            }
            if self.gelu {
                rows().for_each(ops::gelu_in_place);
            }
        });
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("at least one dimension") = n;
        Ok((CpuStorage::F32(y), Shape::from_dims(&out_dims)))
    }
}

/// Output features per parallel task: enough blocks to balance the threads, each wide enough
/// for the `gemm` crate to run at full speed.
const FEATURES_PER_TASK: usize = 352;

/// Fewest rows a task takes when a narrow product is also split by rows.
const MIN_ROWS_PER_TASK: usize = 32;

/// One task's part of the output: `rows` rows from `first_row`, `count` features from `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    first_row: usize,
    rows: usize,
    first: usize,
    count: usize,
}

/// The parts of an `m x n` product: blocks of [`FEATURES_PER_TASK`] output features over all
/// rows, as long as there are at least two blocks per thread (EVA-giant's widths); a narrower
/// product (the small EVA-02 models) is split by rows as well, so that every thread has work.
fn blocks(m: usize, n: usize, threads: usize) -> Vec<Block> {
    let feature_blocks = n.div_ceil(FEATURES_PER_TASK).max(1);
    let row_chunks = if feature_blocks >= 2 * threads {
        1
    } else {
        (4 * threads).div_ceil(feature_blocks).min(m / MIN_ROWS_PER_TASK).max(1)
    };
    let rows_per_chunk = m.div_ceil(row_chunks).max(1);
    let mut blocks = Vec::new();
    for first_row in (0..m).step_by(rows_per_chunk) {
        for first in (0..n).step_by(FEATURES_PER_TASK) {
            let (rows, count) = (rows_per_chunk.min(m - first_row), FEATURES_PER_TASK.min(n - first));
            blocks.push(Block { first_row, rows, first, count });
        }
    }
    blocks
}

/// Runs `task(block, out)` in parallel for the [`blocks`] of the row-major `m x n` matrix `y`,
/// where `out` points at column `block.first` of row `block.first_row`. Tasks must write only
/// their own block.
fn for_each_block(m: usize, n: usize, y: &mut [f32], task: impl Fn(Block, *mut f32) + Sync) {
    let out = SendPtr(y.as_mut_ptr());
    blocks(m, n, rayon::current_num_threads()).into_par_iter().for_each(|block| {
        // SAFETY: the block lies inside the m x n matrix `y`.
        task(block, unsafe { out.get().add(block.first_row * n + block.first) });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Tensor};

    #[test]
    fn kernel_matches_candle_matmul() -> Result<()> {
        let device = Device::Cpu;
        for (rows, k, n) in [(3, 5, 7), (257, 64, 700), (2, 33, 1), (577, 48, 192)] {
            let x = Tensor::randn(0f32, 1.0, (2, rows, k), &device)?;
            let w = Tensor::randn(0f32, 1.0, (n, k), &device)?;
            let b = Tensor::randn(0f32, 1.0, n, &device)?;
            let ours = x.apply_op3_no_bwd(&w, &b, &CpuLinear { gelu: false })?;
            let reference = candle_nn::Linear::new(w, Some(b)).forward(&x)?;
            assert_eq!(ours.dims(), reference.dims());
            let diff = (ours - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-4, "{rows}x{k}x{n}: {diff}");
        }
        Ok(())
    }

    #[test]
    fn blocks_cover_the_output_once_and_split_rows_only_for_narrow_products() {
        for (m, n, threads) in
            [(257, 1408, 2), (1025, 6144, 2), (577, 192, 2), (577, 384, 2), (1025, 768, 16), (5, 100, 8)]
        {
            let blocks = blocks(m, n, threads);
            let mut covered = vec![0u8; m * n];
            for b in &blocks {
                for row in b.first_row..b.first_row + b.rows {
                    covered[row * n + b.first..row * n + b.first + b.count].iter_mut().for_each(|c| *c += 1);
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "{m}x{n}: not covered exactly once");
            let wide = n.div_ceil(FEATURES_PER_TASK) >= 2 * threads;
            assert!(!wide || blocks.iter().all(|b| b.rows == m), "{m}x{n}: a wide product is split by rows");
            assert!(
                wide || blocks.len() >= 2 * threads || m < 2 * MIN_ROWS_PER_TASK,
                "{m}x{n}: {} tasks",
                blocks.len()
            );
        }
    }

    #[test]
    fn splitting_by_rows_does_not_change_a_bit() -> Result<()> {
        // 1408 features: four blocks, split by rows on 8 threads and not on one.
        let x = Tensor::randn(0f32, 1.0, (1, 257, 96), &Device::Cpu)?;
        let w = Tensor::randn(0f32, 1.0, (1408, 96), &Device::Cpu)?;
        let b = Tensor::randn(0f32, 1.0, 1408, &Device::Cpu)?;
        let run = |threads: usize| -> Result<Vec<f32>> {
            let pool =
                rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(candle_core::Error::wrap)?;
            pool.install(|| x.apply_op3_no_bwd(&w, &b, &CpuLinear { gelu: true })?.flatten_all()?.to_vec1::<f32>())
        };
        assert!(blocks(257, 1408, 8).len() > blocks(257, 1408, 1).len());
        let (whole, split) = (run(1)?, run(8)?);
        assert!(whole.iter().zip(&split).all(|(a, b)| a.to_bits() == b.to_bits()));
        Ok(())
    }

    #[test]
    fn fused_gelu_matches_gelu_after_the_product() -> Result<()> {
        let device = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (3, 19, 40), &device)?;
        let w = Tensor::randn(0f32, 0.5, (900, 40), &device)?;
        let b = Tensor::zeros(900, candle_core::DType::F32, &device)?;
        let fused = x.apply_op3_no_bwd(&w, &b, &CpuLinear { gelu: true })?;
        let separate = x.apply_op3_no_bwd(&w, &b, &CpuLinear { gelu: false })?.gelu_erf()?;
        let diff = (fused - separate)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }
}

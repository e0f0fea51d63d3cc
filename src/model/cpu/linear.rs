//! The CPU kernel behind `Linear`: `y = x Wᵀ + b`, optionally followed by the exact GELU.
//!
//! At EVA's shapes (a few hundred to a thousand rows, thousands of features) one multi-threaded
//! GEMM call over the whole product, which is what candle's CPU matmul does, is slower than
//! independent blocks of output features with one single-threaded GEMM each. Each block starts
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
        for_each_feature_block(n, FEATURES_PER_TASK, &mut y, |first, count, out| {
            let rows = || {
                (0..m).map(|row| {
                    // SAFETY: `out` is column `first` of row 0 of the m x n matrix `y`; this
                    // task alone touches columns `first..first + count`.
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
                    Operand::rows(x.as_ptr(), k),
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

/// Runs `task(first, count, out)` in parallel for blocks of `block` output features of the
/// row-major `m x n` matrix `y`, where `out` points at column `first` of row 0. Tasks must
/// write only their own columns.
fn for_each_feature_block(n: usize, block: usize, y: &mut [f32], task: impl Fn(usize, usize, *mut f32) + Sync) {
    let out = SendPtr(y.as_mut_ptr());
    let block = block.max(1);
    (0..n).step_by(block).collect::<Vec<_>>().into_par_iter().for_each(|first| {
        // SAFETY: `first < n`, so the pointer stays inside row 0 of `y`.
        task(first, block.min(n - first), unsafe { out.get().add(first) });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Tensor};

    #[test]
    fn kernel_matches_candle_matmul() -> Result<()> {
        let device = Device::Cpu;
        for (rows, k, n) in [(3, 5, 7), (257, 64, 700), (2, 33, 1)] {
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

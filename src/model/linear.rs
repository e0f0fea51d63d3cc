//! Fully connected layers, `y = x Wᵀ + b`, with a faster CPU path.
//!
//! candle's CPU matmul hands the whole product to one multi-threaded GEMM call; at EVA's
//! shapes (257 or 1028 rows, 1408 to 6144 columns) that reached 120 to 150 GFLOP/s on the
//! 2-core development machine, against about 190 for PyTorch's BLAS. Splitting the output
//! features into independent blocks, one single-threaded GEMM each, with the bias folded into
//! the accumulation, reached 165 to 210 GFLOP/s on the same shapes. GPUs use candle's matmul.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

/// A linear layer with timm's `weight` `[out, in]` and optional `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Wraps existing tensors; a missing bias is zero.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let bias = match bias {
            Some(bias) => bias,
            None => Tensor::zeros(weight.dim(0)?, weight.dtype(), weight.device())?,
        };
        Ok(Self { weight, bias })
    }

    /// Loads `weight` and `bias` of a layer mapping `in_dim` to `out_dim`.
    pub fn load(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        Self::new(vb.get((out_dim, in_dim), "weight")?, Some(vb.get(out_dim, "bias")?))
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            return x.contiguous()?.apply_op3_no_bwd(&self.weight, &self.bias, &CpuLinear);
        }
        let dims = x.dims().to_vec();
        let (rows, features) = (x.elem_count() / dims[dims.len() - 1], dims[dims.len() - 1]);
        let flat = x.reshape((rows, features))?.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
        let mut out_dims = dims;
        *out_dims.last_mut().expect("at least one dimension") = self.weight.dim(0)?;
        flat.reshape(out_dims)
    }
}

/// The CPU kernel behind [`Linear`].
struct CpuLinear;

/// A batched matrix product `a[b] · c[b]` on CPU: one single-threaded GEMM per batch entry,
/// run in parallel. Attention's per-head products (16 heads of 257 x 88 by 88 x 257) are too
/// small for a multi-threaded GEMM each; candle's batched matmul ran them at 80 GFLOP/s.
/// Falls back to candle's matmul off the CPU or for other types.
pub fn batched_matmul(a: &Tensor, c: &Tensor) -> Result<Tensor> {
    if a.device().is_cpu() && a.dtype() == DType::F32 && a.rank() == 3 && c.rank() == 3 {
        a.apply_op2_no_bwd(c, &CpuBatchedMatmul)
    } else {
        a.matmul(c)
    }
}

/// The CPU kernel behind [`batched_matmul`].
struct CpuBatchedMatmul;

impl candle_core::CustomOp2 for CpuBatchedMatmul {
    fn name(&self) -> &'static str {
        "batched-matmul-cpu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(a), CpuStorage::F32(c)) = (s1, s2) else {
            candle_core::bail!("batched-matmul-cpu expects f32 tensors");
        };
        let (batch, m, k) = l1.shape().dims3()?;
        let (batch2, k2, n) = l2.shape().dims3()?;
        if batch != batch2 || k != k2 {
            candle_core::bail!("batched-matmul-cpu: {:?} by {:?}", l1.dims(), l2.dims());
        }
        let ([ab, ar, ac], [cb, cr, cc]) = (strides3(l1)?, strides3(l2)?);
        let (a, c) = (&a[l1.start_offset()..], &c[l2.start_offset()..]);
        let mut out = vec![0f32; batch * m * n];
        out.par_chunks_mut(m * n).enumerate().for_each(|(b, dst)| {
            // SAFETY: the layouts' strides and offsets describe in-bounds elements of `a`
            // and `c`; `dst` is this entry's m x n row-major block.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr().offset(b as isize * ab),
                    ac,
                    ar,
                    c.as_ptr().offset(b as isize * cb),
                    cc,
                    cr,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
        Ok((CpuStorage::F32(out), Shape::from_dims(&[batch, m, n])))
    }
}

/// Element strides of a rank-3 layout, as `[batch, row, column]`.
fn strides3(layout: &Layout) -> Result<[isize; 3]> {
    match layout.stride() {
        &[b, r, c] => Ok([b as isize, r as isize, c as isize]),
        other => candle_core::bail!("expected a rank-3 layout, got strides {other:?}"),
    }
}

/// Output features per GEMM task; small enough to balance two to eight threads, large
/// enough that each task streams a sizeable block of weights.
#[cfg(not(all(feature = "openblas", target_os = "linux")))]
const FEATURES_PER_TASK: usize = 352;

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
        let (CpuStorage::F32(xs), CpuStorage::F32(ws), CpuStorage::F32(bs)) = (xs, ws, bs) else {
            candle_core::bail!("linear-cpu expects f32 tensors");
        };
        let (Some((x0, x1)), Some((w0, w1)), Some((b0, b1))) =
            (xl.contiguous_offsets(), wl.contiguous_offsets(), bl.contiguous_offsets())
        else {
            candle_core::bail!("linear-cpu expects contiguous tensors");
        };
        let (x, w, b) = (&xs[x0..x1], &ws[w0..w1], &bs[b0..b1]);
        let dims = xl.dims();
        let k = dims[dims.len() - 1];
        let (n, wk) = wl.shape().dims2()?;
        if wk != k || b.len() != n {
            candle_core::bail!("linear-cpu: input width {k}, weight {n}x{wk}, bias {}", b.len());
        }
        let m = x.len() / k.max(1);
        // Every row starts as the bias; the GEMM accumulates onto it.
        let mut y: Vec<f32> = Vec::with_capacity(m * n);
        for _ in 0..m {
            y.extend_from_slice(b);
        }
        multiply_accumulate(x, w, m, k, n, &mut y);
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("at least one dimension") = n;
        Ok((CpuStorage::F32(y), Shape::from_dims(&out_dims)))
    }
}

/// `y[m, n] += x[m, k] · w[n, k]ᵀ` through the system's OpenBLAS, whose AVX-512 kernels ran
/// EVA's shapes at 190 to 200 GFLOP/s on the development machine (the split `gemm` crate
/// path below: 110 to 165). OpenBLAS runs single-threaded inside rayon tasks, one block of
/// output features each: its own worker threads spin between calls and took a core from the
/// element-wise kernels (3.45 s against 3.30 s per image at batch 1).
#[cfg(all(feature = "openblas", target_os = "linux"))]
fn multiply_accumulate(x: &[f32], w: &[f32], m: usize, k: usize, n: usize, y: &mut [f32]) {
    const ROW_MAJOR: i32 = 101;
    const NO_TRANSPOSE: i32 = 111;
    const TRANSPOSE: i32 = 112;
    #[link(name = "openblas")]
    unsafe extern "C" {
        fn openblas_set_num_threads(threads: i32);
        fn cblas_sgemm(
            layout: i32,
            transpose_a: i32,
            transpose_b: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const f32,
            lda: i32,
            b: *const f32,
            ldb: i32,
            beta: f32,
            c: *mut f32,
            ldc: i32,
        );
    }
    static SINGLE_THREADED: std::sync::Once = std::sync::Once::new();
    // SAFETY: a plain setter of OpenBLAS's thread count.
    SINGLE_THREADED.call_once(|| unsafe { openblas_set_num_threads(1) });
    let dim = |v: usize| i32::try_from(v).expect("matrix dimensions fit in 32 bits");
    let block = n.div_ceil(rayon::current_num_threads().max(1));
    for_each_feature_block(n, block, y, |first, count, out| {
        // SAFETY: x is m x k, w is n x k and y is m x n, all row-major; each task reads rows
        // `first..first + count` of w and writes only those columns of y, at `out`.
        unsafe {
            cblas_sgemm(
                ROW_MAJOR,
                NO_TRANSPOSE,
                TRANSPOSE,
                dim(m),
                dim(count),
                dim(k),
                1.0,
                x.as_ptr(),
                dim(k),
                w.as_ptr().add(first * k),
                dim(k),
                1.0,
                out,
                dim(n),
            );
        }
    });
}

/// `y[m, n] += x[m, k] · w[n, k]ᵀ` with the `gemm` crate, split into independent blocks of
/// output features, one single-threaded GEMM each.
#[cfg(not(all(feature = "openblas", target_os = "linux")))]
fn multiply_accumulate(x: &[f32], w: &[f32], m: usize, k: usize, n: usize, y: &mut [f32]) {
    for_each_feature_block(n, FEATURES_PER_TASK, y, |first, count, out| {
        // SAFETY: tasks write disjoint column blocks of `y`, at `out`; all pointers and
        // strides describe in-bounds, row-major matrices of the sizes given.
        unsafe {
            gemm::gemm(
                count,
                m,
                k,
                out,
                n as isize,
                1,
                true,
                w.as_ptr().add(first * k),
                1,
                k as isize,
                x.as_ptr(),
                k as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    });
}

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

/// A raw output pointer shared by tasks that write disjoint parts.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);

impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: the tasks holding copies write to disjoint elements only.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cpu_kernel_matches_candle_matmul() -> Result<()> {
        let device = Device::Cpu;
        for (rows, k, n) in [(3, 5, 7), (257, 64, 700), (2, 33, 1)] {
            let x = Tensor::randn(0f32, 1.0, (2, rows, k), &device)?;
            let w = Tensor::randn(0f32, 1.0, (n, k), &device)?;
            let b = Tensor::randn(0f32, 1.0, n, &device)?;
            let ours = Linear::new(w.clone(), Some(b.clone()))?.forward(&x)?;
            let reference = candle_nn::Linear::new(w, Some(b)).forward(&x)?;
            assert_eq!(ours.dims(), reference.dims());
            let diff = (ours - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-4, "{rows}x{k}x{n}: {diff}");
        }
        Ok(())
    }

    #[test]
    fn batched_product_matches_candle_on_strided_inputs() -> Result<()> {
        let device = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (6, 13, 5), &device)?;
        let k = Tensor::randn(0f32, 1.0, (6, 11, 5), &device)?;
        let ours = batched_matmul(&q, &k.t()?)?;
        let reference = q.matmul(&k.t()?)?;
        let diff = (ours - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    #[test]
    fn missing_bias_is_zero() -> Result<()> {
        let device = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0]], &device)?;
        let w = Tensor::new(&[[3f32, 4.0], [0.5, -1.0]], &device)?;
        let y = Linear::new(w, None)?.forward(&x)?.to_vec2::<f32>()?;
        assert_eq!(y, vec![vec![11.0, -1.5]]);
        Ok(())
    }
}

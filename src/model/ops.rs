//! Element-wise operations whose stock candle versions are either slow or imprecise on CPU.
//!
//! Every function here works on all backends: the CPU path is specialised, GPUs use candle's
//! own kernels.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::simd::multiversion;

/// Softmax over the last dimension with the row maximum subtracted, computed in at least f32.
///
/// On CPU a vectorised kernel replaces candle's, whose scalar `exp` cost EVA-giant about 0.2 s
/// per image in attention.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return x.contiguous()?.apply_op1_no_bwd(&CpuSoftmax);
    }
    match x.dtype() {
        DType::F16 | DType::BF16 => candle_nn::ops::softmax_last_dim(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype()),
        _ => candle_nn::ops::softmax_last_dim(x),
    }
}

/// GELU with the exact (erf) formulation, `x * (1 + erf(x / sqrt 2)) / 2`.
///
/// candle's CPU kernel evaluates a scalar erf on one thread; EVA-giant applies GELU to 63
/// million values per image, so on CPU a vectorised, multi-threaded kernel is used instead.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 { x.apply_op1_no_bwd(&CpuGeluErf) } else { x.gelu_erf() }
}

/// Runs `kernel` over consecutive `block`-value pieces of a contiguous f32 tensor, in
/// parallel, into a new tensor of the same shape: the frame of this module's CPU kernels.
fn map_blocks(
    op: &str,
    storage: &CpuStorage,
    layout: &Layout,
    block: usize,
    kernel: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Result<(CpuStorage, Shape)> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op} expects f32 input");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} expects a contiguous tensor");
    };
    let src = &data[start..end];
    let mut dst = vec![0f32; src.len()];
    dst.par_chunks_mut(block).zip(src.par_chunks(block)).for_each(|(out, inp)| kernel(inp, out));
    Ok((CpuStorage::F32(dst), layout.shape().clone()))
}

/// The multi-threaded CPU kernel behind [`softmax_last_dim`].
struct CpuSoftmax;

impl CustomOp1 for CpuSoftmax {
    fn name(&self) -> &'static str {
        "softmax-cpu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let width = layout.dims().last().copied().unwrap_or(1).max(1);
        let rows_per_task = (CHUNK / width).max(1);
        map_blocks(self.name(), storage, layout, rows_per_task * width, |inp, out| {
            for (i, o) in inp.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
                softmax_row(i, o);
            }
        })
    }
}

multiversion! {
    /// Softmax of one row, with the widest vector instructions the CPU has.
    fn softmax_row(src: &[f32], dst: &mut [f32]) => softmax_row_portable;
    avx512: ["avx512f"];
    avx2: ["avx2", "fma"];
}

#[inline(always)]
fn softmax_row_portable(src: &[f32], dst: &mut [f32]) {
    let max = src.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for (o, &v) in dst.iter_mut().zip(src) {
        *o = exp_f32(v - max);
    }
    let sum: f32 = dst.iter().sum();
    let scale = 1.0 / sum;
    for o in dst.iter_mut() {
        *o *= scale;
    }
}

/// The multi-threaded CPU kernel behind [`gelu_erf`].
struct CpuGeluErf;

/// Elements handed to one rayon task; large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 16 * 1024;

impl CustomOp1 for CpuGeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf-cpu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        map_blocks(self.name(), storage, layout, CHUNK, gelu_slice)
    }
}

multiversion! {
    /// GELU over a slice, with the widest vector instructions the CPU has.
    fn gelu_slice(src: &[f32], dst: &mut [f32]) => gelu_slice_portable;
    avx512: ["avx512f"];
    avx2: ["avx2", "fma"];
}

#[inline(always)]
fn gelu_slice_portable(src: &[f32], dst: &mut [f32]) {
    for (o, &v) in dst.iter_mut().zip(src) {
        *o = gelu_erf_f32(v);
    }
}

/// Exact GELU of one value; written so that the compiler vectorises loops over it.
#[inline(always)]
pub fn gelu_erf_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), the same approximation
/// PyTorch's vectorised CPU kernels use, so results track the reference closely.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    let y = 1.0 - poly * exp_f32(-a * a);
    y.copysign(x)
}

/// `e^x` for `x <= 0` to about 2 ulp: range reduction by ln 2 and a degree-6 polynomial.
/// Inputs below -87 flush to zero, which is all erf needs.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without `round()`,
    // which has no SIMD form on baseline x86-64 and would stop the loop from vectorising.
    const ROUNDER: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let shifted = x * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // The low mantissa bits of `shifted` hold n (mod 2^9); adding the exponent bias and
    // shifting builds 2^n with integer operations only (no float-to-int conversion).
    let scale = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// erf in f64: its Maclaurin series below 3, the asymptotic series of erfc above.
    fn erf_reference(x: f64) -> f64 {
        let a = x.abs();
        if a < 3.0 {
            let mut term = x;
            let mut sum = x;
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let inv = 1.0 / (2.0 * a * a);
            let series = 1.0 - inv + 3.0 * inv * inv - 15.0 * inv.powi(3) + 105.0 * inv.powi(4);
            let erfc = (-a * a).exp() / (a * std::f64::consts::PI.sqrt()) * series;
            x.signum() * (1.0 - erfc)
        }
    }

    #[test]
    fn erf_is_accurate_to_f32_precision() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            worst = worst.max((erf_f32(x) as f64 - erf_reference(x as f64)).abs());
        }
        assert!(worst < 6e-7, "worst erf error {worst}");
    }

    #[test]
    fn exp_matches_std_for_non_positive_inputs() {
        for i in 0..=8700 {
            let x = -(i as f32) / 100.0;
            let rel = ((exp_f32(x) - x.exp()) / x.exp()).abs();
            assert!(rel < 1e-6, "exp({x}) relative error {rel}");
        }
    }

    #[test]
    fn cpu_kernel_agrees_with_candle() -> Result<()> {
        let x = Tensor::randn(0f32, 3.0, (3, 50_000), &Device::Cpu)?;
        let ours = gelu_erf(&x)?;
        let candle = x.gelu_erf()?;
        let diff = (ours - candle)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "max difference {diff}");
        Ok(())
    }

    #[test]
    fn cpu_softmax_agrees_with_candle() -> Result<()> {
        let x = Tensor::randn(0f32, 4.0, (7, 257), &Device::Cpu)?;
        let diff = (softmax_last_dim(&x)? - candle_nn::ops::softmax_last_dim(&x)?)?.abs()?.max_all()?;
        assert!(diff.to_scalar::<f32>()? < 1e-6);
        Ok(())
    }

    #[test]
    fn softmax_rows_sum_to_one_with_huge_logits() -> Result<()> {
        let x = Tensor::new(&[[1000f32, 1001.0, 999.0], [-5.0, 0.0, 5.0]], &Device::Cpu)?;
        let s = softmax_last_dim(&x)?;
        let sums: Vec<f32> = s.sum(1)?.to_vec1()?;
        assert!(sums.iter().all(|v| (v - 1.0).abs() < 1e-6), "{sums:?}");
        assert!(s.to_vec2::<f32>()?[0].iter().all(|v| v.is_finite()));
        Ok(())
    }
}

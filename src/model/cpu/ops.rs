//! Row-wise and element-wise CPU kernels: LayerNorm, softmax, the exact GELU, SwiGLU's gate and
//! the residual stream's additions.
//!
//! Each loop is plain Rust written so that the compiler vectorises it, compiled per SIMD level
//! by [`multiversion!`]. The reductions keep several interleaved partial sums, because a single
//! running sum cannot be vectorised without reordering its additions. Every path does the same
//! arithmetic in the same order (`mul_add` is fused with or without FMA instructions), so every
//! level gives the same bits; the tests check that.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape};
use rayon::prelude::*;

use super::simd::multiversion;
use super::{f32_slice, map_rows, written_vec};

/// LayerNorm over the last dimension of a contiguous f32 tensor, computed in two passes
/// (mean, then variance of the centred values): `(x - mean) / sqrt(var + eps) * weight + bias`.
///
/// One vectorised pass per row, the rows spread over threads, instead of the chain of tensor
/// operations the same formula takes in candle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuLayerNorm {
    /// Added to the variance before the square root.
    pub(crate) eps: f32,
}

impl CustomOp3 for CpuLayerNorm {
    fn name(&self) -> &'static str {
        "layer-norm-cpu"
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
        let (x, weight, bias) = (f32_slice(name, xs, xl)?, f32_slice(name, ws, wl)?, f32_slice(name, bs, bl)?);
        let width = xl.dims().last().copied().unwrap_or(1).max(1);
        if weight.len() != width || bias.len() != width {
            candle_core::bail!("layer-norm-cpu: width {width}, weight {}, bias {}", weight.len(), bias.len());
        }
        let rows_per_task = (CHUNK / width).max(1);
        let normalise = |row: &[f32], out: &mut [MaybeUninit<f32>]| layer_norm_row(row, weight, bias, self.eps, out);
        // SAFETY: `layer_norm_row` writes every element of its output row.
        let y = unsafe { map_rows(x, (width, width), rows_per_task, normalise) };
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }
}

/// SwiGLU's gating of a contiguous f32 tensor `[.., 2h]` whose rows hold the gate, then the
/// value: `silu(gate) * value`, `[.., h]`.
///
/// One vectorised pass per row, the rows spread over threads, instead of two strided views, a
/// SiLU and a product in candle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSwiGlu;

impl CustomOp1 for CpuSwiGlu {
    fn name(&self) -> &'static str {
        "swiglu-cpu"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(self.name(), xs, xl)?;
        let mut dims = xl.dims().to_vec();
        let Some(last) = dims.last_mut().filter(|w| **w % 2 == 0 && **w > 0) else {
            candle_core::bail!("swiglu-cpu: the last dimension of {:?} is not an even width", xl.dims());
        };
        let (width, half) = (*last, *last / 2);
        *last = half;
        let rows_per_task = (CHUNK / width).max(1);
        // SAFETY: `swiglu_row` writes every element of its output row.
        let y = unsafe { map_rows(x, (width, half), rows_per_task, swiglu_row) };
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }
}

multiversion! {
    /// `silu(gate) * value` of one row holding the gate, then the value, with the widest
    /// vector instructions the CPU has.
    fn swiglu_row(src: &[f32], dst: &mut [MaybeUninit<f32>]) => swiglu_row_portable;
    avx512: ["avx512f", "fma"];
    avx2: ["avx2", "fma"];
}

#[inline(always)]
fn swiglu_row_portable(src: &[f32], dst: &mut [MaybeUninit<f32>]) {
    let (gate, value) = src.split_at(dst.len());
    for ((o, &g), &v) in dst.iter_mut().zip(gate).zip(value) {
        o.write(silu_f32(g) * v);
    }
}

/// `x * sigmoid(x)`, with the exponential taken of `-|x|` only, so it never overflows.
#[inline(always)]
fn silu_f32(x: f32) -> f32 {
    let e = exp_f32(-x.abs());
    let sigmoid = if x >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
    x * sigmoid
}

/// The element-wise sum of two contiguous f32 tensors of one shape: the residual stream's
/// additions, spread over evatag's threads.
///
/// candle's own element-wise operations run on a pool of threads of their own, each of which
/// spins for about a millisecond after every operation before it sleeps, and so took a core
/// from the product that follows each addition. On an Intel Xeon (family 6 model 167, two
/// threads, EVA-giant, alternating runs) this kernel took batch 1 from 1.955-1.984 s per image
/// to 1.889-1.936 (the time outside products and attention from 3.5-4.0 % to 2.0-2.3 %);
/// batch 4, where each addition is four times longer than the spin, stayed within the noise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuAdd;

impl CustomOp2 for CpuAdd {
    fn name(&self) -> &'static str {
        "add-cpu"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ys: &CpuStorage, yl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, y) = (f32_slice(self.name(), xs, xl)?, f32_slice(self.name(), ys, yl)?);
        if xl.shape() != yl.shape() {
            candle_core::bail!("add-cpu: the shapes {:?} and {:?} differ", xl.dims(), yl.dims());
        }
        let add = |out: &mut [MaybeUninit<f32>]| {
            let parts = out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)));
            parts.for_each(|(out, (x, y))| {
                for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
                    o.write(a + b);
                }
            });
        };
        // SAFETY: the chunks of `out` pair with those of `x` and `y`, which are as long, and each
        // element of each chunk is written.
        let sum = unsafe { written_vec(x.len(), add) };
        Ok((CpuStorage::F32(sum), xl.shape().clone()))
    }
}

/// Elements handed to one rayon task; large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 16 * 1024;

multiversion! {
    /// LayerNorm of one row, with the widest vector instructions the CPU has.
    fn layer_norm_row(src: &[f32], weight: &[f32], bias: &[f32], eps: f32, dst: &mut [MaybeUninit<f32>]) => layer_norm_row_portable;
    avx512: ["avx512f", "fma"];
    avx2: ["avx2", "fma"];
}

#[inline(always)]
fn layer_norm_row_portable(src: &[f32], weight: &[f32], bias: &[f32], eps: f32, dst: &mut [MaybeUninit<f32>]) {
    let width = src.len() as f32;
    let mean = lane_sum(src, |v| v) / width;
    let variance = lane_sum(src, |v| (v - mean) * (v - mean)) / width;
    let inv_std = 1.0 / (variance + eps).sqrt();
    for (((o, &v), &w), &b) in dst.iter_mut().zip(src).zip(weight).zip(bias) {
        o.write((v - mean) * inv_std * w + b);
    }
}

/// Number of independent accumulators in the reductions below: one AVX-512 register's worth,
/// so that the compiler can keep them in vector lanes (a single running sum cannot be
/// vectorised without reordering the additions).
const LANES: usize = 16;

/// `Σ f(v)` over `values`, summed in [`LANES`] interleaved partial sums.
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut partial = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (p, &v) in partial.iter_mut().zip(chunk) {
            *p += f(v);
        }
    }
    partial.iter().sum::<f32>() + tail
}

/// The largest of `values` (negative infinity for none), in [`LANES`] interleaved maxima.
#[inline(always)]
fn lane_max(values: &[f32]) -> f32 {
    let mut partial = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for chunk in chunks {
        for (p, &v) in partial.iter_mut().zip(chunk) {
            *p = p.max(v);
        }
    }
    partial.iter().copied().fold(tail, f32::max)
}

multiversion! {
    /// Softmax of one row in place, with the maximum subtracted, using the widest vector
    /// instructions the CPU has.
    pub(crate) fn softmax_in_place(row: &mut [f32]) => softmax_in_place_portable;
    avx512: ["avx512f", "fma"];
    avx2: ["avx2", "fma"];
}

#[inline(always)]
fn softmax_in_place_portable(row: &mut [f32]) {
    let max = lane_max(row);
    for v in row.iter_mut() {
        *v = exp_f32(*v - max);
    }
    let scale = 1.0 / lane_sum(row, |v| v);
    for v in row.iter_mut() {
        *v *= scale;
    }
}

multiversion! {
    /// Exact GELU over a slice in place, with the widest vector instructions the CPU has.
    pub(crate) fn gelu_in_place(values: &mut [f32]) => gelu_in_place_portable;
    avx512: ["avx512f", "fma"];
    avx2: ["avx2", "fma"];
}

#[inline(always)]
fn gelu_in_place_portable(values: &mut [f32]) {
    // Two vectors per step give the long dependency chain of erf a second chain to overlap with.
    let mut chunks = values.chunks_exact_mut(2 * LANES);
    for chunk in &mut chunks {
        for v in chunk.iter_mut() {
            *v = gelu_erf_f32(*v);
        }
    }
    for v in chunks.into_remainder() {
        *v = gelu_erf_f32(*v);
    }
}

multiversion! {
    /// Exact GELU over each of several slices in place, with the widest vector instructions the
    /// CPU has, chosen once for all of them (for the x86-64 tile kernels).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn gelu_rows_in_place(rows: &mut [&mut [f32]]) => gelu_rows_in_place_portable;
    avx512: ["avx512f", "fma"];
    avx2: ["avx2", "fma"];
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn gelu_rows_in_place_portable(rows: &mut [&mut [f32]]) {
    for row in rows {
        gelu_in_place_portable(row);
    }
}

/// Exact GELU of one value; written so that the compiler vectorises loops over it.
#[inline(always)]
fn gelu_erf_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), the same approximation
/// PyTorch's vectorised CPU kernels use, so results track the reference closely.
#[inline(always)]
fn erf_f32(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = A5.mul_add(t, A4).mul_add(t, A3).mul_add(t, A2).mul_add(t, A1) * t;
    let y = (-poly).mul_add(exp_f32(-a * a), 1.0);
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
    // Horner's scheme with fused multiply-adds: one rounding per step, and a single
    // instruction each where the CPU has FMA (every kernel that calls this enables it).
    let p = (1.0 / 720.0f32)
        .mul_add(r, 1.0 / 120.0)
        .mul_add(r, 1.0 / 24.0)
        .mul_add(r, 1.0 / 6.0)
        .mul_add(r, 0.5)
        .mul_add(r, 1.0)
        .mul_add(r, 1.0);
    // The low mantissa bits of `shifted` hold n (mod 2^9); adding the exponent bias and
    // shifting builds 2^n with integer operations only (no float-to-int conversion).
    let scale = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu::{simd, written_vec};
    use candle_core::{DType, Device, Tensor};

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
    fn addition_agrees_with_candle_and_refuses_other_shapes() -> Result<()> {
        // More elements than one task takes, and not a multiple of it.
        let x = Tensor::randn(0f32, 1.0, (3, 257, 100), &Device::Cpu)?;
        let y = Tensor::randn(0f32, 1.0, (3, 257, 100), &Device::Cpu)?;
        let ours = x.apply_op2_no_bwd(&y, &CpuAdd)?;
        assert_eq!(ours.dims(), x.dims());
        let same = ours.flatten_all()?.to_vec1::<f32>()? == (&x + &y)?.flatten_all()?.to_vec1::<f32>()?;
        assert!(same, "the sums differ from candle's");
        let error = x.apply_op2_no_bwd(&y.reshape((3, 100, 257))?, &CpuAdd).expect_err("other shapes are refused");
        assert!(error.to_string().contains("differ"), "{error}");
        Ok(())
    }

    #[test]
    fn gelu_kernel_agrees_with_candle() -> Result<()> {
        // An odd length exercises the vector body and the scalar tail.
        let x = Tensor::randn(0f32, 3.0, 150_001, &Device::Cpu)?;
        let mut ours = x.to_vec1::<f32>()?;
        gelu_in_place(&mut ours);
        let candle = x.gelu_erf()?.to_vec1::<f32>()?;
        let diff = ours.iter().zip(&candle).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-6, "max difference {diff}");
        Ok(())
    }

    #[test]
    fn softmax_kernel_agrees_with_candle() -> Result<()> {
        let x = Tensor::randn(0f32, 4.0, (7, 257), &Device::Cpu)?;
        let expected = candle_nn::ops::softmax_last_dim(&x)?.to_vec2::<f32>()?;
        for (mut row, want) in x.to_vec2::<f32>()?.into_iter().zip(expected) {
            softmax_in_place(&mut row);
            let diff = row.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-6, "{diff}");
        }
        Ok(())
    }

    #[test]
    fn softmax_rows_sum_to_one_with_huge_logits() {
        for mut row in [vec![1000f32, 1001.0, 999.0], vec![-5.0, 0.0, 5.0], (0..100).map(|i| i as f32 * 30.0).collect()]
        {
            softmax_in_place(&mut row);
            assert!(row.iter().all(|v| v.is_finite()), "{row:?}");
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
        }
    }

    #[test]
    fn layer_norm_kernel_keeps_the_variance_under_a_large_mean() -> Result<()> {
        let device = Device::Cpu;
        // A row mean of 300 with unit spread, as in EVA's residual stream.
        let x = (Tensor::randn(0f32, 1.0, (5, 1408), &device)? + 300.0)?;
        let weight = Tensor::randn(1f32, 0.1, 1408, &device)?;
        let bias = Tensor::randn(0f32, 0.1, 1408, &device)?;
        let ours = x.apply_op3_no_bwd(&weight, &bias, &CpuLayerNorm { eps: 1e-6 })?.to_vec2::<f32>()?;
        let rows = x.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        let (w, b) = (weight.to_vec1::<f32>()?, bias.to_vec1::<f32>()?);
        for (row, got) in rows.iter().zip(&ours) {
            let mean = row.iter().sum::<f64>() / row.len() as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / row.len() as f64;
            for (i, (&v, &g)) in row.iter().zip(got).enumerate() {
                let want = (v - mean) / (var + 1e-6).sqrt() * f64::from(w[i]) + f64::from(b[i]);
                assert!((f64::from(g) - want).abs() < 2e-4, "column {i}: {g} against {want}");
            }
        }
        Ok(())
    }

    /// Row lengths around the vector widths and the unrolled steps, and EVA's token count and
    /// width, so that every path runs its vector body and its scalar tail.
    const LENGTHS: [usize; 12] = [1, 2, 15, 16, 17, 31, 32, 33, 64, 100, 257, 1408];

    /// `len` pseudo-random values, uniform over `[offset - spread, offset + spread)`, from a
    /// fixed seed so that a failure reproduces.
    fn values(len: usize, seed: usize, spread: f32, offset: f32) -> Vec<f32> {
        let mut state = (seed as u32).wrapping_mul(2_654_435_761).wrapping_add(12_345);
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let unit = (state >> 8) as f32 / (1u32 << 24) as f32;
                offset + spread * (2.0 * unit - 1.0)
            })
            .collect()
    }

    /// Runs `kernel` at every SIMD level this CPU supports and checks that each level's output
    /// is within `tolerance` (per element) of `reference` and bit for bit the same as the
    /// portable path's.
    fn check_every_level(kernel: impl Fn() -> Vec<f32>, reference: &[f64], tolerance: &[f64]) {
        let mut outputs: Vec<(simd::SimdLevel, Vec<f32>)> = Vec::new();
        simd::at_every_level(|level| outputs.push((level, kernel())));
        for (level, got) in &outputs {
            assert_eq!(got.len(), reference.len());
            for (i, ((&g, &want), &tol)) in got.iter().zip(reference).zip(tolerance).enumerate() {
                let error = (f64::from(g) - want).abs();
                assert!(error <= tol, "{} path, element {i}: {g} against {want}", level.name());
            }
        }
        let (_, portable) = outputs.last().expect("the portable path always runs");
        for (level, got) in &outputs {
            let same = got.iter().zip(portable).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "the {} and portable paths differ", level.name());
        }
    }

    #[test]
    fn softmax_matches_the_reference_at_every_simd_level() {
        let rows: Vec<Vec<f32>> = LENGTHS.iter().enumerate().map(|(seed, &len)| values(len, seed, 20.0, 5.0)).collect();
        let mut reference = Vec::new();
        for row in &rows {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f64> = row.iter().map(|&v| f64::from(v - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            reference.extend(exps.iter().map(|e| e / sum));
        }
        let kernel = || {
            let mut out = Vec::new();
            for row in &rows {
                let mut row = row.clone();
                softmax_in_place(&mut row);
                out.extend(row);
            }
            out
        };
        let tolerance: Vec<f64> = reference.iter().map(|p| 1e-6 * p).collect();
        check_every_level(kernel, &reference, &tolerance);
    }

    #[test]
    fn gelu_matches_the_reference_at_every_simd_level() {
        let mut x: Vec<f32> =
            LENGTHS.iter().enumerate().flat_map(|(seed, &len)| values(len, seed, 10.0, 0.0)).collect();
        x.extend([0.0, -0.0, 1e-30, -1e-30, 1e-3, -1e-3, 5.5, -5.5, 30.0, -30.0, 1e4, -1e4]);
        let reference: Vec<f64> = x
            .iter()
            .map(|&v| {
                let v = f64::from(v);
                0.5 * v * (1.0 + erf_reference(v * std::f64::consts::FRAC_1_SQRT_2))
            })
            .collect();
        let kernel = || {
            let mut out = x.clone();
            gelu_in_place(&mut out);
            out
        };
        let tolerance: Vec<f64> = reference.iter().map(|g| 1e-6 * g.abs().max(1.0)).collect();
        check_every_level(kernel, &reference, &tolerance);
    }

    #[test]
    fn swiglu_matches_the_reference_at_every_simd_level() {
        let rows: Vec<Vec<f32>> =
            LENGTHS.iter().enumerate().map(|(seed, &len)| values(2 * len, seed, 12.0, 0.0)).collect();
        let mut reference = Vec::new();
        for row in &rows {
            let (gate, value) = row.split_at(row.len() / 2);
            for (&g, &v) in gate.iter().zip(value) {
                let g = f64::from(g);
                reference.push(g / (1.0 + (-g).exp()) * f64::from(v));
            }
        }
        let kernel = || {
            let mut out = Vec::new();
            for row in &rows {
                // SAFETY: `swiglu_row` writes every element.
                let dst = unsafe { written_vec(row.len() / 2, |dst| swiglu_row(row, dst)) };
                out.extend(dst);
            }
            out
        };
        let tolerance: Vec<f64> = reference.iter().map(|r| 1e-6 * r.abs().max(1e-3)).collect();
        check_every_level(kernel, &reference, &tolerance);
    }

    #[test]
    fn swiglu_kernel_agrees_with_candle() -> Result<()> {
        let x = Tensor::randn(0f32, 3.0, (3, 5, 2 * 37), &Device::Cpu)?;
        let ours = x.apply_op1_no_bwd(&CpuSwiGlu)?;
        let candle = (x.narrow(2, 0, 37)?.silu()? * x.narrow(2, 37, 37)?)?;
        assert_eq!(ours.dims(), candle.dims());
        let diff = (ours - candle)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "max difference {diff}");
        Ok(())
    }

    #[test]
    fn layer_norm_row_matches_the_reference_at_every_simd_level() {
        // A large offset, as in EVA's residual stream, where a one-pass variance would fail.
        let eps = 1e-6;
        let cases: Vec<[Vec<f32>; 3]> = LENGTHS
            .iter()
            .enumerate()
            .map(|(seed, &len)| {
                [values(len, seed, 2.0, 300.0), values(len, seed + 100, 0.5, 1.0), values(len, seed + 200, 0.5, 0.0)]
            })
            .collect();
        let (mut reference, mut tolerance) = (Vec::new(), Vec::new());
        for [row, weight, bias] in &cases {
            let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            let mean = row.iter().sum::<f64>() / row.len() as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / row.len() as f64;
            let std = (var + f64::from(eps)).sqrt();
            for ((v, &w), &b) in row.iter().zip(weight).zip(bias) {
                reference.push((v - mean) / std * f64::from(w) + f64::from(b));
                // An f32 mean is off by a few units in the last place of the offset, and
                // normalising divides that by the spread.
                tolerance.push(1e-6 + 4.0 * f64::from(f32::EPSILON) * mean.abs() / std * f64::from(w).abs());
            }
        }
        let kernel = || {
            let mut out = Vec::new();
            for [row, weight, bias] in &cases {
                // SAFETY: `layer_norm_row` writes every element.
                let dst = unsafe { written_vec(row.len(), |dst| layer_norm_row(row, weight, bias, eps, dst)) };
                out.extend(dst);
            }
            out
        };
        check_every_level(kernel, &reference, &tolerance);
    }
}

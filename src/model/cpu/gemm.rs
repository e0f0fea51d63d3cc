//! Single-threaded f32 matrix products, the building block of the CPU kernels.
//!
//! The kernels that call this split their work into independent products and run those in
//! parallel, so every product here runs on the calling thread. The `gemm` crate computes them,
//! in pure Rust with kernels for the CPU (AVX-512, AVX2+FMA, NEON or scalar): no system library
//! is needed. The crate picks its kernels itself at run time, and offers no way to pick a
//! narrower level; on x86-64 this module calls its AVX2+FMA and scalar kernels directly when
//! `simd`'s level is lowered (a test's cap, or `EVATAG_SIMD` for a benchmark), so that those
//! paths are measured and checked on a machine that has AVX-512. They are the same kernels the
//! crate picks on a CPU without AVX-512, reached through its public but lower-level entry point,
//! which is why the crate's version is pinned exactly in Cargo.toml.

use super::simd::{SimdLevel, note_path};

/// A read-only matrix operand: element `(i, j)` lies at `ptr + i * row_stride + j * col_stride`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operand {
    /// The first element.
    ptr: *const f32,
    /// Distance in elements between consecutive rows.
    row_stride: usize,
    /// Distance in elements between consecutive columns.
    col_stride: usize,
}

impl Operand {
    /// A row-major matrix whose rows are `stride` elements apart.
    pub(crate) fn rows(ptr: *const f32, stride: usize) -> Self {
        Self { ptr, row_stride: stride, col_stride: 1 }
    }

    /// The transpose of a row-major matrix whose rows are `stride` elements apart.
    pub(crate) fn transposed(ptr: *const f32, stride: usize) -> Self {
        Self { ptr, row_stride: 1, col_stride: stride }
    }
}

/// `c = alpha · a · b + beta · c`, for an `m x k` operand `a`, a `k x n` operand `b` and a
/// row-major `m x n` output `c` whose rows are `c_stride` elements apart. With `beta == 0`
/// the previous contents of `c` are ignored.
///
/// # Safety
/// Every element the operands and the output describe must be in bounds, and `c` must not
/// overlap `a` or `b` nor be written by another thread during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Operand,
    b: Operand,
    beta: f32,
    c: *mut f32,
    c_stride: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let signed = |v: usize| v as isize;
    // The transposed problem, cᵀ = bᵀ aᵀ with cᵀ column-major, is the layout the `gemm`
    // crate runs fastest. Its `alpha` scales the output and its `beta` the product.
    let (dst, dst_cs, read_dst) = (c, signed(c_stride), beta != 0.0);
    let (lhs, lhs_cs, lhs_rs) = (b.ptr, signed(b.row_stride), signed(b.col_stride));
    let (rhs, rhs_cs, rhs_rs) = (a.ptr, signed(a.row_stride), signed(a.col_stride));
    let level = SimdLevel::detect();
    note_path(level);
    // SAFETY (all three calls): forwarded from this function's contract; the narrower kernels
    // run on a CPU that has at least their features, since the level is at most the CPU's.
    match level {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        level if forced::takes(level) => unsafe {
            forced::gemm(
                level,
                n,
                m,
                k,
                dst,
                dst_cs,
                read_dst,
                (lhs, lhs_cs, lhs_rs),
                (rhs, rhs_cs, rhs_rs),
                beta,
                alpha,
            )
        },
        _ => unsafe {
            gemm::gemm(
                n,
                m,
                k,
                dst,
                dst_cs,
                1,
                read_dst,
                lhs,
                lhs_cs,
                lhs_rs,
                rhs,
                rhs_cs,
                rhs_rs,
                beta,
                alpha,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        },
    }
}

/// The `gemm` crate's AVX2+FMA (x86-64) and scalar kernels, called by level rather than by the
/// crate's own choice.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod forced {
    use gemm_common::gemm::gemm_basic_generic;
    #[cfg(target_arch = "x86_64")]
    use gemm_common::simd::V3;
    use gemm_common::simd::{MixedSimd, Scalar};
    #[cfg(target_arch = "x86_64")]
    use gemm_f32::microkernel::fma;
    use gemm_f32::microkernel::scalar;

    use super::SimdLevel;

    /// Whether `level` is one this module runs, rather than the crate's own choice: AVX2 and
    /// the scalar level on x86-64, the scalar level on ARM.
    pub(super) fn takes(level: SimdLevel) -> bool {
        match level {
            SimdLevel::Generic => true,
            SimdLevel::Avx2 => cfg!(target_arch = "x86_64"),
            SimdLevel::Avx512 | SimdLevel::Neon => false,
        }
    }

    /// A column-major operand: pointer, column stride, row stride.
    pub(super) type Matrix = (*const f32, isize, isize);

    /// `dst = alpha · dst + beta · lhs · rhs` (the `gemm` crate's convention) with column-major
    /// `dst` of `m x n` whose columns are `dst_cs` apart, on the kernels of `level`.
    ///
    /// # Safety
    /// As [`super::sgemm`]; for `Avx2` the CPU must have AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn gemm(
        level: SimdLevel,
        m: usize,
        n: usize,
        k: usize,
        dst: *mut f32,
        dst_cs: isize,
        read_dst: bool,
        (lhs, lhs_cs, lhs_rs): Matrix,
        (rhs, rhs_cs, rhs_rs): Matrix,
        alpha: f32,
        beta: f32,
    ) {
        // Only x86-64 has a level here besides the scalar one.
        #[cfg(not(target_arch = "x86_64"))]
        let _ = level;
        let mul_add = |a: f32, b: f32, c: f32| a * b + c;
        let none = gemm_common::Parallelism::None;
        // SAFETY: forwarded from this function's contract.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            if level == SimdLevel::Avx2 {
                let simd = <V3 as MixedSimd<f32, f32, f32, f32>>::try_new().expect("the CPU has AVX2 and FMA");
                gemm_basic_generic::<
                    _,
                    f32,
                    8,
                    { fma::f32::MR_DIV_N * 8 },
                    { fma::f32::NR },
                    { fma::f32::MR_DIV_N },
                    { fma::f32::H_M },
                    { fma::f32::H_N },
                >(
                    simd,
                    m,
                    n,
                    k,
                    dst,
                    dst_cs,
                    1,
                    read_dst,
                    lhs,
                    lhs_cs,
                    lhs_rs,
                    rhs,
                    rhs_cs,
                    rhs_rs,
                    alpha,
                    beta,
                    false,
                    false,
                    false,
                    mul_add,
                    &fma::f32::UKR,
                    &fma::f32::H_UKR,
                    false,
                    none,
                );
                return;
            }
            let simd = <Scalar as MixedSimd<f32, f32, f32, f32>>::try_new().expect("scalar code runs anywhere");
            gemm_basic_generic::<
                _,
                f32,
                1,
                { scalar::f32::MR_DIV_N },
                { scalar::f32::NR },
                { scalar::f32::MR_DIV_N },
                { scalar::f32::H_M },
                { scalar::f32::H_N },
            >(
                simd,
                m,
                n,
                k,
                dst,
                dst_cs,
                1,
                read_dst,
                lhs,
                lhs_cs,
                lhs_rs,
                rhs,
                rhs_cs,
                rhs_rs,
                alpha,
                beta,
                false,
                false,
                false,
                mul_add,
                &scalar::f32::UKR,
                &scalar::f32::H_UKR,
                false,
                none,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a · b` by definition, in f64.
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: impl Fn(usize, usize) -> f32,
        b: impl Fn(usize, usize) -> f32,
    ) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| f64::from(a(i, p)) * f64::from(b(p, j))).sum();
            }
        }
        out
    }

    #[test]
    fn every_level_computes_the_same_products() {
        // Sizes around the kernels' tiles, with a long inner dimension.
        let (m, n, k) = (37, 53, 301);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let expected = reference(m, n, k, |i, p| a[i * k + p], |p, j| b[j * k + p]);
        crate::model::cpu::simd::at_every_level(|level| {
            let mut c = vec![0f32; m * n];
            // SAFETY: the operands and the output are sized for these shapes.
            unsafe {
                sgemm(
                    m,
                    n,
                    k,
                    1.0,
                    Operand::rows(a.as_ptr(), k),
                    Operand::transposed(b.as_ptr(), k),
                    0.0,
                    c.as_mut_ptr(),
                    n,
                )
            };
            let worst = c.iter().zip(&expected).map(|(&got, &want)| (f64::from(got) - want).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-3, "{}: off by {worst}", level.name());
        });
    }

    #[test]
    fn every_operand_layout_matches_the_definition() {
        let (m, n, k) = (7, 5, 9);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let a_at = |i: usize, p: usize| a[i * k + p];
        let b_at = |p: usize, j: usize| b[p * n + j];
        let expected = reference(m, n, k, a_at, b_at);
        // The same matrices stored transposed.
        let a_t: Vec<f32> = (0..k * m).map(|x| a_at(x % m, x / m)).collect();
        let b_t: Vec<f32> = (0..n * k).map(|x| b_at(x % k, x / k)).collect();
        let cases = [
            (Operand::rows(a.as_ptr(), k), Operand::rows(b.as_ptr(), n)),
            (Operand::transposed(a_t.as_ptr(), m), Operand::rows(b.as_ptr(), n)),
            (Operand::rows(a.as_ptr(), k), Operand::transposed(b_t.as_ptr(), k)),
            (Operand::transposed(a_t.as_ptr(), m), Operand::transposed(b_t.as_ptr(), k)),
        ];
        for (case, (a_op, b_op)) in cases.into_iter().enumerate() {
            // A wider output than the product checks the row stride; the spare column stays put.
            let stride = n + 1;
            let mut c = vec![1f32; m * stride];
            // SAFETY: the operands and the output are sized for these shapes and strides.
            unsafe { sgemm(m, n, k, 2.0, a_op, b_op, 0.5, c.as_mut_ptr(), stride) };
            for i in 0..m {
                for j in 0..n {
                    let want = 2.0 * expected[i * n + j] + 0.5;
                    assert!((f64::from(c[i * stride + j]) - want).abs() < 1e-4, "case {case} ({i}, {j})");
                }
                assert_eq!(c[i * stride + n], 1.0, "case {case} wrote past its columns");
            }
        }
    }
}

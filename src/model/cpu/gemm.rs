//! Single-threaded f32 matrix products, the building block of the CPU kernels.
//!
//! The kernels that call this split their work into independent products and run those in
//! parallel, so every product here runs on the calling thread. The `gemm` crate computes them,
//! in pure Rust with kernels chosen at run time for the CPU (AVX-512, AVX2+FMA, NEON or scalar):
//! no system library is needed, and no library's own CPU detection can pick a generic kernel
//! behind the program's back. That choice is the crate's alone: it cannot be forced to a
//! narrower level, so the cap that tests can set in `simd` does not apply here.

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
    // SAFETY: forwarded from this function's contract.
    unsafe {
        gemm::gemm(
            n,
            m,
            k,
            c,
            signed(c_stride),
            1,
            beta != 0.0,
            b.ptr,
            signed(b.row_stride),
            signed(b.col_stride),
            a.ptr,
            signed(a.row_stride),
            signed(a.col_stride),
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
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

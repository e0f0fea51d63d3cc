//! Single-threaded f32 matrix products, the building block of the model's CPU kernels.
//!
//! The kernels above split their work into independent products and run those in parallel,
//! so every product here runs on the calling thread. A CBLAS library computes them where one
//! is built in: oneMKL with the `mkl` feature (x86-64 Linux), else on Linux the system
//! OpenBLAS with the `openblas` feature. Elsewhere the `gemm` crate does. On the 2-core
//! AVX-512 development machine, two threads ran EVA's shapes at 130 to 195 GFLOP/s with
//! oneMKL, 5 to 15 % slower with OpenBLAS, and at 110 to 165 with the `gemm` crate.

/// Whether products run through a CBLAS library (oneMKL or OpenBLAS) rather than the `gemm` crate.
pub(crate) const CBLAS: bool = cfg!(any(feature = "mkl", all(feature = "openblas", target_os = "linux")));

/// A read-only matrix operand: element `(i, j)` lies at `ptr + i * row_stride + j * col_stride`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operand {
    /// The first element.
    pub ptr: *const f32,
    /// Distance in elements between consecutive rows.
    pub row_stride: usize,
    /// Distance in elements between consecutive columns.
    pub col_stride: usize,
}

impl Operand {
    /// A row-major matrix whose rows are `stride` elements apart.
    pub fn rows(ptr: *const f32, stride: usize) -> Self {
        Self { ptr, row_stride: stride, col_stride: 1 }
    }

    /// The transpose of a row-major matrix whose rows are `stride` elements apart.
    pub fn transposed(ptr: *const f32, stride: usize) -> Self {
        Self { ptr, row_stride: 1, col_stride: stride }
    }
}

/// `c = alpha · a · b + beta · c`, for an `m x k` operand `a`, a `k x n` operand `b` and a
/// row-major `m x n` output `c` whose rows are `c_stride` elements apart. With `beta == 0`
/// the previous contents of `c` are ignored.
///
/// # Safety
/// Every element the operands and the output describe must be in bounds, and `c` must not
/// overlap `a` or `b` nor be written by another thread during the call. Operands passed to a
/// CBLAS build must have a unit row or column stride.
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
    // SAFETY: forwarded from this function's contract.
    unsafe { backend::sgemm(m, n, k, alpha, a, b, beta, c, c_stride) }
}

#[cfg(any(feature = "mkl", all(feature = "openblas", target_os = "linux")))]
mod backend {
    use super::Operand;

    const ROW_MAJOR: i32 = 101;
    const NO_TRANSPOSE: i32 = 111;
    const TRANSPOSE: i32 = 112;

    // oneMKL is linked by the build script; OpenBLAS as a system library.
    #[cfg_attr(not(feature = "mkl"), link(name = "openblas"))]
    unsafe extern "C" {
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

    /// OpenBLAS's own worker threads spin between calls and took a core from the element-wise
    /// kernels (3.45 s against 3.30 s per image at batch 1), so it runs single-threaded and the
    /// callers parallelise. (oneMKL is linked in its sequential form.)
    #[cfg(not(feature = "mkl"))]
    fn single_threaded_openblas() {
        #[link(name = "openblas")]
        unsafe extern "C" {
            fn openblas_set_num_threads(threads: i32);
        }
        static SINGLE_THREADED: std::sync::Once = std::sync::Once::new();
        // SAFETY: a plain setter of OpenBLAS's thread count.
        SINGLE_THREADED.call_once(|| unsafe { openblas_set_num_threads(1) });
    }

    /// The CBLAS transposition flag and leading dimension for an operand.
    fn layout(operand: Operand) -> (i32, i32) {
        let dim = |v: usize| i32::try_from(v).expect("matrix strides fit in 32 bits");
        if operand.col_stride == 1 {
            (NO_TRANSPOSE, dim(operand.row_stride))
        } else {
            assert_eq!(operand.row_stride, 1, "CBLAS needs a unit row or column stride");
            (TRANSPOSE, dim(operand.col_stride))
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn sgemm(
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
        #[cfg(not(feature = "mkl"))]
        single_threaded_openblas();
        let dim = |v: usize| i32::try_from(v).expect("matrix dimensions fit in 32 bits");
        let ((transpose_a, lda), (transpose_b, ldb)) = (layout(a), layout(b));
        // SAFETY: the caller guarantees the operands and output are in bounds and disjoint.
        unsafe {
            cblas_sgemm(
                ROW_MAJOR,
                transpose_a,
                transpose_b,
                dim(m),
                dim(n),
                dim(k),
                alpha,
                a.ptr,
                lda,
                b.ptr,
                ldb,
                beta,
                c,
                dim(c_stride),
            );
        }
    }
}

#[cfg(not(any(feature = "mkl", all(feature = "openblas", target_os = "linux"))))]
mod backend {
    use super::Operand;

    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn sgemm(
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
        let signed = |v: usize| v as isize;
        // The transposed problem, cᵀ = bᵀ aᵀ with cᵀ column-major, is the layout the `gemm`
        // crate runs fastest. Its `alpha` scales the output and its `beta` the product.
        // SAFETY: the caller guarantees the operands and output are in bounds and disjoint.
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

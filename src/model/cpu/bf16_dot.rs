//! The AVX512_BF16 product behind bf16 linear layers on x86-64.
//!
//! `VDPBF16PS` multiplies 32 pairs of bf16 values and adds each pair's two products to one of
//! 16 f32 sums: twice the multiply-adds of an f32 FMA per instruction. The activations are
//! rounded to bf16 once per layer ([`round_rows`]); the weights were arranged in panels of 32
//! features when the model loaded (`PackedBf16`). The tile kernel keeps a 12 x 32 block of the
//! output in 24 registers and, for each pair of inputs, broadcasts each row's pair against the
//! panel's two vectors. No crate offers this product (the `gemm` crate has f32, f64 and f16
//! kernels only), hence the hand-written kernel; its tests compare it with a plain product.

use std::arch::x86_64::{
    __m512, __m512bh, __m512i, __mmask16, _mm512_cvtne2ps_pbh, _mm512_dpbf16_ps, _mm512_loadu_ps, _mm512_loadu_si512,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_set1_epi32, _mm512_storeu_si512,
};
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::OnceLock;

use half::bf16;

use super::bf16::{PANEL, PANEL_PAIR, PackedBf16};
use super::peak;

/// Output rows per tile: 12 rows of two vectors are 24 sums, leaving registers for the two
/// weight vectors and the broadcast.
const TILE_ROWS: usize = 12;

/// Input pairs per pass over a panel: that much of a panel (256 pairs of 128 bytes, 32 KiB)
/// stays in the L1 cache while every tile of rows uses it.
const PAIRS_PER_PASS: usize = 256;

/// Rows of activations rounded per parallel task.
const ROWS_PER_TASK: usize = 32;

/// The least [`peak::bf16_dot_gain`] at which bf16 layers take this module's kernels rather
/// than the f32 ones on widened weights. Above 1 because the dot-product path also rounds every
/// layer's input to bf16, and its kernel reaches a smaller share of its instruction's peak.
const MIN_GAIN: f64 = 1.25;

/// Whether this CPU runs the kernels of this module.
pub(crate) fn supported() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
}

/// [`peak::bf16_dot_gain`] on this CPU, probed once per process; `None` where the CPU lacks
/// the instructions.
pub(crate) fn gain() -> Option<f64> {
    static GAIN: OnceLock<Option<f64>> = OnceLock::new();
    *GAIN.get_or_init(|| supported().then(peak::bf16_dot_gain))
}

/// Whether this CPU runs the kernels of this module and its dot products outrun its f32
/// multiply-adds enough to be worth taking ([`MIN_GAIN`]).
pub(crate) fn pays() -> bool {
    gain().is_some_and(|gain| gain >= MIN_GAIN)
}

/// The activations `x` (`rows x inputs`, row-major f32) rounded to nearest even bf16, each row
/// as `pairs` pairs (at least `inputs / 2`, rounded up), the odd input in the low half; missing
/// inputs are 0.
///
/// # Safety
/// The CPU must have AVX-512F and AVX512_BF16 ([`supported`]).
pub(crate) unsafe fn round_rows(x: &[f32], rows: usize, inputs: usize, pairs: usize) -> Vec<u32> {
    debug_assert!(x.len() == rows * inputs && pairs >= inputs.div_ceil(2));
    // SAFETY: the caller has checked the CPU.
    let round = |from: &[f32], to: &mut [MaybeUninit<u32>]| unsafe { round_row(from, to) };
    // SAFETY: `round_row` writes every pair of its output row.
    unsafe { super::map_rows(x, (inputs, pairs), ROWS_PER_TASK, round) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
fn round_row(from: &[f32], to: &mut [MaybeUninit<u32>]) {
    let vectors = from.len() / 32;
    for (to, from) in to.chunks_exact_mut(16).zip(from.chunks_exact(32)) {
        // SAFETY: `from` holds 32 floats and `to` 16 pairs, read and written unaligned.
        unsafe {
            let (low, high) = (_mm512_loadu_ps(from.as_ptr()), _mm512_loadu_ps(from.as_ptr().add(16)));
            let rounded: __m512bh = _mm512_cvtne2ps_pbh(high, low);
            _mm512_storeu_si512(to.as_mut_ptr().cast(), std::mem::transmute::<__m512bh, __m512i>(rounded));
        }
    }
    for (pair, to) in to.iter_mut().enumerate().skip(vectors * 16) {
        let half = |input: usize| from.get(input).map_or(0, |&v| u32::from(bf16::from_f32(v).to_bits()));
        to.write(half(2 * pair) | (half(2 * pair + 1) << 16));
    }
}

/// `out = x Wᵀ + bias` for output rows `rows` and features `features` of the product, with the
/// activations from [`round_rows`] and a weight packed for the dot-product path. `out` points
/// at element `(rows.start, features.start)` of a row-major output whose rows are `out_stride`
/// elements apart.
///
/// # Safety
/// The CPU must have AVX-512F and AVX512_BF16 ([`supported`]); `x` must hold every row of the
/// product; `features.start` must be a multiple of [`PANEL`] and `features.end` at most the
/// weight's features; the block of `out` must be in bounds and written by no one else.
pub(crate) unsafe fn product_block(
    x: &[u32],
    weight: &PackedBf16,
    bias: &[f32],
    rows: Range<usize>,
    features: Range<usize>,
    out: *mut f32,
    out_stride: usize,
) {
    let pairs = weight.pairs();
    debug_assert!(features.start.is_multiple_of(PANEL) && features.end <= weight.features());
    debug_assert!(x.len() >= rows.end * pairs && bias.len() >= features.end);
    let panel_len = pairs * PANEL_PAIR;
    // With no inputs, one pass of zero pairs still writes the bias.
    for first_pair in (0..pairs.max(1)).step_by(PAIRS_PER_PASS) {
        let count = PAIRS_PER_PASS.min(pairs - first_pair);
        for feature in features.clone().step_by(PANEL) {
            let tile = Tile {
                weights: weight.bits()[(feature / PANEL) * panel_len + first_pair * PANEL_PAIR..].as_ptr(),
                pairs: count,
                columns: PANEL.min(features.end - feature),
                bias: (first_pair == 0).then(|| bias[feature..].as_ptr()),
                x_stride: pairs,
                out_stride,
            };
            let mut row = rows.start;
            while row < rows.end {
                let here = TILE_ROWS.min(rows.end - row);
                let x = x[row * pairs + first_pair..].as_ptr();
                // SAFETY: the tile's rows and columns lie in the caller's block.
                let out = unsafe { out.add((row - rows.start) * out_stride + (feature - features.start)) };
                // SAFETY: forwarded from this function's contract.
                unsafe { tile.run(here, x, out) };
                row += here;
            }
        }
    }
}

/// One panel's part of a pass: where its weights start, and how the output is laid out.
struct Tile {
    weights: *const u16,
    pairs: usize,
    /// Features of the panel that exist (the rest are padding and are not stored).
    columns: usize,
    /// The bias to start from on the first pass; later passes add onto the output.
    bias: Option<*const f32>,
    x_stride: usize,
    out_stride: usize,
}

impl Tile {
    /// Computes `rows` (1 to [`TILE_ROWS`]) rows from `x` into `out`.
    ///
    /// # Safety
    /// As for [`product_block`].
    unsafe fn run(&self, rows: usize, x: *const u32, out: *mut f32) {
        macro_rules! rows {
            ($($n:literal)+) => {
                match rows {
                    // SAFETY: forwarded from this function's contract.
                    $($n => unsafe { self.rows::<$n>(x, out) },)+
                    _ => unreachable!("a tile has 1 to {TILE_ROWS} rows"),
                }
            };
        }
        rows!(1 2 3 4 5 6 7 8 9 10 11 12);
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn rows<const ROWS: usize>(&self, x: *const u32, out: *mut f32) {
        let lanes = |n: usize| -> __mmask16 { ((1u32 << n.min(16)) - 1) as u16 };
        let masks = [lanes(self.columns), lanes(self.columns.saturating_sub(16))];
        // SAFETY: masked loads and stores touch only the tile's existing columns; the weights
        // hold `pairs` pairs of the panel; `x` holds `pairs` pairs per row.
        unsafe {
            let mut sums: [[__m512; 2]; ROWS] = std::array::from_fn(|row| {
                std::array::from_fn(|half| match self.bias {
                    Some(bias) => _mm512_maskz_loadu_ps(masks[half], bias.add(16 * half)),
                    None => _mm512_maskz_loadu_ps(masks[half], out.add(row * self.out_stride + 16 * half)),
                })
            });
            for pair in 0..self.pairs {
                let w = self.weights.add(pair * PANEL_PAIR);
                let low = as_bf16(_mm512_loadu_si512(w.cast()));
                let high = as_bf16(_mm512_loadu_si512(w.add(PANEL).cast()));
                for (row, sums) in sums.iter_mut().enumerate() {
                    let xs = as_bf16(_mm512_set1_epi32(x.add(row * self.x_stride + pair).read() as i32));
                    sums[0] = _mm512_dpbf16_ps(sums[0], xs, low);
                    sums[1] = _mm512_dpbf16_ps(sums[1], xs, high);
                }
            }
            for (row, sums) in sums.iter().enumerate() {
                let out = out.add(row * self.out_stride);
                _mm512_mask_storeu_ps(out, masks[0], sums[0]);
                _mm512_mask_storeu_ps(out.add(16), masks[1], sums[1]);
            }
        }
    }
}

/// The same 512 bits, read as 32 bf16 values.
#[inline(always)]
fn as_bf16(bits: __m512i) -> __m512bh {
    // SAFETY: both are 512 bits of plain data; every bit pattern is a valid value of either.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(bits) }
}

//! The AMX product behind bf16 linear layers on Intel Xeons since Sapphire Rapids.
//!
//! AMX adds eight tile registers of up to 16 rows of 64 bytes and `TDPBF16PS`, which multiplies
//! a tile of 16 rows by 16 pairs of bf16 inputs with a tile of 16 pairs by 16 features and adds
//! the products into a tile of 16 x 16 f32 sums: 8,192 multiply-adds per instruction. On an
//! Intel Xeon (family 6 model 167) one thread reached 2,567 GFLOP/s with it, against 195 with
//! AVX-512 FMA. The operands are those of the AVX512_BF16 path (`bf16_dot`): the activations
//! rounded to bf16 pairs row by row, and the weights in panels of 32 features whose 16 first
//! and 16 last features of each pair of inputs are each one tile row; both padded with zeros to
//! whole tile rows of 16 pairs. Each call holds a block of 32 rows by 32 features in four sum
//! tiles, started from the bias, and runs the whole of the inputs through them before storing
//! them once.
//!
//! Rust has no stable AMX intrinsics, hence the instructions written out in `asm!`; the tests
//! compare the product with its definition and with itself split across threads.

use std::arch::asm;
use std::ops::Range;
use std::sync::OnceLock;

use super::bf16::{PANEL, PANEL_PAIR, PackedBf16, TILE_PAIRS};

/// Rows of every tile.
const TILE_ROWS: usize = 16;

/// Rows per call: two tiles of activations against the same two tiles of weights.
const BLOCK_ROWS: usize = 2 * TILE_ROWS;

/// Whether this CPU and operating system run AMX's bf16 tiles; asked once per process. On
/// Linux a process must ask the kernel for the tiles' state before it uses them.
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| super::bf16_dot::supported() && cpu_has_amx_bf16() && tiles_granted())
}

/// CPUID leaf 7: AMX-TILE (EDX bit 24) and AMX-BF16 (EDX bit 22).
fn cpu_has_amx_bf16() -> bool {
    let leaf = std::arch::x86_64::__cpuid_count(7, 0);
    leaf.edx & (1 << 24) != 0 && leaf.edx & (1 << 22) != 0
}

#[cfg(target_os = "linux")]
fn tiles_granted() -> bool {
    /// `arch_prctl` request for permission to use an extended state component.
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    /// The state component of the tiles' data.
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: the request only changes which instructions this process may run.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

/// Elsewhere the path is left to the kernels that need no permission.
#[cfg(not(target_os = "linux"))]
fn tiles_granted() -> bool {
    false
}

/// The tiles' shapes, as `LDTILECFG` reads them: palette 1, every tile 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn full() -> Self {
        let mut config = [0u8; 64];
        config[0] = 1;
        for tile in 0..8 {
            config[16 + 2 * tile..18 + 2 * tile].copy_from_slice(&64u16.to_le_bytes());
            config[48 + tile] = TILE_ROWS as u8;
        }
        Self(config)
    }
}

/// `out = x Wᵀ + bias` for output rows `rows` and features `features`, with the activations
/// from `bf16_dot::round_rows` (rows of the weight's [`PackedBf16::pairs`]) and a weight packed
/// for the AMX path; as `bf16_dot::product_block`, on AMX tiles.
///
/// # Safety
/// [`available`] must hold; otherwise as for `bf16_dot::product_block`.
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
    debug_assert!(pairs.is_multiple_of(TILE_PAIRS) && features.start.is_multiple_of(PANEL));
    debug_assert!(x.len() >= rows.end * pairs && bias.len() >= features.end && features.end <= weight.features());
    let config = TileConfig::full();
    // SAFETY: the CPU has AMX and this process may use it (the caller's contract).
    unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly)) };
    // The last rows, fewer than a call takes, are copied into one or two tiles' rows padded
    // with zeros: EVA-giant's 257 rows at batch 1 leave one, which a block of 32 would compute
    // 31 extra rows for (11 % of the product), one of 16 15 (5.5 %).
    let whole_rows = rows.start + (rows.len() / BLOCK_ROWS) * BLOCK_ROWS;
    let tail_tiles = (rows.end - whole_rows).div_ceil(TILE_ROWS);
    let tail: Vec<u32> = if whole_rows < rows.end {
        let mut padded = vec![0u32; tail_tiles * TILE_ROWS * pairs];
        padded[..(rows.end - whole_rows) * pairs].copy_from_slice(&x[whole_rows * pairs..rows.end * pairs]);
        padded
    } else {
        Vec::new()
    };
    let panel_len = pairs * PANEL_PAIR;
    for feature in features.clone().step_by(PANEL) {
        let columns = PANEL.min(features.end - feature);
        let mut start = [0f32; PANEL];
        start[..columns].copy_from_slice(&bias[feature..feature + columns]);
        let weights = weight.bits()[(feature / PANEL) * panel_len..][..panel_len].as_ptr();
        let column_out = |row: usize| {
            // SAFETY: the row and the panel's first feature lie in the caller's block.
            unsafe { out.add((row - rows.start) * out_stride + (feature - features.start)) }
        };
        for row in (rows.start..whole_rows).step_by(BLOCK_ROWS) {
            let block = Block { x: x[row * pairs..].as_ptr(), weights, pairs, start: &start };
            if columns == PANEL {
                // SAFETY: 32 rows and 32 features of the output lie in the caller's block.
                unsafe { block.run(2, column_out(row), out_stride) };
            } else {
                let mut sums = [0f32; BLOCK_ROWS * PANEL];
                // SAFETY: `sums` holds a whole block.
                unsafe { block.run(2, sums.as_mut_ptr(), PANEL) };
                // SAFETY: as below, with all of the block's rows present.
                unsafe { copy_rows(&sums, BLOCK_ROWS, columns, column_out(row), out_stride) };
            }
        }
        if !tail.is_empty() {
            let block = Block { x: tail.as_ptr(), weights, pairs, start: &start };
            let mut sums = [0f32; BLOCK_ROWS * PANEL];
            // SAFETY: `tail` holds `tail_tiles` tiles of rows; `sums` a whole block of sums.
            unsafe { block.run(tail_tiles, sums.as_mut_ptr(), PANEL) };
            // SAFETY: the rows from `whole_rows` and the panel's present features lie in the
            // caller's block.
            unsafe { copy_rows(&sums, rows.end - whole_rows, columns, column_out(whole_rows), out_stride) };
        }
    }
    // SAFETY: releases the tiles' state this function configured.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// Copies the first `columns` of the first `rows` rows of a block of sums (rows [`PANEL`] apart)
/// to `out`, whose rows are `out_stride` apart.
///
/// # Safety
/// Those rows and columns of `out` must be in bounds and written by no one else.
unsafe fn copy_rows(sums: &[f32], rows: usize, columns: usize, out: *mut f32, out_stride: usize) {
    for (row, sums) in sums.chunks_exact(PANEL).take(rows).enumerate() {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(sums.as_ptr(), out.add(row * out_stride), columns) };
    }
}

/// One call's operands: up to 32 rows of activations from `x`, rows `pairs` pairs apart, and a
/// panel's weights, from input 0; `start` is the row of sums every row starts from.
struct Block<'a> {
    x: *const u32,
    weights: *const u16,
    pairs: usize,
    start: &'a [f32; PANEL],
}

impl Block<'_> {
    /// Writes the sums of the block's first `row_tiles` tiles of rows (one or two: 16 or 32
    /// rows) by 32 features to `out`, whose rows are `out_stride` apart.
    ///
    /// # Safety
    /// The tiles must be configured ([`TileConfig::full`]); `x` must hold that many rows of
    /// `pairs` pairs, the weights a whole panel, and `out` that many rows of 32 writable values.
    unsafe fn run(&self, row_tiles: usize, out: *mut f32, out_stride: usize) {
        debug_assert!(row_tiles == 1 || row_tiles == 2);
        let x_stride = self.pairs * size_of::<u32>();
        let weight_stride = PANEL_PAIR * size_of::<u16>();
        let start = self.start.as_ptr();
        // Tiles 0-3 hold the sums (rows 0-15 and 16-31, features 0-15 and 16-31), 4 and 5 the
        // two halves of the rows, 6 and 7 the two halves of the panel. A stride of zero loads
        // the bias into every row.
        // SAFETY: the loads read the bias's 32 values.
        unsafe {
            asm!(
                "tileloadd tmm0, [{low} + {zero}*1]",
                "tileloadd tmm1, [{high} + {zero}*1]",
                "tileloadd tmm2, [{low} + {zero}*1]",
                "tileloadd tmm3, [{high} + {zero}*1]",
                low = in(reg) start,
                high = in(reg) start.add(16),
                zero = in(reg) 0usize,
                options(nostack, readonly),
            );
        }
        // One step per tile row of input pairs.
        for pair in (0..self.pairs).step_by(TILE_PAIRS) {
            // SAFETY: the rows hold `pairs` pairs and the panel `pairs` pairs of 32 features.
            unsafe {
                let rows = self.x.add(pair);
                let weights = self.weights.add(pair * PANEL_PAIR);
                if row_tiles == 1 {
                    asm!(
                        "tileloadd tmm4, [{rows} + {x_stride}*1]",
                        "tileloadd tmm6, [{weights} + {w_stride}*1]",
                        "tileloadd tmm7, [{weights} + {w_stride}*1 + 64]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        rows = in(reg) rows,
                        weights = in(reg) weights,
                        x_stride = in(reg) x_stride,
                        w_stride = in(reg) weight_stride,
                        options(nostack, readonly),
                    );
                    continue;
                }
                asm!(
                    "tileloadd tmm4, [{rows} + {x_stride}*1]",
                    "tileloadd tmm5, [{lower_rows} + {x_stride}*1]",
                    "tileloadd tmm6, [{weights} + {w_stride}*1]",
                    "tileloadd tmm7, [{weights} + {w_stride}*1 + 64]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    rows = in(reg) rows,
                    lower_rows = in(reg) rows.add(TILE_ROWS * self.pairs),
                    weights = in(reg) weights,
                    x_stride = in(reg) x_stride,
                    w_stride = in(reg) weight_stride,
                    options(nostack, readonly),
                );
            }
        }
        let out_bytes = out_stride * size_of::<f32>();
        // SAFETY: the caller's contract.
        unsafe {
            asm!(
                "tilestored [{upper} + {stride}*1], tmm0",
                "tilestored [{upper} + {stride}*1 + 64], tmm1",
                upper = in(reg) out,
                stride = in(reg) out_bytes,
                options(nostack),
            );
        }
        if row_tiles == 1 {
            return;
        }
        // SAFETY: the caller's contract.
        unsafe {
            asm!(
                "tilestored [{lower} + {stride}*1], tmm2",
                "tilestored [{lower} + {stride}*1 + 64], tmm3",
                lower = in(reg) out.add(TILE_ROWS * out_stride),
                stride = in(reg) out_bytes,
                options(nostack),
            );
        }
    }
}

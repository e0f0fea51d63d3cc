//! evatag's own f32 matrix product behind linear layers on x86-64 with AVX-512 or AVX2+FMA:
//! weights arranged in panels once, when the model loads, and tile kernels that keep a block of
//! the output in registers.
//!
//! A [`Panels`] holds a `[features, inputs]` weight as panels of [`PANEL`] features, each laid
//! out input by input, so that a kernel reads one panel's weights for an input as one AVX-512
//! vector or two AVX2 ones, and a pass over the inputs as one run of memory. Per product, the
//! activations are arranged the same way once ([`RowTiles`]: tiles of [`Isa::tile_rows`] rows,
//! input by input). The kernel for a tile and its panels (two for AVX-512, one for AVX2) then
//! holds the tile's sums in registers, starting from the bias on the first pass so that the
//! output is only ever written, and, for each input, multiplies the panels' vectors by each
//! row's broadcast value. The inputs are taken in passes whose length comes from the L2 and
//! L3 caches the CPU reports: the panels' share of a pass stays in L2 while every tile of rows
//! runs against it, and the rows' slice of it in L3 while every panel runs against that.
//!
//! Written here rather than taken from the `gemm` crate because its kernels pack both operands
//! on every call and reach less of the machine's peak at EVA's shapes (measurements in
//! `bench/README.md`, "Kernel notes"). The scalar level keeps the `gemm` crate's kernels, run on
//! the panels in place.

use std::arch::x86_64::{
    __m256, __m512, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm512_fmadd_ps,
    _mm512_loadu_ps, _mm512_set1_ps, _mm512_storeu_ps,
};
use std::mem::MaybeUninit;

use super::gemm::{self, Operand};
use super::ops;
use super::simd::{SimdLevel, note_path};
use super::{interleave_rows, written_vec};

/// Output features per panel: one AVX-512 vector, two AVX2 ones. Panels of 16 rather than 32
/// features (the AVX-512 kernel's width) keep the weights an AVX2 kernel call reads in one run of
/// memory instead of every other cache line, and give the AVX-512 kernel two runs: on Zen 4,
/// two threads, 1,028 rows (batch 4), fc2's product (6,144 inputs) went from 173-186 to 190-206
/// GFLOP/s with AVX-512 and from 159-178 to 175-197 with AVX2 (three runs, passes of 512 to 2,048
/// inputs, each the best of five alternating rounds), the other products from 3 % slower to 14 %
/// faster.
pub(crate) const PANEL: usize = 16;

/// The instruction set a tile kernel is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// 512-bit vectors: tiles of 12 rows by two panels (24 sums in registers).
    Avx512,
    /// 256-bit vectors with FMA: tiles of 6 rows by one panel (12 sums in registers).
    Avx2,
}

impl Isa {
    /// The kernels for this thread's SIMD level; `None` at the scalar level.
    pub(crate) fn detect() -> Option<Self> {
        match SimdLevel::detect() {
            SimdLevel::Avx512 => Some(Self::Avx512),
            SimdLevel::Avx2 => Some(Self::Avx2),
            _ => None,
        }
    }

    /// Whether this CPU runs the AVX2 kernels, and so (AVX-512 CPUs have AVX2) some kernel here.
    pub(crate) fn supported() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    /// Output rows per tile.
    pub(crate) const fn tile_rows(self) -> usize {
        match self {
            Self::Avx512 => 12,
            Self::Avx2 => 6,
        }
    }

    /// Panels per kernel call.
    const fn panels_per_call(self) -> usize {
        match self {
            Self::Avx512 => 2,
            Self::Avx2 => 1,
        }
    }

    /// Output features per kernel call.
    const fn columns(self) -> usize {
        self.panels_per_call() * PANEL
    }

    /// Inputs per pass over `rows` rows, from the caches the CPU reports (see [`passes_for`]).
    fn inputs_per_pass(rows: usize) -> usize {
        #[cfg(test)]
        if let Some(length) = PASS_FOR_TESTS.get() {
            return length;
        }
        let info = &gemm_common::cache::CACHE_INFO;
        passes_for(info[1].cache_bytes, info[2].cache_bytes, rows)
    }
}

/// Inputs per pass over `rows` rows with `l2` and `l3` bytes of cache. Two bounds: the share of
/// the weights one AVX-512 kernel call reads (two panels; an AVX2 call reads half of it) fills a
/// quarter of L2, so that it stays there while every tile of rows runs against it; and the rows'
/// slice of the pass fills an eighth of L3, so that it stays there while every panel runs
/// against it. Longer passes load and store each tile's sums fewer times: never fewer than 256
/// inputs, so that a CPU reporting no L3 still gets passes that run near full speed (passes of
/// 128 reached 84 % of the peak where longer ones reached 89-91 %). On Zen 4 (1 MiB of L2 per
/// core, 32 MiB of L3), two threads, EVA-giant's products: at 257 rows (batch 1) passes of 2,048
/// and 1,024 inputs measured within 5 % of each other; at 1,028 rows (batch 4, where 2,048
/// inputs make an 8 MiB slice) fc2's product (6,144 inputs) ran at 185 GFLOP/s (AVX-512) and
/// 169 (AVX2) with passes of 2,048, and at 208 and 187 with 1,024.
fn passes_for(l2: usize, l3: usize, rows: usize) -> usize {
    let (l2, l3) = (l2.clamp(128 << 10, 64 << 20), l3.clamp(1 << 20, 1 << 30));
    let by_weights = l2 / 4 / (2 * PANEL * size_of::<f32>());
    let by_rows = l3 / 8 / (rows.max(1) * size_of::<f32>());
    (by_weights.min(by_rows) / 64 * 64).max(256)
}

#[cfg(test)]
thread_local! {
    /// A pass length that [`Isa::inputs_per_pass`] gives on this thread instead of the caches'
    /// (set by [`with_pass_length`]).
    static PASS_FOR_TESTS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with passes of `length` inputs on this thread (`None`: the caches' own), so that
/// tests with few inputs still take several passes.
#[cfg(test)]
fn with_pass_length<R>(length: Option<usize>, f: impl FnOnce() -> R) -> R {
    PASS_FOR_TESTS.set(length);
    let result = f();
    PASS_FOR_TESTS.set(None);
    result
}

/// 64 bytes of f32, so that the arranged operands start on a cache line and every vector load
/// from them is aligned.
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub(crate) struct Line([f32; 16]);

/// `len` values on whole cache lines, written by `fill` (see `written_vec`); the last line's
/// slots past `len` are zero.
///
/// # Safety
/// `fill` must write every element of the slice it is given.
unsafe fn written_lines(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<Line> {
    let fill_lines = |lines: &mut [MaybeUninit<Line>]| {
        // SAFETY: a `Line` is 16 f32 with no padding (`repr(C)`, 64 bytes).
        let values = unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast(), lines.len() * 16) };
        let (used, tail) = values.split_at_mut(len);
        fill(used);
        tail.fill(MaybeUninit::new(0.0));
    };
    // SAFETY: `fill` writes the first `len` values, by the caller's contract, and the tail is
    // written above.
    unsafe { written_vec(len.div_ceil(16), fill_lines) }
}

/// The f32 elements of `lines`.
fn values(lines: &[Line]) -> &[f32] {
    bytemuck::cast_slice(lines)
}

/// The f32 elements of `lines`, writable.
fn values_mut(lines: &mut [Line]) -> &mut [f32] {
    bytemuck::cast_slice_mut(lines)
}

/// A weight in the panel arrangement, as the kernels read it: one panel's share of a pass at a
/// time, in f32.
pub(crate) trait PanelSource: Sync {
    /// Output features (rows of the weight).
    fn features(&self) -> usize;

    /// Inputs (columns of the weight).
    fn inputs(&self) -> usize;

    /// Panel `panel`'s weights for inputs `first..first + width`, input by input ([`PANEL`]
    /// values each), either held already or written to `scratch`.
    fn panel<'a>(&'a self, panel: usize, first: usize, width: usize, scratch: &'a mut Vec<Line>) -> &'a [f32];

    /// The memory that holds panel `panel`'s weights for inputs `first..first + width`, as
    /// stored, so that it can be fetched into the cache ahead of [`PanelSource::panel`].
    fn stored(&self, panel: usize, first: usize, width: usize) -> &[u8];
}

/// `scratch` resized to at least `len` elements, as that many f32.
pub(crate) fn scratch_values(scratch: &mut Vec<Line>, len: usize) -> &mut [f32] {
    if scratch.len() * 16 < len {
        scratch.resize(len.div_ceil(16), Line::default());
    }
    &mut values_mut(scratch)[..len]
}

/// A `[features, inputs]` weight arranged in panels of [`PANEL`] features: element
/// `(feature, input)` at `((feature / PANEL) * inputs + input) * PANEL + feature % PANEL`,
/// zero past the last feature.
pub(crate) struct Panels {
    features: usize,
    inputs: usize,
    lines: Vec<Line>,
}

impl std::fmt::Debug for Panels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Panels").field("features", &self.features).field("inputs", &self.inputs).finish_non_exhaustive()
    }
}

impl Panels {
    /// Arranges a row-major `[features, inputs]` weight.
    pub(crate) fn new(weight: &[f32], features: usize, inputs: usize) -> Self {
        assert_eq!(weight.len(), features * inputs, "a {features}x{inputs} weight");
        let len = features.div_ceil(PANEL) * inputs * PANEL;
        // SAFETY: `interleave_rows` writes every slot of whole groups of rows.
        let lines =
            unsafe { written_lines(len, |slots| interleave_rows(weight, (features, inputs), PANEL, slots, |w| w)) };
        Self { features, inputs, lines }
    }

    /// Panel `panel`'s weights for inputs `first..first + width`.
    fn share(&self, panel: usize, first: usize, width: usize) -> &[f32] {
        &values(&self.lines)[(panel * self.inputs + first) * PANEL..][..width * PANEL]
    }

    /// The weight back as a row-major `[features, inputs]` matrix.
    pub(crate) fn to_rows(&self) -> Vec<f32> {
        let all = values(&self.lines);
        let mut rows = vec![0f32; self.features * self.inputs];
        for (feature, row) in rows.chunks_exact_mut(self.inputs.max(1)).enumerate() {
            let panel = &all[(feature / PANEL) * self.inputs * PANEL..];
            for (input, w) in row.iter_mut().enumerate() {
                *w = panel[input * PANEL + feature % PANEL];
            }
        }
        rows
    }
}

impl PanelSource for Panels {
    fn features(&self) -> usize {
        self.features
    }

    fn inputs(&self) -> usize {
        self.inputs
    }

    fn panel<'a>(&'a self, panel: usize, first: usize, width: usize, _: &'a mut Vec<Line>) -> &'a [f32] {
        self.share(panel, first, width)
    }

    fn stored(&self, panel: usize, first: usize, width: usize) -> &[u8] {
        bytemuck::cast_slice(self.share(panel, first, width))
    }
}

/// Rows of activations arranged in tiles of an ISA's tile height: element `(row, input)` at
/// `((row / tile) * inputs + input) * tile + row % tile`, zero past the last row.
pub(crate) struct RowTiles {
    isa: Isa,
    rows: usize,
    inputs: usize,
    lines: Vec<Line>,
}

impl RowTiles {
    /// Arranges a row-major `[rows, inputs]` matrix for `isa`'s kernels.
    pub(crate) fn new(isa: Isa, x: &[f32], rows: usize, inputs: usize) -> Self {
        debug_assert_eq!(x.len(), rows * inputs);
        let tile = isa.tile_rows();
        let len = rows.div_ceil(tile) * tile * inputs;
        // SAFETY: `interleave_rows` writes every slot of whole groups of rows.
        let lines = unsafe { written_lines(len, |slots| interleave_rows(x, (rows, inputs), tile, slots, |v| v)) };
        Self { isa, rows, inputs, lines }
    }

    /// Tile `tile`'s elements from input `first`.
    fn tile_from(&self, tile: usize, first: usize) -> &[f32] {
        let height = self.isa.tile_rows();
        &values(&self.lines)[(tile * self.inputs + first) * height..]
    }
}

/// Writes `x · wᵀ + bias`, followed by the exact GELU where `gelu`, for `rows` rows of `x` from
/// `first_row` (a multiple of the tile height) and the features of panels `panels`; `bias` holds
/// one value per feature of `w`, and `out` points at the block's first element, in a row-major
/// output whose rows are `out_stride` apart. The block need not have been written before: the
/// kernels start the first pass from the bias in registers instead of reading the output.
///
/// The GELU is applied to each tile as its last pass writes it, while the tile is still in L1:
/// applied to the whole block afterwards, it read the block back from L3 (the rows streamed
/// through L2 meanwhile had pushed it out), and took 3.2 % of EVA-giant's time at batch 1 on an
/// Intel Xeon (family 6 model 167, two threads, `perf`); applied to each tile, 1.5 %.
///
/// # Safety
/// The CPU must have the features of `x`'s ISA; the block of `out` (those rows, and the
/// panels' features that exist) must be in bounds and written by no one else during the call.
#[allow(
    clippy::too_many_arguments,
    reason = "a block's rows, panels and place in the output, as its callers hold them, and the GELU"
)]
pub(crate) unsafe fn write_product(
    x: &RowTiles,
    w: &impl PanelSource,
    bias: &[f32],
    first_row: usize,
    rows: usize,
    panels: std::ops::Range<usize>,
    out: *mut f32,
    out_stride: usize,
    gelu: bool,
) {
    let isa = x.isa;
    let height = isa.tile_rows();
    debug_assert!(first_row.is_multiple_of(height) && first_row + rows <= x.rows && x.inputs == w.inputs());
    debug_assert_eq!(bias.len(), w.features());
    note_path(match isa {
        Isa::Avx512 => SimdLevel::Avx512,
        Isa::Avx2 => SimdLevel::Avx2,
    });
    let (inputs, features) = (w.inputs(), w.features());
    let per_pass = Isa::inputs_per_pass(rows);
    let width_from = |first_input: usize| per_pass.min(inputs - first_input);
    // The panels of one kernel call over one pass at a time, with the next step's weights
    // fetched into L2 while this one runs, spread over its tiles (see `L2Fetch`).
    let calls = panels.clone().step_by(isa.panels_per_call());
    // Without inputs, one step of none still writes the bias.
    let steps: Vec<(usize, usize)> = (0..inputs.max(1))
        .step_by(per_pass)
        .flat_map(|first_input| calls.clone().map(move |p| (first_input, p)))
        .collect();
    // After the block's last step, the first of the block of features after it, which the
    // same thread usually takes next (the threads split the blocks into runs).
    let all_panels = features.div_ceil(PANEL);
    let after_block = (panels.end < all_panels).then_some((0, panels.end));
    let stored_call = |(first, panel): (usize, usize)| {
        let width = width_from(first);
        let second = (isa.panels_per_call() == 2 && panel + 1 < all_panels).then(|| w.stored(panel + 1, first, width));
        [w.stored(panel, first, width), second.unwrap_or_default()]
    };
    let tiles = rows.div_ceil(height);
    let mut scratch = [Vec::new(), Vec::new()];
    for (step, &(first_input, first_panel)) in steps.iter().enumerate() {
        let width = width_from(first_input);
        // The call's panels, within the block; where the block holds only one (an odd count),
        // the kernel reads it twice and the second copy's columns are dropped.
        let call_panels = isa.panels_per_call().min(panels.end - first_panel);
        let first_feature = first_panel * PANEL;
        let present = (call_panels * PANEL).min(features - first_feature);
        let start = (first_input == 0).then(|| &bias[first_feature..first_feature + present]);
        let [low, high] = &mut scratch;
        let low = w.panel(first_panel, first_input, width, low);
        let high = if call_panels == 2 { w.panel(first_panel + 1, first_input, width, high) } else { low };
        let upcoming = steps.get(step + 1).copied().or(after_block).map(stored_call).unwrap_or_default();
        for (tile_index, first) in (0..rows).step_by(height).enumerate() {
            let tile = Tile {
                // SAFETY: this tile of the output lies in the caller's block.
                out: unsafe { out.add(first * out_stride + first_feature - panels.start * PANEL) },
                stride: out_stride,
                rows: height.min(rows - first),
                columns: present,
            };
            let xs = x.tile_from((first_row + first) / height, first_input);
            let fetch = L2Fetch::share(upcoming, (tile_index, tiles), width).unwrap_or(L2Fetch::nothing(low, width));
            // SAFETY: forwarded from this function's contract.
            unsafe { run_tile(isa, xs, [low, high], width, start, fetch, tile) };
            if gelu && first_input + width == inputs {
                // SAFETY: the tile has just been written, in the caller's block.
                unsafe { tile.apply_gelu() };
            }
        }
    }
}

/// Memory a kernel call asks the L2 cache for as it goes, one cache line from `start` every
/// `every` inputs: its share of the next step's weights. The weights come from memory the first
/// time a product meets them, and without this the first tile of each step read its share of
/// them at the speed of memory. On an Intel Xeon (family 6 model 167, two threads, EVA-giant,
/// alternating runs of `evatag bench`): batch 1 2.049, 1.995, 2.025, 2.227 and 2.141 s/image
/// against 2.137, 2.183, 2.021, 2.316 and 2.145; batch 4 within the host's noise (1.879 to
/// 1.962 against 1.894 to 1.970). Asked for all at once before each tile (as the AVX2 kernels
/// did before), the lines filled the queue of misses and held up the kernel's own loads; asked
/// for once per input whatever the share, each line was asked for dozens of times at batch 4,
/// which lost 5 %.
#[derive(Clone, Copy)]
struct L2Fetch {
    start: *const u8,
    every: usize,
}

impl L2Fetch {
    /// Tile `tile` of `tiles`' share of `upcoming` (two runs of memory, one after the other), over
    /// a call of `width` inputs; `None` where there is nothing to ask for.
    fn share(upcoming: [&[u8]; 2], (tile, tiles): (usize, usize), width: usize) -> Option<Self> {
        let [first, second] = upcoming;
        let share = (first.len() + second.len()).div_ceil(tiles.max(1));
        let offset = tile * share;
        let start = match offset.checked_sub(first.len()) {
            None => first.get(offset)?,
            Some(offset) => second.get(offset)?,
        };
        let lines = share.div_ceil(64);
        Some(Self { start: std::ptr::from_ref(start), every: (width / lines).max(1) })
    }

    /// Asks for nothing new: once, the address of `current`, which the call reads anyway.
    fn nothing(current: &[f32], width: usize) -> Self {
        Self { start: current.as_ptr().cast(), every: width.max(1) }
    }

    /// Asks L2 for line `line`.
    #[inline(always)]
    fn fetch(self, line: usize) {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        // SAFETY: a prefetch only hints the cache; it never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(self.start.wrapping_add(line * 64).cast()) };
    }
}

/// `out += x · wᵀ` on the `gemm` crate's kernels of this thread's level, for the scalar level:
/// `x` row-major `[rows, inputs]`, the features of panels `panels`, `out` as for
/// [`write_product`].
///
/// # Safety
/// As for [`write_product`], with `x` holding `rows` rows and the block of `out` written.
pub(crate) unsafe fn add_product_gemm(
    x: &[f32],
    w: &impl PanelSource,
    rows: usize,
    panels: std::ops::Range<usize>,
    out: *mut f32,
    out_stride: usize,
) {
    let inputs = w.inputs();
    let mut scratch = Vec::new();
    for panel in panels.clone() {
        let features = PANEL.min(w.features() - panel * PANEL);
        // SAFETY: the panel holds `inputs` rows of PANEL features; the output block is the
        // caller's.
        unsafe {
            gemm::sgemm(
                rows,
                features,
                inputs,
                1.0,
                Operand::rows(x.as_ptr(), inputs),
                Operand::rows(w.panel(panel, 0, inputs, &mut scratch).as_ptr(), PANEL),
                1.0,
                out.add((panel - panels.start) * PANEL),
                out_stride,
            )
        };
    }
}

/// A tile kernel: `out = start + x · wᵀ` for `ROWS` rows of a tile of `x` (`xs`, input by input)
/// and the features of one or two panels (`[low, high]`; the AVX2 kernels read `low` only), over
/// `width` inputs, with `out`'s rows `stride` apart, asking L2 for `fetch` as it goes. `start`
/// is one row of sums every row starts from, or null to start from `out` itself. It loads (from
/// `out` or `start`) and stores [`Isa::columns`] columns of each row, 32 for AVX-512 even where
/// `high` repeats `low`.
type Kernel = unsafe fn(
    xs: *const f32,
    panels: [*const f32; 2],
    width: usize,
    start: *const f32,
    fetch: L2Fetch,
    out: *mut f32,
    stride: usize,
);

impl Isa {
    /// The kernel for a tile of `rows` rows, from one to the tile height: a partial tile at
    /// the end of the rows costs only its own rows (EVA-giant's 257 rows at batch 1 leave 5 in
    /// the last AVX-512 tile, which a whole tile would compute 12 of: 2.7 % more work).
    fn kernel(self, rows: usize) -> Kernel {
        const AVX512: [Kernel; Isa::Avx512.tile_rows()] = [
            tile_avx512::<1>,
            tile_avx512::<2>,
            tile_avx512::<3>,
            tile_avx512::<4>,
            tile_avx512::<5>,
            tile_avx512::<6>,
            tile_avx512::<7>,
            tile_avx512::<8>,
            tile_avx512::<9>,
            tile_avx512::<10>,
            tile_avx512::<11>,
            tile_avx512::<12>,
        ];
        const AVX2: [Kernel; Isa::Avx2.tile_rows()] =
            [tile_avx2::<1>, tile_avx2::<2>, tile_avx2::<3>, tile_avx2::<4>, tile_avx2::<5>, tile_avx2::<6>];
        match self {
            Self::Avx512 => AVX512[rows - 1],
            Self::Avx2 => AVX2[rows - 1],
        }
    }
}

/// Where a kernel's sums go: `rows` rows of `columns` columns from `out`, rows `stride` apart.
#[derive(Clone, Copy)]
struct Tile {
    out: *mut f32,
    stride: usize,
    rows: usize,
    columns: usize,
}

impl Tile {
    /// Replaces every value of the tile by its exact GELU, in one call over its rows (a call per
    /// row cost 0.9 % of EVA-giant's time at batch 1 in choosing the vector level).
    ///
    /// # Safety
    /// The tile's rows and columns must be in bounds, written, and written by no one else
    /// during the call.
    unsafe fn apply_gelu(self) {
        let mut rows: [&mut [f32]; MAX_TILE_ROWS] = std::array::from_fn(|r| {
            if r < self.rows {
                // SAFETY: row `r` of the tile is in bounds, written and the caller's alone.
                unsafe { std::slice::from_raw_parts_mut(self.out.add(r * self.stride), self.columns) }
            } else {
                &mut []
            }
        });
        ops::gelu_rows_in_place(&mut rows);
    }
}

/// The most rows any kernel's tile has.
const MAX_TILE_ROWS: usize = Isa::Avx512.tile_rows();

/// The most columns any kernel's tile has.
const MAX_TILE_COLUMNS: usize = Isa::Avx512.columns();

/// The largest tile any kernel holds, in elements.
const MAX_TILE: usize = MAX_TILE_ROWS * MAX_TILE_COLUMNS;

/// Writes one tile of products onto the output, or onto `start` (one value per column of the
/// tile) where given; a tile with fewer columns than the kernel's goes through a whole-width one
/// on the stack.
///
/// # Safety
/// As for [`write_product`]; `xs` holds `width` inputs of a whole tile, and each of `panels`
/// `width` inputs of a panel (the AVX2 kernels read the first only); without `start`, the tile
/// of the output has been written.
unsafe fn run_tile(
    isa: Isa,
    xs: &[f32],
    panels: [&[f32]; 2],
    width: usize,
    start: Option<&[f32]>,
    fetch: L2Fetch,
    tile: Tile,
) {
    let (height, columns) = (isa.tile_rows(), isa.columns());
    debug_assert!(xs.len() >= width * height && panels.iter().all(|p| p.len() >= width * PANEL));
    debug_assert!((1..=height).contains(&tile.rows));
    debug_assert!(start.is_none_or(|start| start.len() == tile.columns));
    let kernel = isa.kernel(tile.rows);
    if tile.columns == columns {
        let start = start.map_or(std::ptr::null(), <[f32]>::as_ptr);
        // SAFETY: the CPU has the ISA's features; the operands hold `width` inputs; the tile's
        // rows and columns are in bounds by the caller's contract, and so is `start`.
        unsafe { kernel(xs.as_ptr(), panels.map(<[f32]>::as_ptr), width, start, fetch, tile.out, tile.stride) };
        return;
    }
    let (mut whole, mut whole_start) = ([0f32; MAX_TILE], [0f32; MAX_TILE_COLUMNS]);
    let out_rows = |r: usize| tile.out.wrapping_add(r * tile.stride);
    let start = match start {
        Some(start) => {
            whole_start[..tile.columns].copy_from_slice(start);
            whole_start.as_ptr()
        }
        None => {
            for (r, row) in whole.chunks_exact_mut(columns).take(tile.rows).enumerate() {
                // SAFETY: the partial tile's rows and columns are in bounds and written, by the
                // caller's contract.
                unsafe { std::ptr::copy_nonoverlapping(out_rows(r), row.as_mut_ptr(), tile.columns) };
            }
            std::ptr::null()
        }
    };
    // SAFETY: as above, with `whole` holding every row and column the kernel writes, and
    // `whole_start` every column it reads.
    unsafe { kernel(xs.as_ptr(), panels.map(<[f32]>::as_ptr), width, start, fetch, whole.as_mut_ptr(), columns) };
    for (r, row) in whole.chunks_exact(columns).take(tile.rows).enumerate() {
        // SAFETY: the partial tile's rows and columns are in bounds by the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), out_rows(r), tile.columns) };
    }
}

/// Inputs ahead of the one a tile kernel is at whose weights it asks the L1 cache for.
const WEIGHTS_AHEAD: usize = 32;

/// Inputs ahead of the one a tile kernel is at whose rows it asks the L1 cache for. The rows
/// come from further away than the weights (a block's weights stay in L2 while every tile runs
/// against them; each tile's rows are read again for every kernel call, one panel or two, from
/// L3 or memory once they outgrow L2), so they are asked for further ahead. On an Intel Xeon (family 6 model 167), one thread,
/// fc2's product alone at 1,028 rows (6,144 inputs, 25 MB of rows) went from 117-125 GFLOP/s
/// with 32 inputs to 144-146 with 96 to 192, the other products within 3 %. In the whole model
/// at batch 4 (`evatag bench`, alternating pairs in both orders) AVX2 on two threads went from
/// 3.49-3.64 s/image to 3.22-3.27, and AVX2 on one from 7.03-7.06 to 6.37-6.49; AVX-512 stayed
/// within the host's noise.
const ROWS_AHEAD: usize = 128;

/// Asks the L1 cache for the operands of input `input + ahead` of each stream, given as its
/// start, the values it holds per input and `ahead`. The hardware's own prefetching fills L1
/// from L2 too slowly for these kernels on some CPUs: on an Intel Xeon (family 6 model 167, 2 MiB
/// of L2, one thread, EVA-giant's products at 1,028 and 257 rows) fetching both streams 32 inputs
/// ahead took the AVX-512 kernel from 130-141 GFLOP/s to 148-155 (fc2's product from 84-115 to
/// 159) and the AVX2 kernel from 81-84 to 85-90 (fc2's from 56-68 to 79-81), while alone with its
/// operands in L1 the AVX2 kernel lost 6 %. Addresses past a stream's end are only hinted, never
/// read.
#[inline(always)]
fn fetch_ahead<const STREAMS: usize>(input: usize, streams: [(*const f32, usize, usize); STREAMS]) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    for (start, per_input, ahead) in streams {
        // SAFETY: a prefetch only hints the cache; it never faults, even outside the stream.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add((input + ahead) * per_input).cast()) };
    }
}

/// `ROWS` rows (of a tile of 12) by two panels' 32 features: up to 24 sums of 16 lanes; each
/// panel's weights of an input are [`PANEL`] apart.
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512<const ROWS: usize>(
    xs: *const f32,
    [low, high]: [*const f32; 2],
    width: usize,
    start: *const f32,
    fetch: L2Fetch,
    out: *mut f32,
    stride: usize,
) {
    const HEIGHT: usize = Isa::Avx512.tile_rows();
    // SAFETY: the caller's contract (`run_tile`) covers every load and store.
    unsafe {
        let mut sums: [[__m512; 2]; ROWS] = if start.is_null() {
            std::array::from_fn(|r| std::array::from_fn(|h| _mm512_loadu_ps(out.add(r * stride + 16 * h))))
        } else {
            [[_mm512_loadu_ps(start), _mm512_loadu_ps(start.add(16))]; ROWS]
        };
        for (line, first) in (0..width).step_by(fetch.every).enumerate() {
            fetch.fetch(line);
            for input in first..(first + fetch.every).min(width) {
                fetch_ahead(
                    input,
                    [(xs, HEIGHT, ROWS_AHEAD), (low, PANEL, WEIGHTS_AHEAD), (high, PANEL, WEIGHTS_AHEAD)],
                );
                let (low, high) = (_mm512_loadu_ps(low.add(input * PANEL)), _mm512_loadu_ps(high.add(input * PANEL)));
                let x = xs.add(input * HEIGHT);
                for (r, sums) in sums.iter_mut().enumerate() {
                    let v = _mm512_set1_ps(x.add(r).read());
                    sums[0] = _mm512_fmadd_ps(v, low, sums[0]);
                    sums[1] = _mm512_fmadd_ps(v, high, sums[1]);
                }
            }
        }
        for (r, sums) in sums.iter().enumerate() {
            _mm512_storeu_ps(out.add(r * stride), sums[0]);
            _mm512_storeu_ps(out.add(r * stride + 16), sums[1]);
        }
    }
}

/// `ROWS` rows (of a tile of 6) by one panel's 16 features: up to 12 sums of 8 lanes; the
/// weights of an input are [`PANEL`] apart (`high` is not read).
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const ROWS: usize>(
    xs: *const f32,
    [weights, _]: [*const f32; 2],
    width: usize,
    start: *const f32,
    fetch: L2Fetch,
    out: *mut f32,
    stride: usize,
) {
    const HEIGHT: usize = Isa::Avx2.tile_rows();
    // SAFETY: the caller's contract (`run_tile`) covers every load and store.
    unsafe {
        let mut sums: [[__m256; 2]; ROWS] = if start.is_null() {
            std::array::from_fn(|r| std::array::from_fn(|h| _mm256_loadu_ps(out.add(r * stride + 8 * h))))
        } else {
            [[_mm256_loadu_ps(start), _mm256_loadu_ps(start.add(8))]; ROWS]
        };
        for (line, first) in (0..width).step_by(fetch.every).enumerate() {
            fetch.fetch(line);
            for input in first..(first + fetch.every).min(width) {
                fetch_ahead(input, [(xs, HEIGHT, ROWS_AHEAD), (weights, PANEL, WEIGHTS_AHEAD)]);
                let w = weights.add(input * PANEL);
                let (low, high) = (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8)));
                let x = xs.add(input * HEIGHT);
                for (r, sums) in sums.iter_mut().enumerate() {
                    let v = _mm256_broadcast_ss(&*x.add(r));
                    sums[0] = _mm256_fmadd_ps(v, low, sums[0]);
                    sums[1] = _mm256_fmadd_ps(v, high, sums[1]);
                }
            }
        }
        for (r, sums) in sums.iter().enumerate() {
            _mm256_storeu_ps(out.add(r * stride), sums[0]);
            _mm256_storeu_ps(out.add(r * stride + 8), sums[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu::simd;

    /// `x · wᵀ` by definition, in f64.
    fn reference(rows: usize, features: usize, inputs: usize, x: &[f32], w: &[f32]) -> Vec<f64> {
        let mut out = vec![0f64; rows * features];
        for i in 0..rows {
            for j in 0..features {
                out[i * features + j] =
                    (0..inputs).map(|p| f64::from(x[i * inputs + p]) * f64::from(w[j * inputs + p])).sum();
            }
        }
        out
    }

    #[test]
    fn passes_fit_the_caches_and_shorten_as_rows_grow() {
        const MIB: usize = 1 << 20;
        // Two panels' share in a quarter of L2: 1 MiB / 4 / 128 bytes per input.
        assert_eq!(passes_for(MIB, 32 * MIB, 257), 2048);
        assert_eq!(passes_for(MIB / 2, 32 * MIB, 257), 1024);
        // The rows' slice in an eighth of L3: 4 MiB / (1,028 rows x 4 bytes) = 1,020, to 960.
        assert_eq!(passes_for(MIB, 32 * MIB, 1028), 960);
        // No L3 reported, or huge products: never below 256 inputs.
        assert_eq!(passes_for(MIB, 0, 1028), 256);
        assert_eq!(passes_for(128 << 10, MIB, 1 << 20), 256);
    }

    #[test]
    fn panels_hold_every_weight_and_give_it_back() {
        for (features, inputs) in [(1, 1), (33, 7), (64, 20), (70, 3), (33, 600)] {
            let weight: Vec<f32> = (0..features * inputs).map(|i| i as f32 * 0.5 - 3.0).collect();
            let panels = Panels::new(&weight, features, inputs);
            assert_eq!(panels.to_rows(), weight, "{features}x{inputs}");
            // What is fetched ahead is what the kernels then read.
            let (first, width) = (inputs / 2, inputs - inputs / 2);
            let stored: &[f32] = bytemuck::cast_slice(panels.stored(0, first, width));
            assert_eq!(stored, panels.panel(0, first, width, &mut Vec::new()), "{features}x{inputs}");
            // Lanes past the last feature are zero.
            let all = values(&panels.lines);
            let last = features.div_ceil(PANEL) - 1;
            for lane in features - last * PANEL..PANEL {
                assert!((0..inputs).all(|i| all[(last * inputs + i) * PANEL + lane] == 0.0), "{features}x{inputs}");
            }
        }
    }

    /// `bias` written to every row of `out` (rows `stride` apart) for the features of `panels`.
    fn fill_with_bias(out: &mut [f32], stride: usize, bias: &[f32], panels: std::ops::Range<usize>) {
        let features = panels.start * PANEL..(panels.end * PANEL).min(bias.len());
        for row in out.chunks_mut(stride) {
            row[features.clone()].copy_from_slice(&bias[features.clone()]);
        }
    }

    #[test]
    fn the_tiles_share_out_the_next_weights_to_fetch() {
        let (low, high) = (vec![0u8; 1000], vec![0u8; 600]);
        let (tiles, width) = (7, 50);
        let share = (low.len() + high.len()).div_ceil(tiles);
        for tile in 0..tiles {
            let fetch = L2Fetch::share([&low, &high], (tile, tiles), width).expect("a share for every tile");
            // Each tile starts where its share of the two runs, taken one after the other, does.
            let offset = tile * share;
            let expected = if offset < low.len() { &low[offset] } else { &high[offset - low.len()] };
            assert_eq!(fetch.start, std::ptr::from_ref(expected), "tile {tile}");
            // and asks for a line often enough to cover the share within the call.
            assert!(width.div_ceil(fetch.every) * 64 >= share, "tile {tile}: every {} inputs", fetch.every);
        }
        // Nothing to fetch, or more tiles than bytes: the tiles past the end ask for nothing.
        assert!(L2Fetch::share([&[], &[]], (0, 3), width).is_none());
        let few = [0u8; 2];
        assert!(L2Fetch::share([&few, &[]], (1, 3), width).is_some());
        assert!(L2Fetch::share([&few, &[]], (2, 3), width).is_none());
        // A call of fewer inputs than lines still asks for a line on every input.
        assert_eq!(L2Fetch::share([&low, &high], (0, 1), 3).map(|f| f.every), Some(1));
    }

    #[test]
    fn every_height_of_a_partial_tile_writes_the_product() {
        let (features, inputs) = (40, 9);
        let w: Vec<f32> = (0..features * inputs).map(|i| (i as f32 * 0.23).cos()).collect();
        let bias: Vec<f32> = (0..features).map(|j| j as f32 * 0.25 - 3.0).collect();
        let panels = Panels::new(&w, features, inputs);
        simd::at_every_level(|level| {
            // Every height of a partial tile of either ISA, and one row into a second tile.
            for rows in 1..=13 {
                let x: Vec<f32> = (0..rows * inputs).map(|i| (i as f32 * 0.41).sin()).collect();
                let want = reference(rows, features, inputs, &x, &w);
                // NaN where nothing has been written: the tile kernels must not read it.
                let mut out = vec![f32::NAN; rows * features];
                let all_panels = 0..features.div_ceil(PANEL);
                // SAFETY: the CPU has the level's features; `out` holds the product.
                unsafe {
                    match Isa::detect() {
                        Some(isa) => {
                            let tiles = RowTiles::new(isa, &x, rows, inputs);
                            write_product(
                                &tiles,
                                &panels,
                                &bias,
                                0,
                                rows,
                                all_panels,
                                out.as_mut_ptr(),
                                features,
                                false,
                            );
                        }
                        None => {
                            fill_with_bias(&mut out, features, &bias, all_panels.clone());
                            add_product_gemm(&x, &panels, rows, all_panels, out.as_mut_ptr(), features);
                        }
                    }
                }
                for (i, got) in out.iter().enumerate() {
                    let expected = want[i] + f64::from(bias[i % features]);
                    assert!((f64::from(*got) - expected).abs() < 1e-4, "{level:?} {rows} rows, element {i}: {got}");
                }
            }
        });
    }

    #[test]
    fn the_gelu_is_applied_once_to_the_finished_sums() {
        // Several passes over the inputs (so a tile is written more than once), partial tiles
        // and panels: the GELU must see each finished sum exactly once.
        let (rows, features, inputs) = (25, 70, 300);
        let x: Vec<f32> = (0..rows * inputs).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..features * inputs).map(|i| (i as f32 * 0.11).cos() * 0.2).collect();
        let bias: Vec<f32> = (0..features).map(|j| (j as f32 * 0.7).sin()).collect();
        let panels = Panels::new(&w, features, inputs);
        let all_panels = 0..features.div_ceil(PANEL);
        let isas: Vec<Isa> =
            simd::available_levels().into_iter().filter_map(|level| simd::with_max_level(level, Isa::detect)).collect();
        assert_eq!(isas.is_empty(), !Isa::supported());
        for isa in isas {
            let tiles = RowTiles::new(isa, &x, rows, inputs);
            let [mut plain, fused] = [false, true].map(|gelu| {
                let mut out = vec![f32::NAN; rows * features];
                with_pass_length(Some(64), || {
                    // SAFETY: the CPU has the ISA's features; `out` holds the product.
                    unsafe {
                        write_product(
                            &tiles,
                            &panels,
                            &bias,
                            0,
                            rows,
                            all_panels.clone(),
                            out.as_mut_ptr(),
                            features,
                            gelu,
                        )
                    }
                });
                out
            });
            ops::gelu_in_place(&mut plain);
            assert!(plain.iter().any(|&v| v < -0.01), "{isa:?}: some sums reach GELU's negative side");
            let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&plain), bits(&fused), "{isa:?}");
        }
    }

    #[test]
    fn every_level_writes_the_product_for_any_shape_and_block() {
        // Partial tiles and panels, single rows and features, several passes over the inputs,
        // a block that starts past the first tile and panel, and a product of no inputs.
        let shapes = [(1, 1, 1), (13, 33, 7), (12, 32, 300), (25, 70, 1000), (7, 5, 129), (40, 100, 50), (13, 20, 0)];
        for (rows, features, inputs) in shapes {
            let x: Vec<f32> = (0..rows * inputs).map(|i| (i as f32 * 0.37).sin()).collect();
            let w: Vec<f32> = (0..features * inputs).map(|i| (i as f32 * 0.11).cos()).collect();
            let want = reference(rows, features, inputs, &x, &w);
            let bias: Vec<f32> = (0..features).map(|j| (j as f32 * 0.7).sin()).collect();
            let panels = Panels::new(&w, features, inputs);
            let all_panels = features.div_ceil(PANEL);
            // The caches' passes, and passes of 64 inputs so that most shapes take several.
            for pass in [None, Some(64)] {
                with_pass_length(pass, || {
                    simd::at_every_level(|level| {
                        // A wider output than the product: the spare column must stay as it was.
                        let stride = features + 1;
                        let mut out = vec![0.5f32; rows * stride];
                        // Panels split in two, rows split at the second tile (when there is one).
                        let isa = Isa::detect();
                        let height = isa.map_or(1, Isa::tile_rows);
                        // Row blocks start at multiples of the tile height.
                        let row_blocks =
                            if rows > height { vec![(0, height), (height, rows - height)] } else { vec![(0, rows)] };
                        let split_panel = all_panels / 2;
                        let tiles = isa.map(|isa| RowTiles::new(isa, &x, rows, inputs));
                        for (first_row, row_count) in row_blocks {
                            for block in [0..split_panel, split_panel..all_panels] {
                                // SAFETY: the CPU has the level's features; the buffers fit the shapes.
                                unsafe {
                                    match &tiles {
                                        Some(tiles) => {
                                            let at = out.as_mut_ptr().add(first_row * stride + block.start * PANEL);
                                            write_product(
                                                tiles, &panels, &bias, first_row, row_count, block, at, stride, false,
                                            )
                                        }
                                        None => {
                                            let rows_of_block = &mut out[first_row * stride..][..row_count * stride];
                                            fill_with_bias(rows_of_block, stride, &bias, block.clone());
                                            let at = rows_of_block.as_mut_ptr().add(block.start * PANEL);
                                            add_product_gemm(
                                                &x[first_row * inputs..],
                                                &panels,
                                                row_count,
                                                block,
                                                at,
                                                stride,
                                            )
                                        }
                                    }
                                }
                            }
                        }
                        for i in 0..rows {
                            for j in 0..features {
                                let got = f64::from(out[i * stride + j]);
                                let expected = want[i * features + j] + f64::from(bias[j]);
                                assert!(
                                    (got - expected).abs() < 1e-3,
                                    "{level:?} {rows}x{features}x{inputs} ({i}, {j})"
                                );
                            }
                            assert_eq!(out[i * stride + features], 0.5, "{level:?} wrote past its columns");
                        }
                    })
                });
            }
        }
    }
}

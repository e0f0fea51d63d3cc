//! The CPU kernels behind `Linear`: `y = x Wᵀ + b`, optionally followed by the exact GELU, with
//! the weight in f32 ([`CpuLinear`]) or in bf16 ([`CpuLinearBf16`]).
//!
//! At EVA's shapes (a few hundred to a thousand rows, thousands of features) one multi-threaded
//! GEMM call over the whole product, which is what candle's CPU matmul does, is slower than
//! independent blocks of output features with one single-threaded GEMM each (narrow products,
//! with too few such blocks for the threads, are split by rows as well). Each block starts
//! from the bias, so the addition costs no extra pass, and the GELU is applied to a block as soon
//! as it completes, while it is still in cache. The measurements are in `bench/README.md`
//! ("Kernel notes").

use std::mem::MaybeUninit;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape};
use rayon::prelude::*;

use super::bf16::{Bf16Path, PackedBf16};
#[cfg(target_arch = "x86_64")]
use super::f32_tiles::{self, PANEL, PanelSource, Panels, RowTiles};
use super::gemm::{self, Operand};
use super::profile::{self, Part};
use super::{SendPtr, f32_slice, ops, written_vec};

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
        profile::timed(Part::MatrixProducts, || {
            let name = self.name();
            let (x, w, bias) = (f32_slice(name, xs, xl)?, f32_slice(name, ws, wl)?, f32_slice(name, bs, bl)?);
            let (n, wk) = wl.shape().dims2()?;
            let product = Product::new(name, x, xl, (n, wk), bias)?;
            let k = product.inputs;
            product.run(TaskWidth::GemmCrate, self.gelu, |block, out| {
                start_from_bias(block, out, n, bias);
                // SAFETY: x is m x k and w is n x k, row-major; rows `first..first + count` of w
                // give this task's columns of y, which only it writes.
                unsafe {
                    gemm::sgemm(
                        block.rows,
                        block.count,
                        k,
                        1.0,
                        Operand::rows(x.as_ptr().add(block.first_row * k), k),
                        Operand::transposed(w.as_ptr().add(block.first * k), k),
                        1.0,
                        out,
                        n,
                    );
                }
            })
        })
    }
}

/// `x Wᵀ + b` for a contiguous f32 input `[..., in]` and bias `[out]`, with the f32 weight
/// arranged in panels for evatag's own kernels (`model::cpu::f32_tiles`), optionally followed by
/// the exact GELU.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone)]
pub(crate) struct CpuLinearPanels {
    /// The weight, `[out, in]`.
    pub(crate) weight: Arc<Panels>,
    /// Whether GELU is applied to the result.
    pub(crate) gelu: bool,
}

#[cfg(target_arch = "x86_64")]
impl CustomOp2 for CpuLinearPanels {
    fn name(&self) -> &'static str {
        "linear-panels-cpu"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, bs: &CpuStorage, bl: &Layout) -> Result<(CpuStorage, Shape)> {
        profile::timed(Part::MatrixProducts, || {
            let name = self.name();
            let (x, bias) = (f32_slice(name, xs, xl)?, f32_slice(name, bs, bl)?);
            let weight = &*self.weight;
            let (n, k) = (weight.features(), weight.inputs());
            let product = Product::new(name, x, xl, (n, k), bias)?;
            panel_product(product, weight, bias, self.gelu)
        })
    }
}

/// A product on evatag's tile kernels, with the weight in their panel arrangement (f32, or bf16
/// widened as the kernels go).
#[cfg(target_arch = "x86_64")]
fn panel_product(product: Product, weight: &impl PanelSource, bias: &[f32], gelu: bool) -> Result<(CpuStorage, Shape)> {
    let (x, n, k) = (product.x, weight.features(), weight.inputs());
    // The rows are arranged once, for every block; the scalar level reads them in place.
    let tiles = f32_tiles::Isa::detect().map(|isa| RowTiles::new(isa, x, product.rows, k));
    // The tile kernels apply the GELU to each tile as they finish it; the scalar level to blocks.
    product.run(TaskWidth::OwnKernels, gelu && tiles.is_none(), |block, out| {
        let panels = block.first / PANEL..(block.first + block.count).div_ceil(PANEL);
        // SAFETY: blocks start at multiples of the panel width and of the tile height
        // (`blocks`); the CPU has the ISA of `tiles`; only this task writes its block, and the
        // `gemm` crate's kernels find it written from the bias.
        unsafe {
            match &tiles {
                Some(tiles) => {
                    f32_tiles::write_product(tiles, weight, bias, block.first_row, block.rows, panels, out, n, gelu);
                }
                None => {
                    start_from_bias(block, out, n, bias);
                    f32_tiles::add_product_gemm(&x[block.first_row * k..], weight, block.rows, panels, out, n);
                }
            }
        }
    })
}

/// `x Wᵀ + b` for a contiguous f32 input `[..., in]` and bias `[out]`, with the weight held in
/// bf16, optionally followed by the exact GELU. See `model::cpu::bf16` for the two paths.
#[derive(Debug, Clone)]
pub(crate) struct CpuLinearBf16 {
    /// The weight, `[out, in]`.
    pub(crate) weight: Arc<PackedBf16>,
    /// Whether GELU is applied to the result.
    pub(crate) gelu: bool,
}

/// Inputs widened per step on the `Widen` path: a block of 352 features then takes 704 KiB of
/// f32, which stays in the L2 cache while the `gemm` crate multiplies by it.
const WIDEN_INPUTS: usize = 512;

impl CustomOp2 for CpuLinearBf16 {
    fn name(&self) -> &'static str {
        "linear-bf16-cpu"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, bs: &CpuStorage, bl: &Layout) -> Result<(CpuStorage, Shape)> {
        profile::timed(Part::MatrixProducts, || {
            let name = self.name();
            let (x, bias) = (f32_slice(name, xs, xl)?, f32_slice(name, bs, bl)?);
            let weight = &self.weight;
            let (n, k) = (weight.features(), weight.inputs());
            let product = Product::new(name, x, xl, (n, k), bias)?;
            match weight.path() {
                Bf16Path::DotProduct => dot_product(product, weight, bias, self.gelu, false),
                Bf16Path::Amx => dot_product(product, weight, bias, self.gelu, true),
                #[cfg(target_arch = "x86_64")]
                Bf16Path::WidenPanels => panel_product(product, &**weight, bias, self.gelu),
                #[cfg(not(target_arch = "x86_64"))]
                Bf16Path::WidenPanels => candle_core::bail!("{name}: bf16 panels exist on x86-64 only"),
                Bf16Path::Widen => {
                    product.run(TaskWidth::GemmCrate, self.gelu, |block, out| {
                        start_from_bias(block, out, n, bias);
                        let mut wide = vec![0f32; block.count * WIDEN_INPUTS.min(k)];
                        for first_input in (0..k).step_by(WIDEN_INPUTS) {
                            let inputs = first_input..(first_input + WIDEN_INPUTS).min(k);
                            let width = inputs.len();
                            weight.widen_rows(block.first, block.count, inputs, &mut wide);
                            // SAFETY: x has k columns, row-major; `wide` holds this task's features for
                            // `width` inputs, row-major; only this task writes its block of y.
                            unsafe {
                                gemm::sgemm(
                                    block.rows,
                                    block.count,
                                    width,
                                    1.0,
                                    Operand::rows(x.as_ptr().add(block.first_row * k + first_input), k),
                                    Operand::transposed(wide.as_ptr(), width),
                                    1.0,
                                    out,
                                    n,
                                );
                            }
                        }
                    })
                }
            }
        })
    }
}

/// The dot-product paths of [`CpuLinearBf16`]: activations rounded to bf16 once, then per
/// block the AMX kernel where `amx`, else the AVX512_BF16 one.
#[cfg(target_arch = "x86_64")]
fn dot_product(
    product: Product,
    weight: &PackedBf16,
    bias: &[f32],
    gelu: bool,
    amx: bool,
) -> Result<(CpuStorage, Shape)> {
    use super::{bf16_amx, bf16_dot};
    if !bf16_dot::supported() || (amx && !bf16_amx::available()) {
        candle_core::bail!("linear-bf16-cpu: weights packed for AVX512_BF16 or AMX on a CPU without it");
    }
    let n = weight.features();
    let kernel = if amx { bf16_amx::product_block } else { bf16_dot::product_block };
    // SAFETY: the CPU has just been checked.
    let rounded = unsafe { bf16_dot::round_rows(product.x, product.rows, product.inputs, weight.pairs()) };
    product.run(TaskWidth::OwnKernels, gelu, |block, out| {
        // SAFETY: the CPU has been checked; `rounded` holds every row, as wide as the weight's
        // panels; blocks start at multiples of the task width, a multiple of the dot-product
        // panel; only this task writes its block.
        unsafe {
            kernel(
                &rounded,
                weight,
                bias,
                block.first_row..block.first_row + block.rows,
                block.first..block.first + block.count,
                out,
                n,
            );
        }
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn dot_product(_: Product, _: &PackedBf16, _: &[f32], _: bool, _: bool) -> Result<(CpuStorage, Shape)> {
    candle_core::bail!("linear-bf16-cpu: the AVX512_BF16 and AMX paths exist on x86-64 only")
}

/// A product's input and output shapes, checked.
struct Product<'a> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, reason = "read by the x86-64 kernels only"))]
    x: &'a [f32],
    rows: usize,
    inputs: usize,
    features: usize,
    out_dims: Vec<usize>,
}

impl<'a> Product<'a> {
    /// Checks an input of layout `xl` against a `(features, inputs)` weight and the bias.
    fn new(name: &str, x: &'a [f32], xl: &Layout, (features, inputs): (usize, usize), bias: &[f32]) -> Result<Self> {
        let dims = xl.dims();
        let k = dims[dims.len() - 1];
        if inputs != k || bias.len() != features {
            candle_core::bail!("{name}: input width {k}, weight {features}x{inputs}, bias {}", bias.len());
        }
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("at least one dimension") = features;
        Ok(Self { x, rows: x.len() / k.max(1), inputs, features, out_dims })
    }

    /// Runs `block_task(block, out)` over the [`blocks`] of the output for `width` in parallel,
    /// then the GELU on each block if asked; `out` points at the block's first element. The output
    /// starts unwritten: `block_task` must write every element of its block (the products start
    /// from the bias).
    fn run(
        self,
        width: TaskWidth,
        gelu: bool,
        block_task: impl Fn(Block, *mut f32) + Sync,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, n) = (self.rows, self.features);
        let fill = |y: &mut [MaybeUninit<f32>]| {
            for_each_block(m, n, width, y, |block, out| {
                block_task(block, out);
                if gelu {
                    block_rows(block, out, n).for_each(ops::gelu_in_place);
                }
            });
        };
        // SAFETY: the blocks cover the output, and each task writes its whole block.
        let y = unsafe { written_vec(m * n, fill) };
        Ok((CpuStorage::F32(y), Shape::from_dims(&self.out_dims)))
    }
}

/// The rows of a block of a row-major output with `n` columns, as slices.
fn block_rows<'a>(block: Block, out: *mut f32, n: usize) -> impl Iterator<Item = &'a mut [f32]> {
    let out = SendPtr(out);
    (0..block.rows).map(move |row| {
        // SAFETY: `out` is column `first` of row `first_row` of the output; the task that owns
        // this block alone touches these rows' columns `first..first + count`, and uses the
        // slices only while the output lives.
        unsafe { std::slice::from_raw_parts_mut(out.get().add(row * n), block.count) }
    })
}

/// Writes the bias to every row of a block, for a product to accumulate onto.
fn start_from_bias(block: Block, out: *mut f32, n: usize, bias: &[f32]) {
    let bias = &bias[block.first..block.first + block.count];
    for row in 0..block.rows {
        // SAFETY: row `row` of the block, `count` elements from column `first`, lies in the
        // output and belongs to this task alone; it may not have been written yet, so it is
        // written through the pointer rather than as a slice.
        unsafe { std::ptr::copy_nonoverlapping(bias.as_ptr(), out.add(row * n), bias.len()) };
    }
}

/// Output features per parallel task, by the kernels that compute them; every width is a
/// multiple of the AVX-512 f32 kernel's two panels and of the bf16 dot-product kernel's panel,
/// so that every block starts where a kernel does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskWidth {
    /// evatag's own kernels (`f32_tiles`, `bf16_dot`), which read operands arranged once per
    /// product, so that a narrow block costs no more per feature than a wide one: 64 features,
    /// two AVX-512 kernel calls. Narrow blocks let the threads end a product together. With
    /// 352, EVA-giant's fc2 (1,408 features) took four blocks of about 40 ms each at batch 4,
    /// fc1 (6,144) 17.45 blocks, and a thread waited at the end of a product for the other to
    /// finish its last block: on Zen 4 (two threads, batch 4, `perf` at 499 Hz) the threads
    /// were busy 92.9 % of a pass, and waiting for each other took 4 % of it. With 64, in four
    /// alternating pairs of `evatag bench`, 2.681, 2.646, 2.657 and 2.617 s/image against
    /// 2.728, 2.834, 2.743 and 2.697; at batch 1 within the host's noise (2.898, 2.664 and
    /// 2.605 against 2.628, 2.896 and 2.773).
    OwnKernels,
    /// The `gemm` crate, which packs both operands on every call: 352 features, enough blocks
    /// to balance the threads and each wide enough to repay the packing.
    GemmCrate,
}

impl TaskWidth {
    /// Output features per task.
    const fn features(self) -> usize {
        match self {
            Self::OwnKernels => 64,
            Self::GemmCrate => 352,
        }
    }
}

#[cfg(target_arch = "x86_64")]
const _: () = assert!(
    TaskWidth::OwnKernels.features().is_multiple_of(2 * PANEL)
        && TaskWidth::GemmCrate.features().is_multiple_of(2 * PANEL)
);
const _: () = assert!(
    TaskWidth::OwnKernels.features().is_multiple_of(super::bf16::PANEL)
        && TaskWidth::GemmCrate.features().is_multiple_of(super::bf16::PANEL)
);

/// Fewest rows a task takes when a narrow product is also split by rows.
const MIN_ROWS_PER_TASK: usize = 32;

/// Row blocks start at multiples of this: the tile height of every kernel in `f32_tiles`.
const ROW_ALIGNMENT: usize = 12;

/// Fewest rows in a band that one thread takes across every feature of a wide product on
/// evatag's own kernels (a band of rows per thread, each thread's rows staying on its own core,
/// every thread reading all the weights). On an Intel Xeon (family 6 model 167), two threads,
/// EVA-giant at batch 4 (1,028 rows), bands of 516 rows against all rows shared, alternating
/// rounds of `evatag bench` in both orders: 1.4 % faster on average over 13 rounds (faster in 10),
/// and built as it is here 1.8 % over five (1.794 to 1.835 s/image against 1.830 to 1.859, faster
/// in all five); bands of 264 rows (two per thread) were 2 % slower. Batch 1 (257 rows) keeps
/// every row in one band.
const MIN_BAND_ROWS: usize = 512;

/// One task's part of the output: `rows` rows from `first_row`, `count` features from `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    first_row: usize,
    rows: usize,
    first: usize,
    count: usize,
}

/// The parts of an `m x n` product: blocks of `width`'s output features over all rows, as long
/// as there are at least two blocks per thread (EVA-giant's widths), or on evatag's own kernels
/// over bands of at least [`MIN_BAND_ROWS`] rows, one per thread, where there are that many; a
/// narrower product (the small EVA-02 models) is split by rows as well, so that every thread has
/// work.
fn blocks(m: usize, n: usize, width: TaskWidth, threads: usize) -> Vec<Block> {
    let per_task = width.features();
    let feature_blocks = n.div_ceil(per_task).max(1);
    let row_chunks = if feature_blocks >= 2 * threads {
        match width {
            TaskWidth::OwnKernels => threads.min(m / MIN_BAND_ROWS).max(1),
            TaskWidth::GemmCrate => 1,
        }
    } else {
        (4 * threads).div_ceil(feature_blocks).min(m / MIN_ROWS_PER_TASK).max(1)
    };
    let rows_per_chunk = m.div_ceil(row_chunks).max(1).next_multiple_of(ROW_ALIGNMENT);
    let mut blocks = Vec::new();
    for first_row in (0..m).step_by(rows_per_chunk) {
        for first in (0..n).step_by(per_task) {
            let (rows, count) = (rows_per_chunk.min(m - first_row), per_task.min(n - first));
            blocks.push(Block { first_row, rows, first, count });
        }
    }
    blocks
}

/// Runs `task(block, out)` in parallel for the [`blocks`] of `width` of the row-major `m x n`
/// matrix `y`, where `out` points at column `block.first` of row `block.first_row`. Tasks must
/// write only their own block.
fn for_each_block(
    m: usize,
    n: usize,
    width: TaskWidth,
    y: &mut [MaybeUninit<f32>],
    task: impl Fn(Block, *mut f32) + Sync,
) {
    assert_eq!(y.len(), m * n, "an m x n output");
    let out = SendPtr(y.as_mut_ptr().cast());
    blocks(m, n, width, rayon::current_num_threads()).into_par_iter().for_each(|block| {
        // SAFETY: the block lies inside the m x n matrix `y`.
        task(block, unsafe { out.get().add(block.first_row * n + block.first) });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Tensor};

    /// `x Wᵀ + b` from every f32 kernel this CPU runs: the `gemm` crate's, and on x86-64 with
    /// AVX2 the tile kernels on the panel arrangement.
    fn our_products(x: &Tensor, w: &Tensor, b: &Tensor, gelu: bool) -> Result<Vec<Tensor>> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut, reason = "added to on x86-64 only"))]
        let mut products = vec![x.apply_op3_no_bwd(w, b, &CpuLinear { gelu })?];
        #[cfg(target_arch = "x86_64")]
        if f32_tiles::Isa::supported() {
            let (n, k) = w.dims2()?;
            let weight = Arc::new(Panels::new(&w.flatten_all()?.to_vec1::<f32>()?, n, k));
            products.push(x.apply_op2_no_bwd(b, &CpuLinearPanels { weight, gelu })?);
        }
        Ok(products)
    }

    #[test]
    fn kernel_matches_candle_matmul() -> Result<()> {
        let device = Device::Cpu;
        for (rows, k, n) in [(3, 5, 7), (257, 64, 700), (2, 33, 1), (577, 48, 192)] {
            let x = Tensor::randn(0f32, 1.0, (2, rows, k), &device)?;
            let w = Tensor::randn(0f32, 1.0, (n, k), &device)?;
            let b = Tensor::randn(0f32, 1.0, n, &device)?;
            let reference = candle_nn::Linear::new(w.clone(), Some(b.clone())).forward(&x)?;
            for ours in our_products(&x, &w, &b, false)? {
                assert_eq!(ours.dims(), reference.dims());
                let diff = (ours - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(diff < 1e-4, "{rows}x{k}x{n}: {diff}");
            }
        }
        Ok(())
    }

    #[test]
    fn blocks_cover_the_output_once_and_split_rows_for_narrow_or_tall_products() {
        // (rows, features, threads), and the bands of rows the product takes on evatag's own
        // kernels where it is wide for them (on the `gemm` crate's, a wide product takes one).
        let shapes = [
            ((257, 1408, 2), Some(1)),
            ((1025, 6144, 2), Some(2)),
            ((1028, 1408, 2), Some(2)),
            ((1028, 6144, 16), Some(2)),
            ((577, 192, 2), None),
            ((577, 384, 2), Some(1)),
            ((1025, 768, 16), None),
            ((5, 100, 8), None),
        ];
        for (((m, n, threads), own_bands), width) in
            shapes.into_iter().flat_map(|s| [TaskWidth::OwnKernels, TaskWidth::GemmCrate].map(|w| (s, w)))
        {
            let blocks = blocks(m, n, width, threads);
            let mut covered = vec![0u8; m * n];
            for b in &blocks {
                for row in b.first_row..b.first_row + b.rows {
                    covered[row * n + b.first..row * n + b.first + b.count].iter_mut().for_each(|c| *c += 1);
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "{m}x{n}: not covered exactly once");
            let wide = n.div_ceil(width.features()) >= 2 * threads;
            let bands: std::collections::BTreeSet<usize> = blocks.iter().map(|b| b.first_row).collect();
            let expected_bands = match width {
                TaskWidth::OwnKernels => {
                    assert_eq!(wide, own_bands.is_some(), "{m}x{n}: wide for evatag's kernels");
                    own_bands
                }
                TaskWidth::GemmCrate => Some(1),
            };
            assert!(!wide || Some(bands.len()) == expected_bands, "{m}x{n}: {} bands of rows", bands.len());
            assert!(
                !wide || blocks.iter().all(|b| b.rows == m || b.rows + ROW_ALIGNMENT > MIN_BAND_ROWS),
                "{m}x{n}: a wide product split into thin bands of rows"
            );
            assert!(
                wide || blocks.len() >= 2 * threads || m < 2 * MIN_ROWS_PER_TASK,
                "{m}x{n}: {} tasks",
                blocks.len()
            );
        }
    }

    #[test]
    fn splitting_by_rows_does_not_change_a_bit() -> Result<()> {
        // 512 features: two blocks for the `gemm` crate and eight for evatag's kernels, split by
        // rows on 8 threads and not on one.
        let x = Tensor::randn(0f32, 1.0, (1, 257, 96), &Device::Cpu)?;
        let w = Tensor::randn(0f32, 1.0, (512, 96), &Device::Cpu)?;
        let b = Tensor::randn(0f32, 1.0, 512, &Device::Cpu)?;
        let run = |threads: usize| -> Result<Vec<Vec<f32>>> {
            let pool =
                rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(candle_core::Error::wrap)?;
            pool.install(|| {
                our_products(&x, &w, &b, true)?
                    .iter()
                    .map(|y| y.flatten_all()?.to_vec1::<f32>())
                    .collect::<Result<Vec<_>>>()
            })
        };
        for width in [TaskWidth::OwnKernels, TaskWidth::GemmCrate] {
            assert!(blocks(257, 512, width, 8).iter().any(|b| b.rows < 257));
            assert!(blocks(257, 512, width, 1).iter().all(|b| b.rows == 257));
        }
        for (whole, split) in run(1)?.iter().zip(&run(8)?) {
            assert!(whole.iter().zip(split).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        Ok(())
    }

    /// The bf16 paths this CPU can run.
    fn bf16_paths() -> Vec<Bf16Path> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut, reason = "added to on x86-64 only"))]
        let mut paths = vec![Bf16Path::Widen];
        #[cfg(target_arch = "x86_64")]
        {
            if f32_tiles::Isa::supported() {
                paths.push(Bf16Path::WidenPanels);
            }
            if super::super::bf16_dot::supported() {
                paths.push(Bf16Path::DotProduct);
            }
            if super::super::bf16_amx::available() {
                paths.push(Bf16Path::Amx);
            }
        }
        paths
    }

    fn bf16(v: f32) -> f64 {
        f64::from(half::bf16::from_f32(v).to_f32())
    }

    /// Checks `x Wᵀ + b` with bf16 weights against the definition in f64, over the same rounded
    /// weights and (on the dot-product path) the same rounded activations.
    fn check_bf16_product(path: Bf16Path, rows: usize, k: usize, n: usize) -> Result<()> {
        let device = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (rows, k), &device)?;
        let w = Tensor::randn(0f32, 1.0, (n, k), &device)?;
        let b = Tensor::randn(0f32, 1.0, n, &device)?;
        let (xv, wv, bv) =
            (x.flatten_all()?.to_vec1::<f32>()?, w.flatten_all()?.to_vec1::<f32>()?, b.to_vec1::<f32>()?);
        let weight = Arc::new(PackedBf16::pack_for(path, &wv, n, k));
        let ours = x.apply_op2_no_bwd(&b, &CpuLinearBf16 { weight, gelu: false })?.to_vec2::<f32>()?;
        let rounds_x = matches!(path, Bf16Path::DotProduct | Bf16Path::Amx);
        let round_x = |v: f32| if rounds_x { bf16(v) } else { f64::from(v) };
        for i in 0..rows {
            for j in 0..n {
                let terms = (0..k).map(|p| round_x(xv[i * k + p]) * bf16(wv[j * k + p]));
                let want: f64 = f64::from(bv[j]) + terms.clone().sum::<f64>();
                let scale: f64 = f64::from(bv[j]).abs() + terms.map(f64::abs).sum::<f64>();
                let got = f64::from(ours[i][j]);
                assert!((got - want).abs() <= 1e-5 * scale, "{path:?} {rows}x{k}x{n} ({i}, {j}): {got} vs {want}");
            }
        }
        Ok(())
    }

    #[test]
    fn bf16_kernels_match_the_definition() -> Result<()> {
        // Odd widths, single rows and features, every tile height, and inputs over several of the
        // dot-product kernel's passes.
        for path in bf16_paths() {
            // On AMX: inputs padded to whole tile rows and not (32 to 1,056), fewer rows than a
            // call takes, a partial panel of features, and blocks of rows with a tail of one tile
            // or two.
            for (rows, k, n) in [
                (3, 5, 7),
                (2, 33, 1),
                (25, 1, 40),
                (13, 600, 100),
                (1, 1030, 33),
                (257, 64, 700),
                (40, 96, 70),
                (5, 32, 32),
                (64, 1024, 96),
                (40, 1056, 70),
                (57, 64, 40),
            ] {
                check_bf16_product(path, rows, k, n)?;
            }
        }
        Ok(())
    }

    #[test]
    fn bf16_kernels_are_bit_identical_however_the_rows_are_split_and_fuse_the_gelu() -> Result<()> {
        let x = Tensor::randn(0f32, 1.0, (1, 257, 96), &Device::Cpu)?;
        let w = Tensor::randn(0f32, 1.0, (1408, 96), &Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
        let b = Tensor::randn(0f32, 1.0, 1408, &Device::Cpu)?;
        for path in bf16_paths() {
            let weight = Arc::new(PackedBf16::pack_for(path, &w, 1408, 96));
            let run = |threads: usize, gelu: bool| -> Result<Vec<f32>> {
                let pool =
                    rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(candle_core::Error::wrap)?;
                let op = CpuLinearBf16 { weight: weight.clone(), gelu };
                pool.install(|| x.apply_op2_no_bwd(&b, &op)?.flatten_all()?.to_vec1::<f32>())
            };
            let (whole, split) = (run(1, true)?, run(8, true)?);
            assert!(whole.iter().zip(&split).all(|(a, b)| a.to_bits() == b.to_bits()), "{path:?}");
            let mut separate = run(1, false)?;
            ops::gelu_in_place(&mut separate);
            assert!(whole.iter().zip(&separate).all(|(a, b)| (a - b).abs() < 1e-5), "{path:?}");
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

//! The CPU kernels behind the network's layers: matrix products, fused linear layers and
//! attention, bf16 weights, LayerNorm, softmax, GELU and SwiGLU's gate, and the run-time choice of vector
//! instructions.
//!
//! The network (`model::linear`, `model::attention`, `model::eva`) hands f32 tensors on the CPU
//! to these kernels as candle custom operations ([`fused`]); every other device and precision
//! goes through candle's own operations, which exist on every backend. That generic graph, the
//! one GPUs run, can be chosen on the CPU too ([`with_generic_graph`]), so that it is tested
//! where no GPU is.

pub(crate) mod attention;
pub(crate) mod bf16;
#[cfg(target_arch = "x86_64")]
pub(crate) mod bf16_amx;
#[cfg(target_arch = "x86_64")]
pub(crate) mod bf16_dot;
#[cfg(target_arch = "x86_64")]
pub(crate) mod f32_tiles;
pub(crate) mod gemm;
pub(crate) mod linear;
pub(crate) mod ops;
pub mod peak;
pub(crate) mod profile;
pub mod simd;

use std::cell::Cell;
use std::mem::MaybeUninit;

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};
use rayon::prelude::*;

thread_local! {
    /// Whether the layers run on this thread take candle's operations only.
    static GENERIC_GRAPH: Cell<bool> = const { Cell::new(false) };
}

/// Whether a layer hands `x` to the fused CPU kernels: f32 on the CPU, unless this thread runs
/// the generic graph.
pub(crate) fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && !GENERIC_GRAPH.with(Cell::get)
}

/// Runs `f` with every layer run on this thread on candle's operations, the graph GPUs run,
/// then restores the previous choice.
pub(crate) fn with_generic_graph<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GENERIC_GRAPH.with(|generic| generic.set(self.0));
        }
    }
    let _restore = Restore(GENERIC_GRAPH.with(|generic| generic.replace(true)));
    f()
}

/// The elements of a contiguous f32 tensor, as a CPU kernel named `op` receives it.
pub(crate) fn f32_slice<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op} expects f32 tensors");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} expects contiguous tensors");
    };
    Ok(&data[start..end])
}

/// A vector of `len` elements written by `fill`, with no pass that zeroes them first: such a
/// pass runs on the calling thread alone (and takes the page faults of fresh memory there) while
/// the other threads wait, where `fill` spreads its writes over them. On EVA-giant at batch 4
/// (two threads, Zen 4), zeroing each product's output and arranged rows took about 3 % of the
/// forward pass's wall time.
///
/// # Safety
/// `fill` must write every element of the slice it is given.
pub(crate) unsafe fn written_vec<T>(len: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut values = Vec::with_capacity(len);
    fill(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: `fill` has written the first `len` elements, by the caller's contract.
    unsafe { values.set_len(len) };
    values
}

/// Maps each row of `in_width` values of `x` to a row of `out_width` values with `row`, in
/// parallel tasks of `rows_per_task` rows, into a vector written without zeroing it first.
///
/// # Safety
/// `row` must write every element of the output row it is given.
pub(crate) unsafe fn map_rows<T: Send>(
    x: &[f32],
    (in_width, out_width): (usize, usize),
    rows_per_task: usize,
    row: impl Fn(&[f32], &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let rows = x.len().checked_div(in_width).unwrap_or(0);
    let fill = |out: &mut [MaybeUninit<T>]| {
        if out.is_empty() {
            return;
        }
        let (out_chunk, in_chunk) = (rows_per_task * out_width, rows_per_task * in_width);
        out.par_chunks_mut(out_chunk).zip(x.par_chunks(in_chunk)).for_each(|(to, from)| {
            to.chunks_exact_mut(out_width).zip(from.chunks_exact(in_width)).for_each(|(to, from)| row(from, to));
        });
    };
    // SAFETY: each of the `rows` input rows gives one output row, which `row` writes whole, by
    // the caller's contract.
    unsafe { written_vec(rows * out_width, fill) }
}

/// Inputs that [`interleave_rows`] takes for a group of rows at a time: the group's output for
/// them (at most 16 KiB) stays in the L1 cache while each row writes its lane. Taking each row
/// across all its inputs instead wrote every cache line of the output once per row, evicted in
/// between. On Zen 4 (two threads, best of seven, three runs each way), 1,028 rows in tiles of
/// 12 took 2.5-3.2 ms for fc2's 6,144 inputs and 0.36-0.45 ms for 1,408 that way, and 2.0-2.8
/// and 0.24-0.28 ms in stretches of 256. While a stretch is written, the next one's rows and
/// output lines are asked of L1: where the rows come from L3 and the output is fresh memory, each
/// load and each first store otherwise waited for its line. On an Intel Xeon (family 6 model
/// 167, EVA-giant, two threads, `perf`) the arrangement went from 3.9 % of the time to 2.0-3.3 %
/// at batch 1 (it varies between runs), and from 3.4 % to 3.2 % at batch 4, where it is bound
/// by memory bandwidth.
const INTERLEAVED_STRETCH: usize = 256;

/// Writes the row-major `[rows, inputs]` matrix `m` to `out` in groups of `group` rows, each
/// group input by input (`group` values for each input, one per row), converted by `convert`, in
/// parallel; the slots of rows past the last hold `convert(0.0)`. Every slot of `out`, which
/// holds whole groups, is written.
pub(crate) fn interleave_rows<T: Send>(
    m: &[f32],
    (rows, inputs): (usize, usize),
    group: usize,
    out: &mut [MaybeUninit<T>],
    convert: impl Fn(f32) -> T + Sync,
) {
    let group_len = inputs * group;
    assert!(m.len() >= rows * inputs && out.len() == rows.div_ceil(group) * group_len, "whole groups of rows");
    if group_len == 0 {
        return;
    }
    out.par_chunks_mut(group_len).enumerate().for_each(|(g, out)| {
        let stretch_len = INTERLEAVED_STRETCH * group;
        let (stretch_bytes, group_out) = (stretch_len * size_of::<T>(), out.as_ptr().cast::<u8>());
        let next_out_share = stretch_bytes.div_ceil(group);
        for (stretch, out) in out.chunks_mut(stretch_len).enumerate() {
            let (first, len) = (stretch * INTERLEAVED_STRETCH, out.len() / group);
            let next_out = group_out.wrapping_add((stretch + 1) * stretch_bytes);
            for lane in 0..group {
                // The next stretch: this row's inputs, and this lane's share of the output lines.
                fetch_into_l1(next_out.wrapping_add(lane * next_out_share), next_out_share);
                let slots = out[lane..].iter_mut().step_by(group);
                let row = g * group + lane;
                if row < rows {
                    let source = &m[row * inputs..][..inputs];
                    fetch_into_l1(source[first..].as_ptr().wrapping_add(len).cast(), len * size_of::<f32>());
                    slots.zip(&source[first..][..len]).for_each(|(slot, &v)| _ = slot.write(convert(v)));
                } else {
                    slots.for_each(|slot| _ = slot.write(convert(0.0)));
                }
            }
        }
    });
}

/// Asks the L1 cache for the lines of `bytes` bytes from `start`, which may lie past the end of
/// the memory at hand (a prefetch never faults). On x86-64 only; elsewhere the hardware's own
/// prefetching is left to it.
fn fetch_into_l1(start: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..bytes).step_by(64) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch only hints the cache; it never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, bytes);
}

/// A raw output pointer shared by tasks that write disjoint parts.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);

impl SendPtr {
    /// The pointer.
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: the tasks holding copies write to disjoint elements only.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

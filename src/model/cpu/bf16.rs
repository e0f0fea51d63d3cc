//! Linear-layer weights held as bfloat16 on the CPU: half the memory of f32.
//!
//! A [`PackedBf16`] is rounded to nearest even once, when the model loads, and arranged for the
//! path the CPU will multiply it with ([`Bf16Path`]):
//! - with AMX-BF16 (`bf16_amx`), in the same panels as for the dot product below, whose halves
//!   are the weight tiles of AMX's `TDPBF16PS`;
//! - where AVX512_BF16's `VDPBF16PS` dot-product instruction outruns f32's multiply-adds
//!   (`bf16_dot::pays`), in panels for it (`bf16_dot`): it multiplies pairs of bf16 values into
//!   f32 sums, the activations are rounded to bf16 as well, and a product costs about half of
//!   its f32 form;
//! - elsewhere on x86-64 with AVX2 (including CPUs whose `VDPBF16PS` is no faster than f32),
//!   in the panels of evatag's f32 kernels (`f32_tiles`), widened back to f32 (exactly: a bf16
//!   value is the top half of an f32) one panel's share of a pass at a time, just before the
//!   kernels multiply by them;
//! - on other CPUs, as plain rows widened to f32 one block at a time for the `gemm` crate's f32
//!   kernel.
//!
//! On the widening paths the activations stay f32; the speed is that of f32 (the widening costs
//! a pass over the weights, which the product then reuses for every row), the memory is still
//! halved.

use half::bf16;
use rayon::prelude::*;

use super::simd;

/// Output features per panel of the dot-product arrangement: two vectors of 16 f32 sums.
pub(crate) const PANEL: usize = 32;

/// Output features per panel of the widening arrangement: those of `f32_tiles`.
const WIDE_PANEL: usize = 16;

#[cfg(target_arch = "x86_64")]
const _: () = assert!(WIDE_PANEL == super::f32_tiles::PANEL, "widened bf16 panels are f32_tiles' panels");

/// Elements of one panel for one pair of inputs: each feature's two weights side by side.
pub(crate) const PANEL_PAIR: usize = 2 * PANEL;

/// Input pairs in one row of an AMX tile (64 bytes): the AMX arrangement pads each panel's
/// pairs, and each row of activations, to a multiple of it with zeros.
pub(crate) const TILE_PAIRS: usize = 16;

/// How the CPU multiplies by bf16 weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bf16Path {
    /// x86-64 with AMX-BF16: `TDPBF16PS` on tiles of the dot product's operands, their pairs
    /// of inputs padded to whole tile rows.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, reason = "chosen on x86-64 only"))]
    Amx,
    /// x86-64 with AVX512_BF16: `VDPBF16PS` on bf16 activations and weights, f32 sums.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, reason = "chosen on x86-64 only"))]
    DotProduct,
    /// Weights in the panels of `f32_tiles`, widened to f32 a panel's pass at a time, f32
    /// activations, evatag's f32 tile kernels.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, reason = "chosen on x86-64 only"))]
    WidenPanels,
    /// Weights widened to f32 block by block, f32 activations, the `gemm` crate's f32 kernel.
    Widen,
}

impl Bf16Path {
    /// The path for this CPU: AMX where the CPU and system offer it (`bf16_amx::available`),
    /// else the dot product where AVX512_BF16 outruns f32's multiply-adds (`bf16_dot::pays`),
    /// else a widening one; a widening one too when the SIMD level is capped below AVX-512 (a
    /// test on this thread, or `EVATAG_SIMD`).
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if simd::allows(simd::SimdLevel::Avx512) && super::bf16_amx::available() {
                return Self::Amx;
            }
            if simd::allows(simd::SimdLevel::Avx512) && super::bf16_dot::pays() {
                return Self::DotProduct;
            }
            if super::f32_tiles::Isa::supported() {
                return Self::WidenPanels;
            }
        }
        Self::Widen
    }

    /// Pairs of inputs stored per panel (and per row of rounded activations) for `inputs`
    /// inputs on the dot-product paths: half of them rounded up, for AMX up to whole tile rows.
    pub(crate) fn stored_pairs(self, inputs: usize) -> usize {
        match self {
            Self::Amx => inputs.div_ceil(2).next_multiple_of(TILE_PAIRS),
            _ => inputs.div_ceil(2),
        }
    }

    /// The name users see, e.g. `AVX512_BF16 dot products`; a widening path on a CPU whose
    /// AVX512_BF16 was measured slower says so, lest the choice look like an oversight.
    pub(crate) fn name(self) -> &'static str {
        #[cfg(target_arch = "x86_64")]
        let dot_measured_slower = super::bf16_dot::supported() && !super::bf16_dot::pays();
        #[cfg(not(target_arch = "x86_64"))]
        let dot_measured_slower = false;
        match self {
            Self::Amx => "AMX tiles",
            Self::DotProduct => "AVX512_BF16 dot products",
            Self::WidenPanels | Self::Widen if dot_measured_slower => {
                "bf16 widened to f32, faster here than AVX512_BF16"
            }
            Self::WidenPanels | Self::Widen => "bf16 widened to f32",
        }
    }
}

/// A `[features, inputs]` weight matrix rounded to bf16, arranged for one [`Bf16Path`].
pub(crate) struct PackedBf16 {
    features: usize,
    inputs: usize,
    path: Bf16Path,
    /// For `DotProduct` and `Amx`: `features / PANEL` panels (rounded up), each
    /// [`Bf16Path::stored_pairs`] pairs of [`PANEL_PAIR`] elements, zero where a feature or input
    /// is past the end. For `WidenPanels`: as `f32_tiles::Panels`, `features / WIDE_PANEL` panels
    /// (rounded up) of `inputs` times [`WIDE_PANEL`] elements, zero past the last feature. For
    /// `Widen`: row-major `[features, inputs]`.
    bits: Vec<u16>,
}

impl std::fmt::Debug for PackedBf16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedBf16")
            .field("features", &self.features)
            .field("inputs", &self.inputs)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PackedBf16 {
    /// Rounds a row-major `[features, inputs]` f32 matrix to bf16 for the path this CPU takes.
    pub(crate) fn pack(weight: &[f32], features: usize, inputs: usize) -> Self {
        Self::pack_for(Bf16Path::detect(), weight, features, inputs)
    }

    /// Rounds a row-major `[features, inputs]` f32 matrix to bf16 for `path`.
    pub(crate) fn pack_for(path: Bf16Path, weight: &[f32], features: usize, inputs: usize) -> Self {
        assert_eq!(weight.len(), features * inputs, "a {features}x{inputs} weight");
        let round = |w: f32| bf16::from_f32(w).to_bits();
        let bits = match path {
            Bf16Path::Widen => weight.par_iter().map(|&w| round(w)).collect(),
            Bf16Path::WidenPanels => {
                let len = features.div_ceil(WIDE_PANEL) * inputs * WIDE_PANEL;
                let arrange =
                    |slots: &mut _| super::interleave_rows(weight, (features, inputs), WIDE_PANEL, slots, round);
                // SAFETY: `interleave_rows` writes every slot of whole groups of rows.
                unsafe { super::written_vec(len, arrange) }
            }
            Bf16Path::DotProduct | Bf16Path::Amx => {
                let pairs = path.stored_pairs(inputs);
                let mut bits = vec![0u16; features.div_ceil(PANEL) * pairs * PANEL_PAIR];
                if pairs > 0 {
                    bits.par_chunks_mut(pairs * PANEL_PAIR).enumerate().for_each(|(panel, out)| {
                        let first = panel * PANEL;
                        for lane in 0..PANEL.min(features - first) {
                            let row = &weight[(first + lane) * inputs..][..inputs];
                            for (input, &w) in row.iter().enumerate() {
                                out[panel_slot(lane, input)] = round(w);
                            }
                        }
                    });
                }
                bits
            }
        };
        Self { features, inputs, path, bits }
    }

    /// Output features (rows of the weight).
    pub(crate) fn features(&self) -> usize {
        self.features
    }

    /// Inputs (columns of the weight).
    pub(crate) fn inputs(&self) -> usize {
        self.inputs
    }

    /// Pairs of inputs per panel on the dot-product paths ([`Bf16Path::stored_pairs`]).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, reason = "read by the x86-64 kernels and tests"))]
    pub(crate) fn pairs(&self) -> usize {
        self.path.stored_pairs(self.inputs)
    }

    /// The path this arrangement is for.
    pub(crate) fn path(&self) -> Bf16Path {
        self.path
    }

    /// The packed elements (see the field's layout).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, reason = "read by the x86-64 kernel only"))]
    pub(crate) fn bits(&self) -> &[u16] {
        &self.bits
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn size_in_bytes(&self) -> usize {
        self.bits.len() * size_of::<u16>()
    }

    /// Writes features `first..first + count`, inputs `inputs`, widened to f32, to `out` as a
    /// row-major `[count, inputs.len()]` matrix. For the `Widen` arrangement.
    pub(crate) fn widen_rows(&self, first: usize, count: usize, inputs: std::ops::Range<usize>, out: &mut [f32]) {
        debug_assert_eq!(self.path, Bf16Path::Widen);
        let width = inputs.len();
        for (row, out) in out.chunks_exact_mut(width).take(count).enumerate() {
            let from = &self.bits[(first + row) * self.inputs..][inputs.clone()];
            widen(from, out);
        }
    }

    /// The weight of `feature` for `input`, as f32, whatever the arrangement.
    #[cfg(test)]
    pub(crate) fn get(&self, feature: usize, input: usize) -> f32 {
        let index = match self.path {
            Bf16Path::Widen => feature * self.inputs + input,
            Bf16Path::DotProduct | Bf16Path::Amx => {
                (feature / PANEL) * self.pairs() * PANEL_PAIR + panel_slot(feature % PANEL, input)
            }
            Bf16Path::WidenPanels => ((feature / WIDE_PANEL) * self.inputs + input) * WIDE_PANEL + feature % WIDE_PANEL,
        };
        bf16::from_bits(self.bits[index]).to_f32()
    }
}

#[cfg(target_arch = "x86_64")]
impl super::f32_tiles::PanelSource for PackedBf16 {
    fn features(&self) -> usize {
        self.features
    }

    fn inputs(&self) -> usize {
        self.inputs
    }

    fn panel<'a>(
        &'a self,
        panel: usize,
        first: usize,
        width: usize,
        scratch: &'a mut Vec<super::f32_tiles::Line>,
    ) -> &'a [f32] {
        debug_assert_eq!(self.path, Bf16Path::WidenPanels);
        let from = &self.bits[(panel * self.inputs + first) * WIDE_PANEL..][..width * WIDE_PANEL];
        let to = super::f32_tiles::scratch_values(scratch, width * WIDE_PANEL);
        widen(from, to);
        to
    }

    fn stored(&self, panel: usize, first: usize, width: usize) -> &[u8] {
        bytemuck::cast_slice(&self.bits[(panel * self.inputs + first) * WIDE_PANEL..][..width * WIDE_PANEL])
    }
}

/// Where the weight of lane `lane` of a panel for `input` lies within the panel: pair by pair,
/// the first 16 lanes then the last 16, each lane's two inputs side by side.
fn panel_slot(lane: usize, input: usize) -> usize {
    (input / 2) * PANEL_PAIR + (lane / 16) * PANEL + (lane % 16) * 2 + input % 2
}

#[inline(always)]
fn widen_portable(from: &[u16], to: &mut [f32]) {
    for (t, &f) in to.iter_mut().zip(from) {
        *t = f32::from_bits(u32::from(f) << 16);
    }
}

simd::multiversion! {
    /// Widens bf16 bits to f32: exact, each value becomes the top half of an f32.
    fn widen(from: &[u16], to: &mut [f32]) => widen_portable;
    avx512: ["avx512f"];
    avx2: ["avx2"];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(features: usize, inputs: usize) -> Vec<f32> {
        (0..features * inputs).map(|i| ((i as f32) * 0.731).sin() * 3.0).collect()
    }

    #[test]
    fn both_arrangements_hold_every_weight_rounded_to_nearest_even() {
        for (features, inputs) in [(1, 1), (33, 7), (64, 20), (70, 3)] {
            let weight = matrix(features, inputs);
            for path in [Bf16Path::Amx, Bf16Path::DotProduct, Bf16Path::WidenPanels, Bf16Path::Widen] {
                let packed = PackedBf16::pack_for(path, &weight, features, inputs);
                for f in 0..features {
                    for i in 0..inputs {
                        let want = bf16::from_f32(weight[f * inputs + i]).to_f32();
                        assert_eq!(packed.get(f, i).to_bits(), want.to_bits(), "{path:?} ({f}, {i})");
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_stored_share_is_what_the_panel_widens() {
        use super::super::f32_tiles::PanelSource;
        let (features, inputs) = (70, 300);
        let packed = PackedBf16::pack_for(Bf16Path::WidenPanels, &matrix(features, inputs), features, inputs);
        for panel in 0..features.div_ceil(WIDE_PANEL) {
            for (first, width) in [(0, inputs), (100, 57)] {
                let stored: &[u16] = bytemuck::cast_slice(packed.stored(panel, first, width));
                let widened: Vec<f32> = stored.iter().map(|&b| f32::from_bits(u32::from(b) << 16)).collect();
                assert_eq!(widened, packed.panel(panel, first, width, &mut Vec::new()), "panel {panel} from {first}");
            }
        }
    }

    #[test]
    fn rounding_is_to_nearest_even_and_halves_the_memory() {
        // 1 + 2^-8 lies halfway between two bf16 values and rounds to the even one, 1.
        let halfway = f32::from_bits(0x3f80_8000);
        let above = f32::from_bits(0x3f80_8001);
        let packed = PackedBf16::pack_for(Bf16Path::Widen, &[halfway, above], 1, 2);
        assert_eq!(packed.get(0, 0), 1.0);
        assert_eq!(packed.get(0, 1), f32::from_bits(0x3f81_0000));
        let weight = matrix(64, 64);
        assert_eq!(PackedBf16::pack_for(Bf16Path::DotProduct, &weight, 64, 64).size_in_bytes(), 64 * 64 * 2);
    }

    #[test]
    fn pad_features_and_inputs_are_zero() {
        // Two pairs of inputs; AMX pads them to a whole tile row.
        for (path, pairs) in [(Bf16Path::DotProduct, 2), (Bf16Path::Amx, TILE_PAIRS)] {
            let packed = PackedBf16::pack_for(path, &matrix(3, 3), 3, 3);
            assert_eq!((packed.pairs(), packed.bits().len()), (pairs, pairs * PANEL_PAIR), "{path:?}");
            let used: Vec<usize> = (0..3).flat_map(|f| (0..3).map(move |i| panel_slot(f, i))).collect();
            for (slot, &b) in packed.bits().iter().enumerate() {
                assert!(used.contains(&slot) || b == 0, "{path:?}: slot {slot} is {b:#x}");
            }
        }
    }

    #[test]
    fn widening_rows_gives_the_rounded_weights_at_every_level() {
        let (features, inputs) = (5, 37);
        let weight = matrix(features, inputs);
        let packed = PackedBf16::pack_for(Bf16Path::Widen, &weight, features, inputs);
        simd::at_every_level(|level| {
            let mut out = vec![f32::NAN; 3 * 30];
            packed.widen_rows(1, 3, 4..34, &mut out);
            for r in 0..3 {
                for j in 0..30 {
                    assert_eq!(out[r * 30 + j], packed.get(1 + r, 4 + j), "{level:?} ({r}, {j})");
                }
            }
        });
    }
}

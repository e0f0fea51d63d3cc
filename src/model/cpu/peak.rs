//! The machine's own ceiling: how many single-precision operations per second its fused
//! multiply-adds reach at the vector instructions the kernels use, on one thread and on all.
//!
//! A model's speed in seconds per image says little across machines; its share of this peak
//! (its efficiency) does: `evatag bench` prints both. The probe is a loop of independent
//! multiply-adds held in registers, as many chains as it takes to cover the units' latency, so
//! that nothing but the arithmetic units limits it.

use std::time::{Duration, Instant};

use super::simd::SimdLevel;

/// Independent accumulator chains per thread: enough to keep two FMA units with a latency of
/// four cycles busy (eight), with room for CPUs that have more units.
const CHAINS: usize = 12;

/// How long one measurement runs.
const PROBE_TIME: Duration = Duration::from_millis(150);

/// The floating-point peak this machine reached in the probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// The vector instructions probed: those the kernels use on this machine.
    pub level: &'static str,
    /// Single-precision GFLOP/s (a multiply-add counts two) on one thread.
    pub one_thread: f64,
    /// The same with `threads` threads at once.
    pub all_threads: f64,
    /// How many threads ran at once.
    pub threads: usize,
}

/// Measures the peak on one thread and on `threads` threads, the best of three runs each
/// (about a second in all).
pub fn measure(threads: usize) -> Peak {
    let level = SimdLevel::detect();
    let best = |threads: usize| (0..3).map(|_| gflops(level, threads)).fold(0.0, f64::max);
    Peak { level: level.name(), one_thread: best(1), all_threads: best(threads.max(1)), threads: threads.max(1) }
}

impl Peak {
    /// Runs the probe once more on one thread and on all, keeping the higher rates. A probe
    /// lasts a fraction of a second, so on a shared machine every run of one can fall in a
    /// moment when a neighbour holds a core (a peak of one core's rate on two threads was
    /// seen); samples spread over a benchmark reach the machine's real ceiling.
    pub fn sample_again(&mut self) {
        let level = SimdLevel::detect();
        self.one_thread = self.one_thread.max(gflops(level, 1));
        self.all_threads = self.all_threads.max(gflops(level, self.threads));
    }
}

/// GFLOP/s of `threads` threads running the probe at once for about [`PROBE_TIME`].
fn gflops(level: SimdLevel, threads: usize) -> f64 {
    // Size the run from a short one, so that every machine probes for about the same time.
    let calibration = 20_000;
    let started = Instant::now();
    std::hint::black_box(run(level, calibration));
    let per_round = started.elapsed().as_secs_f64() / calibration as f64;
    let rounds = ((PROBE_TIME.as_secs_f64() / per_round.max(1e-12)) as u64).clamp(calibration, 1 << 34);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| std::hint::black_box(run(level, rounds)));
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    (threads as u64 * rounds * flops_per_round(level)) as f64 / seconds / 1e9
}

/// Rounds of each side of [`bf16_dot_gain`]'s comparison: about a millisecond of the slower
/// instruction at 3 GHz.
#[cfg(target_arch = "x86_64")]
const GAIN_ROUNDS: u64 = 200_000;

/// How many times the multiply-adds per second of AVX-512 FMA (16 per instruction) AVX512_BF16's
/// `VDPBF16PS` (32 per instruction) reaches on this core, the best of five alternating short
/// runs of each (about 10 ms). Twice the multiply-adds per instruction need not mean twice the
/// rate: on an Intel Xeon (family 6 model 167) `VDPBF16PS` runs at 91-98 GFLOP/s on one thread
/// where FMA runs at 195, a gain of 0.5, while on AMD Zen 5 the bf16 kernel ran 1.8x the f32 one.
///
/// # Panics
/// Where the CPU lacks AVX-512F or AVX512_BF16.
#[cfg(target_arch = "x86_64")]
pub(crate) fn bf16_dot_gain() -> f64 {
    assert!(
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16"),
        "the bf16 dot product needs AVX-512F and AVX512_BF16"
    );
    let time = |run: &dyn Fn(u64) -> f32| {
        let started = Instant::now();
        std::hint::black_box(run(std::hint::black_box(GAIN_ROUNDS)));
        started.elapsed().as_secs_f64()
    };
    // SAFETY: the CPU has both instruction sets (asserted above).
    let (dot, fma) = (|rounds| unsafe { x86::dot_bf16(rounds) }, |rounds| unsafe { x86::fma_avx512(rounds) });
    let (mut dot_best, mut fma_best) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        dot_best = dot_best.min(time(&dot));
        fma_best = fma_best.min(time(&fma));
    }
    // The same rounds and chains: the dot product does twice the multiply-adds per instruction.
    2.0 * fma_best / dot_best.max(1e-12)
}

/// Floating-point operations one round of the probe does: a multiply-add on every lane of
/// every chain.
fn flops_per_round(level: SimdLevel) -> u64 {
    let lanes = match level {
        SimdLevel::Avx512 => 16,
        SimdLevel::Avx2 => 8,
        SimdLevel::Neon | SimdLevel::Generic => 4,
    };
    2 * lanes * CHAINS as u64
}

/// Runs `rounds` rounds of the probe at `level` and returns a sum of its results, so that the
/// work cannot be left out.
fn run(level: SimdLevel, rounds: u64) -> f32 {
    let rounds = std::hint::black_box(rounds);
    match level {
        // SAFETY: `level` is at most what the CPU supports (`SimdLevel::detect`).
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { x86::fma_avx512(rounds) },
        // SAFETY: as above; the AVX2 level implies FMA.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { x86::fma_avx2(rounds) },
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => arm::fma_neon(rounds),
        _ => portable(rounds),
    }
}

/// Four lanes per chain in plain arithmetic, which the compiler turns into whatever vector
/// instructions the build's baseline has (SSE2 on x86-64): the peak of the portable path.
fn portable(rounds: u64) -> f32 {
    let mut acc = [[0.0f32; 4]; CHAINS];
    let (a, b) = (std::hint::black_box(0.999_999f32), std::hint::black_box(1e-7f32));
    for _ in 0..rounds {
        for chain in &mut acc {
            for lane in chain.iter_mut() {
                *lane = *lane * a + b;
            }
        }
    }
    acc.iter().flatten().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    #[target_feature(enable = "avx512f")]
    pub(super) fn fma_avx512(rounds: u64) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..rounds {
            for chain in &mut acc {
                *chain = _mm512_fmadd_ps(*chain, a, b);
            }
        }
        acc.iter().map(|&chain| _mm512_reduce_add_ps(chain)).sum()
    }

    /// [`CHAINS`] chains of `VDPBF16PS`, each adding `rounds` times the dot product of two pairs of
    /// bf16 values 2⁻⁷ to every lane: the lanes of every chain end at `rounds` · 2⁻¹³.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) fn dot_bf16(rounds: u64) -> f32 {
        // Both halves of every 32-bit lane hold bf16 2⁻⁷ (0x3c00).
        // SAFETY: both types are 512 bits of plain data; every bit pattern is valid in either.
        let pairs: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi32(0x3c00_3c00)) };
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..rounds {
            for chain in &mut acc {
                *chain = _mm512_dpbf16_ps(*chain, pairs, pairs);
            }
        }
        acc.iter().map(|&chain| _mm512_reduce_add_ps(chain)).sum()
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn fma_avx2(rounds: u64) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..rounds {
            for chain in &mut acc {
                *chain = _mm256_fmadd_ps(*chain, a, b);
            }
        }
        let mut lanes = [0.0f32; 8];
        let total = acc.iter().fold(_mm256_setzero_ps(), |sum, &chain| _mm256_add_ps(sum, chain));
        // SAFETY: `lanes` holds the eight floats the store writes.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
        lanes.iter().sum()
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::CHAINS;

    pub(super) fn fma_neon(rounds: u64) -> f32 {
        // SAFETY: NEON is part of every 64-bit ARM target Rust builds for.
        unsafe {
            let (a, b) = (vdupq_n_f32(0.999_999), vdupq_n_f32(1e-7));
            let mut acc = [vdupq_n_f32(0.0); CHAINS];
            for _ in 0..rounds {
                for chain in &mut acc {
                    *chain = vfmaq_f32(b, *chain, a);
                }
            }
            acc.iter().map(|&chain| vaddvq_f32(chain)).sum()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu::simd::{available_levels, with_max_level};

    #[test]
    fn every_path_computes_the_same_chains() {
        // After n rounds every lane holds b (1 + a + ... + a^(n-1)), whatever the path; each
        // path returns the sum over its own number of lanes.
        let per_lane = portable(1000) / (4 * CHAINS) as f32;
        assert!(per_lane > 0.0);
        for level in available_levels() {
            let (taken, sum) = with_max_level(level, || (SimdLevel::detect(), run(SimdLevel::detect(), 1000)));
            assert_eq!(taken, level);
            let lanes = flops_per_round(taken) / (2 * CHAINS as u64);
            let got = sum / (lanes as usize * CHAINS) as f32;
            assert!((got - per_lane).abs() <= per_lane * 1e-4, "{}: {got} against {per_lane}", level.name());
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_bf16_dot_probe_computes_its_chains_and_a_gain() {
        if !crate::model::cpu::bf16_dot::supported() {
            return;
        }
        // SAFETY: the CPU has AVX-512F and AVX512_BF16 (checked above).
        let sum = unsafe { x86::dot_bf16(1000) };
        let want = (16 * CHAINS) as f32 * 1000.0 * 2f32.powi(-13);
        assert!((sum - want).abs() <= want * 1e-6, "{sum} against {want}");
        let gain = bf16_dot_gain();
        assert!(gain.is_finite() && gain > 0.0, "{gain}");
    }

    #[test]
    fn the_probe_reports_the_level_in_use_and_a_rate() {
        let peak = measure(2);
        assert_eq!(peak.level, SimdLevel::detect().name());
        assert_eq!(peak.threads, 2);
        assert!(peak.one_thread.is_finite() && peak.one_thread > 0.0, "{peak:?}");
        assert!(peak.all_threads.is_finite() && peak.all_threads > 0.0, "{peak:?}");
        let mut again = peak;
        again.sample_again();
        assert!(again.one_thread >= peak.one_thread && again.all_threads >= peak.all_threads, "{again:?}");
        assert_eq!((again.level, again.threads), (peak.level, peak.threads));
    }
}

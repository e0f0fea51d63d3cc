//! Run-time choice of vector instructions for evatag's own hot loops written in plain Rust.
//!
//! [`multiversion!`] compiles a loop for AVX-512, for AVX2 and for the baseline target, and each
//! call takes the widest path the CPU supports. Tests can lower that widest path on the calling
//! thread (`with_max_level`, built for tests only), so the AVX2 and portable paths run and are
//! checked on a machine that would otherwise always take the AVX-512 one.
//!
//! The matrix products are the `gemm` crate's: it picks its own kernels at run time and offers
//! no way to force a level, so the cap does not reach them.

use std::cell::Cell;

/// Defines a function that runs a plain-Rust body compiled for AVX-512 or for AVX2 when the
/// CPU has those features (detected at run time, once cached) and the level is not capped
/// below them on this thread, and as it is otherwise. The body (an `#[inline(always)]`
/// function) is written so that the compiler vectorises it; the wider the instructions it may
/// use, the faster it runs.
macro_rules! multiversion {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $portable:path;
        avx512: [$($wide:tt),+];
        avx2: [$($narrow:tt),+];
    ) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::model::cpu::simd::{self as dispatch, SimdLevel};
                $(#[target_feature(enable = $wide)])+
                fn wide($($arg: $ty),*) $(-> $ret)? {
                    $portable($($arg),*)
                }
                $(#[target_feature(enable = $narrow)])+
                fn narrow($($arg: $ty),*) $(-> $ret)? {
                    $portable($($arg),*)
                }
                if dispatch::allows(SimdLevel::Avx512) && $(std::arch::is_x86_feature_detected!($wide))&&+ {
                    dispatch::note_path(SimdLevel::Avx512);
                    // SAFETY: the CPU has just been found to support every feature `wide` enables.
                    return unsafe { wide($($arg),*) };
                }
                if dispatch::allows(SimdLevel::Avx2) && $(std::arch::is_x86_feature_detected!($narrow))&&+ {
                    dispatch::note_path(SimdLevel::Avx2);
                    // SAFETY: the CPU has just been found to support every feature `narrow` enables.
                    return unsafe { narrow($($arg),*) };
                }
            }
            $crate::model::cpu::simd::note_portable_path();
            $portable($($arg),*)
        }
    };
}

pub(crate) use multiversion;

/// The vector instructions the CPU kernels run with on this machine, chosen at run time.
///
/// evatag's own kernels ([`multiversion!`]) follow it, including a cap set in tests; the
/// `gemm` crate's matrix products make the same kind of choice on their own and cannot be
/// capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    /// x86-64 with AVX-512 (F, plus the BW/DQ/VL subsets every AVX-512 CPU since Skylake-X has).
    Avx512,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// 64-bit ARM with NEON.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code, reason = "detected on 64-bit ARM only"))]
    Neon,
    /// Plain scalar or SSE2 code.
    Generic,
}

thread_local! {
    /// The widest level the dispatch may use on this thread; `None` means whatever the CPU has.
    /// Set by [`with_max_level`] and by the threads of [`with_level_everywhere`]'s pool.
    static MAX_LEVEL: Cell<Option<SimdLevel>> = const { Cell::new(None) };
}

/// The widest level for the whole process, from `EVATAG_SIMD` (`avx512`, `avx2` or `generic`),
/// read once: a benchmark sets it to measure a narrower path on a machine that has a wider one.
fn process_cap() -> Option<SimdLevel> {
    static CAP: std::sync::OnceLock<Option<SimdLevel>> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| {
        let value = std::env::var("EVATAG_SIMD").ok()?;
        let level = SimdLevel::parse(&value);
        if level.is_none() {
            tracing::warn!("EVATAG_SIMD={value} is not avx512, avx2 or generic; ignored");
        }
        level
    })
}

/// The narrowest of this thread's cap and the process's, if either is set.
fn cap() -> Option<SimdLevel> {
    match (MAX_LEVEL.with(Cell::get), process_cap()) {
        (Some(a), Some(b)) => Some(if a.rank() <= b.rank() { a } else { b }),
        (a, b) => a.or(b),
    }
}

impl SimdLevel {
    /// The level in effect on this thread: the widest the CPU supports, lowered to the cap set
    /// for this thread or for the process (`EVATAG_SIMD`).
    pub fn detect() -> Self {
        let supported = Self::supported();
        match (supported, cap()) {
            (Self::Avx512, Some(max @ (Self::Avx2 | Self::Generic)))
            | (Self::Avx2 | Self::Neon, Some(max @ Self::Generic)) => max,
            _ => supported,
        }
    }

    /// The widest level this CPU supports.
    fn supported() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Self::Avx2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Self::Neon;
            }
        }
        Self::Generic
    }

    /// The level named as `EVATAG_SIMD` names it: `avx512`, `avx2` or `generic` (any case).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx-512" => Some(Self::Avx512),
            "avx2" => Some(Self::Avx2),
            "generic" => Some(Self::Generic),
            _ => None,
        }
    }

    /// The name users see, e.g. `AVX-512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "AVX-512",
            Self::Avx2 => "AVX2",
            Self::Neon => "NEON",
            Self::Generic => "generic",
        }
    }

    /// Order of the x86 paths, narrowest first.
    fn rank(self) -> u8 {
        match self {
            Self::Generic | Self::Neon => 0,
            Self::Avx2 => 1,
            Self::Avx512 => 2,
        }
    }
}

/// Whether [`multiversion!`] may take the path for `level` on this thread (the CPU's support
/// is checked separately).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, reason = "the dispatch has one path off x86-64"))]
pub(crate) fn allows(level: SimdLevel) -> bool {
    cap().is_none_or(|max| level.rank() <= max.rank())
}

#[cfg(test)]
thread_local! {
    /// The path the last [`multiversion!`] call on this thread took.
    static LAST_PATH: Cell<Option<SimdLevel>> = const { Cell::new(None) };
}

/// Records the path a [`multiversion!`] call takes, for tests to check; does nothing outside
/// tests.
#[inline(always)]
pub(crate) fn note_path(level: SimdLevel) {
    #[cfg(test)]
    LAST_PATH.with(|last| last.set(Some(level)));
    #[cfg(not(test))]
    let _ = level;
}

/// Records that a [`multiversion!`] call took its portable path: NEON code on 64-bit ARM where
/// NEON is the level in effect (every such CPU has it, and the compiler vectorises the portable
/// code with it), the generic path otherwise; does nothing outside tests.
#[inline(always)]
pub(crate) fn note_portable_path() {
    #[cfg(test)]
    note_path(if cfg!(target_arch = "aarch64") && SimdLevel::detect() == SimdLevel::Neon {
        SimdLevel::Neon
    } else {
        SimdLevel::Generic
    });
}

/// How the CPU runs the model, e.g. `AVX-512 kernels, 2 threads`.
pub(crate) fn cpu_path() -> String {
    format!("{} kernels, {} threads", SimdLevel::detect().name(), rayon::current_num_threads())
}

/// Runs `f` with [`multiversion!`] on this thread limited to paths no wider than `level`, then
/// restores the previous limit. Work `f` hands to other threads (rayon) is not limited.
pub(crate) fn with_max_level<R>(level: SimdLevel, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<SimdLevel>);
    impl Drop for Restore {
        fn drop(&mut self) {
            MAX_LEVEL.with(|max| max.set(self.0));
        }
    }
    let _restore = Restore(MAX_LEVEL.with(|max| max.replace(Some(level))));
    f()
}

/// Runs `f` with every kernel it calls, on this thread and on the rayon threads it hands work
/// to, limited to paths no wider than `level`: `f` runs in a pool of as many threads as the
/// global one, each of them capped. For tests and benchmarks of the narrower paths.
pub fn with_level_everywhere<R: Send>(level: SimdLevel, f: impl FnOnce() -> R + Send) -> R {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads())
        .start_handler(move |_| MAX_LEVEL.with(|max| max.set(Some(level))))
        .build()
        .expect("building a thread pool");
    pool.install(|| with_max_level(level, f))
}

/// The paths the CPU kernels can take on this CPU, widest first; `Generic` is the portable one
/// (on 64-bit ARM, [`multiversion!`]'s code is the same at both levels, NEON being part of the
/// architecture, while the matrix products take the `gemm` crate's NEON or scalar kernels).
pub fn available_levels() -> Vec<SimdLevel> {
    match SimdLevel::supported() {
        SimdLevel::Avx512 => vec![SimdLevel::Avx512, SimdLevel::Avx2, SimdLevel::Generic],
        SimdLevel::Avx2 => vec![SimdLevel::Avx2, SimdLevel::Generic],
        SimdLevel::Neon => vec![SimdLevel::Neon, SimdLevel::Generic],
        SimdLevel::Generic => vec![SimdLevel::Generic],
    }
}

/// Runs `check` once for every path in [`available_levels`], with the dispatch limited to that
/// path, and asserts that the last [`multiversion!`] call `check` made on this thread took it.
#[cfg(test)]
pub(crate) fn at_every_level(mut check: impl FnMut(SimdLevel)) {
    for level in available_levels() {
        with_max_level(level, || {
            LAST_PATH.with(|last| last.set(None));
            check(level);
            let taken = LAST_PATH.with(Cell::get);
            assert_eq!(taken, Some(level), "the kernel did not take the {} path", level.name());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(always)]
    fn sum_portable(values: &[f32]) -> f32 {
        values.iter().sum()
    }

    multiversion! {
        /// A kernel to watch the dispatch with.
        fn sum(values: &[f32]) -> f32 => sum_portable;
        avx512: ["avx512f"];
        avx2: ["avx2"];
    }

    #[test]
    fn the_dispatch_takes_each_forced_path() {
        let values: Vec<f32> = (0..100).map(|i| i as f32).collect();
        at_every_level(|_| assert_eq!(sum(&values), 4950.0));
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn detect_reports_the_level_in_effect() {
        let supported = SimdLevel::detect();
        for level in available_levels() {
            assert_eq!(with_max_level(level, SimdLevel::detect), level);
        }
        // A cap above what the CPU has changes nothing, and every cap ends with its closure.
        assert_eq!(with_max_level(SimdLevel::Avx512, SimdLevel::detect), supported);
        assert_eq!(SimdLevel::detect(), supported);
    }

    #[test]
    fn levels_are_named_as_the_environment_variable_names_them() {
        assert_eq!(SimdLevel::parse("AVX2"), Some(SimdLevel::Avx2));
        assert_eq!(SimdLevel::parse(" avx512 "), Some(SimdLevel::Avx512));
        assert_eq!(SimdLevel::parse("generic"), Some(SimdLevel::Generic));
        assert_eq!(SimdLevel::parse("sse9"), None);
    }

    #[test]
    fn the_pool_caps_every_thread_it_hands_work_to() {
        use rayon::prelude::*;
        for level in available_levels() {
            let seen: Vec<SimdLevel> =
                with_level_everywhere(level, || (0..64).into_par_iter().map(|_| SimdLevel::detect()).collect());
            assert!(seen.iter().all(|&l| l == level), "{}: {seen:?}", level.name());
        }
    }

    #[test]
    fn the_cap_is_restored_after_a_panic() {
        let before = MAX_LEVEL.with(Cell::get);
        let caught = std::panic::catch_unwind(|| with_max_level(SimdLevel::Generic, || panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(MAX_LEVEL.with(Cell::get), before);
    }
}

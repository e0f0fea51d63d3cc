//! Runtime choice of vector instructions for hot loops written in plain Rust.

/// Defines a function that runs a plain-Rust body compiled for AVX-512 or for AVX2 when the
/// CPU has those features (detected at run time, once cached), and as it is otherwise. The
/// body (an `#[inline(always)]` function) is written so that the compiler vectorises it; the
/// wider the instructions it may use, the faster it runs.
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
                $(#[target_feature(enable = $wide)])+
                fn wide($($arg: $ty),*) $(-> $ret)? {
                    $portable($($arg),*)
                }
                $(#[target_feature(enable = $narrow)])+
                fn narrow($($arg: $ty),*) $(-> $ret)? {
                    $portable($($arg),*)
                }
                if $(std::arch::is_x86_feature_detected!($wide))&&+ {
                    // SAFETY: the CPU has just been found to support every feature `wide` enables.
                    return unsafe { wide($($arg),*) };
                }
                if $(std::arch::is_x86_feature_detected!($narrow))&&+ {
                    // SAFETY: the CPU has just been found to support every feature `narrow` enables.
                    return unsafe { narrow($($arg),*) };
                }
            }
            $portable($($arg),*)
        }
    };
}

pub(crate) use multiversion;

/// The vector instructions the CPU kernels (the `gemm` crate's and evatag's own) run with on
/// this machine, chosen at run time.
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

impl SimdLevel {
    /// The level this CPU supports.
    pub fn detect() -> Self {
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

    /// The name users see, e.g. `AVX-512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "AVX-512",
            Self::Avx2 => "AVX2",
            Self::Neon => "NEON",
            Self::Generic => "generic",
        }
    }
}

/// How the CPU runs the model, e.g. `AVX-512 kernels, 2 threads`.
pub fn cpu_path() -> String {
    format!("{} kernels, {} threads", SimdLevel::detect().name(), rayon::current_num_threads())
}

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

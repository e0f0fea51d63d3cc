//! Why a photo file could not be turned into model input, for every format.

use std::path::{Path, PathBuf};

/// Why a file could not be turned into model input.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The file cannot be read (missing, a dangling link, no permission, an I/O error).
    #[error("{path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why, phrased for a person.
        reason: String,
    },
    /// The file holds no bytes at all.
    #[error("{path}: is empty (0 bytes)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The bytes are not in a supported image format.
    #[error("{path}: not a supported image (JPEG, PNG, WebP, TIFF, BMP, GIF, HEIC, AVIF or camera RAW)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The format's decoder is not installed on this computer.
    #[error("{path}: cannot read {format} photos: {reason}")]
    NoDecoder {
        /// The file.
        path: PathBuf,
        /// The format's name.
        format: &'static str,
        /// What is missing and how to install it.
        reason: String,
    },
    /// The file is larger than allowed.
    #[error(
        "{path}: the file is {} MB, over the {limit_mb} MB limit \
         (raise --max-file-mb if it is a genuine photo)", bytes.div_ceil(1_000_000)
    )]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The limit in megabytes.
        limit_mb: u64,
    },
    /// The header declares more pixels than allowed.
    #[error(
        "{path}: {width}x{height} pixels is over the {limit_mp} megapixel limit \
         (a damaged file or a decompression bomb; raise --max-megapixels if it is genuine)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit in megapixels.
        limit_mp: u64,
    },
    /// The image data is damaged or truncated.
    #[error("{path}: cannot decode: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
}

impl PreprocessError {
    /// A decoder's complaint about `path`.
    pub(super) fn decode(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Decode { path: path.to_owned(), reason: reason.to_string() }
    }
}

/// Refuses `pixels` over `max_megapixels` before anything that size is allocated.
pub(super) fn check_pixels(path: &Path, width: u32, height: u32, max_megapixels: u64) -> Result<(), PreprocessError> {
    match u64::from(width) * u64::from(height) > max_megapixels.saturating_mul(1_000_000) {
        true => Err(PreprocessError::TooLarge { path: path.to_owned(), width, height, limit_mp: max_megapixels }),
        false => Ok(()),
    }
}

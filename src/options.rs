//! What both front ends configure: where the model comes from and where it runs, the result
//! cache, and the limits on input files. The command line and the app fill it in; no type of
//! either appears here.

use std::path::PathBuf;

use crate::model::device::{DTypeChoice, DeviceChoice};
use crate::model::registry::{self, RegisteredModel};
use crate::model::weights::ModelSource;
use crate::preprocess;
use crate::setup;

/// Options shared by the desktop app and the headless commands.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The registered model asked for: its architecture for benchmarks on random weights, and
    /// the Hub repository of `source` unless another repository or a folder was given.
    pub model: &'static RegisteredModel,
    /// Where the model comes from.
    pub source: ModelSource,
    /// The device asked for, if one was; the app otherwise uses the one it remembers.
    pub device: Option<DeviceChoice>,
    /// The precision asked for, if one was; the app otherwise uses the one it remembers.
    pub dtype: Option<DTypeChoice>,
    /// The result cache's folder; `None` neither reads nor writes a cache.
    pub cache_dir: Option<PathBuf>,
    /// Images with more pixels than this (in millions) are refused before decoding.
    pub max_megapixels: u64,
    /// Files larger than this many megabytes are refused before they are read.
    pub max_file_mb: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            model: registry::default_model(),
            source: registry::default_model().source(false),
            device: None,
            dtype: None,
            cache_dir: setup::cache_dir(),
            max_megapixels: preprocess::DEFAULT_MAX_MEGAPIXELS,
            max_file_mb: preprocess::DEFAULT_MAX_FILE_MB,
        }
    }
}

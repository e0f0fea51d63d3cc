//! Finding and opening a model's files: `config.json` and `model.safetensors`, from the
//! Hugging Face Hub (downloaded once into the standard Hub cache) or from a local folder in the
//! same layout.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo};
use memmap2::Mmap;
use safetensors::SafeTensors;

use super::config::{ConfigError, ModelConfig};
use super::device::DTypeChoice;

/// The file holding timm's configuration.
pub const CONFIG_FILE: &str = "config.json";
/// The file holding the weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A Hub repository, downloaded into the Hugging Face cache unless `offline`.
    Hub {
        /// Repository id, e.g. `timm/eva_giant_patch14_224.clip_ft_in1k`.
        repo: String,
        /// Use only what the cache already holds.
        offline: bool,
    },
    /// A local folder holding `config.json` and `model.safetensors`.
    Dir(PathBuf),
}

/// Whether `HF_HUB_OFFLINE` asks for no network access.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes" | "ON" | "on"))
}

/// Paths of a model's two files on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// timm's `config.json`.
    pub config: PathBuf,
    /// The safetensors checkpoint.
    pub weights: PathBuf,
}

/// Receives download progress; implemented by the terminal progress bar and the worker.
pub trait DownloadProgress {
    /// A file of `total_bytes` starts (or resumes) downloading.
    fn start(&mut self, file: &str, total_bytes: u64);
    /// `bytes` more bytes of the current file are on disk.
    fn advance(&mut self, bytes: u64);
    /// The current file is complete.
    fn finish(&mut self);
}

/// Ignores progress.
impl DownloadProgress for () {
    fn start(&mut self, _file: &str, _total_bytes: u64) {}
    fn advance(&mut self, _bytes: u64) {}
    fn finish(&mut self) {}
}

/// Errors a user can act on while locating or opening model files.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// A download failed.
    #[error(
        "could not download {file} from {url}: {reason}\n\
         If this machine has no network, download config.json and model.safetensors from \
         https://huggingface.co/{repo} on another machine, put them in one folder and run with \
         --model-dir FOLDER (or copy a Hugging Face cache into HF_HOME)."
    )]
    Download {
        /// Repository id.
        repo: String,
        /// File name within the repository.
        file: String,
        /// The URL that failed.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Offline mode, and the cache lacks a file.
    #[error(
        "{file} of {repo} is not in the Hugging Face cache at {cache} and downloads are off \
         (--offline or HF_HUB_OFFLINE). Run once with network access, or pass --model-dir with a \
         folder holding config.json and model.safetensors."
    )]
    NotCached {
        /// Repository id.
        repo: String,
        /// File name within the repository.
        file: String,
        /// The cache folder searched.
        cache: PathBuf,
    },
    /// A model folder lacks one of its files.
    #[error("{path} is missing: a model folder needs config.json and model.safetensors")]
    MissingFile {
        /// The expected path.
        path: PathBuf,
    },
    /// A file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `config.json` is unusable.
    #[error("{path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: ConfigError,
    },
    /// The weights file is not a complete safetensors file.
    #[error("{path} is not a complete safetensors file ({reason}); delete it and download it again")]
    NotSafetensors {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        reason: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("{path} has no tensor `{name}`; it does not hold weights for this architecture")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The checkpoint key.
        name: String,
    },
    /// A tensor has another shape than the architecture needs.
    #[error("{path}: tensor `{name}` has shape {found:?}, the architecture expects {expected:?}")]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The checkpoint key.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has a data type evatag cannot load.
    #[error("{path}: tensor `{name}` has unsupported data type {dtype}")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The checkpoint key.
        name: String,
        /// The type in the file.
        dtype: String,
    },
    /// The tensor library failed while building the network.
    #[error("building the model from {path} failed: {}", super::error_message(source))]
    Build {
        /// The weights file.
        path: PathBuf,
        /// The cause.
        source: candle_core::Error,
    },
}

/// Makes sure the model's files are on local disk and returns their paths, downloading from
/// the Hub when needed.
pub fn locate(source: &ModelSource, progress: &mut dyn DownloadProgress) -> Result<ModelFiles, WeightsError> {
    match source {
        ModelSource::Dir(dir) => {
            let files = ModelFiles { config: dir.join(CONFIG_FILE), weights: dir.join(WEIGHTS_FILE) };
            for path in [&files.config, &files.weights] {
                if !path.is_file() {
                    return Err(WeightsError::MissingFile { path: path.clone() });
                }
            }
            Ok(files)
        }
        ModelSource::Hub { repo, offline } => {
            let fetch = |file: &str, progress: &mut dyn DownloadProgress| {
                if *offline { cached_file(repo, file) } else { download_file(repo, file, progress) }
            };
            Ok(ModelFiles { config: fetch(CONFIG_FILE, progress)?, weights: fetch(WEIGHTS_FILE, progress)? })
        }
    }
}

/// The path of a file in the Hugging Face cache, without touching the network.
fn cached_file(repo: &str, file: &str) -> Result<PathBuf, WeightsError> {
    let cache = Cache::from_env();
    cache.model(repo.to_owned()).get(file).ok_or_else(|| WeightsError::NotCached {
        repo: repo.to_owned(),
        file: file.to_owned(),
        cache: cache.path().clone(),
    })
}

/// Fetches a file into the Hugging Face cache (honouring `HF_HOME` and `HF_ENDPOINT`).
///
/// The download goes to a `.part` file that is renamed only once complete, and a later run
/// resumes it with an HTTP range request, so an interrupted download is never taken for a
/// complete one.
fn download_file(repo: &str, file: &str, progress: &mut dyn DownloadProgress) -> Result<PathBuf, WeightsError> {
    if let Ok(path) = cached_file(repo, file) {
        return Ok(path);
    }
    let failed = |url: String, reason: String| WeightsError::Download {
        repo: repo.to_owned(),
        file: file.to_owned(),
        url,
        reason,
    };
    let api = ApiBuilder::from_env()
        .with_progress(false)
        .with_user_agent("evatag", env!("CARGO_PKG_VERSION"))
        .build()
        .map_err(|e| failed(String::new(), e.to_string()))?;
    let repo_api = api.repo(Repo::model(repo.to_owned()));
    repo_api
        .download_with_progress(file, HubProgress { inner: progress })
        .map_err(|e| failed(repo_api.url(file), e.to_string()))
}

/// Adapts [`DownloadProgress`] to hf-hub's progress callback.
struct HubProgress<'a> {
    inner: &'a mut dyn DownloadProgress,
}

impl hf_hub::api::Progress for HubProgress<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        self.inner.start(filename, size as u64);
    }

    fn update(&mut self, size: usize) {
        self.inner.advance(size as u64);
    }

    fn finish(&mut self) {
        self.inner.finish();
    }
}

/// Reads and parses a model's `config.json`.
pub fn read_config(path: &Path) -> Result<ModelConfig, WeightsError> {
    let text = std::fs::read_to_string(path).map_err(|source| WeightsError::Io { path: path.to_owned(), source })?;
    ModelConfig::from_json(&text).map_err(|source| WeightsError::Config { path: path.to_owned(), source })
}

/// Where one tensor lies in the checkpoint.
#[derive(Debug, Clone)]
struct TensorEntry {
    dtype: DType,
    shape: Vec<usize>,
    /// Byte range within the file.
    start: usize,
    end: usize,
}

/// Shared storage for the first problem a [`Checkpoint`] met.
#[derive(Debug, Clone, Default)]
pub struct ProblemSlot(Arc<Mutex<Option<WeightsError>>>);

impl ProblemSlot {
    /// Removes and returns the recorded problem.
    pub fn take(&self) -> Option<WeightsError> {
        self.0.lock().ok().and_then(|mut p| p.take())
    }

    fn record(&self, problem: WeightsError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(problem);
        }
    }
}

/// A memory-mapped safetensors checkpoint, serving tensors to a [`candle_nn::VarBuilder`] by
/// their checkpoint names.
///
/// Each tensor is copied once, into its destination device's memory, and its pages of the
/// mapping are released right after, so peak memory stays near the size of the weights.
pub struct Checkpoint {
    path: PathBuf,
    mmap: Mmap,
    tensors: HashMap<String, TensorEntry>,
    /// The first failure seen while serving tensors, kept in a form the user can act on.
    problem: ProblemSlot,
}

impl Checkpoint {
    /// Maps `path` and validates its header and length.
    pub fn open(path: &Path) -> Result<Self, WeightsError> {
        let io = |source| WeightsError::Io { path: path.to_owned(), source };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only; evatag never writes model files while they are mapped.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        let not_safetensors = |reason: String| WeightsError::NotSafetensors { path: path.to_owned(), reason };
        let (header_len, metadata) = SafeTensors::read_metadata(&mmap).map_err(|e| {
            not_safetensors(match e {
                safetensors::SafeTensorError::MetadataIncompleteBuffer => {
                    format!("truncated: the header describes more data than the {} bytes present", mmap.len())
                }
                other => other.to_string(),
            })
        })?;
        let data_start = 8 + header_len;
        let mut tensors = HashMap::new();
        for (name, info) in metadata.tensors() {
            let dtype = match info.dtype {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::F16 => DType::F16,
                safetensors::Dtype::BF16 => DType::BF16,
                other => {
                    return Err(WeightsError::UnsupportedDtype {
                        path: path.to_owned(),
                        name,
                        dtype: format!("{other:?}"),
                    });
                }
            };
            let (start, end) = info.data_offsets;
            tensors.insert(
                name,
                TensorEntry { dtype, shape: info.shape.clone(), start: data_start + start, end: data_start + end },
            );
        }
        Ok(Self { path: path.to_owned(), mmap, tensors, problem: ProblemSlot::default() })
    }

    /// Number of tensors in the file.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the file holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// A handle on the first user-facing problem met while serving tensors; it stays readable
    /// after the checkpoint has been moved into a [`candle_nn::VarBuilder`].
    pub fn problems(&self) -> ProblemSlot {
        self.problem.clone()
    }

    fn record(&self, problem: WeightsError) -> candle_core::Error {
        let message = problem.to_string();
        self.problem.record(problem);
        candle_core::Error::Msg(message)
    }

    fn load(&self, name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let Some(entry) = self.tensors.get(name) else {
            return Err(self.record(WeightsError::MissingTensor { path: self.path.clone(), name: name.to_owned() }));
        };
        let bytes = &self.mmap[entry.start..entry.end];
        let tensor = Tensor::from_raw_buffer(bytes, entry.dtype, &entry.shape, device)?.to_dtype(dtype)?;
        self.release(entry);
        Ok(tensor)
    }

    /// Drops the mapped pages of a tensor that has been copied out.
    #[cfg(unix)]
    fn release(&self, entry: &TensorEntry) {
        // SAFETY: the mapping is private and read-only, so discarded pages read back from the
        // file unchanged if they are ever touched again.
        let _ = unsafe {
            self.mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, entry.start, entry.end - entry.start)
        };
    }

    #[cfg(not(unix))]
    fn release(&self, _entry: &TensorEntry) {}
}

impl SimpleBackend for Checkpoint {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _hints: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Some(entry) = self.tensors.get(name)
            && entry.shape != shape.dims()
        {
            return Err(self.record(WeightsError::ShapeMismatch {
                path: self.path.clone(),
                name: name.to_owned(),
                expected: shape.dims().to_vec(),
                found: entry.shape.clone(),
            }));
        }
        self.load(name, dtype, device)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        self.load(name, dtype, device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// Serves normally distributed random tensors (mean 0, standard deviation 0.02) of whatever
/// shape is asked for: the network at full size without its weights, for benchmarks and for
/// tests that compare precisions. A tensor's values depend only on its name, so two networks
/// built from it hold the same weights.
pub struct RandomWeights;

impl RandomWeights {
    /// Values per independently seeded chunk, generated in parallel.
    const CHUNK: usize = 1 << 16;

    /// `count` normal values, seeded by `name`.
    fn values(name: &str, count: usize) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        use rayon::prelude::*;
        let hash = blake3::hash(name.as_bytes());
        let seed = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
        let normal = rand_distr::Normal::new(0f32, 0.02).expect("a valid standard deviation");
        let mut values = vec![0f32; count];
        values.par_chunks_mut(Self::CHUNK).enumerate().for_each(|(chunk, values)| {
            let mut rng =
                rand::rngs::SmallRng::seed_from_u64(seed ^ (chunk as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            values.iter_mut().for_each(|v| *v = rng.sample(normal));
        });
        values
    }
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _hints: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let values = Self::values(name, shape.elem_count());
        Tensor::from_vec(values, shape, &Device::Cpu)?.to_device(device)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _device: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights have no shape for `{name}`")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// The identity results are cached under: the architecture, the [`fingerprint`] of its files
/// and the precision (see [`with_precision`]).
pub fn model_id(config: &ModelConfig, files: &ModelFiles, precision: DTypeChoice) -> Result<String, WeightsError> {
    Ok(with_precision(format!("{}@{}", config.architecture, fingerprint(files)?), precision))
}

/// A model id with the precision appended unless it is f32 (`…+bf16`), so that a cache never
/// serves results of one precision for another, and f32 ids stay as they always were.
pub fn with_precision(id: String, precision: DTypeChoice) -> String {
    match precision {
        DTypeChoice::F32 => id,
        other => format!("{id}+{}", other.name()),
    }
}

/// A short, stable identity of a model's weights and configuration, for cache keys.
///
/// Hashes `config.json`, the checkpoint's length and header, and 64 evenly spaced 4 KiB samples
/// of its data: any re-export, fine-tune or truncation changes it, without reading 4 GB.
pub fn fingerprint(files: &ModelFiles) -> Result<String, WeightsError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| WeightsError::Io { path, source }
    };
    let config = std::fs::read(&files.config).map_err(io(&files.config))?;
    let file = File::open(&files.weights).map_err(io(&files.weights))?;
    // SAFETY: read-only mapping of a file evatag does not modify.
    let mmap = unsafe { Mmap::map(&file) }.map_err(io(&files.weights))?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&config);
    hasher.update(&(mmap.len() as u64).to_le_bytes());
    const SAMPLES: usize = 64;
    const SAMPLE_LEN: usize = 4096;
    let header_len = mmap.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize);
    hasher.update(&mmap[..(8 + header_len).min(mmap.len())]);
    let stride = (mmap.len() / SAMPLES).max(1);
    for offset in (0..mmap.len()).step_by(stride).take(SAMPLES) {
        hasher.update(&mmap[offset..(offset + SAMPLE_LEN).min(mmap.len())]);
    }
    Ok(hasher.finalize().to_hex()[..16].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_weights_depend_only_on_the_name_and_have_the_asked_spread() -> candle_core::Result<()> {
        let get = |name: &str| {
            RandomWeights.get(Shape::from((300, 700)), name, candle_nn::Init::Const(0.0), DType::F32, &Device::Cpu)
        };
        let (a, again, other) = (get("blocks.0.fc1")?, get("blocks.0.fc1")?, get("blocks.1.fc1")?);
        let values = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        assert_eq!(values(&a)?, values(&again)?);
        assert_ne!(values(&a)?, values(&other)?);
        let v = values(&a)?;
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
        assert!(mean.abs() < 1e-3 && (std - 0.02).abs() < 1e-3, "mean {mean}, std {std}");
        Ok(())
    }
}

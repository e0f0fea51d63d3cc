//! EVA in candle: configuration, weights, devices, labels and the network itself.
//!
//! This module knows nothing of files beyond the model's own, of caches or of windows. The
//! network's layers are written with candle's operations, which run on every backend; on the
//! CPU they hand f32 work to the fused kernels in `cpu`.

pub mod attention;
pub mod config;
pub(crate) mod cpu;
pub mod device;
pub mod eva;
pub mod labels;
pub mod linear;
pub mod registry;
pub mod rope;
pub mod weights;

pub use cpu::{peak, simd};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use config::ModelConfig;
use device::{Graph, Placement};
use eva::Eva;
use weights::{Checkpoint, ModelFiles, RandomWeights, WeightsError};

/// What went wrong in candle, in one line: without the backtrace candle attaches when
/// `RUST_BACKTRACE` is set, and with each context before its cause.
pub fn error_message(error: &candle_core::Error) -> String {
    match error {
        candle_core::Error::WithBacktrace { inner, .. } => error_message(inner),
        candle_core::Error::Context { inner, context } => format!("{context}: {}", error_message(inner)),
        other => other.to_string(),
    }
}

/// One class and its probability.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassProb {
    /// Index into the classifier's outputs.
    pub class: usize,
    /// Softmax probability.
    pub prob: f32,
}

/// What the model says about one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The pooled, normalised feature vector used for similarity.
    pub embedding: Vec<f32>,
    /// Raw classifier outputs.
    pub logits: Vec<f32>,
}

impl Prediction {
    /// The `k` most probable classes, best first, with softmax probabilities.
    pub fn top_k(&self, k: usize) -> Vec<ClassProb> {
        top_k(&softmax(&self.logits), k)
    }
}

/// Softmax in f64 with the maximum subtracted, returned as f32.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

/// The `k` largest probabilities with their indices, largest first (ties by lower index).
pub fn top_k(probs: &[f32], k: usize) -> Vec<ClassProb> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order.into_iter().take(k).map(|class| ClassProb { class, prob: probs[class] }).collect()
}

/// A network ready to run, with what it needs to be fed and identified.
pub struct Model {
    eva: Eva,
    config: ModelConfig,
    device: Device,
    dtype: DType,
    graph: Graph,
    id: String,
}

impl Model {
    /// Loads a model folder's weights onto the placement's device.
    pub fn load(files: &ModelFiles, placement: &Placement) -> Result<Self, WeightsError> {
        let config = weights::read_config(&files.config)?;
        let checkpoint = Checkpoint::open(&files.weights)?;
        let problems = checkpoint.problems();
        let vb = VarBuilder::from_backend(Box::new(checkpoint), placement.dtype, placement.device.clone());
        let eva = Eva::new(&config.eva, vb, placement.linear_weights)
            .map_err(|source| problems.take().unwrap_or(WeightsError::Build { path: files.weights.clone(), source }))?;
        let id = weights::model_id(&config, files, placement.precision())?;
        Ok(Self { eva, config, device: placement.device.clone(), dtype: placement.dtype, graph: placement.graph, id })
    }

    /// A registered architecture at full size with random weights, for benchmarks.
    pub fn random(config: ModelConfig, placement: &Placement) -> candle_core::Result<Self> {
        let vb = VarBuilder::from_backend(Box::new(RandomWeights), placement.dtype, placement.device.clone());
        let eva = Eva::new(&config.eva, vb, placement.linear_weights)?;
        let id = weights::with_precision(format!("{}@random", config.architecture), placement.precision());
        Ok(Self { eva, config, device: placement.device.clone(), dtype: placement.dtype, graph: placement.graph, id })
    }

    /// The model's configuration and preprocessing.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Identifies architecture and weights; results are cached under it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs a batch of preprocessed images (each CHW f32, `3 x size x size`).
    pub fn predict(&self, images: &[&[f32]]) -> candle_core::Result<Vec<Prediction>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let size = self.config.eva.img_size;
        let channels = self.config.eva.in_chans;
        let flat: Vec<f32> = images.iter().flat_map(|image| image.iter().copied()).collect();
        let batch = Tensor::from_vec(flat, (images.len(), channels, size, size), &Device::Cpu)?
            .to_device(&self.device)?
            .to_dtype(self.dtype)?;
        let output = match self.graph {
            Graph::Fused => self.eva.embed_and_classify(&batch)?,
            Graph::Generic => cpu::with_generic_graph(|| self.eva.embed_and_classify(&batch))?,
        };
        let embeddings = output.embeddings.to_vec2::<f32>()?;
        let logits = output.logits.to_vec2::<f32>()?;
        Ok(embeddings.into_iter().zip(logits).map(|(embedding, logits)| Prediction { embedding, logits }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_leave_out_backtraces_and_keep_their_context() {
        let cause = candle_core::Error::Msg("CUDA_ERROR_NO_DEVICE".to_owned());
        let traced = candle_core::Error::WithBacktrace {
            inner: Box::new(cause),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert!(traced.to_string().lines().count() > 1, "candle prints the backtrace");
        let message = error_message(&traced.context("starting the GPU"));
        assert_eq!(message, "starting the GPU: CUDA_ERROR_NO_DEVICE");
    }
}

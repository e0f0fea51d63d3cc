//! Fully connected layers, `y = x Wᵀ + b`.
//!
//! f32 tensors on the CPU go through the blocked kernels in `model::cpu::linear`, which can also
//! apply the GELU that follows fc1: on x86-64 with AVX2 the weight is arranged in panels for
//! evatag's own kernels when it loads; with [`LinearWeights::Bf16`] the CPU keeps the weight in
//! bf16. Every other device and precision uses candle's matmul.

use std::sync::Arc;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::cpu::bf16::PackedBf16;
#[cfg(target_arch = "x86_64")]
use super::cpu::f32_tiles::{self, PanelSource, Panels};
#[cfg(target_arch = "x86_64")]
use super::cpu::linear::CpuLinearPanels;
use super::cpu::linear::{CpuLinear, CpuLinearBf16};

/// How linear layers hold their weights; every other parameter keeps the model's dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinearWeights {
    /// As loaded, in the model's dtype.
    #[default]
    AsLoaded,
    /// Rounded to bf16 once, at load, for the CPU (half the memory of f32); the activations stay
    /// f32. Tensors on other devices keep their dtype.
    Bf16,
}

/// A linear layer's weight, as a tensor, arranged in f32 panels or packed in bf16 for the CPU
/// kernels.
#[derive(Debug, Clone)]
enum Weight {
    Tensor(Tensor),
    #[cfg(target_arch = "x86_64")]
    Panels(Arc<Panels>),
    Bf16(Arc<PackedBf16>),
}

/// A linear layer with timm's `weight` `[out, in]` and optional `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    bias: Tensor,
}

impl Linear {
    /// Wraps existing tensors, holding the weight as `format` says; a missing bias is zero.
    pub fn new(weight: Tensor, bias: Option<Tensor>, format: LinearWeights) -> Result<Self> {
        let bias = match bias {
            Some(bias) => bias,
            None => Tensor::zeros(weight.dim(0)?, weight.dtype(), weight.device())?,
        };
        let on_cpu = weight.device().is_cpu();
        let weight = match format {
            LinearWeights::Bf16 if on_cpu => Weight::Bf16(Arc::new(with_f32_values(&weight, PackedBf16::pack)?)),
            #[cfg(target_arch = "x86_64")]
            LinearWeights::AsLoaded if on_cpu && weight.dtype() == DType::F32 && f32_tiles::Isa::supported() => {
                Weight::Panels(Arc::new(with_f32_values(&weight, Panels::new)?))
            }
            _ => Weight::Tensor(weight),
        };
        Ok(Self { weight, bias })
    }

    /// Loads `weight` and `bias` of a layer mapping `in_dim` to `out_dim`.
    pub fn load(in_dim: usize, out_dim: usize, vb: VarBuilder, format: LinearWeights) -> Result<Self> {
        Self::new(vb.get((out_dim, in_dim), "weight")?, Some(vb.get(out_dim, "bias")?), format)
    }

    /// `gelu(x Wᵀ + b)` with the exact (erf) GELU; on CPU applied to each block of outputs
    /// while it is still in cache.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        self.product(x, true)
    }

    /// The product, followed by GELU if `gelu`.
    fn product(&self, x: &Tensor, gelu: bool) -> Result<Tensor> {
        let fused = super::cpu::fused(x);
        match &self.weight {
            Weight::Bf16(weight) if fused => {
                x.contiguous()?.apply_op2_no_bwd(&self.bias, &CpuLinearBf16 { weight: weight.clone(), gelu })
            }
            Weight::Bf16(_) => candle_core::bail!("bf16 linear weights take f32 inputs, on the CPU's fused kernels"),
            #[cfg(target_arch = "x86_64")]
            Weight::Panels(weight) if fused => {
                x.contiguous()?.apply_op2_no_bwd(&self.bias, &CpuLinearPanels { weight: weight.clone(), gelu })
            }
            #[cfg(target_arch = "x86_64")]
            Weight::Panels(weight) => {
                // The generic graph, on the CPU: the weight back as a tensor for candle's matmul.
                let rows = Tensor::from_vec(weight.to_rows(), (weight.features(), weight.inputs()), x.device())?;
                let product = generic_product(x, &rows, &self.bias)?;
                if gelu { product.gelu_erf() } else { Ok(product) }
            }
            Weight::Tensor(weight) if fused => {
                x.contiguous()?.apply_op3_no_bwd(weight, &self.bias, &CpuLinear { gelu })
            }
            Weight::Tensor(weight) => {
                let product = generic_product(x, weight, &self.bias)?;
                if gelu { product.gelu_erf() } else { Ok(product) }
            }
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.product(x, false)
    }
}

/// `x Wᵀ + b` with candle's matmul, on any device and dtype.
fn generic_product(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (rows, features) = (x.elem_count() / dims[dims.len() - 1], dims[dims.len() - 1]);
    let flat = x.reshape((rows, features))?.matmul(&weight.t()?)?.broadcast_add(bias)?;
    let mut out_dims = dims;
    *out_dims.last_mut().expect("at least one dimension") = weight.dim(0)?;
    flat.reshape(out_dims)
}

/// Calls `arrange(values, features, inputs)` on a CPU weight's elements as f32, read in place
/// when it is a contiguous f32 tensor (so a layer never holds its weight twice in f32 while
/// loading).
fn with_f32_values<T>(weight: &Tensor, arrange: impl FnOnce(&[f32], usize, usize) -> T) -> Result<T> {
    let (features, inputs) = weight.dims2()?;
    let weight = weight.to_dtype(DType::F32)?.contiguous()?;
    let (storage, layout) = weight.storage_and_layout();
    let candle_core::Storage::Cpu(storage) = &*storage else {
        candle_core::bail!("arranged linear weights are for the CPU");
    };
    let values = super::cpu::f32_slice("arrange-weight", storage, layout)?;
    Ok(arrange(values, features, inputs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The largest difference between two tensors of the same shape.
    fn max_difference(a: &Tensor, b: &Tensor) -> Result<f32> {
        assert_eq!(a.dims(), b.dims());
        (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    }

    #[test]
    fn generic_path_matches_the_cpu_kernel() -> Result<()> {
        // f64 takes the path GPUs use.
        let device = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 7, 24), &device)?;
        let (w, b) = (Tensor::randn(0f32, 0.5, (50, 24), &device)?, Tensor::randn(0f32, 1.0, 50, &device)?);
        let linear = Linear::new(w.clone(), Some(b.clone()), LinearWeights::AsLoaded)?;
        let linear64 = Linear::new(w.to_dtype(DType::F64)?, Some(b.to_dtype(DType::F64)?), LinearWeights::AsLoaded)?;
        let x64 = x.to_dtype(DType::F64)?;
        assert!(max_difference(&linear.forward(&x)?, &linear64.forward(&x64)?)? < 1e-5);
        assert!(max_difference(&linear.forward_gelu(&x)?, &linear64.forward_gelu(&x64)?)? < 1e-5);
        Ok(())
    }

    #[test]
    fn bf16_weights_give_the_product_of_the_rounded_weights() -> Result<()> {
        let device = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (3, 5, 40), &device)?;
        let (w, b) = (Tensor::randn(0f32, 0.5, (70, 40), &device)?, Tensor::randn(0f32, 1.0, 70, &device)?);
        let half = Linear::new(w.clone(), Some(b.clone()), LinearWeights::Bf16)?;
        assert!(matches!(half.weight, Weight::Bf16(_)));
        let rounded = w.to_dtype(DType::BF16)?.to_dtype(DType::F32)?;
        let reference = Linear::new(rounded, Some(b), LinearWeights::AsLoaded)?;
        // The activations may be rounded to bf16 too: 2^-9 relative, over 40 inputs of size ~0.5.
        for (ours, theirs) in
            [(half.forward(&x)?, reference.forward(&x)?), (half.forward_gelu(&x)?, reference.forward_gelu(&x)?)]
        {
            let diff = max_difference(&ours, &theirs)?;
            assert!(diff < 0.05, "{diff}");
        }
        Ok(())
    }

    #[test]
    fn missing_bias_is_zero() -> Result<()> {
        let device = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0]], &device)?;
        let w = Tensor::new(&[[3f32, 4.0], [0.5, -1.0]], &device)?;
        for format in [LinearWeights::AsLoaded, LinearWeights::Bf16] {
            let y = Linear::new(w.clone(), None, format)?.forward(&x)?.to_vec2::<f32>()?;
            assert_eq!(y, vec![vec![11.0, -1.5]], "{format:?}");
        }
        Ok(())
    }
}

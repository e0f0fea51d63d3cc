//! Fully connected layers, `y = x Wᵀ + b`.
//!
//! f32 tensors on the CPU go through the blocked kernel in `model::cpu::linear`, which can also
//! apply the GELU that follows fc1; every other device and precision uses candle's matmul.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::cpu::linear::CpuLinear;

/// A linear layer with timm's `weight` `[out, in]` and optional `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Wraps existing tensors; a missing bias is zero.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let bias = match bias {
            Some(bias) => bias,
            None => Tensor::zeros(weight.dim(0)?, weight.dtype(), weight.device())?,
        };
        Ok(Self { weight, bias })
    }

    /// Loads `weight` and `bias` of a layer mapping `in_dim` to `out_dim`.
    pub fn load(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        Self::new(vb.get((out_dim, in_dim), "weight")?, Some(vb.get(out_dim, "bias")?))
    }

    /// `gelu(x Wᵀ + b)` with the exact (erf) GELU; on CPU applied to each block of outputs
    /// while it is still in cache.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            return x.contiguous()?.apply_op3_no_bwd(&self.weight, &self.bias, &CpuLinear { gelu: true });
        }
        self.forward(x)?.gelu_erf()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            return x.contiguous()?.apply_op3_no_bwd(&self.weight, &self.bias, &CpuLinear { gelu: false });
        }
        let dims = x.dims().to_vec();
        let (rows, features) = (x.elem_count() / dims[dims.len() - 1], dims[dims.len() - 1]);
        let flat = x.reshape((rows, features))?.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
        let mut out_dims = dims;
        *out_dims.last_mut().expect("at least one dimension") = self.weight.dim(0)?;
        flat.reshape(out_dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn generic_path_matches_the_cpu_kernel() -> Result<()> {
        // f64 takes the path GPUs use.
        let device = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 7, 24), &device)?;
        let linear =
            Linear::new(Tensor::randn(0f32, 0.5, (50, 24), &device)?, Some(Tensor::randn(0f32, 1.0, 50, &device)?))?;
        let linear64 = Linear::new(linear.weight.to_dtype(DType::F64)?, Some(linear.bias.to_dtype(DType::F64)?))?;
        let x64 = x.to_dtype(DType::F64)?;
        for (kernel, generic) in
            [(linear.forward(&x)?, linear64.forward(&x64)?), (linear.forward_gelu(&x)?, linear64.forward_gelu(&x64)?)]
        {
            assert_eq!(kernel.dims(), generic.dims());
            let diff = (kernel - generic.to_dtype(DType::F32)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "{diff}");
        }
        Ok(())
    }

    #[test]
    fn missing_bias_is_zero() -> Result<()> {
        let device = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0]], &device)?;
        let w = Tensor::new(&[[3f32, 4.0], [0.5, -1.0]], &device)?;
        let y = Linear::new(w, None)?.forward(&x)?.to_vec2::<f32>()?;
        assert_eq!(y, vec![vec![11.0, -1.5]]);
        Ok(())
    }
}

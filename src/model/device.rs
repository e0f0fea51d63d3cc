//! Choosing where the model runs: Metal, CUDA or CPU, with a fallback to CPU that says why.

use candle_core::{DType, Device};

use super::cpu::bf16::Bf16Path;
use super::linear::LinearWeights;

/// The device a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum DeviceChoice {
    /// Metal if available, then CUDA, then CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU.
    Cuda,
    /// The default Metal GPU.
    Metal,
}

impl DeviceChoice {
    /// Every choice, in menu order.
    pub const ALL: [Self; 4] = [Self::Auto, Self::Cpu, Self::Cuda, Self::Metal];

    /// The name users see: `Auto`, `CPU`, `CUDA` or `Metal`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "Auto",
            Self::Cpu => "CPU",
            Self::Cuda => "CUDA",
            Self::Metal => "Metal",
        }
    }
}

/// The floating-point type a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum DTypeChoice {
    /// 32-bit floats.
    #[default]
    F32,
    /// 16-bit IEEE floats (GPUs only).
    F16,
    /// bfloat16: on GPUs for everything; on the CPU for the linear layers' weights (half the
    /// memory), with f32 activations.
    Bf16,
}

impl DTypeChoice {
    /// Every choice.
    pub const ALL: [Self; 3] = [Self::F32, Self::F16, Self::Bf16];

    /// The name users see: `f32`, `f16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }
}

/// Which operations run the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Graph {
    /// evatag's fused kernels for f32 on the CPU; candle's operations on every other device and
    /// precision.
    #[default]
    Fused,
    /// candle's operations only, on every device: the graph GPUs run, chosen on the CPU by tests
    /// so that it is checked where no GPU is. Takes linear weights as loaded.
    Generic,
}

/// The device and precision the model will use, plus any warnings about fallbacks taken.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Where tensors live.
    pub device: Device,
    /// The activation type, and the weights' unless `linear_weights` says otherwise.
    pub dtype: DType,
    /// How linear layers hold their weights.
    pub linear_weights: LinearWeights,
    /// Which operations run the network.
    pub graph: Graph,
    /// Why the request could not be honoured as given, if it could not.
    pub warnings: Vec<String>,
}

impl Placement {
    /// A short human name for the device and, unless f32, the precision, e.g.
    /// `CPU (AVX-512 kernels, 2 threads)`, `CUDA GPU, bf16` or
    /// `CPU (AVX-512 kernels, 2 threads), bf16 weights (AVX512_BF16 dot products)`.
    pub fn device_name(&self) -> String {
        let device = describe(&self.device);
        match (self.precision(), self.bf16_kernels()) {
            (_, Some(kernels)) => format!("{device}, bf16 weights ({kernels})"),
            (DTypeChoice::F32, None) => device,
            (other, None) => format!("{device}, {}", other.name()),
        }
    }

    /// The precision results are computed in: `f32`, `f16` or `bf16`.
    pub fn precision(&self) -> DTypeChoice {
        match (self.dtype, self.linear_weights) {
            (DType::F16, _) => DTypeChoice::F16,
            (DType::BF16, _) | (_, LinearWeights::Bf16) => DTypeChoice::Bf16,
            _ => DTypeChoice::F32,
        }
    }

    /// How the CPU multiplies by bf16 weights, when it does.
    pub fn bf16_kernels(&self) -> Option<&'static str> {
        (self.device.is_cpu() && self.linear_weights == LinearWeights::Bf16).then(|| Bf16Path::detect().name())
    }

    /// For bf16 on the CPU, how many times f32's multiply-add rate this CPU's AVX512_BF16 dot
    /// product reaches, which decides, where AMX is not taken, whether the bf16 kernels take the
    /// dot product; `None` elsewhere.
    pub fn bf16_dot_gain(&self) -> Option<f64> {
        #[cfg(target_arch = "x86_64")]
        if self.bf16_kernels().is_some() {
            return super::cpu::bf16_dot::gain();
        }
        None
    }
}

/// A short human name for a device; for the CPU with its kernel path, e.g.
/// `CPU (AVX-512 kernels, 2 threads)`.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => format!("CPU ({})", super::cpu::simd::cpu_path()),
        Device::Cuda(_) => "CUDA GPU".to_owned(),
        Device::Metal(_) => "Metal GPU".to_owned(),
    }
}

/// The device choices this build can honour, for menus.
pub fn compiled_choices() -> Vec<DeviceChoice> {
    let mut choices = vec![DeviceChoice::Auto, DeviceChoice::Cpu];
    if cfg!(feature = "cuda") {
        choices.push(DeviceChoice::Cuda);
    }
    if cfg!(feature = "metal") {
        choices.push(DeviceChoice::Metal);
    }
    choices
}

/// Picks the device and precision, falling back to CPU and f32 with a warning when a GPU is
/// not compiled in or does not start.
pub fn place(device: DeviceChoice, dtype: DTypeChoice) -> Placement {
    let mut warnings = Vec::new();
    let device = match device {
        DeviceChoice::Cpu => Device::Cpu,
        DeviceChoice::Auto => {
            if candle_core::utils::metal_is_available() {
                start_gpu("Metal", || Device::new_metal(0), &mut warnings)
            } else if candle_core::utils::cuda_is_available() {
                start_gpu("CUDA", || Device::new_cuda(0), &mut warnings)
            } else {
                Device::Cpu
            }
        }
        DeviceChoice::Cuda if !cfg!(feature = "cuda") => {
            warnings.push(
                "this evatag was built without CUDA: on Linux, install the evatag-cuda package (NVIDIA driver 580 \
                 or newer), or build with `--features cuda`; using the CPU"
                    .into(),
            );
            Device::Cpu
        }
        DeviceChoice::Metal if !cfg!(feature = "metal") => {
            warnings.push("this evatag was built without Metal (build with `--features metal`); using the CPU".into());
            Device::Cpu
        }
        DeviceChoice::Cuda => start_gpu("CUDA", || Device::new_cuda(0), &mut warnings),
        DeviceChoice::Metal => start_gpu("Metal", || Device::new_metal(0), &mut warnings),
    };
    let (dtype, linear_weights) = match (dtype, device.is_cpu()) {
        (DTypeChoice::F32, _) => (DType::F32, LinearWeights::AsLoaded),
        (DTypeChoice::Bf16, true) => (DType::F32, LinearWeights::Bf16),
        (DTypeChoice::F16, true) => {
            warnings.push("f16 is for GPUs; the CPU computes in f32 (bf16 halves its memory)".to_owned());
            (DType::F32, LinearWeights::AsLoaded)
        }
        (DTypeChoice::F16, false) => (DType::F16, LinearWeights::AsLoaded),
        (DTypeChoice::Bf16, false) => (DType::BF16, LinearWeights::AsLoaded),
    };
    Placement { device, dtype, linear_weights, graph: Graph::Fused, warnings }
}

fn start_gpu(name: &str, start: impl FnOnce() -> candle_core::Result<Device>, warnings: &mut Vec<String>) -> Device {
    match start() {
        Ok(device) => device,
        Err(e) => {
            warnings.push(format!("the {name} GPU did not start ({}); using the CPU", super::error_message(&e)));
            Device::Cpu
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_takes_bf16_weights_with_f32_activations_and_refuses_f16() {
        let p = place(DeviceChoice::Cpu, DTypeChoice::Bf16);
        assert!(p.device.is_cpu());
        assert_eq!((p.dtype, p.linear_weights, p.precision()), (DType::F32, LinearWeights::Bf16, DTypeChoice::Bf16));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert!(p.bf16_kernels().is_some());
        let p = place(DeviceChoice::Cpu, DTypeChoice::F16);
        assert_eq!((p.dtype, p.linear_weights, p.precision()), (DType::F32, LinearWeights::AsLoaded, DTypeChoice::F32));
        assert!(p.warnings[0].contains("f16 is for GPUs"), "{:?}", p.warnings);
        assert_eq!(place(DeviceChoice::Cpu, DTypeChoice::F32).bf16_kernels(), None);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_cuda_falls_back_with_a_reason() {
        let p = place(DeviceChoice::Cuda, DTypeChoice::F32);
        assert!(p.device.is_cpu());
        assert!(p.warnings[0].contains("--features cuda"), "{:?}", p.warnings);
    }
}

//! Choosing where the model runs: Metal, CUDA or CPU, with a fallback to CPU that says why.

use candle_core::{DType, Device};

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
    /// 32-bit floats (always used on CPU).
    #[default]
    F32,
    /// 16-bit IEEE floats (GPUs only).
    F16,
    /// bfloat16 (GPUs only).
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

/// The device and precision the model will use, plus any warnings about fallbacks taken.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Where tensors live.
    pub device: Device,
    /// The weight and activation type.
    pub dtype: DType,
    /// Why the request could not be honoured as given, if it could not.
    pub warnings: Vec<String>,
}

impl Placement {
    /// A short human name for the device, e.g. `CPU (AVX-512 kernels, 2 threads)` or `CUDA GPU`.
    pub fn device_name(&self) -> String {
        describe(&self.device)
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
            warnings.push("this evatag was built without CUDA (build with `--features cuda`); using the CPU".into());
            Device::Cpu
        }
        DeviceChoice::Metal if !cfg!(feature = "metal") => {
            warnings.push("this evatag was built without Metal (build with `--features metal`); using the CPU".into());
            Device::Cpu
        }
        DeviceChoice::Cuda => start_gpu("CUDA", || Device::new_cuda(0), &mut warnings),
        DeviceChoice::Metal => start_gpu("Metal", || Device::new_metal(0), &mut warnings),
    };
    let dtype = match (dtype, device.is_cpu()) {
        (DTypeChoice::F32, _) => DType::F32,
        (other, true) => {
            warnings.push(format!("{} is for GPUs; the CPU computes in f32", other.name()));
            DType::F32
        }
        (DTypeChoice::F16, false) => DType::F16,
        (DTypeChoice::Bf16, false) => DType::BF16,
    };
    Placement { device, dtype, warnings }
}

fn start_gpu(name: &str, start: impl FnOnce() -> candle_core::Result<Device>, warnings: &mut Vec<String>) -> Device {
    match start() {
        Ok(device) => device,
        Err(e) => {
            warnings.push(format!("the {name} GPU did not start ({e}); using the CPU"));
            Device::Cpu
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available_and_f32() {
        let p = place(DeviceChoice::Cpu, DTypeChoice::Bf16);
        assert!(p.device.is_cpu());
        assert_eq!(p.dtype, DType::F32);
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_cuda_falls_back_with_a_reason() {
        let p = place(DeviceChoice::Cuda, DTypeChoice::F32);
        assert!(p.device.is_cpu());
        assert!(p.warnings[0].contains("--features cuda"), "{:?}", p.warnings);
    }
}

//! The app's precision setting: full (f32) or half (bf16), chosen on the first start from the
//! computer's memory.

use crate::model::device::DTypeChoice;
use crate::model::registry::RegisteredModel;
use crate::units::human_bytes;

/// Below this much memory the first start picks half precision. A laptop sold with 8 GB reports
/// a little less (firmware and graphics keep a part), and gets half precision too: with a
/// browser open, EVA-giant's 4.3 GB in f32 leaves it too little.
pub const LOW_MEMORY_BYTES: u64 = 8 << 30;

/// The choices the settings window offers.
pub const CHOICES: [DTypeChoice; 2] = [DTypeChoice::F32, DTypeChoice::Bf16];

/// This computer's physical memory in bytes, if the system says.
pub fn total_memory_bytes() -> Option<u64> {
    use sysinfo::{MemoryRefreshKind, RefreshKind, System};
    let system =
        System::new_with_specifics(RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()));
    Some(system.total_memory()).filter(|&bytes| bytes > 0)
}

/// The precision for a first start on a computer with `total_memory` bytes, and the notice that
/// says why when it is half.
pub fn first_choice(total_memory: Option<u64>, model: &RegisteredModel) -> (DTypeChoice, Option<String>) {
    match total_memory {
        Some(total) if total < LOW_MEMORY_BYTES => (
            DTypeChoice::Bf16,
            Some(format!(
                "This computer has {} of memory, so evatag runs the model in half precision (bf16): {} instead \
                 of {}. Settings can change it.",
                human_bytes(total),
                human_bytes(model.peak_memory_bf16_bytes()),
                human_bytes(model.peak_memory_bytes),
            )),
        ),
        _ => (DTypeChoice::F32, None),
    }
}

/// How the settings window names a choice, with the memory `model` needs in it, e.g.
/// `half (bf16, 2.2 GB)`.
pub fn label(choice: DTypeChoice, model: &RegisteredModel) -> String {
    match choice {
        DTypeChoice::F32 => format!("full (f32, {})", human_bytes(model.peak_memory_bytes)),
        DTypeChoice::Bf16 => format!("half (bf16, {})", human_bytes(model.peak_memory_bf16_bytes())),
        DTypeChoice::F16 => "half (f16, GPUs only)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::registry;

    #[test]
    fn a_small_memory_starts_in_half_precision_and_says_so() {
        let giant = registry::default_model();
        let (choice, notice) = first_choice(Some(7_800_000_000), giant);
        assert_eq!(choice, DTypeChoice::Bf16);
        let notice = notice.unwrap_or_default();
        assert!(notice.contains("half precision") && notice.contains("Settings"), "{notice}");
        assert_eq!(first_choice(Some(16 << 30), giant), (DTypeChoice::F32, None));
        assert_eq!(first_choice(None, giant), (DTypeChoice::F32, None), "an unknown memory keeps f32");
    }

    #[test]
    fn labels_give_each_choice_its_memory() {
        let giant = registry::default_model();
        assert!(giant.peak_memory_bf16_bytes() < giant.peak_memory_bytes * 6 / 10);
        assert_eq!(
            label(DTypeChoice::Bf16, giant),
            format!("half (bf16, {})", human_bytes(giant.peak_memory_bf16_bytes()))
        );
        assert!(label(DTypeChoice::F32, giant).starts_with("full (f32, "));
    }

    #[test]
    fn this_computer_reports_its_memory() {
        assert!(total_memory_bytes().is_some_and(|bytes| bytes > 1 << 28));
    }
}

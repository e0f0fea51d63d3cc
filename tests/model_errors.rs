//! Errors a user can act on when model files are wrong: each names the file and the cause.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::path::Path;

use common::*;
use evatag::model::Model;
use evatag::model::device::{DTypeChoice, DeviceChoice, place};
use evatag::model::weights::{ModelFiles, ModelSource, WeightsError, locate};
use safetensors::tensor::TensorView;

/// A copy of the tiny fixture model with its checkpoint rewritten by `edit`.
fn edited_model(dir: &Path, edit: impl Fn(&str, Vec<usize>) -> Option<Vec<usize>>) -> ModelFiles {
    std::fs::copy(model_dir("eva_tiny").join("config.json"), dir.join("config.json")).unwrap();
    let bytes = std::fs::read(model_dir("eva_tiny").join("model.safetensors")).unwrap();
    let original = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept = Vec::new();
    for (name, view) in original.tensors() {
        let Some(shape) = edit(&name, view.shape().to_vec()) else { continue };
        let elements: usize = shape.iter().product();
        let data = vec![0u8; elements * 4];
        kept.push((name, shape, data));
    }
    let views: Vec<(String, TensorView)> = kept
        .iter()
        .map(|(n, s, d)| (n.clone(), TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    locate(&ModelSource::Dir(dir.to_owned()), &mut ()).unwrap()
}

fn load(files: &ModelFiles) -> Result<Model, WeightsError> {
    Model::load(files, &place(DeviceChoice::Cpu, DTypeChoice::F32))
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = edited_model(dir.path(), |name, shape| (name != "blocks.1.attn.v_bias").then_some(shape));
    let err = load(&files).err().unwrap();
    assert!(matches!(err, WeightsError::MissingTensor { ref name, .. } if name == "blocks.1.attn.v_bias"), "{err}");
    assert!(err.to_string().contains("model.safetensors"));
}

#[test]
fn a_wrong_shape_names_tensor_expected_and_found() {
    let dir = tempfile::tempdir().unwrap();
    let files = edited_model(dir.path(), |name, shape| {
        Some(if name == "blocks.0.mlp.fc1.weight" { vec![shape[0] + 1, shape[1]] } else { shape })
    });
    let message = load(&files).err().unwrap().to_string();
    assert!(message.contains("blocks.0.mlp.fc1.weight"), "{message}");
    assert!(message.contains("[280, 64]") && message.contains("[279, 64]"), "{message}");
}

#[test]
fn a_file_that_is_not_safetensors_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(model_dir("eva_tiny").join("config.json"), dir.path().join("config.json")).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"<html>Not found</html>").unwrap();
    let files = locate(&ModelSource::Dir(dir.path().to_owned()), &mut ()).unwrap();
    let err = load(&files).err().unwrap();
    assert!(matches!(err, WeightsError::NotSafetensors { .. }), "{err}");
}

#[test]
fn an_unknown_architecture_is_refused_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(model_dir("eva_tiny").join("config.json")).unwrap();
    std::fs::write(dir.path().join("config.json"), text.replace("eva_giant_patch14_224", "vit_huge_patch14_224"))
        .unwrap();
    std::fs::copy(model_dir("eva_tiny").join("model.safetensors"), dir.path().join("model.safetensors")).unwrap();
    let files = locate(&ModelSource::Dir(dir.path().to_owned()), &mut ()).unwrap();
    let message = load(&files).err().unwrap().to_string();
    assert!(message.contains("vit_huge_patch14_224") && message.contains("eva_giant_patch14_224"), "{message}");
    assert!(message.contains("config.json"), "{message}");
}

#[test]
fn a_folder_without_weights_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(model_dir("eva_tiny").join("config.json"), dir.path().join("config.json")).unwrap();
    let err = locate(&ModelSource::Dir(dir.path().to_owned()), &mut ()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("model.safetensors") && message.contains("config.json"), "{message}");
}

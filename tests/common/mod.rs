//! Shared helpers for the integration tests: fixture paths and readers for timm's outputs.
#![allow(dead_code)]

pub mod hub;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use evatag::model::device::{DTypeChoice, DeviceChoice, place};
use evatag::model::weights::{ModelFiles, ModelSource, locate};
use evatag::model::{Model, Prediction};
use evatag::preprocess::{Preprocessor, decode_rgb8};

/// Borrowed views of owned arguments, as `run_evatag` takes them.
pub fn os(args: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
    args.iter().map(|a| a.as_os_str()).collect()
}

/// timm's eval transform for the fixture models (EVA's: bicubic, crop 0.9, OpenAI CLIP
/// mean and std), read from the tiny model's `config.json`.
pub fn fixture_preprocessor() -> evatag::preprocess::Preprocessor {
    let text = std::fs::read_to_string(model_dir("eva_tiny").join("config.json")).unwrap();
    evatag::preprocess::Preprocessor::new(&evatag::model::config::ModelConfig::from_json(&text).unwrap().pretrained_cfg)
}

/// The committed fixture folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture model folder by name (`eva_tiny`, `eva_offset`).
pub fn model_dir(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

/// Loads a fixture model on the CPU in f32.
pub fn load_model(name: &str) -> Model {
    let files: ModelFiles = locate(&ModelSource::Dir(model_dir(name)), &mut ()).expect("fixture model files");
    Model::load(&files, &place(DeviceChoice::Cpu, DTypeChoice::F32)).expect("fixture model loads")
}

/// Loads a fixture model on the CPU with its linear layers' weights in bf16.
pub fn load_model_bf16(name: &str) -> Model {
    let files: ModelFiles = locate(&ModelSource::Dir(model_dir(name)), &mut ()).expect("fixture model files");
    Model::load(&files, &place(DeviceChoice::Cpu, DTypeChoice::Bf16)).expect("fixture model loads in bf16")
}

/// Loads a fixture model on the CPU in `dtype`, run through the generic graph: every layer then
/// takes candle's operations, the path GPUs take, instead of the fused f32 CPU kernels.
pub fn load_model_generic(name: &str, dtype: DType) -> Model {
    let files: ModelFiles = locate(&ModelSource::Dir(model_dir(name)), &mut ()).expect("fixture model files");
    let placement = evatag::model::device::Placement {
        device: Device::Cpu,
        dtype,
        linear_weights: evatag::model::linear::LinearWeights::AsLoaded,
        graph: evatag::model::device::Graph::Generic,
        warnings: Vec::new(),
    };
    Model::load(&files, &placement).expect("fixture model loads on the generic graph")
}

/// File names of the fixture photos, sorted.
pub fn photo_names() -> Vec<String> {
    list(&fixtures().join("photos"))
}

/// File names of the format fixtures, sorted.
pub fn format_names() -> Vec<String> {
    list(&fixtures().join("formats"))
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("fixture folder")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The 224x224 pixels timm's transform produced for a fixture file, before normalisation.
pub fn expected_crop(name: &str) -> image::RgbImage {
    image::open(fixtures().join("expected/crops").join(format!("{name}.png"))).expect("expected crop").into_rgb8()
}

/// timm's embeddings and logits for one fixture model, by `<file>/embedding` and `<file>/logits`.
pub fn expected_outputs(model: &str) -> HashMap<String, Vec<f32>> {
    let path = fixtures().join("expected").join(format!("{model}.safetensors"));
    let tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(path, &Device::Cpu).expect("expected outputs");
    tensors.into_iter().map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect()
}

/// Cosine similarity in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Indices of the `k` largest values, largest first.
pub fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order.truncate(k);
    order
}

/// Asserts that `prediction` for `photo` matches timm's outputs in `expected`: embedding cosine
/// at least 0.99999, every logit within 1e-3 of the logits' range, the same top five. `what`
/// names the model and path in a failure.
pub fn assert_matches_timm(prediction: &Prediction, expected: &HashMap<String, Vec<f32>>, photo: &str, what: &str) {
    let want_embedding = &expected[&format!("{photo}/embedding")];
    let want_logits = &expected[&format!("{photo}/logits")];
    let cos = cosine(&prediction.embedding, want_embedding);
    assert!(cos >= 0.99999, "{what} {photo}: embedding cosine {cos}");
    let range =
        want_logits.iter().copied().fold(f32::MIN, f32::max) - want_logits.iter().copied().fold(f32::MAX, f32::min);
    let worst = prediction.logits.iter().zip(want_logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-3 * range, "{what} {photo}: logit error {worst} over range {range}");
    assert_eq!(top_indices(&prediction.logits, 5), top_indices(want_logits, 5), "{what} {photo}: top-5 classes differ");
}

/// The model input for the fixture photo `photo`, read from its file with evatag's own
/// decoding and the model's preprocessing.
pub fn photo_input(model: &Model, photo: &str) -> Vec<f32> {
    let path = fixtures().join("photos").join(photo);
    let bytes = std::fs::read(&path).unwrap();
    Preprocessor::new(&model.config().pretrained_cfg).run(&decode_rgb8(&bytes, &path, 100).unwrap())
}

/// Asserts that `prediction` for `photo`, made from its file, agrees with timm's outputs in
/// `expected`: embedding cosine at least 0.99999 and the same top five. `what` names the model
/// in a failure.
pub fn assert_end_to_end_matches_timm(
    prediction: &Prediction,
    expected: &HashMap<String, Vec<f32>>,
    photo: &str,
    what: &str,
) {
    let cos = cosine(&prediction.embedding, &expected[&format!("{photo}/embedding")]);
    assert!(cos >= 0.99999, "{what} {photo}: end-to-end embedding cosine {cos}");
    let want = top_indices(&expected[&format!("{photo}/logits")], 5);
    assert_eq!(top_indices(&prediction.logits, 5), want, "{what} {photo}: top-5 differs end to end");
}

/// A decompression bomb: a well-formed PNG whose header claims `width` x `height` pixels,
/// with a tiny compressed stream (a real one would inflate to gigabytes).
pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    // zlib stream of one stored, empty block: valid, and far too short for the image.
    chunk(&mut png, b"IDAT", &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// Result of running the `evatag` binary.
pub struct Run {
    /// Exit status code.
    pub code: Option<i32>,
    /// Parsed JSON lines from stdout.
    pub lines: Vec<serde_json::Value>,
    /// Everything on stderr.
    pub stderr: String,
}

impl Run {
    /// The `(inferred, cached, failed)` counts from the summary line on stderr.
    pub fn summary(&self) -> (u64, u64, u64) {
        let line = self.stderr.lines().rev().find(|l| l.contains("tagged by the model")).expect("summary line");
        let number_before = |word: &str| -> u64 {
            let head = &line[..line.find(word).unwrap_or_else(|| panic!("{word} in {line}"))];
            head.split_whitespace().last().unwrap().parse().unwrap()
        };
        (number_before("tagged by the model"), number_before("from the cache"), number_before("failed"))
    }

    /// The JSON line for a path.
    pub fn line_for(&self, path: &Path) -> &serde_json::Value {
        let shown = path.to_string_lossy();
        let found: Vec<_> = self.lines.iter().filter(|l| l["path"] == *shown).collect();
        assert_eq!(found.len(), 1, "expected one line for {shown}: {:#?}", self.lines);
        found[0]
    }
}

/// Runs `evatag` with the fixture model, a given cache folder (or none), and a time limit.
pub fn run_evatag(args: &[&std::ffi::OsStr], cache: Option<&Path>) -> Run {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_evatag"));
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    match cache {
        Some(dir) => command.env("EVATAG_CACHE_DIR", dir),
        None => command.arg("--no-cache"),
    };
    let mut child = command.spawn().unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let stdout_reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        let _ = done_tx.send(());
        s
    });
    if done_rx.recv_timeout(std::time::Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        panic!("evatag did not finish within 120 s");
    }
    let status = child.wait().unwrap();
    let stdout = stdout_reader.join().unwrap();
    let stderr = stderr_reader.join().unwrap();
    let lines = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    Run { code: status.code(), lines, stderr }
}

/// Runs `evatag tag --device cuda` on one fixture photo with the tiny model, backtraces asked
/// for and `env` added, checks that it tagged the photo on the CPU after one line about CUDA
/// with no backtrace, and returns that line.
pub fn cuda_fallback_line(env: &[(&str, &std::ffi::OsStr)]) -> String {
    let photo = fixtures().join("photos/cat_landscape.jpg");
    let mut args: Vec<std::ffi::OsString> =
        ["tag", "--device", "cuda", "--no-cache", "--model-dir"].map(Into::into).to_vec();
    args.extend([model_dir("eva_tiny").into_os_string(), photo.into_os_string()]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_evatag"))
        .args(&args)
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("CUDA")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("using the CPU"), "{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("stack"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().count() == 1 && stdout.contains("\"labels\""), "{stdout}");
    warnings[0].to_owned()
}

/// Arguments for `evatag tag` with a fixture model on the CPU, then `rest`.
pub fn tag_args(model: &str, rest: &[&Path]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = ["tag", "--device", "cpu", "--model-dir"].iter().map(Into::into).collect();
    args.push(model_dir(model).into());
    args.extend(rest.iter().map(|p| p.as_os_str().to_owned()));
    args
}

/// Copies the fixture photos into `dir` and returns their new paths.
pub fn copy_photos(dir: &Path) -> Vec<PathBuf> {
    photo_names()
        .into_iter()
        .map(|name| {
            let to = dir.join(&name);
            std::fs::copy(fixtures().join("photos").join(&name), &to).unwrap();
            to
        })
        .collect()
}

//! Command-line interface: argument parsing and the headless subcommands.

mod duplicates;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::library::export::tabular::{Outcome, ResultStream, StreamFormat, path_fields};
use crate::library::export::{ExportRequest, PhotoTags, SidecarNaming};
use crate::model::cpu::profile::{self, Spent};
use crate::model::device::{self, DTypeChoice, DeviceChoice};
use crate::model::peak;
use crate::model::registry::{self, RegisteredModel};
use crate::model::weights::{self, ModelSource};
use crate::model::{Model, weights::ModelFiles};
use crate::options::Options;
use crate::preprocess;
use crate::setup;
use crate::worker::{Command, Event, ModelStatus, PhotoError, Progress, Tagged, Worker, WorkerConfig};

/// Tag photos with ImageNet-1k labels using EVA-CLIP giant or an EVA-02 model, and find similar photos.
///
/// With no subcommand, opens the desktop app (adding any PATHS given).
#[derive(Debug, Parser)]
#[command(name = "evatag", version, long_version = long_version(), about)]
pub struct Args {
    /// What to do; the desktop app when absent.
    #[command(subcommand)]
    pub command: Option<Subcmd>,
    /// Model options for the desktop app.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Photos and folders to open in the desktop app.
    pub paths: Vec<PathBuf>,
}

/// `--version`'s long form: the version, and which libheif reads HEIC, HEIF and AVIF here.
fn long_version() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let heif = match preprocess::libheif_version() {
            Ok(version) => format!("libheif {version}"),
            Err(missing) => missing.to_string(),
        };
        format!("{}\nHEIC, HEIF and AVIF: {heif}", env!("CARGO_PKG_VERSION"))
    });
    &TEXT
}

/// The headless subcommands.
#[derive(Debug, Subcommand)]
pub enum Subcmd {
    /// Tag photos: one JSON object (or CSV rows) per image on stdout.
    Tag(TagArgs),
    /// Rank photos by similarity to IMAGE.
    Similar(SimilarArgs),
    /// Write the labels as XMP sidecars, a CSV file or a JSON file.
    Export(ExportArgs),
    /// Find exact and near copies: one group per line, the suggested photo to keep first.
    Duplicates(duplicates::DuplicatesArgs),
    /// Time the model on random input (random weights unless --model-dir is given).
    Bench(BenchArgs),
}

/// Where the model comes from and where it runs.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// The model, by timm's name with or without its tag: eva_giant_patch14_224.clip_ft_in1k,
    /// eva02_large_patch14_448, eva02_base_patch14_448, eva02_small_patch14_336 or
    /// eva02_tiny_patch14_336 (a --model-dir folder brings its own).
    #[arg(long, value_name = "NAME", default_value = registry::DEFAULT_MODEL, value_parser = parse_model,
          global = true)]
    pub model: &'static RegisteredModel,
    /// Load the model from a local folder holding config.json and model.safetensors.
    #[arg(long, value_name = "DIR", global = true)]
    pub model_dir: Option<PathBuf>,
    /// Hugging Face Hub repository to download the model from [default: the model's timm/ repository].
    #[arg(long, value_name = "REPO", global = true)]
    pub repo: Option<String>,
    /// Use only the local Hugging Face cache, never the network (also HF_HUB_OFFLINE=1).
    #[arg(long, global = true)]
    pub offline: bool,
    /// Where to run the model (auto: Metal, then CUDA, then the CPU) [default: auto, or in the
    /// app the device chosen in Settings].
    #[arg(long, value_name = "auto|cpu|cuda|metal", value_parser = parse_device, global = true)]
    pub device: Option<DeviceChoice>,
    /// Floating-point precision: bf16 halves the memory (on the CPU, of the weights), f16 is for
    /// GPUs only [default: f32, or in the app the precision chosen in Settings].
    #[arg(long, value_name = "f32|f16|bf16", value_parser = parse_dtype, global = true)]
    pub dtype: Option<DTypeChoice>,
    /// Neither read nor write the result cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Refuse images larger than this many megapixels.
    #[arg(long, value_name = "MP", default_value_t = preprocess::DEFAULT_MAX_MEGAPIXELS, global = true,
          value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub max_megapixels: u64,
    /// Refuse photo files larger than this many megabytes, before reading them.
    #[arg(long, value_name = "MB", default_value_t = preprocess::DEFAULT_MAX_FILE_MB, global = true,
          value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub max_file_mb: u64,
}

impl ModelArgs {
    /// The options these arguments give.
    pub fn options(&self) -> Options {
        let source = match &self.model_dir {
            Some(dir) => ModelSource::Dir(dir.clone()),
            None => match &self.repo {
                Some(repo) => {
                    ModelSource::Hub { repo: repo.clone(), offline: self.offline || weights::offline_from_env() }
                }
                None => self.model.source(self.offline),
            },
        };
        Options {
            model: self.model,
            source,
            device: self.device,
            dtype: self.dtype,
            cache_dir: if self.no_cache { None } else { setup::cache_dir() },
            max_megapixels: self.max_megapixels,
            max_file_mb: self.max_file_mb,
        }
    }
}

/// A registered model from its name on the command line.
fn parse_model(text: &str) -> Result<&'static RegisteredModel, String> {
    registry::find(text).map_err(|e| e.to_string())
}

/// A device from its name on the command line.
fn parse_device(text: &str) -> Result<DeviceChoice, String> {
    DeviceChoice::ALL
        .into_iter()
        .find(|choice| choice.name().eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("`{text}` is not a device: use auto, cpu, cuda or metal"))
}

/// A precision from its name on the command line.
fn parse_dtype(text: &str) -> Result<DTypeChoice, String> {
    DTypeChoice::ALL
        .into_iter()
        .find(|choice| choice.name().eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("`{text}` is not a precision: use f32, f16 or bf16"))
}

/// Output formats of `evatag tag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header: path, rank, class, label, prob, error, path_bytes.
    Csv,
}

/// Options of `evatag tag`.
#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// Image files and folders (folders are walked recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Labels per image.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top_k: u16,
    /// Add the image embedding to each JSON object.
    #[arg(long)]
    pub embedding: bool,
    /// Images per model batch.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub batch: u16,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
}

/// Options of `evatag similar`.
#[derive(Debug, clap::Args)]
pub struct SimilarArgs {
    /// The photo to compare against.
    pub image: PathBuf,
    /// Compare against these files and folders (tagged first if needed); all cached photos
    /// of the model when absent.
    pub paths: Vec<PathBuf>,
    /// Number of results.
    #[arg(short, long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub k: u32,
    /// Images per model batch while tagging PATHS.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub batch: u16,
}

/// Sidecar naming from the command line: `append` (`photo.jpg.xmp`, digiKam and darktable)
/// or `replace` (`photo.xmp`, Lightroom).
fn parse_sidecar_naming(text: &str) -> Result<SidecarNaming, String> {
    match text {
        "append" => Ok(SidecarNaming::Appended),
        "replace" => Ok(SidecarNaming::Replaced),
        _ => Err(format!("`{text}` is not a sidecar naming: use `append` (photo.jpg.xmp) or `replace` (photo.xmp)")),
    }
}

/// Options of `evatag export`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("outputs").required(true).multiple(true).args(["xmp", "csv", "json"]))]
pub struct ExportArgs {
    /// Image files and folders (tagged first where the cache lacks them).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Write an XMP sidecar next to each photo (existing sidecars are merged, never replaced).
    #[arg(long)]
    pub xmp: bool,
    /// How sidecars are named: append (photo.jpg.xmp) or replace (photo.xmp).
    #[arg(long, value_name = "append|replace", default_value = "append", value_parser = parse_sidecar_naming)]
    pub sidecar_name: SidecarNaming,
    /// Write every photo's labels to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write every photo's labels to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Leave out labels less probable than this (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.1, value_parser = parse_probability)]
    pub min_prob: f32,
    /// Labels considered per photo.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top_k: u16,
    /// Images per model batch.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub batch: u16,
}

/// A probability: a number from 0 to 1.
fn parse_probability(text: &str) -> Result<f32, String> {
    let value: f32 = text.trim().parse().map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("`{text}` is not a probability (a number from 0 to 1)"))
    }
}

/// Options of `evatag bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Images per batch.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub batch: u16,
    /// Timed iterations (after one warm-up).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub iters: u16,
    /// Also time each iteration on one thread, alternating with the full thread count, and
    /// report how much faster all threads are (alternating keeps a busy or throttled machine
    /// from favouring either side).
    #[arg(long)]
    pub scaling: bool,
}

/// One timed forward pass: its wall time and the time its kernels took.
#[derive(Debug, Clone, Copy)]
struct Iteration {
    seconds: f64,
    kernels: Spent,
}

impl Iteration {
    /// Times one forward pass of `model` on `inputs`.
    fn run(model: &Model, inputs: &[&[f32]]) -> anyhow::Result<Self> {
        let started = Instant::now();
        let (predicted, kernels) = profile::measure(|| model.predict(inputs));
        predicted?;
        Ok(Self { seconds: started.elapsed().as_secs_f64(), kernels })
    }

    /// The iteration of median wall time (the upper one of an even count), so that every figure
    /// reported comes from the same pass.
    fn median(mut iterations: Vec<Self>) -> Self {
        iterations.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        iterations[iterations.len() / 2]
    }
}

/// Runs a headless subcommand and returns the process's exit status.
pub fn run(command: Subcmd, options: &Options) -> ExitCode {
    let result = match command {
        Subcmd::Tag(tag) => run_tag(options, &tag),
        Subcmd::Similar(similar) => run_similar(options, &similar),
        Subcmd::Export(export) => run_export(options, &export),
        Subcmd::Duplicates(args) => duplicates::run(options, &args),
        Subcmd::Bench(bench) => run_bench(options, &bench).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("evatag: error: {e:#}");
        ExitCode::FAILURE
    })
}

/// Terminal feedback on stderr: download bar, tagging bar, warnings. Hidden when stderr is
/// not a terminal, except for warnings and the final summary.
struct Feedback {
    bar: ProgressBar,
    downloading: Option<String>,
}

impl Feedback {
    fn new() -> Self {
        Self { bar: ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()), downloading: None }
    }

    /// Reacts to model and progress events; returns an error when the model failed.
    fn on_event(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::Model(ModelStatus::Downloading { file, done, total, .. }) => {
                if self.downloading.as_deref() != Some(file) {
                    self.downloading = Some(file.clone());
                    self.bar.reset();
                    self.bar.set_length(*total);
                    self.bar.set_style(
                        ProgressStyle::with_template(
                            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    self.bar.set_message(format!("downloading {file}"));
                }
                self.bar.set_position(*done);
            }
            Event::Model(ModelStatus::Loading { device }) => {
                self.downloading = None;
                self.bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
                self.bar.set_message(format!("loading the model on the {device}"));
            }
            Event::Model(ModelStatus::Failed(reason)) => {
                self.bar.finish_and_clear();
                anyhow::bail!("{reason}");
            }
            Event::Warning(warning) => self.bar.suspend(|| eprintln!("evatag: warning: {warning}")),
            Event::Working { task, done, total } => {
                if self.bar.length() != Some(*total) {
                    self.bar.set_style(
                        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                    self.bar.set_length(*total);
                    self.bar.set_message(task.describe().to_lowercase());
                }
                self.bar.set_position(*done);
            }
            Event::Progress(p) => {
                if self.downloading.is_none() && self.bar.length() != Some(p.total) {
                    self.bar.set_style(
                        ProgressStyle::with_template("tagging [{bar:30}] {pos}/{len} {msg}")
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                }
                self.bar.set_length(p.total);
                self.bar.set_position(p.done);
                let eta = p.eta_secs.map(|s| format!(", ETA {s:.0} s")).unwrap_or_default();
                self.bar.set_message(format!("{:.2} images/s{eta}", p.images_per_second));
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&self, progress: &Progress, elapsed: f64) {
        self.bar.finish_and_clear();
        eprintln!(
            "evatag: {} images in {elapsed:.1} s: {} tagged by the model, {} from the cache, {} failed",
            progress.done, progress.inferred, progress.cached, progress.failed
        );
    }
}

/// Sends `Add`, then feeds events to `on_image` until the worker is idle. Returns the final
/// progress.
fn tag_paths(
    worker: &Worker,
    feedback: &mut Feedback,
    paths: Vec<PathBuf>,
    mut on_image: impl FnMut(PathBuf, Result<Tagged, PhotoError>) -> anyhow::Result<()>,
) -> anyhow::Result<Progress> {
    worker.send(Command::Add(paths));
    let mut last = Progress::default();
    for event in worker.events() {
        feedback.on_event(&event)?;
        match event {
            Event::Image { path, outcome } => on_image(path, outcome)?,
            Event::Progress(p) => last = p,
            Event::Idle => return Ok(last),
            _ => {}
        }
    }
    // The events end only when the worker's thread does; before the job is done, that is a
    // failure, whatever was tagged so far.
    anyhow::bail!("the worker stopped unexpectedly; photos not listed above were not tagged")
}

/// Tags the PATHS a search is limited to: the paths tagged (`None` when no PATHS were given, so
/// that the whole cache is searched) and how many failed, each failure said on stderr.
fn tag_to_search(
    worker: &Worker,
    feedback: &mut Feedback,
    paths: &[PathBuf],
) -> anyhow::Result<(Option<Vec<PathBuf>>, usize)> {
    if paths.is_empty() {
        return Ok((None, 0));
    }
    let (mut tagged, mut failed) = (Vec::new(), 0);
    let bar = feedback.bar.clone();
    tag_paths(worker, feedback, paths.to_vec(), |path, outcome| {
        match outcome {
            Ok(_) => tagged.push(path),
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("evatag: {e}"));
            }
        }
        Ok(())
    })?;
    Ok((Some(tagged), failed))
}

fn run_tag(options: &Options, args: &TagArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let worker = Worker::spawn(WorkerConfig::new(options, args.batch.into(), args.top_k.into()), Box::new(|| {}));
    let mut feedback = Feedback::new();
    let stdout = std::io::stdout().lock();
    let format = match args.format {
        Format::Jsonl => StreamFormat::Jsonl,
        Format::Csv => StreamFormat::Csv,
    };
    let mut out = ResultStream::new(stdout, format)?;
    let bar = feedback.bar.clone();
    let progress = tag_paths(&worker, &mut feedback, args.paths.clone(), |path, outcome| {
        let outcome = match &outcome {
            Ok(tagged) => {
                Outcome::Tagged { labels: &tagged.labels, embedding: args.embedding.then_some(&tagged.embedding[..]) }
            }
            Err(error) => Outcome::Failed(&error.message),
        };
        bar.suspend(|| out.write(&path, outcome)).map_err(anyhow::Error::from)
    })?;
    out.finish()?;
    feedback.finish(&progress, started.elapsed().as_secs_f64());
    worker.shutdown();
    Ok(if progress.failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn run_similar(options: &Options, args: &SimilarArgs) -> anyhow::Result<ExitCode> {
    let worker = Worker::spawn(WorkerConfig::new(options, args.batch.into(), 5), Box::new(|| {}));
    let mut feedback = Feedback::new();
    let (within, failed) = tag_to_search(&worker, &mut feedback, &args.paths)?;
    worker.send(Command::FindSimilar { query: args.image.clone(), k: args.k as usize, within });
    let mut stdout = std::io::stdout().lock();
    for event in worker.events() {
        feedback.on_event(&event)?;
        if let Event::Similar { outcome, .. } = event {
            feedback.bar.finish_and_clear();
            let matches = outcome?;
            if matches.is_empty() && args.paths.is_empty() {
                eprintln!(
                    "evatag: error: nothing is indexed yet for this model to compare {} with: tag photos first \
                     (evatag tag FOLDER) or name the photos to compare against (evatag similar IMAGE FOLDER)",
                    args.image.display()
                );
                worker.shutdown();
                return Ok(ExitCode::from(2));
            }
            for m in matches {
                let (path, path_bytes) = path_fields(&m.path);
                let mut line = json!({"path": path, "score": m.score});
                if let Some(bytes) = path_bytes {
                    line["path_bytes"] = json!(bytes);
                }
                writeln!(stdout, "{line}")?;
            }
            break;
        }
    }
    worker.shutdown();
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn run_export(options: &Options, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let request = ExportRequest {
        sidecars: args.xmp.then_some(args.sidecar_name),
        csv: args.csv.clone(),
        json: args.json.clone(),
        min_prob: args.min_prob,
    };
    if let Err(e) = request.check_outputs() {
        eprintln!("evatag: error: {e}");
        return Ok(ExitCode::from(2));
    }
    let worker = Worker::spawn(WorkerConfig::new(options, args.batch.into(), args.top_k.into()), Box::new(|| {}));
    let mut feedback = Feedback::new();
    let bar = feedback.bar.clone();
    let mut tagged = Vec::new();
    let mut failed = 0usize;
    let progress = tag_paths(&worker, &mut feedback, args.paths.clone(), |path, outcome| {
        match outcome {
            Ok(t) => tagged.push((path, t.labels, t.info)),
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("evatag: {e}"));
            }
        }
        Ok(())
    })?;
    worker.shutdown();
    feedback.finish(&progress, started.elapsed().as_secs_f64());
    let photos: Vec<PhotoTags> =
        tagged.iter().map(|(path, labels, info)| PhotoTags { path, labels, info: Some(info) }).collect();
    // From here on files are written beside the photos: an interrupt stops between files, so
    // that no temporary file is left behind.
    let stop = Arc::new(AtomicBool::new(false));
    let handlers: Vec<_> = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]
        .into_iter()
        .filter_map(|signal| signal_hook::flag::register(signal, Arc::clone(&stop)).ok())
        .collect();
    let report = request.run(&photos, &stop);
    for handler in handlers {
        signal_hook::low_level::unregister(handler);
    }
    for error in &report.errors {
        eprintln!("evatag: {error}");
    }
    if report.sidecars_without_keywords > 0 {
        eprintln!(
            "evatag: warning: {} of {} sidecars have no keyword: no label reached --min-prob {}",
            report.sidecars_without_keywords, report.sidecars, args.min_prob
        );
    }
    if report.stopped {
        eprintln!("evatag: interrupted; files written so far are complete");
        return Ok(ExitCode::from(130));
    }
    Ok(if failed + report.errors.len() > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn run_bench(options: &Options, args: &BenchArgs) -> anyhow::Result<()> {
    let placement = device::place(options.device.unwrap_or_default(), options.dtype.unwrap_or_default());
    for warning in &placement.warnings {
        eprintln!("evatag: warning: {warning}");
    }
    let load_started = Instant::now();
    let model = match &options.source {
        ModelSource::Dir(dir) => {
            let files = ModelFiles { config: dir.join(weights::CONFIG_FILE), weights: dir.join(weights::WEIGHTS_FILE) };
            Model::load(&files, &placement)?
        }
        ModelSource::Hub { .. } => {
            eprintln!("evatag: building {} with random weights", options.model.architecture);
            Model::random(registry::builtin_config(options.model.architecture)?, &placement)?
        }
    };
    let load_seconds = load_started.elapsed().as_secs_f64();
    let config = model.config().eva.clone();
    let batch = usize::from(args.batch);
    let image_len = config.in_chans * config.img_size * config.img_size;
    let images: Vec<Vec<f32>> =
        (0..batch).map(|b| (0..image_len).map(|i| ((i * 7 + b * 13) % 255) as f32 / 127.0 - 1.0).collect()).collect();
    let inputs: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
    eprintln!("evatag: warming up");
    model.predict(&inputs).context("warm-up run")?;
    let one_thread = args
        .scaling
        .then(|| rayon::ThreadPoolBuilder::new().num_threads(1).build())
        .transpose()
        .context("starting a one-thread pool")?;
    let threads = rayon::current_num_threads();
    // The machine's own ceiling, for the CPU only (a GPU's would need its own probe), sampled
    // again after every iteration so that a busy moment does not set it.
    let mut peak = placement.device.is_cpu().then(|| {
        eprintln!("evatag: measuring this machine's peak");
        peak::measure(threads)
    });
    let (mut iterations, mut single) = (Vec::new(), Vec::new());
    for i in 0..args.iters {
        let iteration = Iteration::run(&model, &inputs)?;
        eprintln!("evatag: iteration {}: {:.3} s", i + 1, iteration.seconds);
        iterations.push(iteration);
        if let Some(pool) = &one_thread {
            let iteration = pool.install(|| Iteration::run(&model, &inputs))?;
            eprintln!("evatag: iteration {} on one thread: {:.3} s", i + 1, iteration.seconds);
            single.push(iteration);
        }
        if let Some(peak) = &mut peak {
            peak.sample_again();
        }
    }
    let Iteration { seconds: timed, kernels: spent } = Iteration::median(iterations);
    let per_image = timed / batch as f64;
    let thread_scaling = (!single.is_empty()).then(|| Iteration::median(single).seconds / timed);
    let gflops = 2.0 * config.macs_per_image() as f64 / per_image / 1e9;
    let share = |part: f64| (part / timed).clamp(0.0, 1.0);
    let (matrix_products, attention) = (share(spent.matrix_products), share(spent.attention));
    let efficiency = peak.map(|peak| gflops / peak.all_threads);
    // The linear layers alone: their arithmetic over the time their kernels took.
    let product_flops = 2.0 * config.matrix_product_macs_per_image() as f64 * batch as f64;
    let product_gflops = (spent.matrix_products > 0.0).then(|| product_flops / spent.matrix_products / 1e9);
    let product_efficiency = peak.zip(product_gflops).map(|(peak, gflops)| gflops / peak.all_threads);
    if let (Some(peak), Some(efficiency)) = (peak, efficiency) {
        eprintln!(
            "evatag: {per_image:.3} s/image, {gflops:.0} GFLOP/s: {:.0} % of this machine's peak ({:.0} GFLOP/s with {} on {threads} threads, {:.0} on one); matrix products {:.0} % of the time at {:.0} % of the peak, attention {:.0} %, the rest {:.0} %",
            efficiency * 100.0,
            peak.all_threads,
            peak.level,
            peak.one_thread,
            matrix_products * 100.0,
            product_efficiency.unwrap_or(0.0) * 100.0,
            attention * 100.0,
            (1.0 - matrix_products - attention).max(0.0) * 100.0,
        );
    }
    // bf16's dot-product and tile instructions do more per cycle than the f32 multiply-adds the
    // peak is probed with; only f32 above the peak means the probe was disturbed.
    if placement.precision() == DTypeChoice::F32 && efficiency.is_some_and(|efficiency| efficiency > 1.0) {
        eprintln!(
            "evatag: warning: the model ran faster than the peak probe: other programs held the CPU whenever the probe ran; run again on a quieter machine"
        );
    }
    if let Some(scaling) = thread_scaling {
        eprintln!("evatag: {threads} threads are {scaling:.2}x as fast as one");
    }
    let report = json!({
        "impl": "evatag",
        "model": model.config().architecture,
        "device": placement.device_name(),
        "cpu_kernels": crate::model::cpu::simd::SimdLevel::detect().name(),
        "dtype": placement.precision().name(),
        "bf16_kernels": placement.bf16_kernels(),
        "bf16_dot_gain": placement.bf16_dot_gain(),
        "batch": batch,
        "threads": threads,
        "iters": args.iters,
        "load_seconds": load_seconds,
        "seconds_per_image": per_image,
        "images_per_second": 1.0 / per_image,
        "gflop_per_image": 2.0 * config.macs_per_image() as f64 / 1e9,
        "gflops": gflops,
        "peak_gflops": peak.map(|peak| peak.all_threads),
        "peak_gflops_one_thread": peak.map(|peak| peak.one_thread),
        "efficiency": efficiency,
        "matrix_product_gflops": product_gflops,
        "matrix_product_efficiency": product_efficiency,
        "thread_scaling": thread_scaling,
        // evatag's own CPU kernels are the ones timed.
        "time_share": placement.device.is_cpu().then(|| json!({
            "matrix_products": matrix_products,
            "attention": attention,
            "rest": (1.0 - matrix_products - attention).max(0.0),
        })),
    });
    println!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Options {
        Args::try_parse_from(args).unwrap().model.options()
    }

    #[test]
    fn model_picks_its_hub_repository() {
        let o = options(&["evatag", "tag", "--model", "eva02_small_patch14_336", "x.jpg"]);
        assert_eq!(o.model.name, "eva02_small_patch14_336.mim_in22k_ft_in1k");
        assert!(
            matches!(&o.source, ModelSource::Hub { repo, .. } if repo == "timm/eva02_small_patch14_336.mim_in22k_ft_in1k")
        );
        let o = options(&["evatag", "--model", "eva02_base_patch14_448.mim_in22k_ft_in22k_in1k"]);
        assert_eq!(o.model.architecture, "eva02_base_patch14_448");
    }

    #[test]
    fn the_default_is_eva_giant_and_repo_and_model_dir_take_precedence() {
        let o = options(&["evatag"]);
        assert_eq!(o.model, registry::default_model());
        assert!(matches!(&o.source, ModelSource::Hub { repo, .. } if repo == registry::default_model().repo));
        let o = options(&["evatag", "--model", "eva02_tiny_patch14_336", "--repo", "me/tiny"]);
        assert!(matches!(&o.source, ModelSource::Hub { repo, .. } if repo == "me/tiny"));
        let o = options(&["evatag", "--model", "eva02_tiny_patch14_336", "--model-dir", "/m"]);
        assert_eq!(o.source, ModelSource::Dir(PathBuf::from("/m")));
    }

    #[test]
    fn an_unknown_model_is_refused_with_the_known_names() {
        let err = Args::try_parse_from(["evatag", "--model", "vit_huge"]).unwrap_err().to_string();
        assert!(err.contains("vit_huge") && err.contains(registry::DEFAULT_MODEL), "{err}");
    }
}

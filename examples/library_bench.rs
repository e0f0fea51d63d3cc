//! Benchmarks of the photo library (not tests; numbers vary with the machine):
//!
//! ```sh
//! cargo run --release --example library_bench -- similar [N [INDEX]]  # queries over N clustered embeddings
//!                                                                   # (the index saved to / opened from INDEX)
//! cargo run --release --example library_bench -- embeddings FILE  # recall on `evatag tag --embedding` output
//! cargo run --release --example library_bench -- duplicates [N]   # grouping N photos, a tenth near copies
//! cargo run --release --example library_bench -- cache            # 10,000 already-tagged photos
//! cargo run --release --example library_bench -- throughput DIR   # tagging vs model-only, model in DIR
//! ```
//!
//! `throughput` needs a model folder (e.g. the real EVA-giant, or one written by
//! `bench/random_checkpoint.py`) and tags 12-megapixel JPEGs it generates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evatag::library::cache::{self, Cache, FileStamp, NewResult};
use evatag::library::duplicates::near_pairs;
use evatag::library::photo_info::PhotoInfo;
use evatag::library::search::{Filters, Reach, SimilarityIndex, dot, normalise};
use evatag::model::ClassProb;
use evatag::model::device::{DTypeChoice, DeviceChoice, place};
use evatag::model::weights::{self, ModelFiles, ModelSource};
use evatag::worker::{Command, Event, Progress, Worker, WorkerConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("similar") => {
            similar_queries(args.get(1).map_or(Ok(1_000_000), |n| n.parse())?, args.get(2).map(Path::new))
        }
        Some("embeddings") => real_embeddings(Path::new(args.get(1).map_or("embeddings.jsonl", String::as_str))),
        Some("duplicates") => duplicates(args.get(1).map_or(Ok(100_000), |n| n.parse())?),
        Some("cache") => cache_lookup(),
        Some("throughput") => throughput(Path::new(args.get(1).map_or(".", String::as_str))),
        _ => anyhow::bail!(
            "usage: library_bench similar [N [INDEX]] | embeddings FILE | duplicates [N] | cache | throughput MODEL_DIR"
        ),
    }
}

/// Deterministic pseudo-random values in [-0.5, 0.5).
fn noise(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Themes the benchmark's groups of photos belong to.
const THEMES: u64 = 1000;

/// Embedding width of EVA-giant.
const DIM: usize = 1408;

fn hash_of(i: usize) -> cache::ContentHash {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

/// Photos come in groups (bursts, trips), and groups in themes (subjects, places), so the test
/// embeddings do too: each is its theme's centre, plus its group's offset, plus its own offset
/// of a size that varies from photo to photo. Uniform random vectors would have no near
/// neighbours at all; `FLAT_GROUPS=1` leaves the themes out, making every group unrelated to
/// every other (no real library is like that, and graph searches find it hardest).
fn clustered(i: usize, groups: usize, dim: usize) -> Vec<f32> {
    let group = (i % groups) as u64;
    let group_offset = noise(1_000_000_007 + group, dim);
    let centre: Vec<f32> = if std::env::var_os("FLAT_GROUPS").is_some() {
        group_offset
    } else {
        let theme = noise(3_000_000_019 + group % THEMES, dim);
        theme.iter().zip(&group_offset).map(|(t, g)| t + g).collect()
    };
    let spread = 0.3 + 0.5 * ((i * 7919) % 1000) as f32 / 1000.0;
    let offset = noise(i as u64, dim);
    normalise(&centre.iter().zip(&offset).map(|(c, o)| c + spread * o).collect::<Vec<f32>>())
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok());
    kb.unwrap_or(0u64) * 1024
}

/// Builds the similarity index over `count` clustered embeddings, then times queries (the
/// index's candidates re-ranked exactly, as the app does) and measures their recall of the
/// exact top 10.
fn similar_queries(count: usize, saved: Option<&Path>) -> anyhow::Result<()> {
    use rayon::prelude::*;
    const K: usize = 10;
    const QUERIES: usize = 200;
    let groups = count.div_ceil(40);
    let index = match saved.filter(|file| file.exists()) {
        Some(file) => open_index(file, count)?,
        None => {
            let index = build_index(count, groups)?;
            if let Some(file) = saved {
                index.save(file)?;
            }
            index
        }
    };
    // Queries: photos like ones in the library (a member of a group, moved a little).
    let queries: Vec<Vec<f32>> = (0..QUERIES)
        .map(|q| {
            let member = clustered(q * 4999 % count, groups, DIM);
            let nudge = noise(5_000_000_000 + q as u64, DIM);
            normalise(&member.iter().zip(&nudge).map(|(m, n)| m + 0.02 * n).collect::<Vec<f32>>())
        })
        .collect();
    // The exact answers, from one pass over every embedding.
    let exact: Vec<Vec<usize>> = {
        let scores: Vec<Vec<(f32, usize)>> = (0..count)
            .into_par_iter()
            .fold(
                || vec![Vec::<(f32, usize)>::new(); QUERIES],
                |mut best, i| {
                    let row = clustered(i, groups, DIM);
                    for (q, query) in queries.iter().enumerate() {
                        best[q].push((dot(query, &row), i));
                        if best[q].len() > 4 * K {
                            best[q].sort_by(|a, b| b.0.total_cmp(&a.0));
                            best[q].truncate(K);
                        }
                    }
                    best
                },
            )
            .reduce(
                || vec![Vec::new(); QUERIES],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        x.extend(y);
                    }
                    a
                },
            );
        scores
            .into_iter()
            .map(|mut s| {
                s.sort_by(|a, b| b.0.total_cmp(&a.0));
                s.into_iter().take(K).map(|(_, i)| i).collect()
            })
            .collect()
    };
    let by_hash: HashMap<cache::ContentHash, usize> = (0..count).map(|i| (hash_of(i), i)).collect();
    let mut times = Vec::new();
    let mut hits = 0;
    for (query, truth) in queries.iter().zip(&exact) {
        let started = Instant::now();
        // The exact rows are regenerated here; the app reads them from the cache.
        let found =
            index.search(query, K, Filters::default(), Reach::Best, |h| Some(clustered(by_hash[h], groups, DIM)))?;
        times.push(started.elapsed());
        hits += found.iter().filter(|(h, _)| truth.contains(&by_hash[h])).count();
    }
    times.sort();
    println!(
        "similar query: p50 {:.2} ms, p99 {:.2} ms, worst {:.2} ms; recall@{K} {:.4} over {QUERIES} queries",
        ms(times[QUERIES / 2]),
        ms(times[QUERIES * 99 / 100]),
        ms(times[QUERIES - 1]),
        hits as f64 / (QUERIES * K) as f64
    );
    Ok(())
}

/// The similarity index of `count` clustered embeddings, built on every core, with the time it
/// took.
fn build_index(count: usize, groups: usize) -> anyhow::Result<SimilarityIndex> {
    let before = resident_bytes();
    let mut index = SimilarityIndex::new(DIM)?;
    let started = Instant::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(8192) {
        let batch: Vec<_> = chunk.iter().map(|&i| (hash_of(i), clustered(i, groups, DIM))).collect();
        index.extend(&batch)?;
    }
    let built = started.elapsed();
    println!(
        "index of {count} clustered embeddings of {DIM}: built in {:.1} s on {} threads ({:.0} per second), \
         {:.2} GB resident",
        built.as_secs_f64(),
        rayon::current_num_threads(),
        count as f64 / built.as_secs_f64(),
        resident_bytes().saturating_sub(before) as f64 / 1e9,
    );
    Ok(index)
}

/// Recall of the graph search against exact search on embeddings a model made of real photos
/// (the JSON lines of `evatag tag --embedding`), every tenth photo asking for its 10 nearest.
fn real_embeddings(file: &Path) -> anyhow::Result<()> {
    const K: usize = 10;
    let mut vectors: Vec<Vec<f32>> = Vec::new();
    for line in std::fs::read_to_string(file)?.lines() {
        let row: serde_json::Value = serde_json::from_str(line)?;
        if let Some(values) = row["embedding"].as_array() {
            vectors.push(normalise(&values.iter().filter_map(|v| v.as_f64()).map(|v| v as f32).collect::<Vec<_>>()));
        }
    }
    anyhow::ensure!(vectors.len() > K, "{} holds too few embeddings", file.display());
    let mut index = SimilarityIndex::new(vectors[0].len())?;
    index.extend(&vectors.iter().enumerate().map(|(i, v)| (hash_of(i), v.clone())).collect::<Vec<_>>())?;
    let by_hash: HashMap<cache::ContentHash, usize> = (0..vectors.len()).map(|i| (hash_of(i), i)).collect();
    let (mut hits, mut asked, mut times) = (0, 0, Vec::new());
    for q in (0..vectors.len()).step_by(10) {
        let mut exact: Vec<(f32, usize)> =
            (0..vectors.len()).filter(|&i| i != q).map(|i| (dot(&vectors[q], &vectors[i]), i)).collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let truth: Vec<usize> = exact[..K].iter().map(|e| e.1).collect();
        let filters = Filters { exclude: Some(&hash_of(q)), keep: None };
        let started = Instant::now();
        let found = index.search(&vectors[q], K, filters, Reach::Wide, |h| Some(vectors[by_hash[h]].clone()))?;
        times.push(started.elapsed());
        hits += found.iter().filter(|(h, _)| truth.contains(&by_hash[h])).count();
        asked += K;
    }
    times.sort();
    println!(
        "{} real embeddings of {} from {}: graph search recall@{K} {:.4} over {} queries, p50 {:.2} ms",
        vectors.len(),
        vectors[0].len(),
        file.display(),
        hits as f64 / asked as f64,
        times.len(),
        ms(times[times.len() / 2])
    );
    Ok(())
}

/// The index a run of this benchmark saved, opened as the app opens it (every content claimed).
fn open_index(file: &Path, count: usize) -> anyhow::Result<SimilarityIndex> {
    let before = resident_bytes();
    let started = Instant::now();
    let mut index = SimilarityIndex::load(file, DIM)?;
    let claimed = (0..count).filter(|&i| index.claim(&hash_of(i))).count();
    anyhow::ensure!(claimed == count && index.unclaimed() == 0, "{} holds another index", file.display());
    println!(
        "index of {count} opened from {} in {:.1} s, {:.2} GB resident",
        file.display(),
        started.elapsed().as_secs_f64(),
        resident_bytes().saturating_sub(before) as f64 / 1e9
    );
    Ok(index)
}

/// Groups duplicates among `count` clustered embeddings, a tenth of which have a near copy.
fn duplicates(count: usize) -> anyhow::Result<()> {
    use evatag::library::duplicates::{DEFAULT_THRESHOLD, DuplicateGraph, DuplicatePhoto, LOWEST_THRESHOLD, Link};
    use rayon::prelude::*;
    let groups = count.div_ceil(40);
    let originals = count - count / 10;
    // Photo i >= originals is a near copy of photo i - originals.
    let make = |i: usize| {
        if i < originals {
            return clustered(i, groups, DIM);
        }
        let source = clustered(i - originals, groups, DIM);
        let nudge = noise(7_000_000_000 + i as u64, DIM);
        normalise(&source.iter().zip(&nudge).map(|(s, n)| s + 0.004 * n).collect::<Vec<f32>>())
    };
    // Made once: the app reads them from the cache.
    let vectors: Vec<Vec<f32>> = (0..count).into_par_iter().map(make).collect();
    let embedding = |i: usize| vectors[i].clone();
    let before = resident_bytes();
    let mut index = SimilarityIndex::new(DIM)?;
    let started = Instant::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(8192) {
        let batch: Vec<_> = chunk.iter().map(|&i| (hash_of(i), embedding(i))).collect();
        index.extend(&batch)?;
    }
    let built = started.elapsed();
    println!(
        "index of {count} embeddings ({} near copies): built in {:.1} s, {:.2} GB resident",
        count - originals,
        built.as_secs_f64(),
        resident_bytes().saturating_sub(before) as f64 / 1e9
    );
    let contents: Vec<cache::ContentHash> = (0..count).map(hash_of).collect();
    let started = Instant::now();
    let pairs = near_pairs(&index, &contents, LOWEST_THRESHOLD)?;
    let searched = started.elapsed();
    let mut graph = DuplicateGraph::default();
    let mut photo_of_content = HashMap::new();
    for &(a, b) in &pairs {
        let score = dot(&embedding(a), &embedding(b));
        if score < LOWEST_THRESHOLD {
            continue;
        }
        let mut photo = |content: usize| {
            *photo_of_content.entry(content).or_insert_with(|| {
                graph.photos.push(DuplicatePhoto {
                    path: PathBuf::from(format!("/photos/{content}.jpg")),
                    hash: contents[content],
                    width: 4000,
                    height: 3000,
                    bytes: 3_000_000 + content as u64,
                    time: None,
                    time_is_taken: false,
                    embedding: embedding(content).into(),
                });
                graph.photos.len() - 1
            })
        };
        let (a, b) = (photo(a), photo(b));
        graph.links.push(Link { a, b, score });
    }
    let found = graph.groups(DEFAULT_THRESHOLD);
    let total = started.elapsed();
    let copies_found = found.iter().map(|g| g.members.len() - 1).sum::<usize>();
    println!(
        "duplicates among {count}: {:.1} s in all ({:.1} s searching the index), {} pairs scored, \
         {} groups at {DEFAULT_THRESHOLD} holding {copies_found} copies ({} were made)",
        total.as_secs_f64(),
        searched.as_secs_f64(),
        pairs.len(),
        found.len(),
        count - originals
    );
    Ok(())
}

fn cache_lookup() -> anyhow::Result<()> {
    let photos = tempfile::tempdir()?;
    let cache_dir = tempfile::tempdir()?;
    let model_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/eva_tiny");
    let files = weights::locate(&ModelSource::Dir(model_dir.clone()), &mut ())?;
    let config = weights::read_config(&files.config)?;
    let model_id = weights::model_id(&config, &files, DTypeChoice::F32)?;
    let count = 10_000;
    let (mut cache, _) = Cache::open_in(cache_dir.path())?;
    let labels: Vec<ClassProb> = (0..25).map(|c| ClassProb { class: c, prob: 0.01 }).collect();
    let embedding = noise(1, config.eva.embed_dim);
    let mut batch = Vec::new();
    let mut paths = Vec::new();
    for i in 0..count {
        let path = photos.path().join(format!("photo{i:05}.jpg"));
        let bytes = format!("photo {i}").into_bytes();
        std::fs::write(&path, &bytes)?;
        let stamp = FileStamp::of(&std::fs::metadata(&path)?);
        paths.push((path, stamp, cache::hash_bytes(&bytes)));
    }
    let no_info = PhotoInfo::default();
    for chunk in paths.chunks(500) {
        batch.clear();
        batch.extend(chunk.iter().map(|(path, stamp, hash)| NewResult {
            path,
            stamp: *stamp,
            hash: *hash,
            labels: &labels,
            embedding: &embedding,
            info: &no_info,
        }));
        cache.store_batch(&model_id, &batch)?;
    }
    drop(cache);
    let config = WorkerConfig {
        source: ModelSource::Dir(model_dir),
        device: DeviceChoice::Cpu,
        cache_dir: Some(cache_dir.path().to_owned()),
        ..WorkerConfig::default()
    };
    let worker = Worker::spawn(config, Box::new(|| {}));
    let started = Instant::now();
    let progress = run_to_idle(&worker, vec![photos.path().to_owned()]);
    let elapsed = started.elapsed();
    worker.shutdown();
    println!(
        "cache lookup of {} tagged photos: {:.0} ms ({} from the cache, {} inferred, {} failed)",
        progress.done,
        ms(elapsed),
        progress.cached,
        progress.inferred,
        progress.failed
    );
    Ok(())
}

fn run_to_idle(worker: &Worker, paths: Vec<PathBuf>) -> Progress {
    worker.send(Command::Add(paths));
    let mut last = Progress::default();
    for event in worker.events() {
        match event {
            Event::Progress(p) => last = p,
            Event::Model(evatag::worker::ModelStatus::Failed(e)) => panic!("{e}"),
            Event::Idle => break,
            _ => {}
        }
    }
    last
}

fn throughput(model_dir: &Path) -> anyhow::Result<()> {
    let batch = 4;
    let count = 12;
    let photos = tempfile::tempdir()?;
    let base = image::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos/cat_landscape.jpg"))?;
    for i in 0..count {
        let big = base.resize_exact(4000 + i as u32, 3000, image::imageops::FilterType::Triangle);
        let mut out = std::fs::File::create(photos.path().join(format!("p{i:02}.jpg")))?;
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&big)?;
    }
    println!("{count} photos of 4000x3000 written");

    // Model only: preprocessed input, batches of `batch`.
    let files = ModelFiles { config: model_dir.join("config.json"), weights: model_dir.join("model.safetensors") };
    let model = evatag::model::Model::load(&files, &place(DeviceChoice::Cpu, DTypeChoice::F32))?;
    let input = vec![0.1f32; 3 * 224 * 224];
    let inputs: Vec<&[f32]> = (0..batch).map(|_| input.as_slice()).collect();
    model.predict(&inputs)?;
    let started = Instant::now();
    for _ in 0..count / batch {
        model.predict(&inputs)?;
    }
    let model_only = count as f64 / started.elapsed().as_secs_f64();
    drop(model);

    // The whole pipeline: scan, read, hash, decode, preprocess, infer, store.
    let cache_dir = tempfile::tempdir()?;
    let config = WorkerConfig {
        source: ModelSource::Dir(model_dir.to_owned()),
        device: DeviceChoice::Cpu,
        cache_dir: Some(cache_dir.path().to_owned()),
        batch_size: batch,
        ..WorkerConfig::default()
    };
    let worker = Worker::spawn(config, Box::new(|| {}));
    // Wait for the model, so that loading is not counted.
    worker.send(Command::FindSimilar { query: photos.path().join("missing.jpg"), k: 1, within: None });
    for event in worker.events() {
        if let Event::Similar { .. } = event {
            break;
        }
    }
    let started = Instant::now();
    let progress = run_to_idle(&worker, vec![photos.path().to_owned()]);
    let pipeline = progress.inferred as f64 / started.elapsed().as_secs_f64();
    worker.shutdown();
    println!(
        "batch {batch}: model only {model_only:.3} images/s, tagging 12-MP JPEGs {pipeline:.3} images/s ({:.1} %)",
        100.0 * pipeline / model_only
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

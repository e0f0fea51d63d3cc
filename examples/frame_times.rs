//! Frame times of the desktop app while it tags a folder in the background (a benchmark, not a
//! test): the real `App`, driven by egui_kittest without rendering, with the tiny fixture
//! model, so the worker is as busy as it gets and any frame that waited on it would show.
//! LIBRARY photos, tagged in an earlier run, are in the list already, as after a relaunch
//! with a large library.
//!
//! ```sh
//! cargo run --release --example frame_times [PHOTOS [LIBRARY]]
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use evatag::gui::{App, AppOptions};
use evatag::library::photo_info::PhotoInfo;
use evatag::model::device::DeviceChoice;
use evatag::model::labels::Label;
use evatag::model::weights::ModelSource;
use evatag::worker::WorkerConfig;

fn main() -> anyhow::Result<()> {
    let count: u32 = std::env::args().nth(1).map_or(Ok(300), |a| a.parse())?;
    let library: usize = std::env::args().nth(2).map_or(Ok(0), |a| a.parse())?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let photos = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let base = image::open(root.join("tests/fixtures/photos/cat_landscape.jpg"))?;
    for i in 0..count {
        base.resize_exact(1600 + i, 1200, image::imageops::FilterType::Nearest)
            .save(photos.path().join(format!("p{i:04}.jpg")))?;
    }
    let options = AppOptions {
        worker: WorkerConfig {
            source: ModelSource::Dir(root.join("tests/fixtures/models/eva_tiny")),
            device: DeviceChoice::Cpu,
            cache_dir: Some(cache.path().join("results")),
            ..WorkerConfig::default()
        },
        device_from_command_line: true,
        dtype_from_command_line: true,
        paths: vec![PathBuf::from(photos.path())],
        thumbnail_cache: Some(cache.path().join("thumbnails")),
        model_from_command_line: true,
        library_file: Some(cache.path().join("library.json")),
        settings_file: Some(cache.path().join("settings.json")),
        handle_signals: false,
        model: evatag::model::registry::default_model(),
    };
    let mut harness: Harness<'static, App> =
        Harness::builder().with_size(egui::vec2(1440.0, 900.0)).build_eframe(move |cc| App::new(cc, options));
    let labels: Vec<Label> = (0..5).map(|class| Label { class, label: format!("class {class}"), prob: 0.2 }).collect();
    for i in 0..library {
        let path = PathBuf::from(format!("/library/{}/photo{i:05}.jpg", i % 40));
        let info = PhotoInfo { taken: Some(1_500_000_000 + i as i64 * 977 % 100_000_000), ..PhotoInfo::default() };
        harness.state_mut().photos_mut().restore(path, None, info, Some(labels.clone()));
    }
    let started = Instant::now();
    let mut frames = Vec::new();
    // Step at display rate until every photo is tagged.
    loop {
        let frame = Instant::now();
        harness.step();
        frames.push(frame.elapsed());
        let app = harness.state();
        if !app.is_busy() && app.photos().len() == count as usize + library {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "tagging did not finish");
        std::thread::sleep(Duration::from_millis(16).saturating_sub(frame.elapsed()));
    }
    let total = started.elapsed();
    let mut by_cost: Vec<(Duration, usize)> = frames.iter().copied().zip(0..).collect();
    by_cost.sort();
    eprintln!("slowest frames (time, index): {:?}", &by_cost[by_cost.len().saturating_sub(5)..]);
    frames.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{count} photos tagged beside {library} in the list, in {:.1} s over {} frames: median frame {:.2} ms, \
         99th percentile {:.2} ms, worst {:.2} ms",
        total.as_secs_f64(),
        frames.len(),
        ms(frames[frames.len() / 2]),
        ms(frames[frames.len() * 99 / 100]),
        ms(frames[frames.len() - 1])
    );
    Ok(())
}

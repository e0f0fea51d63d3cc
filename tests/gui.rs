//! The real desktop `App` driven through egui_kittest (no rendering), with the tiny fixture
//! model: widgets are found by their accessible names, as a screen reader finds them.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use evatag::gui::photos::{Photo, PhotoState};
use evatag::gui::{App, AppOptions};
use evatag::model::device::{DTypeChoice, DeviceChoice};
use evatag::model::weights::ModelSource;
use evatag::worker::{ModelStatus, WorkerConfig};

/// A file dropped on the window.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn app_harness(cache: &Path, paths: Vec<PathBuf>, batch_size: usize) -> Harness<'static, App> {
    harness_with(options_for(cache, model_dir("eva_tiny"), paths, batch_size))
}

/// The app's options with a model folder, a cache and a saved photo list under `cache`.
fn options_for(cache: &Path, model: PathBuf, paths: Vec<PathBuf>, batch_size: usize) -> AppOptions {
    AppOptions {
        worker: WorkerConfig {
            source: ModelSource::Dir(model),
            device: DeviceChoice::Cpu,
            dtype: DTypeChoice::F32,
            cache_dir: Some(cache.join("results")),
            batch_size,
            ..WorkerConfig::default()
        },
        device_from_command_line: true,
        dtype_from_command_line: true,
        model_from_command_line: true,
        paths,
        thumbnail_cache: Some(cache.join("thumbnails")),
        library_file: Some(cache.join("library.json")),
        settings_file: Some(cache.join("settings.json")),
        handle_signals: false,
        model: evatag::model::registry::default_model(),
    }
}

fn harness_with(options: AppOptions) -> Harness<'static, App> {
    Harness::builder().with_size(egui::vec2(1400.0, 900.0)).build_eframe(move |cc| App::new(cc, options))
}

/// Steps frames until `done` holds, failing after a minute.
fn step_until(harness: &mut Harness<'static, App>, what: &str, done: impl Fn(&mut App) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(harness.state_mut()) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.step();
}

/// The fixture photos copied to a folder, and the app with that folder added, once every photo
/// is tagged and the job is over; the folders are removed when the first two are dropped.
fn tagged_library() -> (tempfile::TempDir, tempfile::TempDir, Vec<PathBuf>, Harness<'static, App>) {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let copied = copy_photos(photos.path());
    let mut harness = app_harness(cache.path(), vec![photos.path().to_owned()], 4);
    step_until(&mut harness, "every photo is tagged", |app| all_finished(app, copied.len()) && !app.is_busy());
    (photos, cache, copied, harness)
}

fn all_finished(app: &App, count: usize) -> bool {
    let list = app.photos();
    list.len() == count && list.iter().all(|(_, photo)| photo.state != PhotoState::Queued)
}

/// Opens Settings and its drop-down menu named `menu`.
fn open_settings_menu(harness: &mut Harness<'static, App>, menu: &str) {
    harness.get_by_label("Settings").click();
    harness.step();
    harness.step();
    harness.get_by_role_and_label(egui::accesskit::Role::ComboBox, menu).click();
    harness.step();
    harness.step();
}

fn drop_on_window(harness: &mut Harness<'static, App>, path: &Path) {
    harness.input_mut().dropped_files.push(Arc::new(Dropped(path.to_owned())));
    harness.step();
}

#[test]
fn dropping_a_folder_fills_the_grid_and_labels_appear() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let copied = copy_photos(photos.path());
    let mut harness = app_harness(cache.path(), Vec::new(), 4);
    harness.get_by_label("Open folder…");
    drop_on_window(&mut harness, photos.path());
    step_until(&mut harness, "every photo is tagged", |app| all_finished(app, copied.len()));
    for photo in &copied {
        harness.get_by_label(photo.file_name().unwrap().to_str().unwrap());
    }

    // Selecting a photo shows its five labels with percentages.
    harness.get_by_label("cat_landscape.jpg").click();
    harness.step();
    harness.step();
    let id = harness.state().photos().id_of(&photos.path().join("cat_landscape.jpg")).unwrap();
    let PhotoState::Tagged(labels) = harness.state().photos().get(id).unwrap().state.clone() else {
        panic!("cat_landscape.jpg is not tagged");
    };
    assert_eq!(labels.len(), 5);
    for label in &labels {
        harness.get_by_label(&label.label);
        harness.get_by_label_contains(&format!("{:.1}%", label.prob * 100.0));
    }

    // "Find similar" lists the other photos, ranked.
    harness.get_by_label("Find similar").click();
    step_until(&mut harness, "similar photos are listed", |_| true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while harness.query_by_label_contains("1. ").is_none() {
        assert!(Instant::now() < deadline, "no similar photos listed");
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    let ranked = harness.get_all_by_label_contains(". ").count();
    assert_eq!(ranked, copied.len() - 1);
}

#[test]
fn the_filter_box_narrows_the_grid() {
    let (_photos, _cache, copied, mut harness) = tagged_library();
    // A label some photos have among their top five and others do not.
    let (label, expected) = {
        let list = harness.state().photos();
        let labels_of = |photo: &Photo| match &photo.state {
            PhotoState::Tagged(labels) => labels.iter().map(|l| l.label.clone()).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        let all: Vec<Vec<String>> = list.iter().map(|(_, photo)| labels_of(photo)).collect();
        let candidates: Vec<&String> = all.iter().flatten().collect();
        let pick = candidates
            .into_iter()
            .find(|c| {
                let n = all.iter().filter(|labels| labels.contains(c)).count();
                n > 0 && n < all.len()
            })
            .expect("some label is not shared by every photo")
            .clone();
        let expected = all.iter().filter(|labels| labels.contains(&pick)).count();
        (pick, expected)
    };
    harness.get_by_label("Filter").click();
    harness.step();
    harness.get_by_label("Filter").type_text(&label);
    harness.step();
    harness.step();
    assert_eq!(harness.state().photos().filter(), label);
    assert_eq!(harness.state_mut().photos_mut().visible().len(), expected);
    let shown = harness.state().frame_stats().cells_built;
    assert_eq!(shown, expected, "cells on screen after filtering");
    harness.get_by_label_contains(&format!("{expected} of {} match", copied.len()));

    // File names match as well as labels; a filter nothing matches says so.
    for _ in 0..label.chars().count() {
        harness.key_press(egui::Key::Backspace);
    }
    harness.get_by_label("Filter").type_text("CAT_LANDSCAPE");
    harness.step();
    harness.step();
    assert_eq!(harness.state_mut().photos_mut().visible().len(), 1);
    harness.get_by_label("Filter").type_text("-nothing-like-it");
    harness.step();
    harness.step();
    assert!(harness.state_mut().photos_mut().visible().is_empty());
    let no_match = |node: &egui_kittest::kittest::AccessKitNode<'_>| {
        node.value().is_some_and(|text| text == "No photos match the filter")
    };
    assert!(harness.query_all(egui_kittest::kittest::By::new().predicate(no_match)).next().is_some());
}

#[test]
fn arrow_keys_move_the_selection_through_the_grid() {
    let (_photos, _cache, _copied, mut harness) = tagged_library();
    let order = grid_order(&mut harness);
    harness.key_press(egui::Key::ArrowRight);
    harness.step();
    assert_eq!(harness.state().selected_path(), Some(order[0].as_path()));
    harness.key_press(egui::Key::ArrowRight);
    harness.step();
    assert_eq!(harness.state().selected_path(), Some(order[1].as_path()));
    harness.key_press(egui::Key::ArrowLeft);
    harness.step();
    assert_eq!(harness.state().selected_path(), Some(order[0].as_path()));
}

#[test]
fn the_viewer_opens_steps_through_the_grid_and_closes() {
    let (_photos, _cache, _copied, mut harness) = tagged_library();
    let order: Vec<String> = grid_order(&mut harness).iter().map(|p| name_of(p).to_owned()).collect();
    let count = order.len();
    // Enter opens the selected photo; the arrows step through the grid's order.
    harness.key_press(egui::Key::Home);
    harness.step();
    harness.key_press(egui::Key::Enter);
    harness.step();
    harness.step();
    harness.get_by_label_contains(&format!("1 of {count}: {}", order[0]));
    harness.key_press(egui::Key::ArrowRight);
    harness.step();
    harness.step();
    harness.get_by_label_contains(&format!("2 of {count}: {}", order[1]));
    harness.get_by_label("Open with the system viewer");
    harness.get_by_label("Show in folder");
    harness.key_press(egui::Key::Escape);
    harness.step();
    harness.step();
    assert!(harness.query_by_label("Show in folder").is_none(), "Escape closes the viewer");
    assert_eq!(harness.state().selected_path().and_then(|p| p.file_name()).and_then(|n| n.to_str()), Some(&*order[1]));
    // Space opens the selected photo too.
    harness.key_press(egui::Key::ArrowRight);
    harness.step();
    harness.key_press(egui::Key::Space);
    harness.step();
    harness.step();
    harness.get_by_label_contains(&format!("3 of {count}: {}", order[2]));
}

#[test]
fn the_size_slider_resizes_the_tiles() {
    let (_photos, _cache, copied, mut harness) = tagged_library();
    let name = copied[0].file_name().unwrap().to_str().unwrap().to_owned();
    let before = harness.get_by_label(&name).rect().width();
    harness.get_by_label("Size").set_value_accesskit(320.0);
    harness.step();
    harness.step();
    let after = harness.get_by_label(&name).rect().width();
    assert!((before - 150.0).abs() < 1.0 && (after - 320.0).abs() < 1.0, "{before} then {after}");
}

#[test]
fn keyboard_home_end_escape_delete_and_ctrl_f() {
    let (_photos, _cache, copied, mut harness) = tagged_library();
    let order = grid_order(&mut harness);
    harness.key_press(egui::Key::End);
    harness.step();
    assert_eq!(harness.state().selected_path(), order.last().map(PathBuf::as_path));
    harness.key_press(egui::Key::Home);
    harness.step();
    assert_eq!(harness.state().selected_path(), Some(order[0].as_path()));
    harness.key_press(egui::Key::Escape);
    harness.step();
    assert_eq!(harness.state().selected_path(), None);

    // Delete takes the photo out of the list, never off the disk.
    harness.key_press(egui::Key::Home);
    harness.step();
    harness.key_press(egui::Key::Delete);
    harness.step();
    assert_eq!(harness.state().photos().len(), copied.len() - 1);
    assert!(harness.state().photos().id_of(&order[0]).is_none());
    assert!(order[0].exists(), "the file is kept");

    // Keys that arrive with a Delete in one frame do not act on indices from before it.
    harness.key_press(egui::Key::End);
    harness.step();
    harness.key_press(egui::Key::Delete);
    harness.key_press(egui::Key::Enter);
    harness.key_press(egui::Key::ArrowLeft);
    harness.step();
    harness.step();
    assert_eq!(harness.state().photos().len(), copied.len() - 2);
    assert!(harness.state().selected_path().is_none_or(|p| harness.state().photos().id_of(p).is_some()));

    // Ctrl+F puts the keyboard in the filter box.
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    harness.step();
    harness.step();
    harness.event(egui::Event::Text("coffee".into()));
    harness.step();
    harness.step();
    assert_eq!(harness.state().photos().filter(), "coffee");
}

#[test]
fn a_corrupt_file_shows_its_error_and_a_non_photo_is_only_an_error() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    copy_photos(photos.path());
    std::fs::write(photos.path().join("broken.jpg"), b"not a jpeg at all").unwrap();
    std::fs::create_dir(photos.path().join("folder.jpg")).unwrap();
    let mut harness = app_harness(cache.path(), vec![photos.path().to_owned()], 4);
    step_until(&mut harness, "every photo is done", |app| all_finished(app, photo_names().len() + 1) && !app.is_busy());
    harness.get_by_label("Errors (2)").click();
    harness.step();
    harness.get_by_label_contains("broken.jpg: not a supported image");
    harness.get_by_label_contains("folder.jpg: is a directory");
    let id = harness.state().photos().id_of(&photos.path().join("broken.jpg")).unwrap();
    assert!(matches!(harness.state().photos().get(id).unwrap().state, PhotoState::Failed(_)));
    harness.get_by_label("broken.jpg");
    assert!(harness.state().photos().id_of(&photos.path().join("folder.jpg")).is_none(), "a folder is no tile");
}

#[test]
fn settings_show_the_device_and_cpu_kernels_in_use() {
    let cache = tempfile::tempdir().unwrap();
    let mut harness = app_harness(cache.path(), Vec::new(), 4);
    step_until(&mut harness, "the model is ready", |app| matches!(app.model_status(), ModelStatus::Ready { .. }));
    harness.get_by_label("Settings").click();
    harness.step();
    harness.step();
    let running_on = |node: &egui_kittest::kittest::AccessKitNode<'_>| {
        node.value().is_some_and(|text| text.starts_with("Running on: CPU (") && text.contains(" kernels, "))
    };
    assert!(harness.query_all(egui_kittest::kittest::By::new().predicate(running_on)).next().is_some());
    // The device menu shows the choice in effect (the command line's), spelled as people do.
    let cpu_chosen = |node: &egui_kittest::kittest::AccessKitNode<'_>| {
        node.label().as_deref() == Some("Device") && node.value().as_deref() == Some("CPU")
    };
    assert!(harness.query_all(egui_kittest::kittest::By::new().predicate(cpu_chosen)).next().is_some());
}

#[test]
fn settings_show_the_model_speed_against_this_cpus_peak() {
    let (_photos, _cache, _copied, mut harness) = tagged_library();
    harness.get_by_label("Settings").click();
    let speed_line = |node: &egui_kittest::kittest::AccessKitNode<'_>| {
        node.value().is_some_and(|text| text.contains(" % of this CPU's peak of ") && text.ends_with(" threads)"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while harness.query_all(egui_kittest::kittest::By::new().predicate(speed_line)).next().is_none() {
        assert!(Instant::now() < deadline, "the speed against this CPU's peak is not shown");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.get_by_label_contains(" s per photo, ");
}

#[test]
fn settings_switch_to_half_precision_and_remember_it() {
    let cache = tempfile::tempdir().unwrap();
    let mut options = options_for(cache.path(), model_dir("eva_tiny"), Vec::new(), 4);
    options.dtype_from_command_line = false;
    let mut harness = harness_with(options);
    step_until(&mut harness, "the model is ready", |app| matches!(app.model_status(), ModelStatus::Ready { .. }));
    assert!(harness.state().settings().precision.is_some(), "the first start chooses a precision");
    open_settings_menu(&mut harness, "Precision");
    harness.get_by_label_contains("full (f32, ");
    harness.get_by_label_contains("half (bf16, ").click();
    harness.step();
    step_until(&mut harness, "the model runs with bf16 weights", |app| {
        matches!(app.model_status(), ModelStatus::Ready { device, model_id }
            if device.contains("bf16 weights") && model_id.ends_with("+bf16"))
    });
    assert_eq!(harness.state().settings().precision, Some(DTypeChoice::Bf16), "the choice is remembered");
}

#[test]
fn writing_sidecars_asks_first_and_says_what_it_will_write() {
    let (_photos, _cache, copied, mut harness) = tagged_library();
    harness.get_by_label("Settings").click();
    harness.step();
    harness.step();
    harness.get_by_label("Write XMP sidecars").click();
    harness.step();
    harness.step();
    let count = copied.len();
    harness.get_by_label_contains("Write XMP sidecars?");
    let sidecar_of = |photo: &Path| PathBuf::from(format!("{}.xmp", photo.display()));
    assert!(copied.iter().all(|p| !sidecar_of(p).exists()), "nothing is written before the confirmation");
    harness.get_by_label(&format!("Write {count} sidecars")).click();
    step_until(&mut harness, "the sidecars are written", |_| copied.iter().all(|p| sidecar_of(p).exists()));
    step_until(&mut harness, "the outcome is shown", |app| app.notice().is_some_and(|n| n.starts_with("Wrote")));
}

#[test]
fn clearing_the_cache_asks_first_and_shows_the_new_size() {
    let (_photos, _cache, _copied, mut harness) = tagged_library();
    harness.get_by_label("Settings").click();
    let size_shown = |harness: &Harness<'static, App>| -> Option<String> {
        let is_size = |node: &egui_kittest::kittest::AccessKitNode<'_>| {
            node.value().is_some_and(|text| text.starts_with("Size: ") && !text.contains("measuring"))
        };
        harness.query_all(egui_kittest::kittest::By::new().predicate(is_size)).next().and_then(|n| n.value())
    };
    harness.step();
    let deadline = Instant::now() + Duration::from_secs(30);
    while size_shown(&harness).is_none() && Instant::now() < deadline {
        harness.step();
    }
    let before = size_shown(&harness).expect("the cache size is shown");
    harness.get_by_label("Clear cache").click();
    harness.step();
    harness.step();
    harness.get_by_label_contains("Clear the cache?");
    harness.get_by_label("Cancel").click();
    harness.step();
    assert!(harness.query_by_label_contains("Clear the cache?").is_none(), "Cancel closes the question");
    harness.get_by_label("Clear cache").click();
    harness.step();
    harness.step();
    harness.get_by_label("Clear the cache").click();
    step_until(&mut harness, "the cache is cleared", |app| app.notice() == Some("The cache is empty."));
    let deadline = Instant::now() + Duration::from_secs(30);
    while size_shown(&harness).is_none_or(|now| now == before) && Instant::now() < deadline {
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_ne!(size_shown(&harness).expect("the new size is shown"), before);
}

#[test]
fn a_relaunch_without_the_model_shows_the_saved_photos_at_once() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let copied = copy_photos(photos.path());
    let labels_before: Vec<PhotoState> = {
        let mut harness = app_harness(cache.path(), vec![photos.path().to_owned()], 4);
        step_until(&mut harness, "every photo is tagged", |app| all_finished(app, copied.len()) && !app.is_busy());
        // The list is saved as it changes, not only on exit.
        let saved = cache.path().join("library.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        let saved_count = || std::fs::read_to_string(&saved).map_or(0, |t| t.matches("\"labels\":[").count());
        while saved_count() < copied.len() && Instant::now() < deadline {
            harness.step();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(saved_count(), copied.len(), "every tagged photo is saved");
        copied
            .iter()
            .map(|p| harness.state().photos().get(harness.state().photos().id_of(p).unwrap()).unwrap().state.clone())
            .collect()
    };
    // The next day, the model is gone (a folder that no longer exists, an offline machine).
    let gone = cache.path().join("no-model-here");
    let mut harness = harness_with(options_for(cache.path(), gone, Vec::new(), 4));
    harness.step();
    for (photo, before) in copied.iter().zip(&labels_before) {
        let list = harness.state().photos();
        let id = list.id_of(photo).unwrap_or_else(|| panic!("{} is not shown", photo.display()));
        assert_eq!(&list.get(id).unwrap().state, before, "{}", photo.display());
    }
    step_until(&mut harness, "the model has failed", |app| matches!(app.model_status(), ModelStatus::Failed(_)));
    harness.get_by_label("Retry");
    harness.get_by_label("Details");
    // The model's files are missing, so a local folder is offered as a way out.
    harness.get_by_label("Choose model folder…");
    assert_eq!(harness.state().photos().len(), copied.len(), "the failure adds no tiles");
}

#[test]
fn cancel_stops_a_running_job() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let base = image::open(fixtures().join("photos/cat_landscape.jpg")).unwrap();
    let count = 150;
    for i in 0..count {
        base.resize_exact(900 + i, 600, image::imageops::FilterType::Nearest)
            .save(photos.path().join(format!("p{i:03}.jpg")))
            .unwrap();
    }
    let mut harness = app_harness(cache.path(), vec![photos.path().to_owned()], 1);
    step_until(&mut harness, "tagging has started", |app| {
        let list = app.photos();
        list.iter().any(|(_, photo)| matches!(photo.state, PhotoState::Tagged(_)))
    });
    harness.get_by_label("Cancel").click();
    harness.step();
    assert!(!harness.state().is_busy());
    let tagged_at_cancel = tagged(harness.state());
    for _ in 0..50 {
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    let tagged_later = tagged(harness.state());
    assert!(tagged_later < count as usize, "the job ran to completion");
    // At most the batch in flight (one image) finishes after Cancel.
    assert!(tagged_later <= tagged_at_cancel + 1, "{tagged_at_cancel} then {tagged_later}");
    assert!(harness.query_by_label("Cancel").is_none());
    // What the cancel left is "not tagged yet", not failed, and Resume finishes it.
    let listed = harness.state().photos().len();
    let states = |app: &App| -> Vec<PhotoState> { app.photos().iter().map(|(_, p)| p.state.clone()).collect() };
    let unfinished: Vec<PhotoState> = states(harness.state())
        .into_iter()
        .filter(|s| matches!(s, PhotoState::Failed(_) | PhotoState::Queued))
        .collect();
    assert!(unfinished.is_empty(), "after Cancel: {unfinished:?}");
    assert!(states(harness.state()).contains(&PhotoState::NotTagged));
    assert!(harness.query_by_label_contains("Errors").is_none(), "a cancel is not an error");
    harness.get_by_label("Resume").click();
    step_until(&mut harness, "the resumed job is done", |app| {
        !app.is_busy()
            && app.photos().len() == listed
            && app.photos().iter().all(|(_, photo)| matches!(photo.state, PhotoState::Tagged(_)))
    });
    assert!(harness.query_by_label("Resume").is_none());
}

fn tagged(app: &App) -> usize {
    let list = app.photos();
    list.iter().filter(|(_, photo)| matches!(photo.state, PhotoState::Tagged(_))).count()
}

#[test]
fn a_grid_of_50000_photos_builds_only_the_visible_cells() {
    let cache = tempfile::tempdir().unwrap();
    let mut harness = app_harness(cache.path(), Vec::new(), 4);
    for i in 0..50_000 {
        harness.state_mut().photos_mut().queue(PathBuf::from(format!("/nonexistent/photo{i:05}.jpg")), None);
    }
    harness.step();
    harness.step();
    let built = harness.state().frame_stats().cells_built;
    assert!(built > 0, "no cells built");
    // A 1400x900 window shows a few rows of 150-point tiles: far fewer than 200 cells.
    assert!(built < 200, "{built} cells built for one frame");
    harness.get_by_label("photo00000.jpg");
    assert!(harness.query_by_label("photo49999.jpg").is_none());
}

/// The grid's photos in display order.
fn grid_order(harness: &mut Harness<'static, App>) -> Vec<PathBuf> {
    let list = harness.state_mut().photos_mut();
    let visible = list.visible().to_vec();
    visible.iter().map(|&id| list.get(id).unwrap().path.clone()).collect()
}

fn name_of(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap()
}

fn selected_set(harness: &Harness<'static, App>) -> std::collections::BTreeSet<PathBuf> {
    harness.state().selected_paths().into_iter().map(Path::to_owned).collect()
}

#[test]
fn ctrl_and_shift_clicks_select_several_and_the_menu_acts_on_them() {
    let (_photos, _cache, copied, mut harness) = tagged_library();
    assert!(copied.len() >= 4, "the test needs four photos");
    let order = grid_order(&mut harness);
    let set = |paths: &[&PathBuf]| paths.iter().map(|p| (*p).clone()).collect::<std::collections::BTreeSet<_>>();

    harness.get_by_label(name_of(&order[0])).click();
    harness.step();
    harness.get_by_label(name_of(&order[2])).click_modifiers(egui::Modifiers::COMMAND);
    harness.step();
    assert_eq!(selected_set(&harness), set(&[&order[0], &order[2]]), "Ctrl-click adds");
    harness.get_by_label(name_of(&order[3])).click_modifiers(egui::Modifiers::SHIFT);
    harness.step();
    assert_eq!(selected_set(&harness), set(&[&order[2], &order[3]]), "Shift-click extends from the last click");
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.step();
    assert_eq!(selected_set(&harness).len(), copied.len(), "Ctrl+A selects every photo");

    // The right-click menu acts on the whole selection.
    harness.get_by_label(name_of(&order[1])).click_secondary();
    harness.step();
    harness.step();
    harness.get_by_label(&format!("Copy {} paths", copied.len())).click();
    harness.step();
    let copied_text = harness.output().platform_output.commands.iter().find_map(|c| match c {
        egui::OutputCommand::CopyText(text) => Some(text.clone()),
        _ => None,
    });
    let copied_text = copied_text.expect("the paths are put on the clipboard");
    assert_eq!(copied_text.lines().count(), copied.len());
    assert!(order.iter().all(|p| copied_text.lines().any(|l| Path::new(l) == p)));

    // Export writes sidecars for the selected photos only.
    harness.get_by_label(name_of(&order[0])).click();
    harness.step();
    harness.get_by_label(name_of(&order[1])).click_modifiers(egui::Modifiers::COMMAND);
    harness.step();
    harness.get_by_label(name_of(&order[1])).click_secondary();
    harness.step();
    harness.step();
    harness.get_by_label("Write XMP sidecars for 2 photos…").click();
    harness.step();
    harness.step();
    harness.get_by_label_contains("each of the 2 selected photos");
    harness.get_by_label("Write 2 sidecars").click();
    let sidecar_of = |photo: &Path| PathBuf::from(format!("{}.xmp", photo.display()));
    step_until(&mut harness, "the sidecars are written", |app| app.notice().is_some_and(|n| n.starts_with("Wrote")));
    assert!(sidecar_of(&order[0]).exists() && sidecar_of(&order[1]).exists());
    assert!(order[2..].iter().all(|p| !sidecar_of(p).exists()), "photos outside the selection get no sidecar");

    // Delete takes the selected photos out of the library, never off the disk.
    harness.key_press(egui::Key::Delete);
    harness.step();
    assert_eq!(harness.state().photos().len(), copied.len() - 2);
    assert!(harness.state().selected_paths().is_empty());
    assert!(order[0].exists() && order[1].exists(), "the files are kept");
}

#[test]
fn similar_photos_show_in_a_strip_that_fits_a_small_window() {
    let (_photos, _cache, _copied, mut harness) = tagged_library();
    harness.set_size(egui::vec2(800.0, 600.0));
    harness.step();
    let order = grid_order(&mut harness);
    harness.get_by_label(name_of(&order[0])).click();
    harness.step();
    harness.step();
    harness.get_by_label("Find similar").click();
    let deadline = Instant::now() + Duration::from_secs(60);
    while harness.query_by_label_contains("1. ").is_none() {
        assert!(Instant::now() < deadline, "the similar photos are shown");
        harness.step();
    }
    harness.step();
    harness.get_by_label_contains(&format!("Similar to {}", name_of(&order[0])));
    // Every result is one card in a single row, on screen at 800x600.
    let first = harness.get_by_label_contains("1. ").rect();
    let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(800.0, 600.0));
    assert!(screen.contains_rect(first), "{first:?}");
    let second = harness.get_by_label_contains("2. ").rect();
    assert!((second.top() - first.top()).abs() < 1.0, "the results run along one row");
    // A result clicked is selected, and the strip stays for the next one.
    let result_name = harness.get_by_label_contains("1. ").accesskit_node().label().unwrap();
    harness.get_by_label_contains("1. ").click();
    harness.step();
    harness.step();
    let picked = harness.state().selected_path().unwrap().to_owned();
    assert!(result_name.ends_with(name_of(&picked)), "{result_name} selects {}", picked.display());
    harness.get_by_label_contains(&format!("Similar to {}", name_of(&order[0])));
    // Selecting another photo in the grid clears results that are not its own.
    harness.key_press(egui::Key::End);
    harness.step();
    if harness.state().selected_path() == Some(picked.as_path()) {
        harness.key_press(egui::Key::ArrowUp);
        harness.step();
    }
    harness.step();
    let other = harness.state().selected_path().unwrap().to_owned();
    assert!(other != order[0] && other != picked);
    assert!(harness.query_by_label_contains("Similar to").is_none(), "the old results are cleared");
}

#[test]
fn the_settings_window_leaves_the_toolbar_in_view() {
    let cache = tempfile::tempdir().unwrap();
    let mut harness = app_harness(cache.path(), Vec::new(), 4);
    harness.set_size(egui::vec2(800.0, 600.0));
    harness.step();
    let toolbar_bottom = harness.get_by_label("Open images…").rect().bottom();
    harness.get_by_label("Settings").click();
    harness.step();
    harness.step();
    // The window's title is the "Settings" that is not the toolbar's button.
    let title = |node: &egui_kittest::kittest::AccessKitNode<'_>| {
        node.label().as_deref() == Some("Settings") && node.role() != egui::accesskit::Role::Button
    };
    let window_top = harness
        .query_all(egui_kittest::kittest::By::new().predicate(title))
        .map(|n| n.rect().top())
        .fold(f32::INFINITY, f32::min);
    assert!(window_top.is_finite(), "the window's title is shown");
    assert!(window_top > toolbar_bottom, "window at {window_top}, toolbar down to {toolbar_bottom}");
    // The toolbar's buttons still take clicks: Open images… is not under the window.
    let open = harness.get_by_label("Open images…").rect();
    let clear = harness.get_by_label("Choose model folder…").rect();
    assert!(!open.intersects(clear));
}

#[test]
fn without_a_system_file_picker_the_path_is_asked_in_the_window() {
    let has_zenity = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("zenity").is_file()));
    if has_zenity || std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        eprintln!("this system has a file picker; the fallback is not reachable here");
        return;
    }
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let copied = copy_photos(photos.path());
    let mut harness = app_harness(cache.path(), Vec::new(), 4);
    harness.step();
    harness.get_by_label("Open folder…").click();
    harness.step();
    harness.step();
    harness.get_by_label("No file picker on this system");
    let entry = harness.get_by_label("Folders to add (one path per line)");
    entry.focus();
    entry.type_text(&photos.path().join("missing").display().to_string());
    harness.step();
    harness.get_by_label("Use").click();
    harness.step();
    harness.step();
    harness.get_by_label_contains("does not exist");
    harness.get_by_label("Folders to add (one path per line)").focus();
    harness.step();
    for _ in 0.."missing".len() {
        harness.key_press(egui::Key::Backspace);
    }
    harness.step();
    harness.get_by_label("Use").click();
    step_until(&mut harness, "the typed folder is tagged", |app| all_finished(app, copied.len()));
    assert!(harness.query_by_label("No file picker on this system").is_none());
}

#[test]
fn the_folder_sidebar_narrows_the_grid_scans_again_and_removes_a_folder() {
    let (library, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (trip, garden) = (library.path().join("trip"), library.path().join("garden"));
    std::fs::create_dir_all(&trip).unwrap();
    std::fs::create_dir_all(&garden).unwrap();
    let names = photo_names();
    for (i, name) in names.iter().enumerate() {
        let folder = if i < 3 { &trip } else { &garden };
        std::fs::copy(fixtures().join("photos").join(name), folder.join(name)).unwrap();
    }
    let (in_trip, in_garden) = (3, names.len() - 3);
    let mut harness = app_harness(cache.path(), vec![trip.clone(), garden.clone()], 4);
    step_until(&mut harness, "every photo is tagged", |app| all_finished(app, names.len()) && !app.is_busy());
    harness.get_by_label(&format!("All photos ({})", names.len()));
    harness.get_by_label(&format!("garden ({in_garden})"));
    harness.get_by_label(&format!("trip ({in_trip})")).click();
    harness.step();
    harness.step();
    assert_eq!(harness.state_mut().photos_mut().visible().len(), in_trip, "only the folder's photos are shown");

    // A photo deleted on disk and one added: scanning again follows both. The deleted photo
    // leaves the selection; the photo selected with it stays selected.
    let deleted = trip.join(&names[0]);
    harness.get_by_label(&names[0]).click();
    harness.step();
    harness.get_by_label(&names[1]).click_modifiers(egui::Modifiers::COMMAND);
    harness.step();
    assert_eq!(selected_set(&harness).len(), 2);
    std::fs::remove_file(&deleted).unwrap();
    std::fs::copy(fixtures().join("photos").join(&names[4]), trip.join("new.jpg")).unwrap();
    harness.get_by_label("Scan again").click();
    step_until(&mut harness, "the new photo is tagged", |app| {
        app.photos().id_of(&trip.join("new.jpg")).is_some() && !app.is_busy()
    });
    assert!(harness.state().photos().id_of(&deleted).is_none(), "a photo gone from the disk leaves the list");
    assert_eq!(selected_set(&harness), [trip.join(&names[1])].into(), "the other selected photo stays selected");
    harness.get_by_label(&format!("trip ({in_trip})"));

    // Removing the folder takes its photos out of the library, never off the disk.
    harness.get_by_label("Remove from library").click();
    harness.step();
    harness.step();
    assert_eq!(harness.state().photos().len(), in_garden);
    assert!(trip.join("new.jpg").exists() && trip.join(&names[1]).exists(), "the files are kept");
    harness.get_by_label(&format!("All photos ({in_garden})"));
    assert!(harness.query_by_label_contains("trip (").is_none());
    assert_eq!(harness.state_mut().photos_mut().visible().len(), in_garden, "the grid shows the rest again");
}

#[test]
fn photos_sort_by_date_taken_both_ways_and_show_their_camera() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for name in ["dated_offset.jpg", "dated_local.jpg"] {
        std::fs::copy(fixtures().join("exif").join(name), photos.path().join(name)).unwrap();
    }
    // No EXIF date: the file's time (now) stands in, which is later than both.
    std::fs::copy(fixtures().join("photos/camera_landscape.png"), photos.path().join("undated.png")).unwrap();
    let mut harness = app_harness(cache.path(), vec![photos.path().to_owned()], 4);
    step_until(&mut harness, "every photo is tagged", |app| all_finished(app, 3) && !app.is_busy());
    let names = |harness: &mut Harness<'static, App>| -> Vec<String> {
        grid_order(harness).iter().map(|p| name_of(p).to_owned()).collect()
    };
    harness.get_by_role_and_label(egui::accesskit::Role::ComboBox, "Sort by").click();
    harness.step();
    harness.step();
    harness.get_by_label("Date taken, oldest first").click();
    harness.step();
    harness.step();
    assert_eq!(names(&mut harness), ["dated_local.jpg", "dated_offset.jpg", "undated.png"]);
    harness.get_by_role_and_label(egui::accesskit::Role::ComboBox, "Sort by").click();
    harness.step();
    harness.step();
    harness.get_by_label("Date taken, newest first").click();
    harness.step();
    harness.step();
    assert_eq!(names(&mut harness), ["undated.png", "dated_offset.jpg", "dated_local.jpg"]);
    harness.get_by_label("dated_offset.jpg").click();
    harness.step();
    harness.step();
    harness.get_by_label_contains("Canon EOS R5");
    harness.get_by_label_contains("Taken 2021-07-14 09:30");
}

#[test]
fn every_control_is_reachable_with_the_tab_key() {
    let (photos, _cache, copied, mut harness) = tagged_library();
    harness.get_by_label(name_of(&copied[0])).click();
    harness.step();
    harness.step();
    let focused_label = |harness: &Harness<'static, App>| -> Option<String> {
        let focused = |node: &egui_kittest::kittest::AccessKitNode<'_>| node.is_focused();
        harness
            .query_all(egui_kittest::kittest::By::new().predicate(focused))
            .next()
            .and_then(|n| n.accesskit_node().label())
    };
    let mut reached = std::collections::BTreeSet::new();
    for _ in 0..80 {
        harness.key_press(egui::Key::Tab);
        harness.step();
        if let Some(label) = focused_label(&harness) {
            reached.insert(label);
        }
    }
    let folder = format!("{} ({})", name_of(photos.path()), copied.len());
    let expected = [
        "Open images…",
        "Open folder…",
        "Sort by",
        "Filter",
        "Size",
        "Settings",
        "Add…",
        &format!("All photos ({})", copied.len()),
        &folder,
        name_of(&copied[1]),
        "Find similar",
    ];
    let missing: Vec<&&str> = expected.iter().filter(|label| !reached.contains(**label)).collect();
    assert!(missing.is_empty(), "not reached with Tab: {missing:?}; reached: {reached:?}");
}

#[test]
fn settings_offer_every_model_with_its_figures_and_remember_the_choice() {
    let cache = tempfile::tempdir().unwrap();
    let mut harness = app_harness(cache.path(), Vec::new(), 4);
    step_until(&mut harness, "the model is ready", |app| matches!(app.model_status(), ModelStatus::Ready { .. }));
    open_settings_menu(&mut harness, "Model");
    for model in evatag::model::registry::MODELS {
        harness.get_by_label(model.architecture);
    }
    let tiny = evatag::model::registry::find("eva02_tiny_patch14_336").unwrap();
    harness.get_by_label(tiny.architecture).click();
    harness.step();
    harness.step();
    // The choice is the Hub's copy of that model, shown with the figures to decide by.
    assert_eq!(harness.state().model().name, tiny.name);
    harness.get_by_label_contains(&format!("ImageNet top-1 {:.1} %", tiny.imagenet_top1));
    assert_eq!(harness.state().settings().model.as_deref(), Some(tiny.name), "the choice is remembered");
    assert!(harness.state().settings().model_dir.is_none());
}

#[test]
fn the_duplicates_view_groups_copies_and_asks_before_the_trash() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut copied = copy_photos(photos.path());
    let original = photos.path().join("cat_landscape.jpg");
    let copy = photos.path().join("cat-copy.jpg");
    std::fs::copy(&original, &copy).unwrap();
    // The original is older, so it is the one to keep.
    let file = std::fs::File::options().write(true).open(&original).unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)).unwrap();
    copied.push(copy.clone());
    let mut harness = app_harness(cache.path(), vec![photos.path().to_owned()], 4);
    step_until(&mut harness, "every photo is tagged", |app| all_finished(app, copied.len()) && !app.is_busy());

    harness.get_by_label("Duplicates").click();
    let deadline = Instant::now() + Duration::from_secs(60);
    while harness.query_by_label_contains("Group 1").is_none() {
        assert!(Instant::now() < deadline, "the groups are shown");
        harness.step();
    }
    harness.step();
    // At 1.0 only the exact copy groups, whatever the test model makes of the other photos.
    harness.get_by_role_and_label(egui::accesskit::Role::Slider, "Similarity at least").set_value_accesskit(1.0);
    harness.step();
    harness.step();
    harness.get_by_label_contains("Group 1 · 2 photos");
    assert!(harness.query_by_label_contains("Group 2").is_none());
    harness.get_by_label("cat_landscape.jpg, keep");
    harness.get_by_label("cat-copy.jpg, similarity 1.000");

    // The move asks first, listing what would go; Cancel moves nothing.
    harness.get_by_label("Move the others to the trash (1)…").click();
    harness.step();
    harness.step();
    harness.get_by_label("Move 1 photos to the trash?");
    harness.get_by_label(&copy.display().to_string());
    harness.get_by_label("Cancel").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label("Move 1 photos to the trash?").is_none());
    assert!(copy.exists() && original.exists());
    assert_eq!(harness.state().settings().duplicate_threshold, 1.0, "the threshold is remembered");

    // Escape goes back to the grid.
    harness.key_press(egui::Key::Escape);
    harness.step();
    harness.step();
    assert!(harness.query_by_label_contains("Group 1").is_none());
    harness.get_by_label("cat-copy.jpg");
    // D opens it again.
    harness.key_press(egui::Key::D);
    let deadline = Instant::now() + Duration::from_secs(60);
    while harness.query_by_label_contains("Group 1").is_none() {
        assert!(Instant::now() < deadline, "D shows the duplicates");
        harness.step();
    }
}

#[test]
#[cfg(debug_assertions)] // only debug builds can arm a fail point
fn a_panic_in_the_model_fails_only_its_photo_and_the_rest_are_tagged() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let copied = copy_photos(photos.path());
    // A name of its own, so that no other test's photo meets the armed fail point, and
    // pixels of its own, so that it is no cache hit for a copy tagged before it.
    let culprit = photos.path().join("panics_in_the_model.jpg");
    image::open(&copied[0]).unwrap().fliph().save(&culprit).unwrap();
    evatag::fail_point::arm(evatag::fail_point::Stage::Model, "panics_in_the_model.jpg");
    let mut harness = app_harness(cache.path(), vec![photos.path().to_owned()], 4);
    step_until(&mut harness, "every photo is done", |app| all_finished(app, copied.len() + 1) && !app.is_busy());
    assert_eq!(tagged(harness.state()), copied.len(), "the other photos are tagged");
    harness.get_by_label("Errors (1)").click();
    harness.step();
    harness.get_by_label_contains("panics_in_the_model.jpg: evatag failed unexpectedly while running the model on it");
    let id = harness.state().photos().id_of(&culprit).unwrap();
    assert!(matches!(harness.state().photos().get(id).unwrap().state, PhotoState::Failed(_)));
}

#[test]
fn changing_the_precision_while_a_folder_is_being_added_still_tags_all_of_it() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let copied = copy_photos(photos.path());
    let mut options = options_for(cache.path(), model_dir("eva_tiny"), vec![photos.path().to_owned()], 4);
    options.dtype_from_command_line = false;
    let mut harness = harness_with(options);
    // At once, while the folder is still being found and scanned.
    open_settings_menu(&mut harness, "Precision");
    harness.get_by_label_contains("half (bf16, ").click();
    harness.step();
    step_until(&mut harness, "every photo is tagged", |app| all_finished(app, copied.len()) && !app.is_busy());
    assert_eq!(tagged(harness.state()), copied.len());
}

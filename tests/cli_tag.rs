//! `evatag tag` end to end: output format, labels, bad inputs, exit status.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::ffi::OsStr;

use common::*;

#[test]
fn tags_photos_with_timms_top_classes() {
    let dir = tempfile::tempdir().unwrap();
    let photos = copy_photos(dir.path());
    let run = run_evatag(&os(&tag_args("eva_tiny", &[dir.path()])), None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.lines.len(), photos.len());
    let expected = expected_outputs("eva_tiny");
    for photo in &photos {
        let line = run.line_for(photo);
        let labels = line["labels"].as_array().unwrap();
        assert_eq!(labels.len(), 5);
        let name = photo.file_name().unwrap().to_str().unwrap();
        let want = top_indices(&expected[&format!("{name}/logits")], 1)[0];
        assert_eq!(labels[0]["class"], want, "{name}");
        let label = labels[0]["label"].as_str().unwrap();
        assert_eq!(label, evatag::model::labels::class_name(want, 1000));
        let probs: Vec<f64> = labels.iter().map(|l| l["prob"].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
        assert!(line.get("embedding").is_none());
    }
}

#[test]
fn top_k_embedding_and_csv_options() {
    let photo = fixtures().join("photos/cat_landscape.jpg");
    let mut args = tag_args("eva_tiny", &[&photo]);
    args.extend(["--top-k", "3", "--embedding"].map(Into::into));
    let run = run_evatag(&os(&args), None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let line = run.line_for(&photo);
    assert_eq!(line["labels"].as_array().unwrap().len(), 3);
    let embedding: Vec<f32> =
        line["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let expected = expected_outputs("eva_tiny");
    assert!(cosine(&embedding, &expected["cat_landscape.jpg/embedding"]) > 0.999);

    let mut csv_args = tag_args("eva_tiny", &[&photo]);
    csv_args.extend(["--format", "csv", "--no-cache"].map(Into::into));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_evatag")).args(&csv_args).output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "path,rank,class,label,prob,error,path_bytes");
    assert_eq!(rows.len(), 6, "{text}");
    assert!(rows[1].contains(",1,"), "{text}");
}

#[cfg(unix)]
#[test]
fn bad_inputs_are_reported_and_the_rest_tagged() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let good = copy_photos(root);
    let cat = std::fs::read(fixtures().join("photos/cat_landscape.jpg")).unwrap();
    let bad: Vec<(&str, &str)> = vec![
        ("empty.jpg", "empty"),
        ("truncated.jpg", "decode"),
        ("notes.jpg", "not a supported image"),
        ("bomb.png", "megapixel limit"),
        ("x.jpg", "directory"),
        ("dangling.png", "symbolic link"),
        ("pipe.jpg", "not a regular file"),
        ("loop", "loop"),
    ];
    std::fs::write(root.join("empty.jpg"), b"").unwrap();
    std::fs::write(root.join("truncated.jpg"), &cat[..cat.len() / 3]).unwrap();
    std::fs::write(root.join("notes.jpg"), "these are not pixels\n").unwrap();
    std::fs::write(root.join("bomb.png"), png_bomb(60_000, 60_000)).unwrap();
    std::fs::create_dir(root.join("x.jpg")).unwrap();
    symlink(root.join("missing.png"), root.join("dangling.png")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(root.join("pipe.jpg")).status().unwrap().success());
    symlink(root, root.join("loop")).unwrap();

    let run = run_evatag(&os(&tag_args("eva_tiny", &[root])), None);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.lines.len(), good.len() + bad.len(), "{:#?}", run.lines);
    for photo in &good {
        assert!(run.line_for(photo)["labels"].is_array());
    }
    for (name, cause) in bad {
        let line = run.line_for(&root.join(name));
        let error = line["error"].as_str().unwrap_or_else(|| panic!("{name}: {line}"));
        assert!(error.contains(name), "{name}: error does not name the file: {error}");
        assert!(error.contains(cause), "{name}: {error}");
    }
    assert_eq!(run.summary(), (good.len() as u64, 0, 8));
}

#[test]
fn explicit_bad_files_give_error_lines_and_status_one() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.png");
    std::fs::write(&bomb, png_bomb(60_000, 60_000)).unwrap();
    let good = fixtures().join("photos/coffee_landscape.jpg");
    let missing = dir.path().join("nope.jpg");
    let run = run_evatag(&os(&tag_args("eva_tiny", &[&bomb, &good, &missing])), None);
    assert_eq!(run.code, Some(1));
    assert!(run.line_for(&bomb)["error"].as_str().unwrap().contains("60000x60000"));
    assert!(run.line_for(&missing)["error"].as_str().unwrap().contains("does not exist"));
    assert!(run.line_for(&good)["labels"].is_array());
}

#[test]
fn usage_errors_exit_with_two_and_say_why() {
    let usage_errors: [&[&str]; 8] = [
        &["tag"],
        &["tag", "--top-k", "0", "a.jpg"],
        &["similar", "-k", "0", "a.jpg"],
        &["export", "--csv", "out.csv", "--min-prob", "NaN", "a.jpg"],
        &["export", "--csv", "out.csv", "--min-prob", "5", "a.jpg"],
        &["tag", "--max-megapixels", "-1", "a.jpg"],
        &["tag", "--max-megapixels", "0", "a.jpg"],
        &["tag", "--max-file-mb", "0", "a.jpg"],
    ];
    for args in usage_errors {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_evatag")).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("error"), "{args:?}");
    }
}

#[test]
fn global_options_work_before_and_after_the_subcommand() {
    let photo = fixtures().join("photos/cat_landscape.jpg");
    let model = model_dir("eva_tiny");
    let before: Vec<&OsStr> = vec![
        "--model-dir".as_ref(),
        model.as_os_str(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "tag".as_ref(),
        photo.as_os_str(),
    ];
    let after: Vec<&OsStr> = vec![
        "tag".as_ref(),
        "--model-dir".as_ref(),
        model.as_os_str(),
        "--device".as_ref(),
        "cpu".as_ref(),
        photo.as_os_str(),
    ];
    for args in [before, after] {
        let run = run_evatag(&args, None);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        assert!(run.line_for(&photo)["labels"].is_array(), "{args:?}");
    }
}

#[test]
fn a_broken_model_folder_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(model_dir("eva_tiny").join("config.json"), dir.path().join("config.json")).unwrap();
    let weights = std::fs::read(model_dir("eva_tiny").join("model.safetensors")).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &weights[..weights.len() - 1000]).unwrap();
    let photo = fixtures().join("photos/cat_landscape.jpg");
    let mut args = vec!["tag".into(), "--model-dir".into(), dir.path().as_os_str().to_owned()];
    args.push(photo.into());
    let run = run_evatag(&os(&args), None);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);
    assert!(run.stderr.contains("model.safetensors"), "{}", run.stderr);
}

#[test]
fn bf16_on_the_cpu_tags_alike_and_never_takes_f32_results_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let photo = fixtures().join("photos/coffee_landscape.jpg");
    let run = |dtype: &str| {
        let mut args = tag_args("eva_tiny", &[&photo]);
        args.extend(["--embedding", "--dtype", dtype].map(Into::into));
        let run = run_evatag(&os(&args), Some(cache.path()));
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(!run.stderr.contains("warning"), "{}", run.stderr);
        let line = run.line_for(&photo);
        let embedding: Vec<f32> =
            line["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        (embedding, line["labels"][0]["class"].as_u64().unwrap())
    };
    let (full, full_top) = run("f32");
    let (half, half_top) = run("bf16");
    assert_ne!(full, half, "bf16 was served the cached f32 result");
    assert!(cosine(&full, &half) >= 0.999, "cosine {}", cosine(&full, &half));
    assert_eq!(full_top, half_top);
    assert_eq!(run("f32").0, full, "f32 results are still cached as they were");
}

/// `--device cuda` in a build without CUDA says so in one line, with how to get CUDA, even with
/// backtraces asked for, and tags on the CPU.
#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_in_a_cpu_build_falls_back_with_one_line() {
    let warning = cuda_fallback_line(&[]);
    assert!(warning.contains("evatag-cuda"), "{warning}");
}

//! `evatag bench` end to end on the tiny fixture model: the figures it reports agree with one
//! another, and `--scaling` adds the one-thread comparison.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use common::*;

/// Runs `evatag bench` on the tiny model on the CPU with `extra` arguments and returns its
/// report and its stderr.
fn bench(extra: &[&str]) -> (serde_json::Value, String) {
    let dir = model_dir("eva_tiny");
    let mut args = vec!["bench".as_ref(), "--device".as_ref(), "cpu".as_ref(), "--model-dir".as_ref(), dir.as_os_str()];
    args.extend(["--iters", "3"].map(std::ffi::OsStr::new));
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let run = run_evatag(&args, None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.lines.len(), 1, "{}", run.stderr);
    (run.lines[0].clone(), run.stderr)
}

fn number(report: &serde_json::Value, field: &str) -> f64 {
    report[field].as_f64().unwrap_or_else(|| panic!("{field} is not a number: {report}"))
}

#[test]
fn the_report_s_figures_agree_with_one_another() {
    let (report, stderr) = bench(&[]);
    assert_eq!(report["impl"], "evatag");
    assert_eq!(report["iters"], 3);
    assert!(report["thread_scaling"].is_null(), "{report}");
    assert!(!stderr.contains("on one thread"), "{stderr}");
    let seconds = number(&report, "seconds_per_image");
    let gflops = number(&report, "gflops");
    assert!(seconds > 0.0);
    assert!((gflops * seconds / number(&report, "gflop_per_image") - 1.0).abs() < 1e-9, "{report}");
    assert!((number(&report, "efficiency") * number(&report, "peak_gflops") / gflops - 1.0).abs() < 1e-9);
    let shares = &report["time_share"];
    let parts = ["matrix_products", "attention", "rest"].map(|part| number(shares, part));
    assert!(parts.iter().all(|share| (0.0..=1.0).contains(share)), "{shares}");
    assert!((parts.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{shares}");
    // The matrix products' figures come from the same pass as the seconds per image: their
    // arithmetic fits inside the model's.
    let product_gflop = number(&report, "matrix_product_gflops") * parts[0] * seconds;
    assert!(product_gflop > 0.0 && product_gflop <= number(&report, "gflop_per_image") * (1.0 + 1e-9), "{report}");
}

#[test]
fn scaling_alternates_one_thread_with_all_and_reports_the_ratio() {
    let (report, stderr) = bench(&["--scaling"]);
    let scaling = number(&report, "thread_scaling");
    assert!(scaling.is_finite() && scaling > 0.0, "{report}");
    let lines: Vec<&str> = stderr.lines().filter(|line| line.contains("iteration")).collect();
    assert_eq!(lines.len(), 6, "{stderr}");
    for (pair, i) in lines.chunks(2).zip(1..) {
        assert!(pair[0].starts_with(&format!("evatag: iteration {i}: ")), "{stderr}");
        assert!(pair[1].starts_with(&format!("evatag: iteration {i} on one thread: ")), "{stderr}");
    }
    let threads = report["threads"].as_u64().unwrap();
    assert!(stderr.contains(&format!("{threads} threads are {scaling:.2}x as fast as one")), "{stderr}");
}

//! Small files that ask for a lot: strips with extreme aspect ratios, whose full-size resize
//! would need gigabytes, and a huge sparse file named like a photo. Each gets its own result,
//! the run goes on, and memory stays that of an ordinary photo.
//!
//! This file holds one test, so every child process measured here is this test's own.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::ffi::OsStr;

use common::*;

/// A PNG of `width` x `height` pixels in slow gradients, compressed to a few kilobytes.
fn strip_png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x / 400) as u8, (y / 400) as u8, 90]));
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    png
}

/// The largest resident set of any finished child process, in bytes.
#[cfg(unix)]
fn peak_child_resident_bytes() -> u64 {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_CHILDREN covers waited-for children.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage), 0);
        usage
    };
    // Linux reports kibibytes.
    usage.ru_maxrss as u64 * 1024
}

#[cfg(unix)]
#[test]
fn extreme_strips_are_tagged_and_huge_files_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let wide = root.join("wide.png");
    let tall = root.join("tall.png");
    let medium = root.join("medium.png");
    std::fs::write(&wide, strip_png(100_000, 1)).unwrap();
    std::fs::write(&tall, strip_png(1, 100_000)).unwrap();
    std::fs::write(&medium, strip_png(20_000, 1)).unwrap();
    assert!(std::fs::metadata(&wide).unwrap().len() < 4_000, "the strip is a small file");
    // 6 GB that take no disk space: refused by its size before a byte is read.
    let sparse = root.join("x.jpg");
    std::fs::File::create(&sparse).unwrap().set_len(6_000_000_000).unwrap();
    let good = copy_photos(root);

    let run = run_evatag(&tag_args("eva_tiny", &[root]).iter().map(OsStr::new).collect::<Vec<_>>(), None);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for photo in good.iter().chain([&wide, &tall, &medium]) {
        assert!(run.line_for(photo)["labels"].is_array(), "{}: {}", photo.display(), run.line_for(photo));
    }
    let error = run.line_for(&sparse)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("x.jpg") && error.contains("6000 MB") && error.contains("--max-file-mb"), "{error}");
    assert_eq!(run.summary(), (good.len() as u64 + 3, 0, 1));

    // Resized whole, the 100000x1 strip alone would take 18 GB; the tiny model and a 224x224
    // crop need a small fraction of 1 GB.
    let peak = peak_child_resident_bytes();
    assert!(peak < 1 << 30, "evatag's peak resident memory was {} MB", peak >> 20);
}

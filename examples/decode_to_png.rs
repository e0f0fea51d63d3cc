//! Decodes photo files the way evatag does and writes the upright 8-bit RGB pictures as PNG,
//! to compare them with other decoders (see `tests/fixtures/real/compare_real_files.py`).
//!
//! ```sh
//! cargo run --example decode_to_png -- OUT_DIR FILES...
//! ```
//!
//! Each FILE goes through `evatag::preprocess::decode_rgb8(&bytes, path, 200)` (HEIC, HEIF and
//! AVIF through the system's libheif, camera RAW through flashraw, the rest through the `image`
//! crate) and is written to `OUT_DIR/<file name>.png`. One line is printed per file: its size
//! and the decoding time, or the error. The exit status is 0 even when some files fail, so a
//! whole folder is always gone through; it is 2 for a wrong command line.

use std::path::{Path, PathBuf};
use std::time::Instant;

/// The pixel ceiling passed to the decoder, as in the app's default.
const MAX_MEGAPIXELS: u64 = 200;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(out_dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: decode_to_png OUT_DIR FILES...");
        std::process::exit(2);
    };
    let files: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if files.is_empty() {
        eprintln!("usage: decode_to_png OUT_DIR FILES...");
        std::process::exit(2);
    }
    if let Err(error) = std::fs::create_dir_all(&out_dir) {
        eprintln!("{}: {error}", out_dir.display());
        std::process::exit(2);
    }
    for file in &files {
        match decode_one(file, &out_dir) {
            Ok(line) => println!("{}: {line}", file.display()),
            Err(error) => println!("{}: error: {error}", file.display()),
        }
    }
}

/// Decodes `file` and writes its PNG into `out_dir`; says the picture's size and how long the
/// decoding took.
fn decode_one(file: &Path, out_dir: &Path) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    let started = Instant::now();
    let image = evatag::preprocess::decode_rgb8(&bytes, file, MAX_MEGAPIXELS).map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let name = file.file_name().ok_or("no file name")?.to_string_lossy();
    let out = out_dir.join(format!("{name}.png"));
    image.save(&out).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(format!("{}x{} ({} ms)", image.width(), image.height(), elapsed.as_millis()))
}

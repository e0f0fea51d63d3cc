//! Byte-mutated photos and sidecars, from a fixed seed: decoding, preprocessing and the XMP
//! merge must answer every one with a result or an error, never a panic or an abort, and
//! memory must stay bounded. Longer, coverage-guided runs of the same entry points are the
//! `cargo fuzz` targets in `fuzz/`.
//!
//! This file holds one test, so the process's peak memory is this test's own.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fixture_preprocessor;
use evatag::library::export::xmp;
use evatag::library::photo_info::PhotoInfo;
use evatag::preprocess;

/// Mutated files per seed file.
const MUTANTS_PER_SEED: usize = 400;
/// The pixel limit the mutants are decoded under: a header that claims more is refused.
const MAX_MEGAPIXELS: u64 = 16;
/// Peak resident memory allowed for the whole test.
const MAX_PEAK_BYTES: u64 = 1 << 30;

/// xorshift64*: a small, deterministic source of mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to eight edits of the kinds that break parsers: bit flips, boundary bytes, truncation,
/// duplicated and deleted runs.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(6) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = [0x00, 0xff, 0x7f, 0x80, 0x01][rng.below(5)],
            2 => bytes.truncate(at),
            3 => {
                let len = rng.below(64).min(bytes.len() - at);
                let run: Vec<u8> = bytes[at..at + len].to_vec();
                let to = rng.below(bytes.len());
                bytes.splice(to..to, run);
            }
            4 => {
                let len = rng.below(64).min(bytes.len() - at);
                bytes.drain(at..at + len);
            }
            _ => {
                // A 32-bit field (a width, a length, an offset) set to an extreme.
                let value: u32 = [0, 1, 0xffff, 0x7fff_ffff, 0xffff_ffff][rng.below(5)];
                let end = (at + 4).min(bytes.len());
                bytes[at..end].copy_from_slice(&value.to_be_bytes()[..end - at]);
            }
        }
    }
    bytes
}

fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn mutated_photos_and_sidecars_never_panic_and_stay_bounded() {
    let started = Instant::now();
    let seeds = [
        "formats/rotated_exif6.jpg",
        "formats/cmyk.jpg",
        "formats/rgb.png",
        "formats/palette.png",
        "formats/lossless.webp",
        "formats/rgb.tiff",
        "formats/animated.gif",
        "formats/rgb.bmp",
        "camera/cat_exif6.heic",
        "camera/astronaut.avif",
        "camera/preview.dng",
        "camera/developed.dng",
    ];
    let preprocessor = fixture_preprocessor();
    let mut rng = Rng(0x5eed_e7a7_a600_0001);
    let (mut decoded, mut refused) = (0usize, 0usize);
    for name in seeds {
        let seed = std::fs::read(common::fixtures().join(name)).unwrap();
        for i in 0..MUTANTS_PER_SEED {
            let mutant = mutate(&seed, &mut rng);
            let path = Path::new(name);
            let outcome = std::panic::catch_unwind(|| {
                // The date and camera are read from every photo too.
                let _info = PhotoInfo::from_bytes(&mutant);
                preprocess::decode_rgb8(&mutant, path, MAX_MEGAPIXELS).map(|image| preprocessor.run(&image))
            });
            match outcome {
                Ok(Ok(input)) => {
                    assert_eq!(input.len(), preprocessor.tensor_len());
                    decoded += 1;
                }
                Ok(Err(error)) => {
                    assert!(error.to_string().contains(name), "{error}");
                    refused += 1;
                }
                Err(_) => {
                    let file_name = Path::new(name).file_name().unwrap().to_string_lossy();
                    let kept = std::env::temp_dir().join(format!("evatag-mutant-{i}-{file_name}"));
                    std::fs::write(&kept, &mutant).unwrap();
                    panic!("{name}, mutant {i}: the decoder panicked; the file is kept at {}", kept.display());
                }
            }
        }
    }
    assert!(decoded > 0 && refused > 0, "{decoded} decoded, {refused} refused");

    let sidecar = std::fs::read(common::fixtures().join("digikam.xmp")).unwrap();
    let keywords = vec!["tabby".to_owned(), "potter's wheel".to_owned()];
    let (mut merged, mut rejected) = (0usize, 0usize);
    for i in 0..MUTANTS_PER_SEED * 4 {
        let mutant = mutate(&sidecar, &mut rng);
        match std::panic::catch_unwind(|| xmp::sidecar_contents(Some(&mutant), &keywords)) {
            Ok(Ok(out)) => {
                // Whatever is merged must itself merge again to the same bytes.
                let again = xmp::sidecar_contents(Some(&out), &keywords);
                assert!(
                    again.as_deref() == Ok(&out[..]),
                    "mutant {i} merges to a sidecar that does not merge to itself ({:?}):\n{}\n---- merged:\n{}",
                    again.as_ref().err(),
                    String::from_utf8_lossy(&mutant),
                    String::from_utf8_lossy(&out)
                );
                merged += 1;
            }
            Ok(Err(_)) => rejected += 1,
            Err(_) => panic!("sidecar mutant {i}: the XMP merge panicked on {:?}", String::from_utf8_lossy(&mutant)),
        }
    }
    assert!(merged > 0 && rejected > 0, "{merged} merged, {rejected} rejected");

    if let Some(peak) = peak_resident_bytes() {
        assert!(peak < MAX_PEAK_BYTES, "peak resident memory {peak} bytes");
    }
    assert!(started.elapsed() < Duration::from_secs(120), "took {:?}", started.elapsed());
}

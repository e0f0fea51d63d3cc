//! Any bytes as an existing sidecar: merged or refused, never a crash; a merge is stable.
#![no_main]

use evatag::library::export::xmp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let keywords = ["tabby".to_owned(), "potter's wheel".to_owned()];
    if let Ok(merged) = xmp::sidecar_contents(Some(bytes), &keywords) {
        assert_eq!(xmp::sidecar_contents(Some(&merged), &keywords).as_deref(), Ok(&merged[..]));
    }
});

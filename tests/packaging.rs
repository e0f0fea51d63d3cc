//! Consistency checks for the packaging metadata: versions match Cargo.toml, the Linux desktop entry
//! matches the app id the window sets, and every icon PNG is the size its name says.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

use std::fs;
use std::path::{Path, PathBuf};

use evatag::gui::APP_ID;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const IMAGE_MIME_TYPES: [&str; 12] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/tiff",
    "image/bmp",
    "image/gif",
    "image/heic",
    "image/avif",
    "image/x-adobe-dng",
    "image/x-canon-cr3",
    "image/x-nikon-nef",
    "image/x-sony-arw",
];
const ICON_SIZES: [u32; 8] = [16, 24, 32, 48, 64, 128, 256, 512];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The `<string>` value that follows `<key>KEY</key>` in an XML property list.
fn plist_string(plist: &str, key: &str) -> Option<String> {
    let after_key = &plist[plist.find(&format!("<key>{key}</key>"))?..];
    let start = after_key.find("<string>")? + "<string>".len();
    // The value must be the next element, not the string of some later key.
    if after_key[..start].matches("<key>").count() != 1 {
        return None;
    }
    let end = start + after_key[start..].find("</string>")?;
    Some(after_key[start..end].trim().to_owned())
}

/// The value of `name="..."` inside one XML start tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = start + tag[start..].find('"')?;
    Some(tag[start..end].to_owned())
}

/// `(version, date)` of every `<release>` in an AppStream file, in file order.
fn appstream_releases(xml: &str) -> Vec<(String, String)> {
    xml.match_indices("<release ")
        .map(|(at, _)| {
            let tag = &xml[at..at + xml[at..].find('>').expect("unterminated <release> tag")];
            let version = attribute(tag, "version").expect("<release> without version");
            let date = attribute(tag, "date").expect("<release> without date");
            (version, date)
        })
        .collect()
}

/// The key/value pairs of the `[Desktop Entry]` group of a .desktop file.
fn desktop_entry(text: &str) -> Vec<(String, String)> {
    let mut in_group = false;
    let mut entries = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_group = line == "[Desktop Entry]";
        } else if in_group
            && !line.starts_with('#')
            && let Some((key, value)) = line.split_once('=')
        {
            entries.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    entries
}

fn desktop_value<'a>(entries: &'a [(String, String)], key: &str) -> &'a str {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the desktop entry has no {key}= line"))
}

/// Width and height from a PNG's IHDR chunk, which the format requires to come first.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(bytes.len() >= 24, "{} is too short to be a PNG", path.display());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    assert_eq!(&bytes[12..16], b"IHDR", "{} does not start with an IHDR chunk", path.display());
    let be = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (be(16), be(20))
}

#[test]
fn macos_info_plist_version_matches_cargo() {
    let plist = read("packaging/macos/Info.plist");
    for key in ["CFBundleShortVersionString", "CFBundleVersion"] {
        let value = plist_string(&plist, key).unwrap_or_else(|| panic!("Info.plist has no {key} string"));
        assert_eq!(value, VERSION, "Info.plist {key} differs from Cargo.toml's version");
    }
    assert_eq!(plist_string(&plist, "CFBundleIdentifier").as_deref(), Some(APP_ID), "wrong CFBundleIdentifier");
}

#[test]
fn newest_appstream_release_matches_cargo() {
    let xml = read(&format!("packaging/linux/{APP_ID}.metainfo.xml"));
    let releases = appstream_releases(&xml);
    assert!(!releases.is_empty(), "the metainfo lists no <release>");
    // AppStream lists releases newest first; check both that and the version.
    let newest = releases.iter().max_by(|a, b| a.1.cmp(&b.1)).unwrap();
    assert_eq!(&releases[0], newest, "the first <release> must be the newest (latest date)");
    assert_eq!(newest.0, VERSION, "the newest metainfo release differs from Cargo.toml's version");
    assert!(xml.contains(&format!("<id>{APP_ID}</id>")), "the metainfo <id> is not {APP_ID}");
    assert!(
        xml.contains(&format!("<launchable type=\"desktop-id\">{APP_ID}.desktop</launchable>")),
        "the metainfo launchable is not {APP_ID}.desktop"
    );
}

#[test]
fn packager_config_version_matches_cargo() {
    let config = read("packaging/Packager.toml");
    let line = config
        .lines()
        .find(|line| line.trim_start().starts_with("version") && line.contains('='))
        .expect("Packager.toml has no version line");
    let value = line.split_once('=').unwrap().1.trim().trim_matches('"');
    assert_eq!(value, VERSION, "Packager.toml version differs from Cargo.toml's version");
}

#[test]
fn desktop_entry_matches_app_id() {
    let dir = root().join("packaging/linux");
    let desktop_files: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".desktop"))
        .collect();
    assert_eq!(desktop_files, [format!("{APP_ID}.desktop")], "the desktop file must be named after the app id");

    let entries = desktop_entry(&read(&format!("packaging/linux/{APP_ID}.desktop")));
    let exec = desktop_value(&entries, "Exec");
    assert!(exec.split_whitespace().any(|arg| arg == "%F"), "Exec= must pass the files with %F: {exec}");
    assert_eq!(desktop_value(&entries, "StartupWMClass"), APP_ID, "StartupWMClass= must be the app id");
    assert_eq!(desktop_value(&entries, "Icon"), APP_ID, "Icon= must be the app id");

    let mime_types: Vec<&str> = desktop_value(&entries, "MimeType").split(';').filter(|m| !m.is_empty()).collect();
    for wanted in IMAGE_MIME_TYPES {
        assert!(mime_types.contains(&wanted), "MimeType= lacks {wanted}: {mime_types:?}");
    }
}

#[test]
fn icon_pngs_have_the_size_in_their_name() {
    let dir = root().join("assets/icons");
    let mut seen = Vec::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("png") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let named: u32 = stem
            .strip_prefix("evatag-")
            .and_then(|size| size.parse().ok())
            .unwrap_or_else(|| panic!("{} is not named evatag-<size>.png", path.display()));
        assert_eq!(png_size(&path), (named, named), "{} is not {named}x{named}", path.display());
        seen.push(named);
    }
    seen.sort_unstable();
    assert_eq!(seen, ICON_SIZES, "assets/icons must hold exactly these PNG sizes");
}

//! When a photo was taken and with which camera, from its EXIF data (or, for camera RAW
//! layouts that are not TIFF, from flashraw's reading of them).

use std::io::{Cursor, Read};
use std::path::Path;

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, TimeZone};
use exif::{In, Tag, Value};

/// How much of a file is read to find its EXIF data when only the metadata is needed: JPEG
/// keeps it in the first segment, which is at most 64 KiB; TIFF-based files point to it
/// from their header.
const HEAD_BYTES: u64 = 256 * 1024;

/// What a photo's EXIF data says about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PhotoInfo {
    /// When it was taken, in seconds since the Unix epoch: `DateTimeOriginal` (or
    /// `DateTimeDigitized`), at its `OffsetTimeOriginal` when the camera wrote one, else in
    /// this computer's time zone as it was on that day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken: Option<i64>,
    /// The offset from UTC, in seconds, of the clock that took it (the camera's, or this
    /// computer's time zone on that day when the camera wrote none), so that the date is shown
    /// as that clock read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_offset: Option<i32>,
    /// The camera: its make and model, e.g. `Canon EOS R5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
}

impl PhotoInfo {
    /// Reads the EXIF data in a whole file's bytes; a file without any gives empty info.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        match exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) {
            Ok(exif) => Self::from_exif(&exif),
            Err(_) => Self::from_raw_metadata(bytes).unwrap_or_default(),
        }
    }

    /// What flashraw reads of a camera RAW file whose container is not one the EXIF reader
    /// knows (CR3, RAF, ORF, RW2 and other non-TIFF layouts).
    fn from_raw_metadata(bytes: &[u8]) -> Option<Self> {
        flashraw::supports(bytes)?;
        let metadata = flashraw::read_metadata(bytes).ok()?;
        let non_empty = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
        let camera = camera_name(non_empty(&metadata.make), non_empty(&metadata.model));
        // `YYYY-MM-DDTHH:MM:SS[.sss][±HH:MM]`: the EXIF layout, with the offset apart.
        let taken = metadata.capture_time.as_deref().and_then(|time| {
            let (date, rest) = (time.get(..19)?, &time[19..]);
            let offset = rest.find(['+', '-']).map(|at| &rest[at..]);
            parse_taken(&date.replacen('-', ":", 2).replacen('T', " ", 1), offset)
        });
        let taken_offset = taken.map(|t| t.offset().local_minus_utc());
        Some(Self { taken: taken.map(|t| t.timestamp()), taken_offset, camera })
    }

    /// Reads the EXIF data at the start of a file, without reading the rest.
    pub fn from_file_head(path: &Path) -> std::io::Result<Self> {
        let mut head = Vec::new();
        std::fs::File::open(path)?.take(HEAD_BYTES).read_to_end(&mut head)?;
        Ok(Self::from_bytes(&head))
    }

    fn from_exif(exif: &exif::Exif) -> Self {
        let text = |tag: Tag| -> Option<String> {
            let field = exif.get_field(tag, In::PRIMARY)?;
            match &field.value {
                Value::Ascii(parts) => {
                    let joined: Vec<u8> = parts.iter().flatten().copied().collect();
                    let text = String::from_utf8_lossy(&joined)
                        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                        .to_owned();
                    (!text.is_empty()).then_some(text)
                }
                _ => None,
            }
        };
        let taken =
            [(Tag::DateTimeOriginal, Tag::OffsetTimeOriginal), (Tag::DateTimeDigitized, Tag::OffsetTimeDigitized)]
                .into_iter()
                .find_map(|(time, offset)| parse_taken(&text(time)?, text(offset).as_deref()));
        let taken_offset = taken.map(|t| t.offset().local_minus_utc());
        let taken = taken.map(|t| t.timestamp());
        let camera = camera_name(text(Tag::Make), text(Tag::Model));
        Self { taken, taken_offset, camera }
    }
}

/// A camera's name from its make and model, e.g. `Canon EOS R5`.
fn camera_name(make: Option<String>, model: Option<String>) -> Option<String> {
    match (make, model) {
        // Most models repeat the make ("Canon" + "Canon EOS R5").
        (Some(make), Some(model)) if model.to_lowercase().starts_with(&make.to_lowercase()) => Some(model),
        (Some(make), Some(model)) => Some(format!("{make} {model}")),
        (make, model) => make.or(model),
    }
}

/// An EXIF date (`2024:05:01 14:03:27`) at its offset (`+02:00`), or without one at this
/// computer's offset on that day. A time that the change to summer time skips is read at the
/// offset an hour later.
fn parse_taken(date: &str, offset: Option<&str>) -> Option<DateTime<FixedOffset>> {
    let naive = NaiveDateTime::parse_from_str(date.trim(), "%Y:%m:%d %H:%M:%S").ok()?;
    let offset = match offset
        .and_then(|o| DateTime::parse_from_str(&format!("2000-01-01 00:00:00 {o}"), "%Y-%m-%d %H:%M:%S %:z").ok())
    {
        Some(with_offset) => *with_offset.offset(),
        None => {
            let local = Local.from_local_datetime(&naive).earliest();
            let after_a_skip = || Local.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest();
            *local.or_else(after_a_skip)?.offset()
        }
    };
    offset.from_local_datetime(&naive).single()
}

/// When a photo was taken in RFC 3339, at the offset of the clock that took it, e.g.
/// `2024-05-01T14:03:27+02:00`.
pub fn taken_rfc3339(info: &PhotoInfo) -> Option<String> {
    let offset = FixedOffset::east_opt(info.taken_offset.unwrap_or(0))?;
    Some(offset.timestamp_opt(info.taken?, 0).single()?.to_rfc3339())
}

/// When a photo was taken, as the clock that took it read it, e.g. `2024-05-01 14:03`.
pub fn taken_text(info: &PhotoInfo) -> Option<String> {
    let offset = FixedOffset::east_opt(info.taken_offset.unwrap_or(0))?;
    let at = offset.timestamp_opt(info.taken?, 0).single()?;
    Some(at.format("%Y-%m-%d %H:%M").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_with_an_offset_are_exact() {
        // 14:03:27 at UTC+02:00 is 12:03:27 UTC.
        let at = parse_taken("2024:05:01 14:03:27", Some("+02:00")).unwrap();
        assert_eq!(at.timestamp(), DateTime::parse_from_rfc3339("2024-05-01T12:03:27Z").unwrap().timestamp());
        let west = parse_taken("2024:05:01 14:03:27", Some("-05:30")).unwrap();
        assert_eq!(west.timestamp() - at.timestamp(), 7 * 3600 + 1800);
        // Shown as the camera's clock read it, wherever it is shown.
        let info = PhotoInfo { taken: Some(west.timestamp()), taken_offset: Some(-5 * 3600 - 1800), camera: None };
        assert_eq!(taken_text(&info).as_deref(), Some("2024-05-01 14:03"));
        assert_eq!(taken_rfc3339(&info).as_deref(), Some("2024-05-01T14:03:27-05:30"));
        assert_eq!(taken_rfc3339(&PhotoInfo::default()), None);
    }

    #[test]
    fn dates_without_an_offset_are_local_time() {
        let at = parse_taken("2019:12:24 18:00:00", None).unwrap();
        assert_eq!(
            at.offset().local_minus_utc(),
            Local.timestamp_opt(at.timestamp(), 0).unwrap().offset().local_minus_utc()
        );
        assert_eq!(at.format("%Y-%m-%d %H:%M:%S").to_string(), "2019-12-24 18:00:00");
    }

    #[test]
    fn blank_or_broken_dates_are_none() {
        assert_eq!(parse_taken("0000:00:00 00:00:00", None), None);
        assert_eq!(parse_taken("    :  :     :  :  ", None), None);
        assert_eq!(parse_taken("yesterday", None), None);
    }

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exif").join(name)
    }

    #[test]
    fn the_camera_and_date_are_read_from_a_jpeg() {
        let info = PhotoInfo::from_bytes(&std::fs::read(fixture("dated_offset.jpg")).unwrap());
        assert_eq!(info.camera.as_deref(), Some("Canon EOS R5"), "the make is not repeated");
        let expected = DateTime::parse_from_rfc3339("2021-07-14T09:30:00+02:00").unwrap().timestamp();
        assert_eq!(info.taken, Some(expected));
        assert_eq!(info.taken_offset, Some(2 * 3600));
        assert_eq!(taken_text(&info).as_deref(), Some("2021-07-14 09:30"));
        let head = PhotoInfo::from_file_head(&fixture("dated_offset.jpg")).unwrap();
        assert_eq!(head, info, "the file's head holds the same");
        let local = PhotoInfo::from_file_head(&fixture("dated_local.jpg")).unwrap();
        assert_eq!(local.camera.as_deref(), Some("NIKON CORPORATION NIKON Z 6"));
        assert_eq!(taken_text(&local).as_deref(), Some("2019-12-24 18:00"), "as the camera's clock read it");
    }

    #[test]
    fn flashraw_reads_the_date_and_camera_as_the_exif_reader_does() {
        // The path CR3, RAF, ORF and RW2 take, tried on DNG files, which both read.
        let camera = |name: &str| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/camera").join(name);
        let dated = PhotoInfo::from_raw_metadata(&std::fs::read(camera("preview.dng")).unwrap()).unwrap();
        assert_eq!(dated, PhotoInfo::from_bytes(&std::fs::read(camera("preview.dng")).unwrap()), "as from EXIF");
        assert_eq!(dated.camera.as_deref(), Some("Evatag Test DNG One"));
        assert_eq!(taken_rfc3339(&dated).as_deref(), Some("2021-07-14T09:30:00+02:00"));
        let undated = PhotoInfo::from_raw_metadata(&std::fs::read(camera("developed.dng")).unwrap()).unwrap();
        assert_eq!((undated.taken, undated.camera.as_deref()), (None, Some("Evatag Test DNG Two")));
        assert_eq!(PhotoInfo::from_raw_metadata(b"II*\0not a camera file"), None);
    }

    #[test]
    fn a_file_without_exif_has_no_info() {
        assert_eq!(PhotoInfo::from_bytes(b"\x89PNG\r\n\x1a\n"), PhotoInfo::default());
        assert_eq!(PhotoInfo::from_bytes(&[]), PhotoInfo::default());
    }
}

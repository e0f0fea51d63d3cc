//! Results as rows: the JSON lines or CSV that `evatag tag` streams, and the CSV and JSON files
//! an export writes.
//!
//! A path is written as text. Where it is not valid Unicode (possible on Unix, whose names are
//! bytes, and on Windows, whose names may hold unpaired surrogates), the text is lossy, so a
//! `path_bytes` field beside it holds the path's exact bytes in hexadecimal (on Windows, its
//! WTF-8 bytes): every row can be mapped back to its file, and two such names never collide.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{ExportError, PhotoTags, io_error, ranked};
use crate::library::atomic_file::replace_file;
use crate::library::photo_info::taken_rfc3339;
use crate::model::labels::Label;

/// The printable form of a path and, when that form is lossy, its exact bytes in hexadecimal.
pub fn path_fields(path: &Path) -> (Cow<'_, str>, Option<String>) {
    match path.to_str() {
        Some(text) => (Cow::Borrowed(text), None),
        None => {
            let mut hex = String::new();
            for byte in path.as_os_str().as_encoded_bytes() {
                let _ = write!(hex, "{byte:02x}");
            }
            (path.to_string_lossy(), Some(hex))
        }
    }
}

/// The path that [`path_fields`] wrote: its bytes where they were given, else its text.
/// `None` when the bytes are not hexadecimal.
pub fn path_from_fields(text: &str, hex: Option<&str>) -> Option<PathBuf> {
    let Some(hex) = hex else { return Some(PathBuf::from(text)) };
    let digits = hex.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let bytes = digits
        .chunks_exact(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(crate::library::cache::path_from_bytes(bytes))
}

/// One photo as a JSON object. Floats are written as the f32 values they are.
#[derive(serde::Serialize)]
struct JsonPhoto<'a> {
    path: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<Vec<&'a Label>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    taken: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    camera: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl<'a> JsonPhoto<'a> {
    fn new(path: &'a Path) -> Self {
        let (path, path_bytes) = path_fields(path);
        Self { path, path_bytes, labels: None, taken: None, camera: None, embedding: None, error: None }
    }
}

/// What one photo came to, as `evatag tag` reports it.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// Its labels, best first, and its embedding if asked for.
    Tagged {
        /// The labels.
        labels: &'a [Label],
        /// The embedding, when it is to be printed.
        embedding: Option<&'a [f32]>,
    },
    /// Why it could not be tagged.
    Failed(&'a str),
}

/// How `evatag tag` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header: path, rank, class, label, prob, error, path_bytes.
    Csv,
}

/// Streams results one photo at a time, flushing after each, so that a reader sees every
/// result as soon as it exists.
pub enum ResultStream<W: Write> {
    /// JSON lines.
    Jsonl(W),
    /// CSV rows.
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> ResultStream<W> {
    /// A stream in `format` (writing the CSV header at once).
    pub fn new(out: W, format: StreamFormat) -> io::Result<Self> {
        Ok(match format {
            StreamFormat::Jsonl => Self::Jsonl(out),
            StreamFormat::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                writer.write_record(["path", "rank", "class", "label", "prob", "error", "path_bytes"])?;
                writer.flush()?;
                Self::Csv(Box::new(writer))
            }
        })
    }

    /// Writes one photo's result.
    pub fn write(&mut self, path: &Path, outcome: Outcome<'_>) -> io::Result<()> {
        match self {
            Self::Jsonl(out) => {
                let mut photo = JsonPhoto::new(path);
                match outcome {
                    Outcome::Tagged { labels, embedding } => {
                        photo.labels = Some(labels.iter().collect());
                        photo.embedding = embedding;
                    }
                    Outcome::Failed(error) => photo.error = Some(error),
                }
                serde_json::to_writer(&mut *out, &photo)?;
                out.write_all(b"\n")?;
                out.flush()
            }
            Self::Csv(writer) => {
                let (text, bytes) = path_fields(path);
                let bytes = bytes.unwrap_or_default();
                match outcome {
                    Outcome::Tagged { labels, .. } => {
                        for (rank, l) in labels.iter().enumerate() {
                            let (rank, class, prob) =
                                ((rank + 1).to_string(), l.class.to_string(), format!("{:.6}", l.prob));
                            writer.write_record([&*text, &rank, &class, &l.label, &prob, "", &bytes])?;
                        }
                    }
                    Outcome::Failed(error) => writer.write_record([&*text, "", "", "", "", error, &bytes])?,
                }
                writer.flush()
            }
        }
    }

    /// Flushes what is left.
    pub fn finish(self) -> io::Result<()> {
        match self {
            Self::Jsonl(mut out) => out.flush(),
            Self::Csv(mut writer) => writer.flush(),
        }
    }
}

/// CSV with header path,rank,class,label,prob,path_bytes,taken,camera: one row per label at or
/// above `min_prob`. Rows follow `photos`; each photo's labels are ranked best first from 1.
/// `taken` is RFC 3339 at the camera's offset; it and `camera` are empty when unknown.
pub fn write_csv(path: &Path, photos: &[PhotoTags<'_>], min_prob: f32) -> Result<(), ExportError> {
    let csv_error = |source| ExportError::Csv { path: path.to_owned(), source };
    replace_file(
        path,
        |out| {
            let mut csv = csv::WriterBuilder::new().has_headers(false).from_writer(out);
            csv.write_record(["path", "rank", "class", "label", "prob", "path_bytes", "taken", "camera"])
                .map_err(csv_error)?;
            for photo in photos {
                let (text, bytes) = path_fields(photo.path);
                let taken = photo.info.and_then(taken_rfc3339).unwrap_or_default();
                let camera = photo.info.and_then(|info| info.camera.as_deref()).unwrap_or("");
                for (rank, label) in ranked(photo.labels, min_prob).into_iter().enumerate() {
                    let path_bytes = bytes.as_deref().unwrap_or("");
                    let row = (&*text, rank + 1, label.class, &label.label, label.prob, path_bytes, &taken, camera);
                    csv.serialize(row).map_err(csv_error)?;
                }
            }
            csv.flush().map_err(io_error(path))
        },
        io_error(path),
    )
}

/// JSON array of `{"path", "labels": [{class, label, prob}...], "taken", "camera"}` (plus
/// `path_bytes` where the path is not UTF-8), with each photo's labels at or above `min_prob`,
/// best first; `taken` (RFC 3339 at the camera's offset) and `camera` only when known.
pub fn write_json(path: &Path, photos: &[PhotoTags<'_>], min_prob: f32) -> Result<(), ExportError> {
    let entries: Vec<JsonPhoto<'_>> = photos
        .iter()
        .map(|photo| JsonPhoto {
            labels: Some(ranked(photo.labels, min_prob)),
            taken: photo.info.and_then(taken_rfc3339),
            camera: photo.info.and_then(|info| info.camera.as_deref()),
            ..JsonPhoto::new(photo.path)
        })
        .collect();
    replace_file(
        path,
        |out| {
            serde_json::to_writer_pretty(&mut *out, &entries)
                .map_err(|source| ExportError::Json { path: path.to_owned(), source })?;
            out.write_all(b"\n").map_err(io_error(path))
        },
        io_error(path),
    )
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn label(class: usize, label: &str, prob: f32) -> Label {
        Label { class, label: label.to_owned(), prob }
    }

    #[cfg(unix)]
    #[test]
    fn paths_that_are_not_utf8_keep_their_exact_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/p/caf\xe9.jpg"));
        let (text, bytes) = path_fields(path);
        assert_eq!(text, "/p/caf\u{fffd}.jpg");
        let bytes = bytes.unwrap();
        let decoded: Vec<u8> =
            (0..bytes.len()).step_by(2).map(|i| u8::from_str_radix(&bytes[i..i + 2], 16).unwrap()).collect();
        assert_eq!(decoded, path.as_os_str().as_bytes());
        assert_eq!(path_from_fields(&text, Some(&bytes)).as_deref(), Some(path), "the bytes come back");
        assert_eq!(path_from_fields("/p/café.jpg", None).as_deref(), Some(Path::new("/p/café.jpg")));
        assert_eq!(path_from_fields("x", Some("e9f")), None);
        assert_eq!(path_from_fields("x", Some("zz")), None);
        assert_eq!(path_fields(Path::new("/p/café.jpg")), (Cow::Borrowed("/p/café.jpg"), None));

        let mut out = Vec::new();
        let mut stream = ResultStream::new(&mut out, StreamFormat::Jsonl).unwrap();
        stream.write(path, Outcome::Failed("broken")).unwrap();
        stream.write(Path::new("/p/ok.jpg"), Outcome::Failed("broken")).unwrap();
        stream.finish().unwrap();
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["path_bytes"], serde_json::json!(bytes));
        assert!(lines[1].get("path_bytes").is_none());
    }

    #[test]
    fn the_csv_stream_has_a_row_per_label_and_one_per_error() {
        let mut out = Vec::new();
        let mut stream = ResultStream::new(&mut out, StreamFormat::Csv).unwrap();
        let labels = [label(281, "tabby, tabby cat", 0.5), label(1, "goldfish", 0.25)];
        stream.write(Path::new("a.jpg"), Outcome::Tagged { labels: &labels, embedding: None }).unwrap();
        stream.write(Path::new("b.jpg"), Outcome::Failed("b.jpg: cannot decode")).unwrap();
        stream.finish().unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "path,rank,class,label,prob,error,path_bytes\n\
             a.jpg,1,281,\"tabby, tabby cat\",0.500000,,\n\
             a.jpg,2,1,goldfish,0.250000,,\n\
             b.jpg,,,,,b.jpg: cannot decode,\n"
        );
    }

    fn two_photos() -> (Vec<Label>, Vec<Label>) {
        let first = vec![
            label(281, "tabby, tabby cat", 0.6),
            label(2, "the \"best\" cat", 0.3),
            label(3, "great white shark", 0.01),
        ];
        let second = vec![label(739, "potter's wheel", 0.25)];
        (first, second)
    }

    /// Taken at 14:03:27 on a clock two hours ahead of UTC, with a Canon.
    fn dated_info() -> crate::library::photo_info::PhotoInfo {
        crate::library::photo_info::PhotoInfo {
            taken: Some(1_714_565_007),
            taken_offset: Some(7200),
            camera: Some("Canon EOS R5".to_owned()),
        }
    }

    #[test]
    fn csv_has_a_row_per_label_above_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = two_photos();
        let info = dated_info();
        let photos = [
            PhotoTags { path: Path::new("/p/a.jpg"), labels: &first, info: Some(&info) },
            PhotoTags { path: Path::new("/p/b, c.jpg"), labels: &second, info: None },
        ];
        let path = dir.path().join("tags.csv");
        write_csv(&path, &photos, 0.1).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "path,rank,class,label,prob,path_bytes,taken,camera\n\
             /p/a.jpg,1,281,\"tabby, tabby cat\",0.6,,2024-05-01T14:03:27+02:00,Canon EOS R5\n\
             /p/a.jpg,2,2,\"the \"\"best\"\" cat\",0.3,,2024-05-01T14:03:27+02:00,Canon EOS R5\n\
             \"/p/b, c.jpg\",1,739,potter's wheel,0.25,,,\n"
        );
        write_csv(&path, &photos, 0.99).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "path,rank,class,label,prob,path_bytes,taken,camera\n");
    }

    #[test]
    fn json_lists_each_photo_with_its_labels_above_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = two_photos();
        let info = dated_info();
        let photos = [
            PhotoTags { path: Path::new("/p/a.jpg"), labels: &first, info: Some(&info) },
            PhotoTags { path: Path::new("/p/b, c.jpg"), labels: &second, info: None },
        ];
        let path = dir.path().join("tags.json");
        write_json(&path, &photos, 0.1).unwrap();
        let value: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            value,
            serde_json::json!([
                {"path": "/p/a.jpg", "labels": [
                    {"class": 281, "label": "tabby, tabby cat", "prob": 0.6},
                    {"class": 2, "label": "the \"best\" cat", "prob": 0.3},
                ], "taken": "2024-05-01T14:03:27+02:00", "camera": "Canon EOS R5"},
                {"path": "/p/b, c.jpg", "labels": [{"class": 739, "label": "potter's wheel", "prob": 0.25}]},
            ])
        );
        let back: Vec<serde_json::Value> = serde_json::from_value(value).unwrap();
        let labels: Vec<Label> = serde_json::from_value(back[0]["labels"].clone()).unwrap();
        assert_eq!(labels, first[..2]);
    }
}

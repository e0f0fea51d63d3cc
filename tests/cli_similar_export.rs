//! `evatag similar` and `evatag export` end to end.
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use std::ffi::{OsStr, OsString};
use std::path::Path;

use common::*;

fn args_for(command: &str, model: &str, rest: &[&OsStr]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![command.into(), "--device".into(), "cpu".into(), "--model-dir".into()];
    args.push(model_dir(model).into());
    args.extend(rest.iter().map(|a| a.to_os_string()));
    args
}

/// Saves a smaller, re-encoded copy of a photo.
fn near_copy(from: &Path, to: &Path) {
    let image = image::open(from).unwrap();
    let smaller = image.resize(image.width() * 4 / 5, image.height() * 4 / 5, image::imageops::FilterType::Lanczos3);
    let mut out = std::fs::File::create(to).unwrap();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(&smaller).unwrap();
}

fn cosine64(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt())
}

#[test]
fn a_near_copy_ranks_first_and_scores_match_brute_force() {
    let (photos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    copy_photos(photos.path());
    let query = photos.path().join("cat_landscape.jpg");
    let copy = photos.path().join("zz_cat_copy.jpg");
    near_copy(&query, &copy);

    let run = run_evatag(
        &os(&args_for("similar", "eva_tiny", &[query.as_os_str(), photos.path().as_os_str()])),
        Some(cache.path()),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let ranked: Vec<(String, f64)> =
        run.lines.iter().map(|l| (l["path"].as_str().unwrap().to_owned(), l["score"].as_f64().unwrap())).collect();
    assert_eq!(ranked.len(), photo_names().len(), "every other photo, the query left out: {ranked:?}");
    assert_eq!(ranked[0].0, copy.to_string_lossy(), "{ranked:?}");
    assert!(ranked.iter().all(|(p, _)| *p != query.to_string_lossy()));
    assert!(ranked.windows(2).all(|w| w[0].1 >= w[1].1), "{ranked:?}");

    // Brute force over the embeddings `tag --embedding` prints.
    let mut tag = tag_args("eva_tiny", &[photos.path()]);
    tag.push("--embedding".into());
    let tagged = run_evatag(&os(&tag), Some(cache.path()));
    let embedding = |path: &str| -> Vec<f64> {
        tagged.line_for(Path::new(path))["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let q = embedding(&query.to_string_lossy());
    let mut expected: Vec<(String, f64)> = tagged
        .lines
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_owned())
        .filter(|p| *p != query.to_string_lossy())
        .map(|p| {
            let score = cosine64(&q, &embedding(&p));
            (p, score)
        })
        .collect();
    expected.sort_by(|a, b| b.1.total_cmp(&a.1));
    let names = |v: &[(String, f64)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ranked), names(&expected));
    for ((_, got), (_, want)) in ranked.iter().zip(&expected) {
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }
}

const DIGIKAM_SIDECAR: &str = r#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
   xmp:Rating="4">
   <digiKam:TagsList>
    <rdf:Seq>
     <rdf:li>Places/Garden</rdf:li>
    </rdf:Seq>
   </digiKam:TagsList>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>Garden</rdf:li>
     <rdf:li>Summer</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>Places|Garden</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"#;

#[test]
fn export_merges_sidecars_and_writes_csv_and_json() {
    let (photos, cache, out) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut copied = copy_photos(photos.path());
    let dated = photos.path().join("dated_offset.jpg");
    std::fs::copy(fixtures().join("exif/dated_offset.jpg"), &dated).unwrap();
    copied.push(dated.clone());
    let cat = photos.path().join("cat_landscape.jpg");
    std::fs::write(photos.path().join("cat_landscape.jpg.xmp"), DIGIKAM_SIDECAR).unwrap();
    let originals: Vec<Vec<u8>> = copied.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let (csv, json) = (out.path().join("tags.csv"), out.path().join("tags.json"));
    let rest = [
        OsStr::new("--xmp"),
        OsStr::new("--min-prob"),
        OsStr::new("0.0"),
        OsStr::new("--csv"),
        csv.as_os_str(),
        OsStr::new("--json"),
        json.as_os_str(),
        photos.path().as_os_str(),
    ];
    let run = run_evatag(&os(&args_for("export", "eva_tiny", &rest)), Some(cache.path()));
    assert_eq!(run.code, Some(0), "{}", run.stderr);

    for (photo, bytes) in copied.iter().zip(&originals) {
        assert_eq!(&std::fs::read(photo).unwrap(), bytes, "{} was modified", photo.display());
        assert!(photo.with_file_name(format!("{}.xmp", photo.file_name().unwrap().to_string_lossy())).exists());
    }
    let merged = std::fs::read_to_string(photos.path().join("cat_landscape.jpg.xmp")).unwrap();
    for kept in
        ["xmp:Rating=\"4\"", "Places/Garden", "<rdf:li>Garden</rdf:li>", "<rdf:li>Summer</rdf:li>", "Places|Garden"]
    {
        assert!(merged.contains(kept), "lost {kept}:\n{merged}");
    }
    let json_rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cat_row = json_rows.as_array().unwrap().iter().find(|r| r["path"] == *cat.to_string_lossy()).unwrap();
    let top = cat_row["labels"][0]["label"].as_str().unwrap();
    let keyword = top.split(',').next().unwrap().trim();
    assert!(merged.contains(&format!("<rdf:li>{keyword}</rdf:li>")), "no {keyword}:\n{merged}");
    assert!(merged.contains(&format!("evatag|{keyword}")), "{merged}");
    // The date taken (at the camera's offset) and the camera go with the labels.
    let dated_row = json_rows.as_array().unwrap().iter().find(|r| r["path"] == *dated.to_string_lossy()).unwrap();
    assert_eq!(dated_row["taken"], "2021-07-14T09:30:00+02:00");
    assert_eq!(dated_row["camera"], "Canon EOS R5");
    assert!(cat_row.get("taken").is_none() && cat_row.get("camera").is_none(), "{cat_row}");
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert!(csv_text.starts_with("path,rank,class,label,prob,path_bytes,taken,camera\n"), "{csv_text}");
    assert_eq!(csv_text.lines().count(), 1 + 5 * copied.len(), "{csv_text}");
    let dated_line = csv_text.lines().find(|l| l.starts_with(&*dated.to_string_lossy())).unwrap();
    assert!(dated_line.ends_with(",,2021-07-14T09:30:00+02:00,Canon EOS R5"), "{dated_line}");
}

#[test]
fn similar_with_nothing_indexed_says_so() {
    let cache = tempfile::tempdir().unwrap();
    let query = fixtures().join("photos/cat_landscape.jpg");
    let run = run_evatag(&os(&args_for("similar", "eva_tiny", &[query.as_os_str()])), Some(cache.path()));
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.lines.is_empty());
    assert!(run.stderr.contains("nothing is indexed yet"), "{}", run.stderr);
}

#[test]
fn export_checks_its_output_files_before_tagging() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("missing/out.csv");
    let photo = fixtures().join("photos/cat_landscape.jpg");
    let args = args_for("export", "eva_tiny", &[OsStr::new("--csv"), csv.as_os_str(), photo.as_os_str()]);
    let run = run_evatag(&os(&args), None);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("missing/out.csv") && run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(!run.stderr.contains(".evatag-"), "names a temporary file: {}", run.stderr);
    assert!(!run.stderr.contains("tagged by the model"), "tagged before failing: {}", run.stderr);
}

//! Building the graph of possible duplicates: which files share a content, which contents are
//! near copies (the index's neighbours, scored exactly), and the facts that choose a keeper.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::library::cache::ContentHash;
use crate::library::duplicates::{DuplicateGraph, DuplicatePhoto, LOWEST_THRESHOLD, Link, near_pairs};
use crate::library::photo_info::PhotoInfo;
use crate::library::search::{dot, normalise};

use super::similar::{CacheOfModel, SearchError, Similarity};
use crate::library::watch::Watch;

/// The duplicate graph of the files at `within` (seen this session), or of every existing file
/// that the cache or this session knows.
pub(super) fn graph(
    similarity: &mut Similarity,
    cache: CacheOfModel<'_>,
    within: Option<&[PathBuf]>,
    watch: Watch<'_>,
) -> Result<DuplicateGraph, SearchError> {
    // Files by content, in path order.
    let mut files: BTreeMap<PathBuf, ContentHash> = BTreeMap::new();
    match within {
        Some(paths) => {
            files.extend(paths.iter().filter_map(|path| Some((path.clone(), similarity.hash_of(path)?))));
        }
        None => {
            if let Some((cache, model)) = cache {
                files.extend(cache.files_of_model(model)?.into_iter().filter(|(path, _)| path.is_file()));
            }
            files.extend(similarity.session_files());
        }
    }
    let mut by_content: HashMap<ContentHash, Vec<PathBuf>> = HashMap::new();
    let mut contents = Vec::new();
    for (path, hash) in files {
        let paths = by_content.entry(hash).or_default();
        if paths.is_empty() {
            contents.push(hash);
        }
        paths.push(path);
    }

    let pairs = near_pairs(similarity.index(cache, watch)?, &contents, LOWEST_THRESHOLD)?;
    let mut embeddings: HashMap<usize, Arc<[f32]>> = HashMap::new();
    let mut embedding = |content: usize| -> Option<Arc<[f32]>> {
        if let Some(e) = embeddings.get(&content) {
            return Some(e.clone());
        }
        let e: Arc<[f32]> = normalise(&similarity.exact(&contents[content], cache)?).into();
        embeddings.insert(content, e.clone());
        Some(e)
    };
    let mut near = Vec::new();
    for (a, b) in pairs {
        let (Some(x), Some(y)) = (embedding(a), embedding(b)) else { continue };
        let score = dot(&x, &y).min(1.0);
        if score >= LOWEST_THRESHOLD {
            near.push((a, b, score));
        }
    }
    for (content, hash) in contents.iter().enumerate() {
        if by_content[hash].len() > 1 {
            embedding(content);
        }
    }

    // Every file of every content that has a copy or a near copy, its copies linked at 1.
    let mut graph = DuplicateGraph::default();
    let mut first_photo: HashMap<usize, usize> = HashMap::new();
    let mut involved: Vec<usize> = embeddings.keys().copied().collect();
    involved.sort_unstable();
    for content in involved {
        let hash = contents[content];
        let first = graph.photos.len();
        first_photo.insert(content, first);
        let info = cache.and_then(|(cache, _)| cache.photo_info(&hash));
        for (i, path) in by_content[&hash].iter().enumerate() {
            graph.photos.push(facts(path, hash, info.as_ref(), embeddings[&content].clone()));
            if i > 0 {
                graph.links.push(Link { a: first, b: first + i, score: 1.0 });
            }
        }
    }
    for (a, b, score) in near {
        graph.links.push(Link { a: first_photo[&a], b: first_photo[&b], score });
    }
    Ok(graph)
}

/// What chooses the copy to keep: size in pixels and bytes, and age.
fn facts(path: &Path, hash: ContentHash, info: Option<&PhotoInfo>, embedding: Arc<[f32]>) -> DuplicatePhoto {
    let (width, height) = crate::preprocess::shown_size(path).unwrap_or((0, 0));
    let meta = std::fs::metadata(path).ok();
    let modified = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    let taken = info.and_then(|info| info.taken);
    DuplicatePhoto {
        path: path.to_owned(),
        hash,
        width,
        height,
        bytes: meta.map_or(0, |m| m.len()),
        time: taken.or(modified),
        time_is_taken: taken.is_some(),
        embedding,
    }
}

//! Similarity queries: an index of the embeddings of this session's photos and, once a query
//! needs them, of every photo the cache holds for the model.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::library::cache::{Cache, CacheError, ContentHash};
use crate::library::search::{Match, SimilarityIndex};

/// The index and what it knows about this session's paths.
#[derive(Default)]
pub(super) struct Similarity {
    index: Option<SimilarityIndex>,
    /// Whether the cache's embeddings have been read into the index.
    has_cache: bool,
    /// Content hashes of the files seen this session, by path.
    session_hashes: HashMap<PathBuf, ContentHash>,
}

impl Similarity {
    /// Starts afresh with an empty index for embeddings of `dim` values.
    pub fn reset(&mut self, dim: usize) {
        *self = Self { index: Some(SimilarityIndex::new(dim)), ..Self::default() };
    }

    /// Remembers a photo's embedding (once an index exists).
    pub fn insert(&mut self, path: &Path, hash: ContentHash, embedding: &[f32]) {
        self.session_hashes.insert(path.to_owned(), hash);
        if let Some(index) = self.index.as_mut() {
            index.insert(hash, path.to_owned(), embedding);
        }
    }

    /// The hash and embedding of a photo seen this session.
    pub fn known(&self, path: &Path) -> Option<(ContentHash, Vec<f32>)> {
        let hash = self.session_hashes.get(path)?;
        let embedding = self.index.as_ref()?.embedding(hash)?;
        Some((*hash, embedding.to_vec()))
    }

    /// The `k` photos most like `embedding` (the query itself, `query_hash`, left out),
    /// among the photos at `within` when given, else among everything this session and the
    /// cache know. The cache is read into the index the first time it is needed.
    pub fn search(
        &mut self,
        cache: Option<(&Cache, &str)>,
        query_hash: &ContentHash,
        embedding: &[f32],
        k: usize,
        within: Option<&[PathBuf]>,
    ) -> Result<Vec<Match>, CacheError> {
        if within.is_none() {
            self.read_cache(cache)?;
        }
        let Some(index) = self.index.as_ref() else { return Ok(Vec::new()) };
        let allowed: Option<HashSet<ContentHash>> =
            within.map(|paths| paths.iter().filter_map(|p| self.session_hashes.get(p).copied()).collect());
        let keep = |h: &ContentHash| allowed.as_ref().is_none_or(|a| a.contains(h));
        Ok(index.search(embedding, k, Some(query_hash), &keep))
    }

    /// Adds every embedding the cache holds for the model, once.
    fn read_cache(&mut self, cache: Option<(&Cache, &str)>) -> Result<(), CacheError> {
        let (Some((cache, model_id)), Some(index), false) = (cache, self.index.as_mut(), self.has_cache) else {
            return Ok(());
        };
        for (hash, path, embedding) in cache.embeddings(model_id)? {
            if index.embedding(&hash).is_none() {
                index.insert(hash, path, &embedding);
            }
        }
        self.has_cache = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> ContentHash {
        [n; 32]
    }

    #[test]
    fn ranks_by_cosine_leaving_out_the_query_and_honouring_within() {
        let mut similarity = Similarity::default();
        similarity.reset(2);
        similarity.insert(Path::new("/q.jpg"), hash(0), &[1.0, 0.0]);
        similarity.insert(Path::new("/near.jpg"), hash(1), &[0.9, 0.1]);
        similarity.insert(Path::new("/far.jpg"), hash(2), &[0.0, 1.0]);
        let (query, embedding) = similarity.known(Path::new("/q.jpg")).unwrap();
        let all = similarity.search(None, &query, &embedding, 5, None).unwrap();
        let paths: Vec<&Path> = all.iter().map(|m| m.path.as_path()).collect();
        assert_eq!(paths, [Path::new("/near.jpg"), Path::new("/far.jpg")]);
        let within = [PathBuf::from("/far.jpg")];
        let only = similarity.search(None, &query, &embedding, 5, Some(&within)).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].path, Path::new("/far.jpg"));
    }

    #[test]
    fn a_reset_forgets_everything() {
        let mut similarity = Similarity::default();
        similarity.reset(2);
        similarity.insert(Path::new("/a.jpg"), hash(1), &[1.0, 0.0]);
        similarity.reset(2);
        assert!(similarity.known(Path::new("/a.jpg")).is_none());
    }
}

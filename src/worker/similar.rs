//! Similarity queries: this session's embeddings and, once a query needs it, the index of
//! every embedding the cache holds for the model, kept on disk beside the cache.
//!
//! The saved index is never trusted blindly: when it is opened, every content the cache holds
//! must be in it or is added, any vector the cache does not account for makes it rebuilt, and a
//! sample of its vectors is compared with the cache's embeddings.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::library::ann::AnnError;
use crate::library::cache::{Cache, CacheError, ContentHash};
use crate::library::search::{Filters, Match, Reach, SimilarityIndex, codes_of, dot, normalise};
use crate::library::watch::Watch;

/// Index vectors compared with the cache's embeddings when a saved index is opened.
const SAMPLE_CHECKED: usize = 16;
/// Embeddings read from the cache and indexed together while the index is rebuilt.
const REBUILD_CHUNK: usize = 4096;
/// Results asked for beyond `k`, in case some contents have no file left.
const SPARE_RESULTS: usize = 8;

/// Why a similarity query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The cache could not be read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] AnnError),
    /// Cancelled while the index was being built; the next search builds it again.
    #[error("stopped before the similarity index was complete")]
    Cancelled,
}

/// The cache and the id of the model whose results are searched.
pub(super) type CacheOfModel<'a> = Option<(&'a Cache, &'a str)>;

/// The index and what this session knows.
#[derive(Default)]
pub(super) struct Similarity {
    dim: usize,
    /// Every content of the cache and this session, once a query has needed it.
    index: Option<SimilarityIndex>,
    /// Whether the index has changed since it was opened or saved.
    unsaved: bool,
    /// Content hashes of the files seen this session, by path.
    session_hashes: HashMap<PathBuf, ContentHash>,
    /// One path of each content seen this session.
    session_paths: HashMap<ContentHash, PathBuf>,
    /// The embeddings of this session's photos.
    embeddings: HashMap<ContentHash, Arc<[f32]>>,
}

impl Similarity {
    /// Starts afresh for embeddings of `dim` values.
    pub fn reset(&mut self, dim: usize) {
        *self = Self { dim, ..Self::default() };
    }

    /// Remembers a photo's embedding.
    pub fn insert(&mut self, path: &Path, hash: ContentHash, embedding: Arc<[f32]>) {
        if embedding.len() != self.dim {
            return;
        }
        self.session_hashes.insert(path.to_owned(), hash);
        self.session_paths.insert(hash, path.to_owned());
        if let Some(index) = self.index.as_mut().filter(|index| !index.contains(&hash)) {
            match index.insert(&hash, &embedding) {
                Ok(()) => self.unsaved = true,
                Err(e) => tracing::warn!("{}: not indexed: {e}", path.display()),
            }
        }
        self.embeddings.insert(hash, embedding);
    }

    /// The hash and embedding of a photo seen this session.
    pub fn known(&self, path: &Path) -> Option<(ContentHash, Arc<[f32]>)> {
        let hash = self.session_hashes.get(path)?;
        Some((*hash, self.embeddings.get(hash)?.clone()))
    }

    /// The content hash of a file seen this session.
    pub fn hash_of(&self, path: &Path) -> Option<ContentHash> {
        self.session_hashes.get(path).copied()
    }

    /// Every file seen this session with its content hash.
    pub fn session_files(&self) -> impl Iterator<Item = (PathBuf, ContentHash)> + '_ {
        self.session_hashes.iter().map(|(path, hash)| (path.clone(), *hash))
    }

    /// Forgets files that are gone (moved to the trash); a content no other file holds leaves
    /// the index. `cache` is consulted after it has forgotten the files.
    pub fn forget(&mut self, paths: &[PathBuf], cache: CacheOfModel<'_>) {
        let gone: HashSet<ContentHash> = paths.iter().filter_map(|path| self.session_hashes.remove(path)).collect();
        if gone.is_empty() {
            return;
        }
        // Another file of this session may still hold a content that a forgotten one held.
        let mut still_held: HashMap<ContentHash, PathBuf> = HashMap::new();
        for (path, hash) in &self.session_hashes {
            if gone.contains(hash) {
                still_held.entry(*hash).or_insert_with(|| path.clone());
            }
        }
        for hash in gone {
            if let Some(path) = still_held.remove(&hash) {
                self.session_paths.insert(hash, path);
                continue;
            }
            self.session_paths.remove(&hash);
            let elsewhere = cache.is_some_and(|(cache, _)| cache.paths_of(&hash).is_ok_and(|p| !p.is_empty()));
            if !elsewhere {
                self.embeddings.remove(&hash);
                if let Some(index) = self.index.as_mut()
                    && index.remove(&hash).is_ok()
                {
                    self.unsaved = true;
                }
            }
        }
    }

    /// The `k` photos most like `embedding` (the query itself, `query_hash`, left out),
    /// among the photos at `within` when given, else among everything this session and the
    /// cache know.
    pub fn search(
        &mut self,
        cache: CacheOfModel<'_>,
        query_hash: &ContentHash,
        embedding: &[f32],
        k: usize,
        within: Option<&[PathBuf]>,
        watch: Watch<'_>,
    ) -> Result<Vec<Match>, SearchError> {
        if let Some(within) = within {
            return Ok(self.search_within(query_hash, embedding, k, within));
        }
        self.open_index(cache, watch)?;
        let Some(index) = self.index.as_ref() else { return Ok(Vec::new()) };
        let filters = Filters { exclude: Some(query_hash), keep: None };
        let found = index.search(embedding, k + SPARE_RESULTS, filters, Reach::Best, |hash| self.exact(hash, cache))?;
        Ok(found
            .into_iter()
            .filter_map(|(hash, score)| Some(Match { path: self.path_of(&hash, cache)?, hash, score }))
            .take(k)
            .collect())
    }

    /// The index of every content, opened (and repaired or rebuilt, with progress told to
    /// `watch`) on first use.
    pub fn index(&mut self, cache: CacheOfModel<'_>, watch: Watch<'_>) -> Result<&SimilarityIndex, SearchError> {
        self.open_index(cache, watch)?;
        Ok(self.index.as_ref().expect("opened above"))
    }

    /// The exact embedding of a content: this session's, else the cache's.
    pub fn exact(&self, hash: &ContentHash, cache: CacheOfModel<'_>) -> Option<Vec<f32>> {
        if let Some(embedding) = self.embeddings.get(hash) {
            return Some(embedding.to_vec());
        }
        let (cache, model) = cache?;
        cache.embedding(hash, model).ok().flatten()
    }

    /// A file that holds a content: one seen this session, else the first recorded one that
    /// still exists.
    pub fn path_of(&self, hash: &ContentHash, cache: CacheOfModel<'_>) -> Option<PathBuf> {
        if let Some(path) = self.session_paths.get(hash) {
            return Some(path.clone());
        }
        let (cache, _) = cache?;
        cache.paths_of(hash).ok()?.into_iter().find(|path| path.exists())
    }

    /// Writes the index beside the cache when it has changed (nothing without a writable
    /// cache). A failure only costs a rebuild next time.
    pub fn save(&mut self, cache: CacheOfModel<'_>) {
        let (Some(index), Some((cache, model)), true) = (self.index.as_ref(), cache, self.unsaved) else {
            return;
        };
        if !cache.is_writable() {
            return;
        }
        let file = index_file(cache, model);
        match index.save(&file) {
            Ok(()) => self.unsaved = false,
            Err(e) => tracing::warn!("the similarity index could not be saved: {e}"),
        }
    }

    /// The `k` photos at `within` most like `embedding`, compared one by one.
    fn search_within(&self, query_hash: &ContentHash, embedding: &[f32], k: usize, within: &[PathBuf]) -> Vec<Match> {
        let query = normalise(embedding);
        let mut seen = HashSet::from([*query_hash]);
        let mut matches: Vec<Match> = within
            .iter()
            .filter_map(|path| {
                let hash = *self.session_hashes.get(path)?;
                if !seen.insert(hash) {
                    return None;
                }
                let score = dot(&query, &normalise(self.embeddings.get(&hash)?));
                Some(Match { path: path.clone(), hash, score })
            })
            .collect();
        matches.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.path.cmp(&b.path)));
        matches.truncate(k);
        matches
    }

    /// Opens the saved index, checks it against the cache and adds what it lacks; builds it
    /// from the cache when it is missing, damaged or does not agree. The contents added are
    /// counted to `watch`, which can stop the work (the index is then built anew next time).
    fn open_index(&mut self, cache: CacheOfModel<'_>, watch: Watch<'_>) -> Result<(), SearchError> {
        if self.index.is_some() {
            return Ok(());
        }
        let mut index = None;
        let mut missing = Vec::new();
        if let Some((cache, model)) = cache {
            let hashes = cache.hashes(model)?;
            let file = index_file(cache, model);
            match SimilarityIndex::load(&file, self.dim) {
                Ok(mut saved) => {
                    missing = hashes.iter().filter(|hash| !saved.claim(hash)).copied().collect();
                    if saved.unclaimed() == 0 && agrees_with_cache(&saved, &hashes, cache, model) {
                        index = Some(saved);
                    } else {
                        tracing::info!("{}: does not match the cache; rebuilt", file.display());
                    }
                }
                Err(e) if file.exists() => tracing::info!("{e}; rebuilt"),
                Err(_) => {}
            }
            if index.is_none() {
                missing = hashes;
            }
        }
        let mut index = match index {
            Some(index) => index,
            None => SimilarityIndex::new(self.dim)?,
        };
        self.unsaved = !missing.is_empty();
        for (i, chunk) in missing.chunks(REBUILD_CHUNK).enumerate() {
            if !watch.progress(i * REBUILD_CHUNK, missing.len()) {
                return Err(SearchError::Cancelled);
            }
            let embeddings: Vec<(ContentHash, Vec<f32>)> =
                chunk.iter().filter_map(|hash| Some((*hash, self.exact(hash, cache)?))).collect();
            index.extend(&embeddings)?;
        }
        if !missing.is_empty() {
            watch.progress(missing.len(), missing.len());
        }
        for (hash, embedding) in &self.embeddings {
            if !index.contains(hash) {
                index.insert(hash, embedding)?;
                self.unsaved = true;
            }
        }
        self.index = Some(index);
        self.save(cache);
        Ok(())
    }
}

/// Whether a sample of the index's vectors, spread over `hashes`, are the cache's embeddings.
fn agrees_with_cache(index: &SimilarityIndex, hashes: &[ContentHash], cache: &Cache, model: &str) -> bool {
    let step = hashes.len().div_ceil(SAMPLE_CHECKED).max(1);
    hashes.iter().step_by(step).all(|hash| match (index.codes(hash), cache.embedding(hash, model)) {
        (Some(codes), Ok(Some(embedding))) => codes == codes_of(&embedding),
        _ => false,
    })
}

/// The index file of a model: beside the cache database, named after the model's id.
pub(super) fn index_file(cache: &Cache, model: &str) -> PathBuf {
    let id = blake3::hash(model.as_bytes()).to_hex();
    cache.path().with_file_name(format!("similar-{}.usearch", &id[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::cache::{FileStamp, NewResult};
    use crate::library::photo_info::PhotoInfo;

    fn hash(n: u8) -> ContentHash {
        [n; 32]
    }

    /// A watch that never stops and is told nothing.
    fn unwatched() -> Watch<'static> {
        static GO_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        Watch::new(&GO_ON, &|_, _| {})
    }

    #[test]
    fn ranks_by_cosine_leaving_out_the_query_and_honouring_within() {
        let mut similarity = Similarity::default();
        similarity.reset(2);
        similarity.insert(Path::new("/q.jpg"), hash(0), Arc::from([1.0, 0.0]));
        similarity.insert(Path::new("/near.jpg"), hash(1), Arc::from([0.9, 0.1]));
        similarity.insert(Path::new("/far.jpg"), hash(2), Arc::from([0.0, 1.0]));
        let (query, embedding) = similarity.known(Path::new("/q.jpg")).unwrap();
        let all = similarity.search(None, &query, &embedding, 5, None, unwatched()).unwrap();
        let paths: Vec<&Path> = all.iter().map(|m| m.path.as_path()).collect();
        assert_eq!(paths, [Path::new("/near.jpg"), Path::new("/far.jpg")]);
        let within = [PathBuf::from("/far.jpg")];
        let only = similarity.search(None, &query, &embedding, 5, Some(&within), unwatched()).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].path, Path::new("/far.jpg"));
        similarity.forget(&[PathBuf::from("/near.jpg")], None);
        let rest = similarity.search(None, &query, &embedding, 5, None, unwatched()).unwrap();
        assert_eq!(rest.iter().map(|m| m.path.as_path()).collect::<Vec<_>>(), [Path::new("/far.jpg")]);
    }

    fn cache_with(dir: &Path, photos: &[(&Path, ContentHash, [f32; 3])]) -> Cache {
        let (mut cache, _) = Cache::open_in(dir).unwrap();
        for (path, hash, embedding) in photos {
            std::fs::write(path, b"x").unwrap();
            let row = NewResult {
                path,
                stamp: FileStamp { size: 1, mtime_ns: 1 },
                hash: *hash,
                labels: &[],
                embedding,
                info: &PhotoInfo::default(),
            };
            cache.store_batch("m", &[row]).unwrap();
        }
        cache
    }

    #[test]
    fn the_saved_index_is_checked_and_rebuilt_when_it_disagrees() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jpg"), dir.path().join("b.jpg"));
        let cache = cache_with(dir.path(), &[(&a, hash(1), [1.0, 0.0, 0.0]), (&b, hash(2), [0.8, 0.6, 0.0])]);
        let search = |similarity: &mut Similarity| {
            let found =
                similarity.search(Some((&cache, "m")), &hash(9), &[1.0, 0.0, 0.0], 5, None, unwatched()).unwrap();
            found.into_iter().map(|m| (m.path, (m.score * 1000.0).round())).collect::<Vec<_>>()
        };
        let expected = vec![(a.clone(), 1000.0), (b.clone(), 800.0)];
        let mut first = Similarity::default();
        first.reset(3);
        assert_eq!(search(&mut first), expected);
        let file = index_file(&cache, "m");
        assert!(file.exists(), "the index is saved beside the cache");

        // Deleted: rebuilt from the cache.
        std::fs::remove_file(&file).unwrap();
        let mut again = Similarity::default();
        again.reset(3);
        assert_eq!(search(&mut again), expected);
        assert!(file.exists());

        // An index of other vectors under the same keys: the sample check catches it.
        let mut wrong = SimilarityIndex::new(3).unwrap();
        wrong.insert(&hash(1), &[0.0, 0.0, 1.0]).unwrap();
        wrong.insert(&hash(2), &[0.0, 1.0, 0.0]).unwrap();
        wrong.save(&file).unwrap();
        let mut checked = Similarity::default();
        checked.reset(3);
        assert_eq!(search(&mut checked), expected);

        // Damaged: rebuilt.
        std::fs::write(&file, b"garbage").unwrap();
        let mut repaired = Similarity::default();
        repaired.reset(3);
        assert_eq!(search(&mut repaired), expected);
        assert!(SimilarityIndex::load(&file, 3).is_ok(), "the rebuilt index was saved");
    }

    #[test]
    fn building_the_index_tells_its_progress_and_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let photos: Vec<(PathBuf, ContentHash)> =
            (0..3).map(|n| (dir.path().join(format!("{n}.jpg")), hash(n + 1))).collect();
        let rows: Vec<(&Path, ContentHash, [f32; 3])> =
            photos.iter().map(|(path, hash)| (path.as_path(), *hash, [1.0, f32::from(hash[0]), 0.0])).collect();
        let cache = cache_with(dir.path(), &rows);
        let stop = std::sync::atomic::AtomicBool::new(true);
        let told = std::sync::Mutex::new(Vec::new());
        let tell = |done: usize, total: usize| told.lock().unwrap().push((done, total));
        let mut similarity = Similarity::default();
        similarity.reset(3);
        let stopped = similarity.index(Some((&cache, "m")), Watch::new(&stop, &tell));
        assert!(matches!(stopped, Err(SearchError::Cancelled)));
        assert!(!index_file(&cache, "m").exists(), "a stopped build is not saved");
        stop.store(false, std::sync::atomic::Ordering::SeqCst);
        let index = similarity.index(Some((&cache, "m")), Watch::new(&stop, &tell)).unwrap();
        assert!(index.contains(&hash(3)));
        assert_eq!(*told.lock().unwrap(), [(0, 3), (0, 3), (3, 3)]);
    }
}

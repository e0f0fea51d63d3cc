//! The approximate nearest-neighbour index over the embeddings: an HNSW graph over 8-bit
//! codes, saved beside the cache.
//!
//! It is usearch's (Unum): a maintained HNSW that stores the vectors in its own compact
//! arena (8-bit codes: a quarter of the f32 bytes, 1.4 KB per EVA-giant photo, with a graph
//! of 16 links per node), adds and removes single vectors, searches with a key filter, and
//! saves and loads one file. The Rust HNSW crates either keep a heap object per link (several
//! times the memory at a million photos) or build a graph once and cannot add to it. It is
//! built without its optional SIMD library, whose many per-CPU kernels take minutes to
//! compile; its portable C++ cosine on 8-bit codes is fast enough (see README's figures).
//!
//! Scores here are approximate (8-bit codes); callers re-rank the best candidates exactly.

use std::path::Path;

use usearch::ffi::{IndexOptions, MetricKind, ScalarKind};

use super::cache::ContentHash;

/// Links per node in the graph (usearch's default).
const CONNECTIVITY: usize = 16;
/// Candidates kept while inserting; higher builds a better graph, slower.
const EXPANSION_ADD: usize = 128;
/// Candidates kept while searching, at least; more are kept when more results are asked for.
const EXPANSION_SEARCH: usize = 160;

/// Errors of the index (usearch reports them as text).
#[derive(Debug, thiserror::Error)]
#[error("nearest-neighbour index: {0}")]
pub struct AnnError(String);

impl From<cxx::Exception> for AnnError {
    fn from(e: cxx::Exception) -> Self {
        AnnError(e.what().to_owned())
    }
}

/// The key a photo content is filed under: the first 8 bytes of its hash.
pub fn key_of(hash: &ContentHash) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(bytes)
}

/// A unit vector as 8-bit codes and the scale that maps them back (`v ≈ code * scale`).
pub fn quantise(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    (v.iter().map(|x| (x / scale).round() as i8).collect(), scale)
}

/// An HNSW index of 8-bit codes under cosine similarity.
pub struct AnnIndex {
    index: usearch::Index,
    dim: usize,
}

impl AnnIndex {
    /// An empty index of `dim`-dimensional codes.
    pub fn new(dim: usize) -> Result<Self, AnnError> {
        let options = IndexOptions {
            dimensions: dim,
            metric: MetricKind::Cos,
            quantization: ScalarKind::I8,
            connectivity: CONNECTIVITY,
            expansion_add: EXPANSION_ADD,
            expansion_search: EXPANSION_SEARCH,
            multi: false,
        };
        let index = usearch::Index::new(&options)?;
        Ok(Self { index, dim })
    }

    /// Loads an index saved by [`Self::save`], refusing one of another width or kind.
    pub fn load(file: &Path, dim: usize) -> Result<Self, AnnError> {
        let text = file.to_str().ok_or_else(|| AnnError(format!("{}: not a UTF-8 path", file.display())))?;
        let meta = usearch::ffi::read_metadata(text)?;
        if meta.dimensions as usize != dim || meta.quantization != ScalarKind::I8 || meta.metric != MetricKind::Cos {
            return Err(AnnError(format!(
                "{}: holds {}-dimensional vectors of another kind, expected {dim}",
                file.display(),
                meta.dimensions
            )));
        }
        let this = Self::new(dim)?;
        this.index.load(text)?;
        this.index.change_expansion_add(EXPANSION_ADD);
        this.index.change_expansion_search(EXPANSION_SEARCH);
        Ok(this)
    }

    /// Saves the index to `file`, replacing it in one step (a temporary file renamed).
    pub fn save(&self, file: &Path) -> Result<(), AnnError> {
        let temp = file.with_extension("tmp");
        let text = temp.to_str().ok_or_else(|| AnnError(format!("{}: not a UTF-8 path", temp.display())))?;
        self.index.save(text)?;
        std::fs::rename(&temp, file).map_err(|e| AnnError(format!("{}: {e}", file.display())))
    }

    /// Code width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.index.size()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key` is in the index.
    pub fn contains(&self, key: u64) -> bool {
        self.index.contains(key)
    }

    /// Makes room for `capacity` vectors added from up to `threads` threads at once.
    pub fn reserve(&self, capacity: usize, threads: usize) -> Result<(), AnnError> {
        Ok(self.index.reserve_capacity_and_threads(capacity, threads)?)
    }

    /// Adds the codes of `key`, replacing any it had. Grows the index as needed (one thread).
    pub fn insert(&self, key: u64, codes: &[i8]) -> Result<(), AnnError> {
        if codes.len() != self.dim {
            return Err(AnnError(format!("{} values given for a {}-dimensional index", codes.len(), self.dim)));
        }
        if self.index.contains(key) {
            self.index.remove(key)?;
        }
        if self.index.size() + 1 > self.index.capacity() {
            self.reserve((self.index.capacity() * 2).max(1024), 1)?;
        }
        Ok(self.index.add(key, codes)?)
    }

    /// Adds the codes of a key not in the index yet, from any of the threads reserved with
    /// [`Self::reserve`] (the capacity must be there).
    pub fn insert_new(&self, key: u64, codes: &[i8]) -> Result<(), AnnError> {
        Ok(self.index.add(key, codes)?)
    }

    /// Takes `key` out of the index.
    pub fn remove(&self, key: u64) -> Result<(), AnnError> {
        self.index.remove(key)?;
        Ok(())
    }

    /// The stored codes of `key`.
    pub fn codes(&self, key: u64) -> Option<Vec<i8>> {
        let mut codes = vec![0i8; self.dim];
        match self.index.get(key, &mut codes) {
            Ok(found) if found > 0 => Some(codes),
            _ => None,
        }
    }

    /// The `count` keys nearest `codes` with their approximate cosine similarity, best
    /// first: through the graph, or comparing with every vector when `exhaustive`. Only keys
    /// `keep` accepts are returned.
    pub fn search(
        &self,
        codes: &[i8],
        count: usize,
        exhaustive: bool,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<(u64, f32)>, AnnError> {
        if count == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        self.index.change_expansion_search(EXPANSION_SEARCH.max(count * 2));
        let matches = match (keep, exhaustive) {
            (Some(keep), _) => self.index.filtered_search(codes, count, keep)?,
            (None, true) => self.index.exact_search(codes, count)?,
            (None, false) => self.index.search(codes, count)?,
        };
        Ok(matches.keys.into_iter().zip(matches.distances).map(|(key, distance)| (key, 1.0 - distance)).collect())
    }

    /// Bytes of memory the index holds.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(seed: u64, dim: usize) -> Vec<i8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..dim)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as i8
            })
            .collect()
    }

    #[test]
    fn finds_inserted_vectors_and_survives_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let index = AnnIndex::new(32).unwrap();
        for key in 0..500 {
            index.insert(key, &codes(key, 32)).unwrap();
        }
        assert_eq!(index.len(), 500);
        let found = index.search(&codes(7, 32), 3, false, None).unwrap();
        assert_eq!(found[0].0, 7);
        assert!((found[0].1 - 1.0).abs() < 1e-3, "{found:?}");
        // Replacing keeps one vector per key.
        index.insert(7, &codes(1000, 32)).unwrap();
        assert_eq!(index.len(), 500);
        assert_eq!(index.search(&codes(1000, 32), 1, true, None).unwrap()[0].0, 7);
        index.remove(8).unwrap();
        assert!(!index.contains(8));
        let only_odd = index.search(&codes(9, 32), 5, false, Some(&|k| k % 2 == 1)).unwrap();
        assert!(only_odd.iter().all(|(k, _)| k % 2 == 1) && only_odd[0].0 == 9);

        let file = dir.path().join("index.usearch");
        index.save(&file).unwrap();
        let back = AnnIndex::load(&file, 32).unwrap();
        assert_eq!(back.len(), 499);
        assert_eq!(back.codes(9), Some(codes(9, 32)));
        assert!(AnnIndex::load(&file, 64).is_err(), "another width is refused");
        std::fs::write(&file, b"not an index").unwrap();
        assert!(AnnIndex::load(&file, 32).is_err(), "a damaged file is refused");
    }

    #[test]
    fn codes_keep_the_direction() {
        let v = [0.5f32, -0.25, 0.0, 0.125];
        let (codes, scale) = quantise(&v);
        assert_eq!(codes, [127, -64, 0, 32]);
        for (c, x) in codes.iter().zip(v) {
            assert!((f32::from(*c) * scale - x).abs() <= scale / 2.0 + 1e-7);
        }
        assert_eq!(quantise(&[0.0, 0.0]), (vec![0, 0], 0.0));
    }
}

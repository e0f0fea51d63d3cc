//! The approximate nearest-neighbour index over the embeddings: an HNSW graph over 8-bit
//! codes, saved beside the cache.
//!
//! It is usearch's (Unum): a maintained HNSW that stores the vectors in its own compact
//! arena (8-bit codes: a quarter of the f32 bytes, 1.4 KB per EVA-giant photo, with a graph
//! of 32 links per node), adds and removes single vectors, searches with a key filter, and
//! saves and loads one file. The Rust HNSW crates either keep a heap object per link (several
//! times the memory at a million photos) or build a graph once and cannot add to it.
//!
//! usearch is built without its optional SIMD library, whose many per-CPU kernels take
//! minutes to compile; its portable C++ cosine is not vectorised, so the distance is evatag's
//! own, dispatched to the widest vector instructions the CPU has ([`cosine_distance`]).
//!
//! Scores here are approximate (8-bit codes); callers re-rank the best candidates exactly.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use usearch::ffi::{IndexOptions, MetricKind, ScalarKind};

use super::cache::ContentHash;
use crate::model::cpu::simd::multiversion;

/// Links per node in the graph: twice usearch's default, with which searches over a million
/// photos missed some nearest neighbours however many candidates they kept (bench/README.md).
const CONNECTIVITY: usize = 32;
/// Candidates kept while inserting; higher builds a better graph, slower.
const EXPANSION_ADD: usize = 128;
/// Candidates kept while searching, at least (usearch keeps as many as are asked for when
/// that is more).
const EXPANSION_SEARCH: usize = 256;

/// Errors of the index (usearch reports them as text).
#[derive(Debug, thiserror::Error)]
#[error("nearest-neighbour index: {0}")]
pub struct AnnError(String);

impl AnnError {
    /// Vectors of another width than the index's `dim`.
    pub fn width(dim: usize) -> Self {
        AnnError(format!("a vector of another width given to a {dim}-dimensional index"))
    }
}

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
    /// Candidates kept by graph searches.
    expansion: AtomicUsize,
}

impl AnnIndex {
    /// An empty index of `dim`-dimensional codes.
    pub fn new(dim: usize) -> Result<Self, AnnError> {
        let mut index = Self::empty_native(dim)?;
        use_own_metric(&mut index, dim);
        let this = Self { index, dim, expansion: AtomicUsize::new(EXPANSION_SEARCH) };
        this.reserve(1024)?;
        Ok(this)
    }

    /// A usearch index with its own metric.
    fn empty_native(dim: usize) -> Result<usearch::Index, AnnError> {
        let options = IndexOptions {
            dimensions: dim,
            metric: MetricKind::Cos,
            quantization: ScalarKind::I8,
            connectivity: CONNECTIVITY,
            expansion_add: EXPANSION_ADD,
            expansion_search: EXPANSION_SEARCH,
            multi: false,
        };
        Ok(usearch::Index::new(&options)?)
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
        let mut index = Self::empty_native(dim)?;
        index.load(text)?;
        // Loading sets the metric named in the file; the vectorised one replaces it.
        use_own_metric(&mut index, dim);
        index.change_expansion_add(EXPANSION_ADD);
        index.change_expansion_search(EXPANSION_SEARCH);
        let this = Self { index, dim, expansion: AtomicUsize::new(EXPANSION_SEARCH) };
        this.reserve(this.len().max(1024))?;
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

    /// Makes room for `capacity` vectors, added or searched from as many threads at once as
    /// rayon runs.
    pub fn reserve(&self, capacity: usize) -> Result<(), AnnError> {
        let threads = rayon::current_num_threads().max(1);
        Ok(self.index.reserve_capacity_and_threads(capacity, threads)?)
    }

    /// Adds the codes of `key`, replacing any it had. Grows the index as needed (one thread).
    pub fn insert(&self, key: u64, codes: &[i8]) -> Result<(), AnnError> {
        if codes.len() != self.dim {
            return Err(AnnError::width(self.dim));
        }
        if self.index.contains(key) {
            self.index.remove(key)?;
        }
        if self.index.size() + 1 > self.index.capacity() {
            self.reserve((self.index.capacity() * 2).max(1024))?;
        }
        Ok(self.index.add(key, codes)?)
    }

    /// Adds the codes of a key not in the index yet, from any thread, once [`Self::reserve`]
    /// has made room for it.
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
        if self.index.expansion_search() != self.expansion.load(Ordering::Relaxed) {
            self.index.change_expansion_search(self.expansion.load(Ordering::Relaxed));
        }
        let matches = match (keep, exhaustive) {
            (Some(keep), _) => self.index.filtered_search(codes, count, keep)?,
            (None, true) => self.index.exact_search(codes, count)?,
            (None, false) => self.index.search(codes, count)?,
        };
        Ok(matches.keys.into_iter().zip(matches.distances).map(|(key, distance)| (key, 1.0 - distance)).collect())
    }

    /// Sets how many candidates graph searches keep (`None`: the default, for the best
    /// recall); fewer is faster and enough for neighbours that are very close.
    pub fn set_expansion(&self, expansion: Option<usize>) {
        self.expansion.store(expansion.unwrap_or(EXPANSION_SEARCH), Ordering::Relaxed);
    }

    /// Bytes of memory the index holds.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_usage()
    }
}

/// Makes `index` compare `dim`-wide codes with [`cosine_distance`].
fn use_own_metric(index: &mut usearch::Index, dim: usize) {
    let metric = Box::new(move |a: *const i8, b: *const i8| {
        // SAFETY: usearch passes two of its stored or query vectors, each `dim` codes long.
        let (a, b) = unsafe { (std::slice::from_raw_parts(a, dim), std::slice::from_raw_parts(b, dim)) };
        cosine_distance(a, b)
    });
    index.change_metric::<i8>(metric);
}

/// One minus the cosine similarity of two code vectors (1 when either is zero).
pub fn cosine_distance(a: &[i8], b: &[i8]) -> f32 {
    let [ab, aa, bb] = cosine_terms(a, b);
    if aa == 0 || bb == 0 {
        return 1.0;
    }
    1.0 - (ab as f64 / ((aa as f64) * (bb as f64)).sqrt()) as f32
}

multiversion! {
    /// The dot product of two code vectors and their squared lengths, in exact integer
    /// arithmetic (the compiler turns the loop into 16-bit multiply-adds).
    fn cosine_terms(a: &[i8], b: &[i8]) -> [i32; 3] => cosine_terms_portable;
    avx512: ["avx512f", "avx512bw"];
    avx2: ["avx2"];
}

#[inline(always)]
fn cosine_terms_portable(a: &[i8], b: &[i8]) -> [i32; 3] {
    const LANES: usize = 32;
    let (mut ab, mut aa, mut bb) = ([0i32; LANES], [0i32; LANES], [0i32; LANES]);
    let body = a.len().min(b.len()) / LANES * LANES;
    for (x, y) in a[..body].chunks_exact(LANES).zip(b[..body].chunks_exact(LANES)) {
        for l in 0..LANES {
            let (x, y) = (i32::from(x[l]), i32::from(y[l]));
            ab[l] += x * y;
            aa[l] += x * x;
            bb[l] += y * y;
        }
    }
    let mut terms = [ab.iter().sum(), aa.iter().sum(), bb.iter().sum::<i32>()];
    for (x, y) in a[body..].iter().zip(&b[body..]) {
        let (x, y) = (i32::from(*x), i32::from(*y));
        terms[0] += x * y;
        terms[1] += x * x;
        terms[2] += y * y;
    }
    terms
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
    fn the_distance_is_one_minus_the_cosine() {
        for dim in [1, 31, 32, 100, 1408] {
            let (a, b) = (codes(1, dim), codes(2, dim));
            let dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let norm = |v: &[i8]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            let expected = 1.0 - dot / (norm(&a) * norm(&b));
            assert!((f64::from(cosine_distance(&a, &b)) - expected).abs() < 1e-6, "{dim}");
            assert!(cosine_distance(&a, &a).abs() < 1e-6);
        }
        assert_eq!(cosine_distance(&[0, 0], &[1, 2]), 1.0);
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

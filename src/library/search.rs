//! Similarity search over the embeddings of one model: an approximate nearest-neighbour index
//! proposes candidates, and their exact embeddings decide the order.
//!
//! The index holds 8-bit codes only, a quarter of the f32 bytes. The exact embeddings stay
//! where they already are (the cache on disk, or this session's photos in memory) and are read
//! for the few candidates of each query.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ann::{AnnError, AnnIndex, key_of, quantise};
use super::cache::ContentHash;

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// A path holding the photo.
    pub path: PathBuf,
    /// The photo's content hash.
    pub hash: ContentHash,
    /// Cosine similarity in [-1, 1].
    pub score: f32,
}

/// Below this many photos a query is compared with every photo in the index (a few
/// milliseconds); from this many on, the index's graph is walked instead.
pub const EXHAUSTIVE_BELOW: usize = 20_000;
/// Candidates beyond the `k` asked for that are re-ranked exactly: the 8-bit scores are within
/// about 1e-3 of the exact ones, so only near-ties this deep could change the order.
pub const EXTRA_CANDIDATES: usize = 40;

/// What a search leaves out.
#[derive(Clone, Copy, Default)]
pub struct Filters<'a> {
    /// A content never returned (the query photo itself).
    pub exclude: Option<&'a ContentHash>,
    /// Only contents this accepts are returned.
    pub keep: Option<&'a (dyn Fn(&ContentHash) -> bool + Sync)>,
}

/// Candidates kept by a graph search for very close neighbours.
const CLOSE_EXPANSION: usize = 48;

/// How hard a search looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// As well as it can: every photo in a small index, a wide graph search in a large one.
    Best,
    /// A wide graph search, whatever the size of the index.
    Wide,
    /// A narrow graph search, enough for neighbours that are very close (near copies).
    Close,
}

/// The approximate index of one model's embeddings, by content hash.
pub struct SimilarityIndex {
    ann: AnnIndex,
    /// The content hash behind each key of the index.
    hashes: HashMap<u64, ContentHash>,
}

impl SimilarityIndex {
    /// An empty index of `dim`-dimensional embeddings.
    pub fn new(dim: usize) -> Result<Self, AnnError> {
        Ok(Self { ann: AnnIndex::new(dim)?, hashes: HashMap::new() })
    }

    /// Loads an index saved by [`Self::save`]. Its keys are not trusted until claimed: see
    /// [`Self::claim`] and [`Self::unclaimed`].
    pub fn load(file: &Path, dim: usize) -> Result<Self, AnnError> {
        Ok(Self { ann: AnnIndex::load(file, dim)?, hashes: HashMap::new() })
    }

    /// Saves the index to `file`, replacing it in one step.
    pub fn save(&self, file: &Path) -> Result<(), AnnError> {
        self.ann.save(file)
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.ann.dim()
    }

    /// Number of photo contents indexed and claimed.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.ann.is_empty()
    }

    /// Vectors in a loaded index that no [`Self::claim`] has accounted for yet.
    pub fn unclaimed(&self) -> usize {
        self.ann.len().saturating_sub(self.hashes.len())
    }

    /// Whether the embedding of `hash` is indexed.
    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.hashes.get(&key_of(hash)) == Some(hash)
    }

    /// Accounts for `hash` in a loaded index: true when its vector is there.
    pub fn claim(&mut self, hash: &ContentHash) -> bool {
        let key = key_of(hash);
        if self.ann.contains(key) {
            self.hashes.insert(key, *hash);
            true
        } else {
            false
        }
    }

    /// The 8-bit codes stored for `hash`.
    pub fn codes(&self, hash: &ContentHash) -> Option<Vec<i8>> {
        self.contains(hash).then(|| self.ann.codes(key_of(hash))).flatten()
    }

    /// Adds or replaces the embedding of a photo content.
    pub fn insert(&mut self, hash: &ContentHash, embedding: &[f32]) -> Result<(), AnnError> {
        // Two contents whose hashes share their first 8 bytes (one chance in 10^10 among a
        // million photos) share a key: the newer one replaces the older.
        let key = key_of(hash);
        self.ann.insert(key, &codes_of(embedding))?;
        self.hashes.insert(key, *hash);
        Ok(())
    }

    /// Adds many embeddings at once, on every core (contents already indexed are replaced).
    pub fn extend(&mut self, embeddings: &[(ContentHash, Vec<f32>)]) -> Result<(), AnnError> {
        use rayon::prelude::*;
        let (known, new): (Vec<_>, Vec<_>) = embeddings.iter().partition(|(hash, _)| self.contains(hash));
        for (hash, embedding) in known {
            self.insert(hash, embedding)?;
        }
        if new.iter().any(|(_, e)| e.len() != self.dim()) {
            return Err(AnnError::width(self.dim()));
        }
        self.ann.reserve(self.ann.len() + new.len())?;
        new.par_iter().try_for_each(|(hash, embedding)| self.ann.insert_new(key_of(hash), &codes_of(embedding)))?;
        self.hashes.extend(new.iter().map(|(hash, _)| (key_of(hash), *hash)));
        Ok(())
    }

    /// Takes a photo content out of the index.
    pub fn remove(&mut self, hash: &ContentHash) -> Result<(), AnnError> {
        if self.contains(hash) {
            let key = key_of(hash);
            self.ann.remove(key)?;
            self.hashes.remove(&key);
        }
        Ok(())
    }

    /// Up to `count` contents nearest `codes` by their 8-bit codes, with approximate scores,
    /// best first; only those `keep` accepts when given.
    pub fn candidates(
        &self,
        codes: &[i8],
        count: usize,
        keep: Option<&(dyn Fn(&ContentHash) -> bool + Sync)>,
        reach: Reach,
    ) -> Result<Vec<(ContentHash, f32)>, AnnError> {
        let exhaustive = reach == Reach::Best && self.ann.len() < EXHAUSTIVE_BELOW;
        // The expansion is the index's own setting: searches at different reaches must not
        // run at the same time (the worker searches from one thread; near_pairs all Close).
        self.ann.set_expansion((reach == Reach::Close).then_some(CLOSE_EXPANSION));
        let found = match keep {
            Some(keep) => {
                let keep_key = |key: u64| self.hashes.get(&key).is_some_and(keep);
                self.ann.search(codes, count, exhaustive, Some(&keep_key))?
            }
            None => self.ann.search(codes, count, exhaustive, None)?,
        };
        Ok(found.into_iter().filter_map(|(key, score)| Some((*self.hashes.get(&key)?, score))).collect())
    }

    /// The `k` contents most similar to `query`, best first, with exact scores: `exact` gives
    /// the embedding of a candidate (contents it has none for are left out). `exclude` (the
    /// query photo itself) and contents `keep` rejects are never returned.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filters: Filters<'_>,
        reach: Reach,
        mut exact: impl FnMut(&ContentHash) -> Option<Vec<f32>>,
    ) -> Result<Vec<(ContentHash, f32)>, AnnError> {
        let Filters { exclude, keep } = filters;
        if query.len() != self.dim() || k == 0 {
            return Ok(Vec::new());
        }
        let query = normalise(query);
        let wanted = k + EXTRA_CANDIDATES + usize::from(exclude.is_some());
        let mut ranked: Vec<(ContentHash, f32)> = self
            .candidates(&quantise(&query).0, wanted, keep, reach)?
            .into_iter()
            .filter(|(hash, _)| Some(hash) != exclude)
            .filter_map(|(hash, _)| Some((hash, dot(&query, &normalise(&exact(&hash)?)))))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        Ok(ranked)
    }
}

/// The 8-bit codes of an embedding's direction.
pub fn codes_of(embedding: &[f32]) -> Vec<i8> {
    quantise(&normalise(embedding)).0
}

/// The vector scaled to unit length (zero stays zero).
pub fn normalise(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm == 0.0 { v.to_vec() } else { v.iter().map(|x| (f64::from(*x) / norm) as f32).collect() }
}

/// Dot product with sixteen independent accumulators, which the compiler turns into SIMD.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let (a_body, a_tail) = a.split_at(a.len() / LANES * LANES);
    let (b_body, b_tail) = b.split_at(a_body.len());
    for (x, y) in a_body.chunks_exact(LANES).zip(b_body.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: usize) -> ContentHash {
        *blake3::hash(&i.to_le_bytes()).as_bytes()
    }

    fn exclude(hash: &ContentHash) -> Filters<'_> {
        Filters { exclude: Some(hash), keep: None }
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn agrees_with_brute_force() {
        let dim = 37;
        let mut index = SimilarityIndex::new(dim).unwrap();
        let vectors: Vec<Vec<f32>> = (0..5000).map(|i| pseudo_random(dim, i as u64)).collect();
        for (i, v) in vectors.iter().enumerate() {
            index.insert(&hash(i), v).unwrap();
        }
        let by_hash: HashMap<ContentHash, usize> = (0..vectors.len()).map(|i| (hash(i), i)).collect();
        let query = &vectors[42];
        let found =
            index.search(query, 10, exclude(&hash(42)), Reach::Best, |h| Some(vectors[by_hash[h]].clone())).unwrap();
        let q = normalise(query);
        let mut brute: Vec<(f32, usize)> =
            (0..vectors.len()).filter(|&i| i != 42).map(|i| (dot(&q, &normalise(&vectors[i])), i)).collect();
        brute.sort_by(|a, b| b.0.total_cmp(&a.0));
        let expected: Vec<usize> = brute.iter().take(10).map(|b| b.1).collect();
        let got: Vec<usize> = found.iter().map(|(h, _)| by_hash[h]).collect();
        assert_eq!(got, expected);
        for ((_, score), b) in found.iter().zip(&brute) {
            assert!((score - b.0).abs() < 1e-5);
        }
    }

    /// Photos come in groups, so the vectors do: a group's centre plus a photo's own offset.
    fn clustered(i: usize, dim: usize) -> Vec<f32> {
        let centre = pseudo_random(dim, 1_000_000 + (i % 100) as u64);
        let offset = pseudo_random(dim, i as u64);
        normalise(&centre.iter().zip(&offset).map(|(c, o)| c + 0.6 * o).collect::<Vec<f32>>())
    }

    #[test]
    fn graph_searches_recall_the_exact_nearest() {
        let (dim, count, k) = (96, 4000, 10);
        let vectors: Vec<Vec<f32>> = (0..count).map(|i| clustered(i, dim)).collect();
        let mut index = SimilarityIndex::new(dim).unwrap();
        index.extend(&(0..count).map(|i| (hash(i), vectors[i].clone())).collect::<Vec<_>>()).unwrap();
        let by_hash: HashMap<ContentHash, usize> = (0..count).map(|i| (hash(i), i)).collect();
        let (mut hits, queries) = (0, 100);
        for q in 0..queries {
            let query = &vectors[q * 37];
            let mut exact: Vec<(f32, usize)> = (0..count).map(|i| (dot(query, &vectors[i]), i)).collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let truth: Vec<usize> = exact[..k].iter().map(|e| e.1).collect();
            let found =
                index.search(query, k, Filters::default(), Reach::Wide, |h| Some(vectors[by_hash[h]].clone())).unwrap();
            hits += found.iter().filter(|(h, _)| truth.contains(&by_hash[h])).count();
        }
        let recall = hits as f64 / (queries * k) as f64;
        assert!(recall >= 0.99, "recall@{k} {recall}");
    }

    #[test]
    fn filters_replacements_and_removals_apply() {
        let mut index = SimilarityIndex::new(2).unwrap();
        let vectors = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]];
        for (i, v) in vectors.iter().enumerate() {
            index.insert(&hash(i), v).unwrap();
        }
        let exact = |h: &ContentHash| (0..3).find(|&i| hash(i) == *h).map(|i| vectors[i].to_vec());
        let only_c = index
            .search(
                &[1.0, 0.0],
                5,
                Filters { exclude: Some(&hash(0)), keep: Some(&|h| *h == hash(2)) },
                Reach::Best,
                exact,
            )
            .unwrap();
        assert_eq!(only_c.iter().map(|m| m.0).collect::<Vec<_>>(), [hash(2)]);
        index.insert(&hash(2), &[1.0, 0.0]).unwrap();
        assert_eq!(index.len(), 3);
        let top = index.search(&[1.0, 0.0], 1, exclude(&hash(0)), Reach::Best, |_| Some(vec![1.0, 0.0])).unwrap();
        assert!((top[0].1 - 1.0).abs() < 1e-6);
        index.remove(&hash(1)).unwrap();
        assert!(!index.contains(&hash(1)));
        let rest = index.search(&[1.0, 0.0], 5, Filters::default(), Reach::Best, |_| Some(vec![1.0, 0.0])).unwrap();
        assert_eq!(rest.len(), 2);
        assert!(index.insert(&hash(4), &[1.0]).is_err(), "another width is refused");
        assert!(index.extend(&[(hash(4), vec![1.0])]).is_err());
        index.extend(&[(hash(5), vec![0.0, 1.0]), (hash(2), vec![0.0, -1.0])]).unwrap();
        assert_eq!(index.len(), 3);
        assert_eq!(index.codes(&hash(2)), Some(codes_of(&[0.0, -1.0])));
    }

    #[test]
    fn a_saved_index_is_trusted_only_for_claimed_contents() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("index.usearch");
        let mut index = SimilarityIndex::new(8).unwrap();
        for i in 0..20 {
            index.insert(&hash(i), &pseudo_random(8, i as u64)).unwrap();
        }
        index.save(&file).unwrap();
        let mut back = SimilarityIndex::load(&file, 8).unwrap();
        assert_eq!((back.len(), back.unclaimed()), (0, 20));
        assert!(back.claim(&hash(3)) && !back.claim(&hash(99)));
        assert_eq!((back.len(), back.unclaimed()), (1, 19));
        assert_eq!(back.codes(&hash(3)), Some(codes_of(&pseudo_random(8, 3))));
        assert_eq!(back.codes(&hash(4)), None, "unclaimed codes are not served");
    }
}

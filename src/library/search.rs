//! Similarity search: cosine similarity over L2-normalised embeddings held in one contiguous
//! matrix, scanned in parallel.
//!
//! Scanning is bound by memory bandwidth, so the scan reads an 8-bit copy of the matrix (one
//! scale per row, a quarter of the bytes) to pick candidates, and the best candidates are then
//! scored exactly against the f32 rows.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;

use rayon::prelude::*;

use super::cache::ContentHash;
use crate::model::cpu::simd::multiversion;

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

/// Embeddings of one model, one row per distinct photo content.
#[derive(Debug, Clone, Default)]
pub struct SimilarityIndex {
    dim: usize,
    rows: Vec<f32>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    keys: Vec<(ContentHash, PathBuf)>,
    by_hash: HashMap<ContentHash, usize>,
}

/// Rows scored per parallel task.
const ROWS_PER_TASK: usize = 2048;
/// Candidates beyond `k` rescored exactly; the 8-bit scores are within about 1e-3 of the exact
/// ones, so only near-ties this deep could change the order.
const EXTRA_CANDIDATES: usize = 64;

impl SimilarityIndex {
    /// An empty index of `dim`-dimensional embeddings.
    pub fn new(dim: usize) -> Self {
        Self { dim, ..Self::default() }
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of photos indexed.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds or replaces the embedding of a photo content. Embeddings of another width are
    /// ignored and reported as `false`.
    pub fn insert(&mut self, hash: ContentHash, path: PathBuf, embedding: &[f32]) -> bool {
        if embedding.len() != self.dim {
            return false;
        }
        let normalised = normalise(embedding);
        let (codes, scale) = quantise(&normalised);
        match self.by_hash.get(&hash) {
            Some(&row) => {
                self.rows[row * self.dim..(row + 1) * self.dim].copy_from_slice(&normalised);
                self.codes[row * self.dim..(row + 1) * self.dim].copy_from_slice(&codes);
                self.scales[row] = scale;
                self.keys[row].1 = path;
            }
            None => {
                self.by_hash.insert(hash, self.keys.len());
                self.keys.push((hash, path));
                self.rows.extend_from_slice(&normalised);
                self.codes.extend_from_slice(&codes);
                self.scales.push(scale);
            }
        }
        true
    }

    /// The normalised embedding of an indexed photo.
    pub fn embedding(&self, hash: &ContentHash) -> Option<&[f32]> {
        self.by_hash.get(hash).map(|&row| &self.rows[row * self.dim..(row + 1) * self.dim])
    }

    /// The `k` photos most similar to `query`, best first, leaving out `exclude` (the query
    /// photo itself) and any photo `keep` rejects.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        exclude: Option<&ContentHash>,
        keep: &(dyn Fn(&ContentHash) -> bool + Sync),
    ) -> Vec<Match> {
        if query.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let query = normalise(query);
        let skip = exclude.and_then(|h| self.by_hash.get(h)).copied();
        let wanted = k + EXTRA_CANDIDATES;
        let (query_codes, query_scale) = quantise(&query);
        let candidates = self
            .codes
            .par_chunks(self.dim * ROWS_PER_TASK)
            .enumerate()
            .map(|(task, block)| {
                let mut heap = BinaryHeap::with_capacity(wanted + 1);
                for (i, codes) in block.chunks_exact(self.dim).enumerate() {
                    let index = task * ROWS_PER_TASK + i;
                    if Some(index) == skip {
                        continue;
                    }
                    let score = dot_codes(&query_codes, codes) as f32 * self.scales[index] * query_scale;
                    if heap.len() < wanted || score > heap.peek().map_or(f32::NEG_INFINITY, |s: &Scored| s.score) {
                        if !keep(&self.keys[index].0) {
                            continue;
                        }
                        heap.push(Scored { score, index });
                        if heap.len() > wanted {
                            heap.pop();
                        }
                    }
                }
                heap
            })
            .reduce(BinaryHeap::new, |mut a, b| {
                for s in b {
                    a.push(s);
                    if a.len() > wanted {
                        a.pop();
                    }
                }
                a
            });
        let mut exact: Vec<Scored> = candidates
            .into_iter()
            .map(|c| Scored {
                score: dot(&query, &self.rows[c.index * self.dim..(c.index + 1) * self.dim]),
                index: c.index,
            })
            .collect();
        exact.sort();
        exact.truncate(k);
        exact
            .into_iter()
            .map(|s| Match { path: self.keys[s.index].1.clone(), hash: self.keys[s.index].0, score: s.score })
            .collect()
    }
}

/// A unit vector as 8-bit codes and the scale that maps them back (`v ≈ code * scale`).
fn quantise(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    (v.iter().map(|x| (x / scale).round() as i8).collect(), scale)
}

multiversion! {
    /// Dot product of two code vectors in exact integer arithmetic, with the widest vector
    /// instructions the CPU has (the compiler turns the loop into 16-bit multiply-adds).
    fn dot_codes(a: &[i8], b: &[i8]) -> i32 => dot_codes_portable;
    avx512: ["avx512f", "avx512bw"];
    avx2: ["avx2"];
}

#[inline(always)]
fn dot_codes_portable(a: &[i8], b: &[i8]) -> i32 {
    const LANES: usize = 64;
    let mut acc = [0i32; LANES];
    let body = a.len() / LANES * LANES;
    for (x, y) in a[..body].chunks_exact(LANES).zip(b[..body].chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += i32::from(x[l]) * i32::from(y[l]);
        }
    }
    let tail: i32 = a[body..].iter().zip(&b[body..]).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
    acc.iter().sum::<i32>() + tail
}

/// A row and its score, ordered so that a max-heap pops the *worst* (lowest score, then
/// highest index) first; sorting ascending therefore yields best first.
#[derive(Debug, Clone, Copy)]
struct Scored {
    score: f32,
    index: usize,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        other.score.total_cmp(&self.score).then(self.index.cmp(&other.index))
    }
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
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&(i as u64).to_le_bytes());
        h
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
        let mut index = SimilarityIndex::new(dim);
        let vectors: Vec<Vec<f32>> = (0..5000).map(|i| pseudo_random(dim, i as u64)).collect();
        for (i, v) in vectors.iter().enumerate() {
            assert!(index.insert(hash(i), PathBuf::from(format!("{i}.jpg")), v));
        }
        let query = &vectors[42];
        let found = index.search(query, 10, Some(&hash(42)), &|_| true);
        let q = normalise(query);
        let mut brute: Vec<(f32, usize)> =
            (0..vectors.len()).filter(|&i| i != 42).map(|i| (dot(&q, &normalise(&vectors[i])), i)).collect();
        brute.sort_by(|a, b| b.0.total_cmp(&a.0));
        let expected: Vec<usize> = brute.iter().take(10).map(|b| b.1).collect();
        let got: Vec<usize> =
            found.iter().map(|m| m.path.to_str().unwrap().trim_end_matches(".jpg").parse().unwrap()).collect();
        assert_eq!(got, expected);
        for (m, b) in found.iter().zip(&brute) {
            assert!((m.score - b.0).abs() < 1e-5);
        }
    }

    #[test]
    fn filters_and_replacements_apply() {
        let mut index = SimilarityIndex::new(2);
        index.insert(hash(1), "a".into(), &[1.0, 0.0]);
        index.insert(hash(2), "b".into(), &[0.9, 0.1]);
        index.insert(hash(3), "c".into(), &[0.0, 1.0]);
        let only_c = index.search(&[1.0, 0.0], 5, Some(&hash(1)), &|h| *h == hash(3));
        assert_eq!(only_c.len(), 1);
        assert_eq!(only_c[0].path, PathBuf::from("c"));
        index.insert(hash(3), "c2".into(), &[1.0, 0.0]);
        assert_eq!(index.len(), 3);
        let top = index.search(&[1.0, 0.0], 1, Some(&hash(1)), &|_| true);
        assert_eq!(top[0].path, PathBuf::from("c2"));
        assert!((top[0].score - 1.0).abs() < 1e-6);
        assert!(!index.insert(hash(4), "d".into(), &[1.0]));
    }
}

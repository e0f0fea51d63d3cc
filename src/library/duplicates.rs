//! Duplicate photos: exact copies (one content hash) and near copies (embeddings whose cosine
//! similarity reaches a threshold), in groups with a suggested photo to keep.
//!
//! Finding them is two steps. [`near_pairs`] asks the similarity index for each content's
//! nearest neighbours, once, down to [`LOWEST_THRESHOLD`]; the caller scores those pairs
//! exactly and builds a [`DuplicateGraph`]. [`DuplicateGraph::groups`] then groups at any
//! threshold from there without searching again, so a slider can regroup live.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;

use super::ann::AnnError;
use super::cache::ContentHash;
use super::search::{Reach, SimilarityIndex, dot};

/// The similarity from which near copies are grouped unless told otherwise. Resized,
/// re-encoded, rotated and slightly cropped copies of a photo score above it and other photos
/// of the same subject below it (README's "Duplicates" gives the measurements).
pub const DEFAULT_THRESHOLD: f32 = 0.95;
/// The lowest threshold offered: pairs below it are never looked at.
pub const LOWEST_THRESHOLD: f32 = 0.80;
/// Neighbours asked of the index per photo; near copies beyond this many are still joined
/// through the ones found.
const NEIGHBOURS: usize = 16;
/// How far below the threshold an approximate (8-bit) score may be and still be checked
/// exactly.
const APPROXIMATE_SLACK: f32 = 0.01;

/// A photo that may have copies, with what decides which copy to keep.
#[derive(Debug, Clone)]
pub struct DuplicatePhoto {
    /// Where the file is.
    pub path: PathBuf,
    /// Its content hash.
    pub hash: ContentHash,
    /// Width in pixels as shown (0 when the header could not be read).
    pub width: u32,
    /// Height in pixels as shown (0 when the header could not be read).
    pub height: u32,
    /// File size in bytes.
    pub bytes: u64,
    /// When it was taken (Unix seconds), or else when the file was last changed.
    pub time: Option<i64>,
    /// Whether `time` is the date taken (else the file's time).
    pub time_is_taken: bool,
    /// The unit-length embedding.
    pub embedding: Arc<[f32]>,
}

impl DuplicatePhoto {
    /// Number of pixels.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Two photos and their cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// One photo, an index into [`DuplicateGraph::photos`].
    pub a: usize,
    /// The other photo.
    pub b: usize,
    /// Their cosine similarity (1 for exact copies).
    pub score: f32,
}

/// Photos and the pairs of them at least [`LOWEST_THRESHOLD`] alike.
#[derive(Debug, Clone, Default)]
pub struct DuplicateGraph {
    /// The photos that have at least one link.
    pub photos: Vec<DuplicatePhoto>,
    /// The pairs, each once.
    pub links: Vec<Link>,
}

/// A photo in a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    /// An index into [`DuplicateGraph::photos`].
    pub photo: usize,
    /// Whether it is the suggested photo to keep.
    pub keep: bool,
    /// Its cosine similarity to the photo to keep (1 for the photo itself and exact copies).
    pub score: f32,
}

/// Photos that are copies of one another: the one to keep first, then the others from the
/// most alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The members, the one to keep first.
    pub members: Vec<Member>,
}

impl DuplicateGraph {
    /// The groups of photos at least `threshold` alike, largest first. Photos joined by links
    /// at the threshold (exact copies always) are candidates; within them, the photo to keep
    /// takes every candidate at least `threshold` alike *to it*, and what is left forms groups
    /// the same way. So every member's score is at least the threshold: a chain of photos each
    /// like the next, whose ends are not alike, does not make one group.
    pub fn groups(&self, threshold: f32) -> Vec<Group> {
        let mut sets = DisjointSets::new(self.photos.len());
        for link in &self.links {
            if link.score >= threshold || self.photos[link.a].hash == self.photos[link.b].hash {
                sets.join(link.a, link.b);
            }
        }
        let mut candidates: HashMap<usize, Vec<usize>> = HashMap::new();
        for photo in 0..self.photos.len() {
            candidates.entry(sets.root(photo)).or_default().push(photo);
        }
        let mut groups: Vec<Group> = Vec::new();
        for mut left in candidates.into_values().filter(|photos| photos.len() > 1) {
            left.sort_by(|&a, &b| keeper_order(&self.photos[a], &self.photos[b]));
            while left.len() > 1 {
                let keeper = left[0];
                let (members, rest): (Vec<Member>, Vec<usize>) = {
                    let mut members = vec![Member { photo: keeper, keep: true, score: 1.0 }];
                    let mut rest = Vec::new();
                    for &photo in &left[1..] {
                        let score = self.score(keeper, photo);
                        if score >= threshold {
                            members.push(Member { photo, keep: false, score });
                        } else {
                            rest.push(photo);
                        }
                    }
                    (members, rest)
                };
                if members.len() > 1 {
                    groups.push(Group::new(members));
                }
                left = rest;
            }
        }
        groups.sort_by(|a, b| {
            b.members
                .len()
                .cmp(&a.members.len())
                .then_with(|| self.photos[a.members[0].photo].path.cmp(&self.photos[b.members[0].photo].path))
        });
        groups
    }

    /// The cosine similarity of two photos (1 for exact copies).
    fn score(&self, a: usize, b: usize) -> f32 {
        let (a, b) = (&self.photos[a], &self.photos[b]);
        if a.hash == b.hash { 1.0 } else { dot(&a.embedding, &b.embedding).min(1.0) }
    }
}

impl Group {
    /// A group from its members, the one to keep first: the others are put in order, most
    /// alike first.
    fn new(mut members: Vec<Member>) -> Self {
        members[1..].sort_by(|a, b| b.score.total_cmp(&a.score).then(a.photo.cmp(&b.photo)));
        Self { members }
    }
}

/// The order in which copies are suggested for keeping: most pixels, then the largest file,
/// then the oldest, then by path.
pub fn keeper_order(a: &DuplicatePhoto, b: &DuplicatePhoto) -> Ordering {
    b.pixels()
        .cmp(&a.pixels())
        .then(b.bytes.cmp(&a.bytes))
        .then_with(|| match (a.time, b.time) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.path.cmp(&b.path))
}

/// Pairs of `contents` (indices into it, the smaller first, each pair once) whose approximate
/// similarity is near `floor` or above, from each content's nearest neighbours in `index`,
/// searched in parallel. The caller scores them exactly. Contents not in the index are skipped.
pub fn near_pairs(
    index: &SimilarityIndex,
    contents: &[ContentHash],
    floor: f32,
) -> Result<Vec<(usize, usize)>, AnnError> {
    let position: HashMap<ContentHash, usize> = contents.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let in_set = |hash: &ContentHash| position.contains_key(hash);
    // A filter makes every step of the graph search call back; it is needed only when the
    // photos looked among are a small part of the index.
    let keep: Option<&(dyn Fn(&ContentHash) -> bool + Sync)> =
        if contents.len() * 2 < index.len() { Some(&in_set) } else { None };
    let per_content: Vec<Vec<(usize, usize)>> = contents
        .par_iter()
        .enumerate()
        .map(|(i, hash)| {
            let Some(codes) = index.codes(hash) else { return Ok(Vec::new()) };
            let found = index.candidates(&codes, NEIGHBOURS + 1, keep, Reach::Close)?;
            Ok(found
                .into_iter()
                .filter(|(_, score)| *score >= floor - APPROXIMATE_SLACK)
                .filter_map(|(other, _)| position.get(&other).copied())
                .filter(|&j| j != i)
                .map(|j| (i.min(j), i.max(j)))
                .collect())
        })
        .collect::<Result<_, AnnError>>()?;
    let mut pairs: Vec<(usize, usize)> = per_content.into_iter().flatten().collect();
    pairs.sort_unstable();
    pairs.dedup();
    Ok(pairs)
}

/// Union-find over photo indices, with path halving and union by size.
struct DisjointSets {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl DisjointSets {
    fn new(count: usize) -> Self {
        Self { parent: (0..count).collect(), size: vec![1; count] }
    }

    fn root(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn join(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.root(a), self.root(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::search::normalise;

    fn photo(name: &str, content: u8, size: (u32, u32), bytes: u64, time: Option<i64>, v: &[f32]) -> DuplicatePhoto {
        DuplicatePhoto {
            path: PathBuf::from(name),
            hash: [content; 32],
            width: size.0,
            height: size.1,
            bytes,
            time,
            time_is_taken: time.is_some(),
            embedding: normalise(v).into(),
        }
    }

    fn link(a: usize, b: usize, graph: &DuplicateGraph) -> Link {
        Link { a, b, score: dot(&graph.photos[a].embedding, &graph.photos[b].embedding) }
    }

    #[test]
    fn groups_follow_the_threshold_and_keep_the_largest_photo() {
        let mut graph = DuplicateGraph {
            photos: vec![
                photo("small.jpg", 1, (800, 600), 90_000, Some(10), &[1.0, 0.05, 0.0]),
                photo("full.jpg", 2, (4000, 3000), 3_000_000, Some(20), &[1.0, 0.0, 0.0]),
                photo("copy-of-full.jpg", 2, (4000, 3000), 3_000_000, Some(5), &[1.0, 0.0, 0.0]),
                photo("other.jpg", 3, (4000, 3000), 2_000_000, None, &[0.8, 0.6, 0.0]),
            ],
            links: Vec::new(),
        };
        graph.links = vec![link(0, 1, &graph), link(1, 2, &graph), link(1, 3, &graph)];
        let groups = graph.groups(0.95);
        assert_eq!(groups.len(), 1);
        let names: Vec<&str> = groups[0].members.iter().map(|m| graph.photos[m.photo].path.to_str().unwrap()).collect();
        // Same pixels and bytes: the older copy is kept; the exact copy scores 1.
        assert_eq!(names, ["copy-of-full.jpg", "full.jpg", "small.jpg"]);
        assert!(groups[0].members[0].keep && !groups[0].members[1].keep);
        assert_eq!(groups[0].members[1].score, 1.0);
        assert!((groups[0].members[2].score - 0.99875).abs() < 1e-4);

        let loose = graph.groups(0.80);
        assert_eq!(loose[0].members.len(), 4, "a lower threshold takes in the other photo");
        // Exact copies stay together at any threshold.
        let strict = graph.groups(1.0);
        assert_eq!(strict.len(), 1);
        assert_eq!(strict[0].members.len(), 2);
    }

    #[test]
    fn a_chain_of_alike_photos_whose_ends_differ_is_not_one_group() {
        // a~b and b~c at about 0.96, a~c at about 0.85: c does not join a's group.
        let angle = |degrees: f32| [degrees.to_radians().cos(), degrees.to_radians().sin()];
        let mut graph = DuplicateGraph {
            photos: vec![
                photo("a.jpg", 1, (40, 30), 9, None, &angle(0.0)),
                photo("b.jpg", 2, (20, 15), 9, None, &angle(16.0)),
                photo("c.jpg", 3, (10, 8), 9, None, &angle(32.0)),
                photo("d.jpg", 4, (10, 8), 8, None, &angle(46.0)),
            ],
            links: Vec::new(),
        };
        graph.links = vec![link(0, 1, &graph), link(1, 2, &graph), link(2, 3, &graph)];
        let groups = graph.groups(0.95);
        let names: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.members.iter().map(|m| graph.photos[m.photo].path.to_str().unwrap()).collect())
            .collect();
        assert_eq!(names, [["a.jpg", "b.jpg"], ["c.jpg", "d.jpg"]]);
        assert!(groups.iter().flat_map(|g| &g.members).all(|m| m.score >= 0.95));
    }

    #[test]
    fn keepers_are_chosen_by_pixels_then_bytes_then_age() {
        let v = [1.0];
        let big = photo("b.jpg", 1, (20, 20), 10, None, &v);
        let small = photo("a.jpg", 2, (10, 10), 99, Some(1), &v);
        assert_eq!(keeper_order(&big, &small), Ordering::Less);
        let heavier = photo("c.jpg", 3, (20, 20), 11, None, &v);
        assert_eq!(keeper_order(&heavier, &big), Ordering::Less);
        let dated = photo("d.jpg", 4, (20, 20), 10, Some(5), &v);
        let older = photo("e.jpg", 5, (20, 20), 10, Some(4), &v);
        assert_eq!(keeper_order(&older, &dated), Ordering::Less);
        assert_eq!(keeper_order(&dated, &big), Ordering::Less, "a known time comes before none");
    }

    #[test]
    fn near_pairs_finds_close_contents_once() {
        let mut index = SimilarityIndex::new(3).unwrap();
        let vectors = [[1.0, 0.0, 0.0], [0.99, 0.05, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let contents: Vec<ContentHash> = (0..4u8).map(|i| [i; 32]).collect();
        for (hash, v) in contents.iter().zip(&vectors) {
            index.insert(hash, v).unwrap();
        }
        assert_eq!(near_pairs(&index, &contents, 0.9).unwrap(), [(0, 1)]);
        // Contents outside the set are not paired.
        assert!(near_pairs(&index, &contents[1..], 0.9).unwrap().is_empty());
    }
}

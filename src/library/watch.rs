//! How a long piece of work (moving thousands of photos to the trash, building the similarity
//! index) says how far it has got, and learns that it is to stop.

use std::sync::atomic::{AtomicBool, Ordering};

/// A long task's link to whoever waits for it.
#[derive(Clone, Copy)]
pub struct Watch<'a> {
    stop: &'a AtomicBool,
    report: &'a dyn Fn(usize, usize),
}

impl<'a> Watch<'a> {
    /// A task that ends early once `stop` is set, and tells `report` how many of how many
    /// items are done.
    pub fn new(stop: &'a AtomicBool, report: &'a dyn Fn(usize, usize)) -> Self {
        Self { stop, report }
    }

    /// Says that `done` of `total` items are done; returns whether to go on.
    pub fn progress(&self, done: usize, total: usize) -> bool {
        (self.report)(done, total);
        !self.stopped()
    }

    /// Whether the task is to stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

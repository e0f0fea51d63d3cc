//! Where a forward pass spends its time, for `evatag bench`: the wall time of the matrix
//! products (the linear layers) and of attention, summed while [`measure`] runs. The kernels
//! run one after another, each spread over the threads, so the spans add up; the rest of the
//! pass (norms, embeddings, copies) is the remainder.
//!
//! Kernels are called on the thread that runs the forward pass (each spreads its own work over
//! the threads), so the timing is per calling thread: [`measure`] times what its own thread
//! runs, and tests running side by side do not mix. Off unless [`measure`] is running: a
//! kernel then pays one thread-local read.

use std::cell::Cell;
use std::time::Instant;

/// A part of the forward pass that is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The linear layers' matrix products (with their bias and GELU).
    MatrixProducts,
    /// Attention: scores, softmax and the weighted sum of values.
    Attention,
}

thread_local! {
    /// The seconds spent so far in each part, while [`measure`] runs on this thread.
    static SPENT: Cell<Option<Spent>> = const { Cell::new(None) };
}

/// Seconds spent in each timed part.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Spent {
    /// In the matrix products.
    pub(crate) matrix_products: f64,
    /// In attention.
    pub(crate) attention: f64,
}

/// Runs `kernel`, adding its wall time to `part` while [`measure`] runs.
pub(crate) fn timed<R>(part: Part, kernel: impl FnOnce() -> R) -> R {
    if SPENT.with(Cell::get).is_none() {
        return kernel();
    }
    let started = Instant::now();
    let result = kernel();
    let seconds = started.elapsed().as_secs_f64();
    SPENT.with(|spent| {
        spent.set(spent.get().map(|mut spent| {
            match part {
                Part::MatrixProducts => spent.matrix_products += seconds,
                Part::Attention => spent.attention += seconds,
            }
            spent
        }))
    });
    result
}

/// Runs `f` with the kernels it calls on this thread timed, and returns its result with the
/// time they took.
pub(crate) fn measure<R>(f: impl FnOnce() -> R) -> (R, Spent) {
    struct Restore(Option<Spent>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SPENT.with(|spent| spent.set(self.0));
        }
    }
    let _restore = Restore(SPENT.with(|spent| spent.replace(Some(Spent::default()))));
    let result = f();
    (result, SPENT.with(Cell::get).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_runs_inside_measure_is_counted_and_each_part_apart() {
        let sleep = |ms| std::thread::sleep(std::time::Duration::from_millis(ms));
        timed(Part::MatrixProducts, || sleep(200));
        let (value, spent) = measure(|| {
            timed(Part::MatrixProducts, || sleep(20));
            timed(Part::Attention, || sleep(10));
            7
        });
        assert_eq!(value, 7);
        assert!(spent.matrix_products >= 0.020, "{spent:?}");
        assert!(spent.attention >= 0.010, "{spent:?}");
        // The sleep of 200 ms before measuring is not in it.
        assert!(spent.matrix_products < 0.2, "{spent:?}");
        timed(Part::Attention, || sleep(5));
        let ((), later) = measure(|| ());
        assert_eq!(later, Spent::default(), "nothing ran inside the second measure");
    }
}

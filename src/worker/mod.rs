//! The background thread that owns the model.
//!
//! [`Command`]s go in and [`Event`]s come out over crossbeam channels; nothing here ever
//! blocks the caller. Inside, a scanner thread walks the given paths, a small pool of decoder
//! threads reads, hashes, looks up and preprocesses files ahead of the model ([`pipeline`]),
//! a loader thread finds and loads the model ([`loader`]), and the worker thread itself
//! ([`engine`]) runs batches through the model, writes results to the cache one transaction
//! per batch, and answers similarity queries ([`similar`]). The queues that carry photos
//! (paths to the decoders, decoded images to the model) are bounded, so memory stays flat for
//! any folder size; commands and events are few and small.

mod duplicates;
mod engine;
mod loader;
mod pipeline;
mod protocol;
mod similar;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, unbounded};

pub use protocol::{
    Command, Event, LibraryError, ModelError, ModelSpeed, ModelStatus, PhotoError, PhotoErrorKind, Progress, Tagged,
    Task, WorkerConfig,
};

/// Handle on the background worker.
pub struct Worker {
    commands: Sender<Command>,
    events: Receiver<Event>,
    /// Set by [`Worker::cancel`] and read by long tasks, which cannot read commands while
    /// they run.
    interrupt: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker; it begins locating and loading the model at once. `wake` is called
    /// after every event (a GUI passes its repaint request).
    pub fn spawn(config: WorkerConfig, wake: Box<dyn Fn() + Send + Sync>) -> Self {
        Self::start(config, wake, None)
    }

    /// Stops this worker and starts another in its place, which loads its model only once
    /// this one has ended and released its own (a device or precision change on a small
    /// computer must not hold two models at once).
    pub fn restart(&mut self, config: WorkerConfig, wake: Box<dyn Fn() + Send + Sync>) {
        self.send(Command::Shutdown);
        let predecessor = self.thread.take();
        *self = Self::start(config, wake, predecessor);
    }

    fn start(config: WorkerConfig, wake: Box<dyn Fn() + Send + Sync>, predecessor: Option<JoinHandle<()>>) -> Self {
        let (commands, command_rx) = unbounded();
        let (event_tx, events) = unbounded();
        let notifier = Notifier { events: event_tx, wake: Arc::from(wake) };
        let interrupt = Arc::new(AtomicBool::new(false));
        let engine = engine::Engine::new(config, notifier, command_rx, interrupt.clone(), predecessor);
        let thread = std::thread::Builder::new()
            .name("evatag-worker".into())
            .spawn(move || engine.run())
            .expect("spawning the worker thread");
        Self { commands, events, interrupt, thread: Some(thread) }
    }

    /// Stops the running job: the tagging, and a long task (index build, trash move) between
    /// two of its items.
    pub fn cancel(&self) {
        self.interrupt.store(true, Ordering::SeqCst);
        self.send(Command::Cancel);
    }

    /// Sends a command; a stopped worker ignores it.
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// The stream of events.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Asks the worker to stop and waits for it (at most the batch in flight).
    pub fn shutdown(mut self) {
        self.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.send(Command::Shutdown);
    }
}

/// Sends events and wakes the receiver.
#[derive(Clone)]
struct Notifier {
    events: Sender<Event>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Notifier {
    /// Sends one event and wakes the receiver.
    fn send(&self, event: Event) {
        let _ = self.events.send(event);
        (self.wake)();
    }
}

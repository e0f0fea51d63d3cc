//! Keeps the CPUs busy between the short parallel steps of a forward pass.
//!
//! A forward pass of EVA-giant is about 500 parallel steps (products, attention, norms), and
//! rayon's workers park between them. On a virtual machine a parked vCPU halts, and the
//! hypervisor may give its physical core to another guest, so every step can start late.
//! OpenMP runtimes avoid this by spinning between parallel regions. Here, while a pass runs,
//! one idle-priority thread per worker spins instead: the CPU stays busy, and the scheduler
//! runs the spinner only when no real work wants that CPU. On the 2-core development VM,
//! low-priority spinners took batch-1 inference from 4.83 to 4.90 s per image down to 3.77 to
//! 4.07 s; these ones, in a slower hour, from 7.88 and 5.65 s down to 6.70 and 4.96 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Idle-priority spinning threads that run until dropped.
pub struct KeepAwake {
    stop: Arc<AtomicBool>,
    spinners: Vec<JoinHandle<()>>,
}

impl KeepAwake {
    /// Starts `threads` spinners. Where idle priority is unavailable (not Linux) it starts
    /// none, since a spinner at normal priority would take time from the real work.
    pub fn start(threads: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = if cfg!(target_os = "linux") { threads } else { 0 };
        let spinners = (0..threads)
            .filter_map(|i| {
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name(format!("evatag-keep-awake-{i}"))
                    .spawn(move || {
                        if lower_to_idle_priority() {
                            // No `spin_loop` hint: hypervisors take a run of PAUSE
                            // instructions for a waiting vCPU and deschedule it.
                            while !stop.load(Ordering::Relaxed) {}
                        }
                    })
                    .ok()
            })
            .collect();
        Self { stop, spinners }
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for spinner in self.spinners.drain(..) {
            // A spinner only loops and returns; there is no panic to report.
            let _ = spinner.join();
        }
    }
}

/// Moves the calling thread to the `SCHED_IDLE` policy; true on success.
#[cfg(target_os = "linux")]
fn lower_to_idle_priority() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; `param` is a valid, initialised struct.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn lower_to_idle_priority() -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The scheduling policies of this process's keep-awake threads, found by name in /proc.
    fn spinner_policies() -> Vec<i32> {
        let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task is readable");
        tasks
            .filter_map(|task| {
                let task = task.ok()?;
                let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
                // Thread names are cut to 15 bytes in /proc.
                name.starts_with("evatag-keep-awa").then_some(())?;
                let tid: i32 = task.file_name().to_str()?.parse().ok()?;
                // SAFETY: a plain query of a thread id's policy.
                Some(unsafe { libc::sched_getscheduler(tid) })
            })
            .collect()
    }

    #[test]
    fn spinners_run_at_idle_priority_and_stop_when_dropped() {
        let keep_awake = KeepAwake::start(2);
        assert_eq!(keep_awake.spinners.len(), 2);
        // The spinners lower their own priority as they start; give them a moment. (Other
        // tests' forward passes may run spinners of their own at the same time.)
        let all_idle = |policies: Vec<i32>| policies.len() >= 2 && policies.iter().all(|&p| p == libc::SCHED_IDLE);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_idle(spinner_policies()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(all_idle(spinner_policies()), "{:?}", spinner_policies());
        // Dropping joins the spinners, so it returns only once they have stopped.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(keep_awake);
            let _ = done.send(());
        });
        assert!(finished.recv_timeout(Duration::from_secs(5)).is_ok(), "spinners still running after drop");
    }
}

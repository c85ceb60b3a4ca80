//! Liveness of the write path, for `/healthz`: counters of work started and finished, and when
//! work last finished. A path that has work in flight and has finished nothing for longer than a
//! bound is *stalled*: a supervisor (systemd's watchdog, Kubernetes' liveness probe) sees it as a
//! 503 instead of a process that answers health checks while every ingest hangs.
//!
//! Reading a report takes no lock, so a health check answers even when the paths it watches hang.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Work started and finished on one path (the ingest requests, the writer's commits).
#[derive(Debug)]
pub struct Progress {
    origin: Instant,
    started: AtomicU64,
    finished: AtomicU64,
    /// Milliseconds after `origin` when work last finished (or when counting began).
    last_finished_ms: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            origin: Instant::now(),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            last_finished_ms: AtomicU64::new(0),
        }
    }
}

/// One path's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ProgressReport {
    /// Work started and not finished yet.
    pub in_flight: u64,
    /// Work finished since start.
    pub finished: u64,
    /// Time since work last finished while work is in flight, in ms; 0 when idle.
    pub waiting_ms: u64,
}

impl ProgressReport {
    /// Whether work is in flight and nothing finished for longer than `bound`.
    pub fn stalled(&self, bound: Duration) -> bool {
        self.in_flight > 0 && u128::from(self.waiting_ms) > bound.as_millis()
    }
}

impl Progress {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts `n` pieces of work as started.
    pub fn start(&self, n: u64) {
        // A path that was idle starts its waiting time now, not at its last finish long ago.
        if self.started.load(Ordering::Acquire) == self.finished.load(Ordering::Acquire) {
            self.last_finished_ms
                .store(self.now_ms(), Ordering::Release);
        }
        self.started.fetch_add(n, Ordering::AcqRel);
    }

    /// Counts `n` pieces of work as finished (successfully or not).
    pub fn finish(&self, n: u64) {
        self.last_finished_ms
            .store(self.now_ms(), Ordering::Release);
        self.finished.fetch_add(n, Ordering::AcqRel);
    }

    /// Starts one piece of work, finished when the guard drops (also on an error or a panic).
    pub fn guard(&self) -> ProgressGuard<'_> {
        self.start(1);
        ProgressGuard(self)
    }

    pub fn report(&self) -> ProgressReport {
        let finished = self.finished.load(Ordering::Acquire);
        let started = self.started.load(Ordering::Acquire);
        let in_flight = started.saturating_sub(finished);
        let waiting_ms = if in_flight == 0 {
            0
        } else {
            self.now_ms()
                .saturating_sub(self.last_finished_ms.load(Ordering::Acquire))
        };
        ProgressReport {
            in_flight,
            finished,
            waiting_ms,
        }
    }
}

/// Finishes one piece of work of a [`Progress`] when dropped.
#[derive(Debug)]
pub struct ProgressGuard<'a>(&'a Progress);

impl Drop for ProgressGuard<'_> {
    fn drop(&mut self) {
        self.0.finish(1);
    }
}

/// The write path's health: the ingest requests and the writer thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WritePathHealth {
    /// `true` when neither path is stalled.
    pub ok: bool,
    pub ingest: ProgressReport,
    pub writer: ProgressReport,
    /// The bound after which work in flight without progress counts as stalled, in seconds.
    pub stall_after_s: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_is_never_stalled_and_waiting_counts_from_the_last_finish() {
        let p = Progress::default();
        let r = p.report();
        assert_eq!((r.in_flight, r.waiting_ms), (0, 0));
        assert!(!r.stalled(Duration::ZERO));
        {
            let _g = p.guard();
            std::thread::sleep(Duration::from_millis(30));
            let r = p.report();
            assert_eq!(r.in_flight, 1);
            assert!(r.waiting_ms >= 30, "{r:?}");
            assert!(r.stalled(Duration::from_millis(10)));
            assert!(!r.stalled(Duration::from_secs(10)));
        }
        let r = p.report();
        assert_eq!((r.in_flight, r.finished, r.waiting_ms), (0, 1, 0));
    }

    #[test]
    fn progress_on_other_work_keeps_a_busy_path_healthy() {
        let p = Progress::default();
        let _long = p.guard();
        std::thread::sleep(Duration::from_millis(20));
        drop(p.guard());
        let r = p.report();
        assert_eq!(r.in_flight, 1);
        assert!(r.waiting_ms < 20, "{r:?}");
    }
}

//! The single writer: one OS thread owns all writes of samples and events to the store and commits
//! whatever has queued up since the last commit as one transaction (group commit); records, audit
//! entries and inspection results are written by their callers on blocking threads. Each submitter gets its acknowledgement
//! only after the commit that contains its data has returned, i.e. after it is durable.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Instant;

use gemba_core::Sample;
use gemba_store::{SignalId, Store, WriteBatch, WriteReceipt};
use parking_lot::RwLock;
use std::collections::HashMap;
use tokio::sync::oneshot;

use crate::EngineError;
use crate::alarms::Tap;
use crate::metrics::Metrics;
use crate::progress::Progress;

type Ack = oneshot::Sender<Result<WriteReceipt, String>>;

struct Job {
    batch: WriteBatch,
    ack: Ack,
}

/// Latest sample of each signal, kept in memory for the `latest` query.
pub type LatestCache = RwLock<HashMap<SignalId, Sample>>;

/// Handle to the writer thread. Dropping every handle stops the thread after it drained its queue.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: SyncSender<Job>,
    /// Jobs queued and committed (or failed): the writer's liveness for `/healthz`.
    progress: Arc<Progress>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("points", &self.batch.point_count())
            .finish()
    }
}

impl Writer {
    /// Starts the writer thread.
    pub fn start(
        store: Arc<dyn Store>,
        latest: Arc<LatestCache>,
        metrics: Arc<Metrics>,
        max_points: usize,
        tap: Arc<Tap>,
    ) -> Result<(Writer, JoinHandle<()>), EngineError> {
        let (tx, rx) = mpsc::sync_channel::<Job>(1024);
        let progress = Arc::new(Progress::default());
        let p = progress.clone();
        let handle = std::thread::Builder::new()
            .name("gemba-writer".into())
            .spawn(move || run(store, latest, metrics, rx, max_points, tap, &p))
            .map_err(|e| EngineError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok((Writer { tx, progress }, handle))
    }

    /// Jobs queued and committed so far.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Queues a batch and waits until it is durable.
    pub async fn write(&self, batch: WriteBatch) -> Result<WriteReceipt, EngineError> {
        let (ack, rx) = oneshot::channel();
        let mut job = Job { batch, ack };
        // Counted from here: a full queue behind a stuck writer is a stall too.
        self.progress.start(1);
        // The queue is bounded; when it is full, wait without blocking the runtime.
        loop {
            match self.tx.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(j)) => {
                    job = j;
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.progress.finish(1);
                    return Err(EngineError::ShuttingDown);
                }
            }
        }
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(msg)) => Err(EngineError::Storage(msg)),
            Err(_) => Err(EngineError::ShuttingDown),
        }
    }

    /// Queues a batch without waiting for it (derived data: alarm scores and events). Blocks
    /// only while the queue is full.
    pub fn write_detached(&self, batch: WriteBatch) {
        let (ack, _rx) = oneshot::channel();
        self.progress.start(1);
        if self.tx.send(Job { batch, ack }).is_err() {
            self.progress.finish(1);
            tracing::warn!("derived data dropped: the writer has stopped");
        }
    }

    /// Queues a batch and blocks the current (non-async) thread until it is durable.
    pub fn write_blocking(&self, batch: WriteBatch) -> Result<WriteReceipt, EngineError> {
        let (ack, rx) = oneshot::channel();
        self.progress.start(1);
        self.tx.send(Job { batch, ack }).map_err(|_| {
            self.progress.finish(1);
            EngineError::ShuttingDown
        })?;
        match rx.blocking_recv() {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(msg)) => Err(EngineError::Storage(msg)),
            Err(_) => Err(EngineError::ShuttingDown),
        }
    }
}

fn run(
    store: Arc<dyn Store>,
    latest: Arc<LatestCache>,
    metrics: Arc<Metrics>,
    rx: Receiver<Job>,
    max_points: usize,
    tap: Arc<Tap>,
    progress: &Progress,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut points = jobs[0].batch.point_count();
        while points < max_points {
            match rx.try_recv() {
                Ok(j) => {
                    points += j.batch.point_count();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let mut merged = WriteBatch::default();
        let mut acks = Vec::with_capacity(jobs.len());
        for j in jobs {
            merged.series.extend(j.batch.series);
            merged.events.extend(j.batch.events);
            acks.push(j.ack);
        }
        let started = Instant::now();
        let result = store.write(&merged);
        metrics.observe_commit(started.elapsed().as_secs_f64());
        progress.finish(acks.len() as u64);
        match result {
            Ok(receipt) => {
                update_latest(&latest, &merged);
                tap.committed(&merged);
                tracing::trace!(
                    points = receipt.points,
                    events = receipt.events,
                    requests = acks.len(),
                    "committed"
                );
                for ack in acks {
                    // The submitter may have gone away (client disconnected): its data is stored anyway.
                    let _ = ack.send(Ok(receipt));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, requests = acks.len(), "commit failed; nothing of these requests is acknowledged");
                metrics.commit_failures.inc();
                for ack in acks {
                    let _ = ack.send(Err(msg.clone()));
                }
            }
        }
    }
}

fn update_latest(latest: &LatestCache, batch: &WriteBatch) {
    let mut map = latest.write();
    for s in &batch.series {
        if let Some(newest) = s.samples.iter().max_by_key(|x| x.ts) {
            match map.get_mut(&s.signal) {
                Some(cur) if cur.ts > newest.ts => {}
                Some(cur) => *cur = *newest,
                None => {
                    map.insert(s.signal, *newest);
                }
            }
        }
    }
}

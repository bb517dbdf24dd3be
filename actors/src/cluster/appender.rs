//! Appends records to the cluster's log with publisher confirms: an append is answered once
//! the broker confirmed the record that carries it (it is then durable in the stream), or
//! with why it cannot be.
//!
//! A cheap, cloneable handle shared by the HTTP routes (on every worker thread), the event
//! consumers and the log reader. The [`BrokerLink`](crate::consumers::BrokerLink) gives it a
//! channel in confirm mode after each (re)connection ([`LogAppender::attach`]) and takes it
//! away when the connection is lost ([`LogAppender::detach`]); without one, an append fails
//! at once with [`AppendError::Unavailable`], so callers answer `503` (HTTP) or requeue
//! (events) instead of waiting.
//!
//! **One writer, records in order.** Appends are queued, in the order they are made, to one
//! task on the link's arbiter, which publishes them as records: at most one per
//! `CLUSTER_APPEND_INTERVAL_MS` (default 1 ms), and at most [`IN_FLIGHT`] waiting for their
//! confirm. What is queued meanwhile goes into the next record together
//! ([`batch`](super::batch)). An append after a quiet spell leaves at once; under load the
//! records come one per interval, each carrying what the interval gathered, which is what
//! keeps the broker's work per push small with several nodes reading the log (each record
//! costs the broker a publish and a delivery per node, whatever it holds).
//! [`LogAppender::submit`] queues and returns at once ([`PendingAppend`] says when the
//! pushes are in), so the event consumer goes on with its next delivery; an append queued
//! longer than [`CONFIRM_TIMEOUT`] without being published fails instead of going out late.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::future::{self, FutureExt};
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation};

use super::batch::{next_record, Append, EncodedPushes, NextRecord, Unwritable};
use super::record::{DeviceChange, LogRecord, RecordError, RecordedPush};
use crate::metrics::Metrics;

/// The longest wait for the broker's confirm of one record, and for an append to be published.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// How many records may wait for their confirm at once: enough that a slow confirm does not
/// hold the appends back (they go on, one record per interval), few enough that a stuck
/// broker is noticed by the records' timeouts before much piles up.
pub const IN_FLIGHT: usize = 4;

/// Why a record is not in the log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// No broker connection right now.
    #[error("the cluster's log is unreachable (no broker connection)")]
    Unavailable,
    /// The record cannot be written.
    #[error("the record cannot be written: {0}")]
    Record(#[from] RecordError),
    /// Publishing failed (channel or connection lost meanwhile).
    #[error("appending to the cluster's log failed: {0}")]
    Publish(#[source] lapin::Error),
    /// The broker refused the record (nack), or returned it (the stream is missing).
    #[error("the broker did not take the record (nacked or returned)")]
    Nacked,
    /// No confirm within [`CONFIRM_TIMEOUT`].
    #[error("the broker did not confirm the record within {CONFIRM_TIMEOUT:?}")]
    TimedOut,
}

/// Who waits for an append: when it was queued, and where its answer goes.
struct Waiter {
    queued: Instant,
    answer: oneshot::Sender<Result<(), AppendError>>,
}

impl Waiter {
    fn answer(self, result: Result<(), AppendError>) {
        // The caller may have stopped waiting (an HTTP client gone): nothing to tell.
        let _ = self.answer.send(result);
    }
}

/// What the appending task shares with the handles.
struct Shared {
    /// The stream's name (published to through the default exchange).
    stream: String,
    /// This node process, written into each pushes record.
    origin: String,
    channel: Mutex<Option<Channel>>,
    /// The task's end of the queue, until the first attach starts the task.
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Append<Waiter>>>>,
    /// The least time between two records (`CLUSTER_APPEND_INTERVAL_MS`).
    interval: Duration,
    /// Counts the records and the appends they carried.
    metrics: Arc<Metrics>,
}

/// See the module doc.
#[derive(Clone)]
pub struct LogAppender {
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Append<Waiter>>,
}

impl LogAppender {
    /// An appender to the stream `stream` for the node process `origin` that appends at most
    /// one record per `interval`, counting into `metrics`, without a channel yet.
    pub fn new(stream: &str, origin: &str, interval: Duration, metrics: Arc<Metrics>) -> Self {
        let (queue, receiver) = mpsc::unbounded();
        LogAppender {
            shared: Arc::new(Shared {
                stream: stream.to_owned(),
                origin: origin.to_owned(),
                channel: Mutex::default(),
                receiver: Mutex::new(Some(receiver)),
                interval,
                metrics,
            }),
            queue,
        }
    }

    /// Append through `channel` (already in confirm mode) from now on. The first attach
    /// starts the appending task on the current arbiter.
    pub fn attach(&self, channel: Channel) {
        *self.shared.channel.lock().expect("appender lock") = Some(channel);
        if let Some(receiver) = self.shared.receiver.lock().expect("appender lock").take() {
            actix::spawn(run(self.shared.clone(), receiver));
        }
    }

    /// Stop appending: the connection is gone.
    pub fn detach(&self) {
        *self.shared.channel.lock().expect("appender lock") = None;
    }

    /// Whether it has a channel that is still open.
    pub fn is_attached(&self) -> bool {
        self.shared.current().is_some()
    }

    /// Append `record` in its place among the appends; `Ok` once the broker confirmed the
    /// record that carries it.
    pub async fn append(&self, record: &LogRecord) -> Result<(), AppendError> {
        self.submit_record(record)?.confirmed().await
    }

    /// Queue `record` for the log, after every append queued before it (a mark, session
    /// record or fence may share a record with the ones queued next to it, pushes with
    /// pushes); `Err` at once when there is no broker connection or it cannot be written.
    pub fn submit_record(&self, record: &LogRecord) -> Result<PendingAppend, AppendError> {
        match record {
            LogRecord::Pushes {
                pushes, devices, ..
            } => {
                let part = EncodedPushes::new(pushes, devices.clone())?;
                self.enqueue(|waiter| Append::Pushes(part, waiter))
            }
            LogRecord::Several(_) => {
                let bytes = record.encode()?;
                self.enqueue(|waiter| Append::Alone(bytes, waiter))
            }
            LogRecord::Mark { .. } | LogRecord::Session { .. } | LogRecord::Fence { .. } => {
                let bytes = record.encode()?;
                self.enqueue(|waiter| Append::Whole(bytes, waiter))
            }
        }
    }

    /// Queue `pushes`, with the device status change behind them, for the log: they go into
    /// the next record this node appends, after every append queued before them. `Err` at
    /// once when there is no broker connection or they cannot be written; otherwise
    /// [`PendingAppend::confirmed`] says when they are in.
    pub fn submit(
        &self,
        pushes: &[RecordedPush],
        device: Option<DeviceChange>,
    ) -> Result<PendingAppend, AppendError> {
        let part = EncodedPushes::new(pushes, device.into_iter().collect())?;
        self.enqueue(|waiter| Append::Pushes(part, waiter))
    }

    fn enqueue(
        &self,
        append: impl FnOnce(Waiter) -> Append<Waiter>,
    ) -> Result<PendingAppend, AppendError> {
        if !self.is_attached() {
            return Err(AppendError::Unavailable);
        }
        let (answer, answered) = oneshot::channel();
        let waiter = Waiter {
            queued: Instant::now(),
            answer,
        };
        self.queue
            .unbounded_send(append(waiter))
            .map_err(|_| AppendError::Unavailable)?;
        Ok(PendingAppend { answered })
    }
}

impl Shared {
    fn current(&self) -> Option<Channel> {
        self.channel
            .lock()
            .expect("appender lock")
            .clone()
            .filter(|c| c.status().connected())
    }

    /// Publish `bytes`: `Ok` with its confirm once its frames are queued on the channel, ahead
    /// of every record published after it (the stream keeps a channel's order).
    async fn publish(&self, bytes: &[u8]) -> Result<lapin::PublisherConfirm, AppendError> {
        let channel = self.current().ok_or(AppendError::Unavailable)?;
        let publish = channel.basic_publish(
            "".into(),
            self.stream.as_str().into(),
            // A record the stream cannot take (e.g. deleted meanwhile) comes back instead of
            // being confirmed and lost.
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            bytes,
            BasicProperties::default().with_delivery_mode(2),
        );
        actix::clock::timeout(CONFIRM_TIMEOUT, publish)
            .await
            .map_err(|_| AppendError::TimedOut)?
            .map_err(AppendError::Publish)
    }
}

/// `Ok` once the broker confirmed the record, at the latest after [`CONFIRM_TIMEOUT`].
async fn confirmed(confirm: lapin::PublisherConfirm) -> Result<(), AppendError> {
    let confirmation = actix::clock::timeout(CONFIRM_TIMEOUT, confirm)
        .await
        .map_err(|_| AppendError::TimedOut)?
        .map_err(AppendError::Publish)?;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) | Confirmation::Nack(_) | Confirmation::NotRequested => {
            Err(AppendError::Nacked)
        }
    }
}

/// The appending task: publishes the queue's records in order, at most [`IN_FLIGHT`] waiting
/// for their confirm and at most one per `shared.interval`, and answers each append; ends when
/// every handle is gone and every append is answered.
async fn run(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Append<Waiter>>) {
    let mut waiting: VecDeque<Append<Waiter>> = VecDeque::new();
    let mut in_flight = FuturesOrdered::new();
    let mut open = true;
    let mut last_published: Option<Instant> = None;
    loop {
        while let Ok(append) = queue.try_recv() {
            waiting.push_back(append);
        }
        fail_expired(&mut waiting);
        // When the next record may leave (`None`: nothing to send, or no room for it).
        let mut due = None;
        while in_flight.len() < IN_FLIGHT && !waiting.is_empty() {
            let now = Instant::now();
            if let Some(at) = last_published
                .map(|last| last + shared.interval)
                .filter(|at| *at > now)
            {
                due = Some(at);
                break;
            }
            let Some(next) = next_record(&shared.origin, &mut waiting) else {
                break;
            };
            match next {
                Err(Unwritable { error, waiters }) => answer_all(waiters, &Err(error.into())),
                Ok(NextRecord { bytes, waiters }) => {
                    last_published = Some(now);
                    match shared.publish(&bytes).await {
                        Ok(confirm) => {
                            in_flight.push_back(async move { (confirmed(confirm).await, waiters) })
                        }
                        Err(e) => answer_all(waiters, &Err(e)),
                    }
                }
            }
        }
        if !open && waiting.is_empty() && in_flight.is_empty() {
            return; // every handle is gone and every append answered
        }
        // Wait for a confirm, the next append, or the time the next record may leave.
        let confirm = async {
            match in_flight.is_empty() {
                true => future::pending().await,
                false => in_flight.next().await,
            }
        };
        let append = async {
            match open {
                true => queue.next().await,
                false => future::pending().await,
            }
        };
        let turn = async {
            match due {
                Some(at) => actix::clock::sleep(at.saturating_duration_since(Instant::now())).await,
                None => future::pending().await,
            }
        };
        futures::select_biased! {
            confirmed = confirm.fuse() => {
                if let Some((result, waiters)) = confirmed {
                    if result.is_ok() {
                        shared.metrics.cluster_log_records_appended.inc();
                        shared.metrics.cluster_log_appends.inc_by(waiters.len() as u64);
                    }
                    answer_all(waiters, &result);
                }
            }
            append = append.fuse() => match append {
                Some(append) => waiting.push_back(append),
                None => open = false,
            },
            () = turn.fuse() => {}
        }
    }
}

fn answer_all(waiters: Vec<Waiter>, result: &Result<(), AppendError>) {
    for waiter in waiters {
        waiter.answer(result.clone());
    }
}

/// Fail the appends queued longer than [`CONFIRM_TIMEOUT`] (the broker is stuck): their
/// callers gave up on them, so they must not go out late.
fn fail_expired(waiting: &mut VecDeque<Append<Waiter>>) {
    let now = Instant::now();
    while let Some(front) = waiting.front() {
        if now.duration_since(front.waiter().queued) < CONFIRM_TIMEOUT {
            return;
        }
        let expired = waiting.pop_front().expect("the front was looked at");
        expired.into_waiter().answer(Err(AppendError::TimedOut));
    }
}

/// An append queued for the log ([`LogAppender::submit`]) whose record is not confirmed yet.
#[must_use = "an append is in the log only once confirmed"]
pub struct PendingAppend {
    answered: oneshot::Receiver<Result<(), AppendError>>,
}

impl PendingAppend {
    /// `Ok` once the broker confirmed the record that carries it (it is then durable in the
    /// stream); the reason otherwise.
    pub async fn confirmed(self) -> Result<(), AppendError> {
        // The task answers every append; a dropped answer means it is gone.
        self.answered.await.unwrap_or(Err(AppendError::Unavailable))
    }
}

//! Appends records to the cluster's log with publisher confirms: [`LogAppender::append`]
//! answers once the broker confirmed the record (it is then durable in the stream), or says
//! why it cannot be. [`LogAppender::publish`] splits the two steps for callers that append
//! one record after another without waiting for each confirm (the event consumers): the
//! records keep their order, and each one's [`PendingAppend`] says when it is in.
//!
//! A cheap, cloneable handle shared by the HTTP routes (on every worker thread) and the event
//! consumers. The [`BrokerLink`](crate::consumers::BrokerLink) gives it a channel in confirm
//! mode after each (re)connection ([`LogAppender::attach`]) and takes it away when the
//! connection is lost ([`LogAppender::detach`]); without one, an append fails at once with
//! [`AppendError::Unavailable`], so callers answer `503` (HTTP) or requeue (events) instead of
//! waiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};

use super::record::{LogRecord, RecordError};

/// The longest wait for the broker's confirm of one record.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a record is not in the log.
#[derive(Debug, thiserror::Error)]
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

/// See the module doc.
#[derive(Clone, Default)]
pub struct LogAppender {
    /// The stream's name (published to through the default exchange).
    stream: Arc<str>,
    channel: Arc<Mutex<Option<Channel>>>,
}

impl LogAppender {
    /// An appender to the stream `stream`, without a channel yet.
    pub fn new(stream: &str) -> Self {
        LogAppender {
            stream: Arc::from(stream),
            channel: Arc::default(),
        }
    }

    /// Append through `channel` (already in confirm mode) from now on.
    pub fn attach(&self, channel: Channel) {
        *self.channel.lock().expect("appender lock") = Some(channel);
    }

    /// Stop appending: the connection is gone.
    pub fn detach(&self) {
        *self.channel.lock().expect("appender lock") = None;
    }

    /// Whether it has a channel that is still open.
    pub fn is_attached(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> Option<Channel> {
        self.channel
            .lock()
            .expect("appender lock")
            .clone()
            .filter(|c| c.status().connected())
    }

    /// Append `record`; `Ok` once the broker confirmed it.
    pub async fn append(&self, record: &LogRecord) -> Result<(), AppendError> {
        let append = async { self.publish(record).await?.confirmed().await };
        actix::clock::timeout(CONFIRM_TIMEOUT, append)
            .await
            .map_err(|_| AppendError::TimedOut)?
    }

    /// Publish `record` without waiting for its confirm: `Ok` once its frames are queued on
    /// the channel, ahead of every record published after it (the stream keeps a channel's
    /// order). The record is in the log once [`PendingAppend::confirmed`] says so; until
    /// then it may not be.
    pub async fn publish(&self, record: &LogRecord) -> Result<PendingAppend, AppendError> {
        let bytes = record.encode()?;
        let channel = self.current().ok_or(AppendError::Unavailable)?;
        let publish = channel.basic_publish(
            "".into(),
            self.stream.as_ref().into(),
            // A record the stream cannot take (e.g. deleted meanwhile) comes back instead of
            // being confirmed and lost.
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &bytes,
            BasicProperties::default().with_delivery_mode(2),
        );
        let confirm = actix::clock::timeout(CONFIRM_TIMEOUT, publish)
            .await
            .map_err(|_| AppendError::TimedOut)?
            .map_err(AppendError::Publish)?;
        Ok(PendingAppend { confirm })
    }
}

/// A published record whose confirm has not come yet ([`LogAppender::publish`]).
#[must_use = "a record is in the log only once confirmed"]
pub struct PendingAppend {
    confirm: PublisherConfirm,
}

impl PendingAppend {
    /// `Ok` once the broker confirmed the record (it is then durable in the stream); the
    /// reason otherwise, at the latest after [`CONFIRM_TIMEOUT`].
    pub async fn confirmed(self) -> Result<(), AppendError> {
        let confirmation = actix::clock::timeout(CONFIRM_TIMEOUT, self.confirm)
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
}

//! The RabbitMQ event → rooms routing table (placeholder until the table lands).

/// Which Socket.IO event a push is emitted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushEvent {
    /// `notification`
    Notification,
    /// `message`
    Message,
}

impl PushEvent {
    /// The Socket.IO event name.
    pub fn name(&self) -> &'static str {
        match self {
            PushEvent::Notification => "notification",
            PushEvent::Message => "message",
        }
    }
}

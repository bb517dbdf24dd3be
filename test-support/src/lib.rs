//! Test fixtures shared by pushgate's two test crates, the server's `tests/` and the core's
//! `actors/tests/`: two test crates cannot share a module, so what both need lives here, in a
//! crate that is only ever a dev-dependency.
//!
//! - [`broker`]: a RabbitMQ vhost (and a user) of a test's own on the real broker, through
//!   `rabbitmqctl`.

pub mod broker;

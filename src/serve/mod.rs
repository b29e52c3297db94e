//! Listeners and connections: the accept loop with its limits and TLS, the per-connection
//! watchdog, and the watched socket. Generic over the handler and its response body: nothing
//! here knows what the edge answers.
//!
//! Each accepted connection is served by hyper's HTTP/1.1 or HTTP/2 connection, settled first:
//! on cleartext by peeking at the first bytes for the prior-knowledge preface; with TLS, whose
//! handshake runs on the connection's own task, by ALPN (hyper-util's auto builder tells a
//! client that offered none from its first bytes). On shutdown the listener closes at once,
//! event streams end at their next event boundary, and open connections finish their in-flight
//! requests, for at most the drain timeout.

pub mod listener;
pub mod socket;
pub mod tls;
pub mod watchdog;

pub use listener::{run, serve, Connection, Options};

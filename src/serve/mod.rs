//! Listeners and connections: the accept loop with its limits and TLS, the per-connection
//! watchdog, and the watched socket. Generic over the handler and its response body: nothing
//! here knows what the edge answers.
//!
//! Each accepted connection is served by hyper-util's auto builder (HTTP/1.1, or HTTP/2 when
//! the client opens with the prior-knowledge preface). With TLS, the handshake runs on the
//! connection's own task and ALPN picks the protocol. On shutdown the listener closes at once
//! and open connections finish their in-flight requests, for at most the drain timeout.

pub mod listener;
pub mod socket;
pub mod tls;
pub mod watchdog;

pub use listener::{run, serve, Connection, Options};

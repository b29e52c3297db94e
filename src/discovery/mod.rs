//! Discovery: the authorization server's metadata (where to find it, how to check it, how to
//! fetch it), the pre-built documents behind an `ArcSwap`, the background refresh that keeps
//! them fresh (and the gate's keys with them), and the answers made from them.

pub mod metadata;
pub mod refresh;
pub mod respond;
pub mod snapshot;

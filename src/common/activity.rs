//! What a connection's watchdog reads: when requests and bytes last came, and whether a
//! forwarded exchange is in progress. The listener's watchdog writes the ticks; forwarding
//! marks its exchanges, so a quiet SSE stream is not taken for an idle connection.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// A connection's activity. Times are the watchdog's ticks (it advances `tick` once a period),
/// so marking an event costs a relaxed load and store, no clock read.
#[derive(Default)]
pub struct Activity {
    /// The current tick; 1 from the connection's start.
    pub tick: AtomicU32,
    /// The tick in which a request head last completed or a forwarded exchange last ended;
    /// 0 before the first request.
    pub active: AtomicU32,
    /// The tick in which bytes last arrived from the client; 0 before any.
    pub read: AtomicU32,
    /// Forwarded exchanges in progress (an SSE stream may stay quiet far longer than any
    /// timeout, and an upload is no idle connection).
    pub streaming: AtomicU32,
    /// HTTP/2 (by ALPN or the prior-knowledge preface): bytes arriving are frames of any
    /// kind, not a request head on its way.
    pub h2: AtomicBool,
    /// The watchdog gave up on a request head: the connection's last word is a 408.
    pub timed_out: AtomicBool,
}

impl Activity {
    /// Stamps `stamp` (one of this activity's ticks) with the current tick.
    pub fn mark(&self, stamp: &AtomicU32) {
        stamp.store(self.tick.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Marks one forwarded exchange as in progress for as long as it lives.
pub struct Streaming(Arc<Activity>);

impl Streaming {
    pub fn new(activity: Arc<Activity>) -> Streaming {
        activity.streaming.fetch_add(1, Ordering::Relaxed);
        Streaming(activity)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        // The exchange's end is activity: bytes of it read until now are not a new head.
        self.0.mark(&self.0.active);
        self.0.streaming.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exchange_counts_while_it_lives_and_its_end_is_activity() {
        let activity = Arc::new(Activity::default());
        activity.tick.store(7, Ordering::Relaxed);
        let exchange = Streaming::new(Arc::clone(&activity));
        assert_eq!(activity.streaming.load(Ordering::Relaxed), 1);
        drop(exchange);
        assert_eq!(activity.streaming.load(Ordering::Relaxed), 0);
        assert_eq!(activity.active.load(Ordering::Relaxed), 7);
    }
}

//! What a connection's watchdog reads: when requests and bytes last came, and whether a
//! forwarded exchange is in progress. The listener's watchdog writes the ticks; forwarding
//! marks its exchanges, so a quiet SSE stream is not taken for an idle connection.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

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
    /// Shutdown reached this connection: its event streams end at their next event boundary.
    draining: AtomicBool,
    /// Wakes the connection's event streams when it starts draining.
    drain: Notify,
}

impl Activity {
    /// Stamps `stamp` (one of this activity's ticks) with the current tick.
    pub fn mark(&self, stamp: &AtomicU32) {
        stamp.store(self.tick.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Shutdown: tells the connection's event streams to end at their next event boundary, so
    /// that their clients reconnect (to another replica) rather than lose the connection
    /// mid-event at the drain timeout.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.drain.notify_waiters();
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

impl Streaming {
    /// Resolves once the connection drains (at once if it already does).
    pub fn drained(&self) -> impl Future<Output = ()> + Send + 'static {
        let activity = Arc::clone(&self.0);
        async move {
            let notified = activity.drain.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a drain between the two still wakes it.
            notified.as_mut().enable();
            if !activity.draining.load(Ordering::Acquire) {
                notified.await;
            }
        }
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

    #[tokio::test]
    async fn a_drain_reaches_streams_opened_before_and_after_it() {
        let activity = Arc::new(Activity::default());
        let before = Streaming::new(Arc::clone(&activity)).drained();
        let waiting = tokio::spawn(before);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no drain yet");
        activity.drain();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.expect("woken").expect("no panic");
        let after = Streaming::new(Arc::clone(&activity)).drained();
        tokio::time::timeout(std::time::Duration::from_secs(5), after).await.expect("at once");
    }
}

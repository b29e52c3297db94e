//! The per-connection watchdog: closes connections whose request head is too slow (408) or
//! that sit idle too long, with one timer per connection instead of hyper's timer per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::common::activity::Activity;
use crate::config::Limits;
use crate::shutdown::Shutdown;

/// Why the watchdog closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// A request head did not complete within `--header-read-timeout` (or the connection sent
    /// no complete head that long after it opened).
    HeaderRead,
    /// No request for `--idle-timeout`.
    Idle,
}

/// The watchdog's timings, from the limits.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// How often it looks: a quarter of the shorter timeout, so a timeout takes effect within
    /// half a timeout after it has passed.
    period: Duration,
    header_read: Duration,
    idle: Duration,
}

impl Clock {
    pub fn new(limits: &Limits) -> Clock {
        let shorter = limits.header_read_timeout.min(limits.idle_timeout);
        Clock {
            period: (shorter / 4).max(Duration::from_millis(10)),
            header_read: limits.header_read_timeout,
            idle: limits.idle_timeout,
        }
    }
}

/// SECURITY: runs `connection` until it ends, or until it has been too slow with a request
/// head (slowloris: bytes trickled, or none at all on a new connection) or idle too long.
/// One timer per connection, checked a few times per timeout, rather than hyper's header
/// timer, which costs an allocation and ~15% of the discovery path on every request.
///
/// A head is "on its way" when bytes arrived in a tick after the last request (or after the
/// last forwarded exchange ended) on an HTTP/1 connection; the watchdog then marks the
/// connection timed out and drops it, and the watched socket answers 408 as it goes. Bytes read in
/// the same tick as a request (the rest of its body) do not start a head. An HTTP/2
/// connection is closed with `graceful` (GOAWAY, RFC 9113 §9.1), given a tick to say it.
///
/// On `stop`, the connection is asked to finish gracefully: in-flight requests complete, its
/// event streams end at their next event boundary, and the accept loop's drain timeout
/// bounds the wait.
pub async fn watchdog<C, G>(
    mut connection: Pin<&mut C>,
    graceful: G,
    activity: &Activity,
    clock: Clock,
    mut stop: Shutdown,
) -> Result<C::Output, Closed>
where
    C: Future,
    G: Fn(Pin<&mut C>),
{
    let opened = Instant::now();
    let mut tick: u32 = 1;
    activity.tick.store(tick, Ordering::Relaxed);
    let mut interval = tokio::time::interval_at(opened + clock.period, clock.period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut quiet_since = opened;
    let mut head_since: Option<Instant> = None;
    let mut stopping = false;
    let mut closing: Option<Closed> = None;
    let nudge = Arc::new(Nudge::default());
    let own = Waker::from(Arc::clone(&nudge));
    // The task's waker as last handed to `nudge`: compared here, without its lock, on each
    // wake-up (a few per request), and handed on only when it changed (once per connection).
    let mut known: Option<Waker> = None;
    loop {
        // The two futures below are new: each is polled once, to register its waker.
        nudge.woken.store(true, Ordering::Relaxed);
        let woke = {
            // `changed` rather than `wait`: a trigger that fired (or is gone) before this
            // receiver was made counts too.
            let mut changed = std::pin::pin!(stop.changed());
            std::future::poll_fn(|cx| {
                if let Poll::Ready(done) = connection.as_mut().poll(cx) {
                    return Poll::Ready(Woke::Done(done));
                }
                // Most wake-ups are the connection's (a request, a response); the timer and
                // the shutdown signal are polled only when they woke the task.
                if !known.as_ref().is_some_and(|known| known.will_wake(cx.waker())) {
                    nudge.remember(cx.waker());
                    known = Some(cx.waker().clone());
                }
                if !nudge.woken.swap(false, Ordering::AcqRel) {
                    return Poll::Pending;
                }
                let mut own = Context::from_waker(&own);
                if !stopping && changed.as_mut().poll(&mut own).is_ready() {
                    return Poll::Ready(Woke::Stop);
                }
                match interval.poll_tick(&mut own) {
                    Poll::Ready(_) => Poll::Ready(Woke::Tick),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        };
        match woke {
            Woke::Done(done) => return closing.map_or(Ok(done), Err),
            Woke::Stop => {
                stopping = true;
                activity.drain();
                graceful(connection.as_mut());
                continue;
            }
            Woke::Tick => {}
        }
        if let Some(closed) = closing {
            // The GOAWAY had a tick to go out; the connection goes now.
            return Err(closed);
        }
        let now = Instant::now();
        let (active, read) = (activity.active.load(Ordering::Relaxed), activity.read.load(Ordering::Relaxed));
        let ended = tick;
        tick = tick.wrapping_add(1);
        activity.tick.store(tick, Ordering::Relaxed);
        let h2 = activity.h2.load(Ordering::Relaxed);
        let verdict = if active == 0 {
            // The first request must come within the header read timeout of the connection's
            // start, whether or not bytes came.
            (now.duration_since(opened) >= clock.header_read).then_some((Closed::HeaderRead, read != 0))
        } else if active == ended || activity.streaming.load(Ordering::Relaxed) > 0 {
            quiet_since = now;
            head_since = None;
            None
        } else if read > active && !h2 {
            let since = *head_since.get_or_insert(now);
            (now.duration_since(since) >= clock.header_read).then_some((Closed::HeaderRead, true))
        } else {
            head_since = None;
            (now.duration_since(quiet_since) >= clock.idle).then_some((Closed::Idle, false))
        };
        match verdict {
            None => {}
            Some((closed, _)) if h2 => {
                if !stopping {
                    graceful(connection.as_mut());
                }
                closing = Some(closed);
            }
            Some((closed, started)) => {
                activity.timed_out.store(started, Ordering::Relaxed);
                return Err(closed);
            }
        }
    }
}

/// What woke the watchdog.
enum Woke<T> {
    Done(T),
    Stop,
    Tick,
}

/// The waker the watchdog's own timer and shutdown signal are polled with: it notes that one
/// of them woke the connection's task, and wakes that task.
#[derive(Default)]
struct Nudge {
    woken: AtomicBool,
    task: std::sync::Mutex<Option<Waker>>,
}

impl Nudge {
    /// Keeps the task's current waker, for [`Wake::wake_by_ref`] to pass the wake-up on.
    fn remember(&self, waker: &Waker) {
        let mut task = self.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !task.as_ref().is_some_and(|known| known.will_wake(waker)) {
            *task = Some(waker.clone());
        }
    }
}

impl Wake for Nudge {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_looks_four_times_per_shorter_timeout() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            ..Limits::default()
        };
        assert_eq!(Clock::new(&limits).period, Duration::from_millis(2500));
        let tiny = Limits { idle_timeout: Duration::from_millis(1), ..limits };
        assert_eq!(Clock::new(&tiny).period, Duration::from_millis(10));
    }
}

//! The deadlines of an endpoint's waits for the MCP server's answer head (`--upstream-timeout`),
//! kept in one table that one task sweeps, instead of a tokio timer per exchange.
//!
//! A tokio timer per exchange cost about 1,500 instructions of every forwarded call (its entry
//! put in the timer wheel on the first poll, polled again, taken out on drop, and the wheel
//! walked on each park), for a deadline that almost never passes. Here an exchange puts its
//! deadline and waker in a slot of the table (a lock, a push), and takes them out when its
//! answer comes (a lock, a pop). The sweeper sleeps until the earliest deadline in the table;
//! since every exchange of an endpoint waits as long, a later exchange's deadline is later
//! and the sweeper is not disturbed: it wakes about once per timeout while requests flow, finds
//! the exchanges of then long gone, and sleeps until the earliest of those waiting now. A
//! deadline is marked passed only once the clock has reached it, so none passes early; it
//! passes as late as a tokio timer would (rounded up to the millisecond).

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tokio::sync::Notify;

/// One endpoint's table of deadlines. Dropping it ends its sweeper.
pub struct Deadlines {
    shared: Arc<Shared>,
}

struct Shared {
    table: Mutex<Table>,
    /// Tells the sweeper that the table changed in a way it must see: a deadline earlier than
    /// the one it sleeps until, a first deadline while it waits for one, or the end.
    nudge: Notify,
}

#[derive(Default)]
struct Table {
    slots: Vec<Option<Entry>>,
    /// Slots free for reuse.
    free: Vec<usize>,
    /// When the sweeper looks next; `None` when it waits to be nudged (or is not running).
    armed: Option<Instant>,
    /// A sweeper task is running.
    sweeping: bool,
    /// The endpoint is gone: the sweeper ends.
    closed: bool,
}

struct Entry {
    deadline: Instant,
    waker: Waker,
    /// The sweeper found the deadline reached and woke the waiter.
    passed: bool,
}

/// A waiter's place in the table, `None` until its first wait.
pub type Slot = Option<usize>;

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines::new()
    }
}

impl Deadlines {
    pub fn new() -> Deadlines {
        Deadlines { shared: Arc::new(Shared { table: Mutex::new(Table::default()), nudge: Notify::new() }) }
    }

    /// Ready once `deadline` has passed; until then the waiter, in `slot`, is woken when it does.
    /// On its first call it takes a slot for `deadline`; later calls keep the deadline taken
    /// then (see [`Deadlines::extend`]) and only note a new waker.
    pub fn poll_passed(&self, slot: &mut Slot, deadline: Instant, cx: &Context<'_>) -> Poll<()> {
        let mut table = self.shared.lock();
        match *slot {
            Some(key) => match table.slots.get_mut(key).and_then(Option::as_mut) {
                Some(entry) if entry.passed => return Poll::Ready(()),
                Some(entry) => {
                    if !entry.waker.will_wake(cx.waker()) {
                        entry.waker = cx.waker().clone();
                    }
                }
                // Not taken by this waiter (it cannot be gone while the slot names it).
                None => return Poll::Ready(()),
            },
            None => {
                let entry = Some(Entry { deadline, waker: cx.waker().clone(), passed: false });
                let key = match table.free.pop() {
                    Some(key) => {
                        table.slots[key] = entry;
                        key
                    }
                    None => {
                        table.slots.push(entry);
                        table.slots.len() - 1
                    }
                };
                *slot = Some(key);
                if self.arm(&mut table, deadline) {
                    drop(table);
                    self.start();
                }
            }
        }
        Poll::Pending
    }

    /// Moves the waiter's deadline to `deadline` (later, as its upload moved), not passed.
    pub fn extend(&self, slot: Slot, deadline: Instant) {
        let Some(key) = slot else { return };
        let mut table = self.shared.lock();
        if let Some(Some(entry)) = table.slots.get_mut(key) {
            entry.deadline = deadline;
            entry.passed = false;
            if self.arm(&mut table, deadline) {
                drop(table);
                self.start();
            }
        }
    }

    /// Gives the waiter's slot back (its answer came, or it was dropped).
    pub fn forget(&self, slot: &mut Slot) {
        let Some(key) = slot.take() else { return };
        let mut table = self.shared.lock();
        if let Some(entry) = table.slots.get_mut(key).and_then(Option::take) {
            table.free.push(key);
            drop(table);
            drop(entry);
        }
    }

    /// Makes sure the sweeper looks at `deadline` or before: told if it sleeps until later or
    /// waits for a first deadline; `true` when none runs, and the caller is to [`Deadlines::start`]
    /// one once the table is unlocked.
    fn arm(&self, table: &mut MutexGuard<'_, Table>, deadline: Instant) -> bool {
        if !table.sweeping {
            table.sweeping = true;
            table.armed = Some(deadline);
            return true;
        }
        if table.armed.is_none_or(|armed| armed > deadline) {
            table.armed = Some(deadline);
            self.shared.nudge.notify_one();
        }
        false
    }

    /// Starts the sweeper. Outside the table's lock: a runtime shutting down drops the task at
    /// once, and its end takes the lock.
    fn start(&self) {
        tokio::spawn(sweep(Arc::clone(&self.shared)));
    }
}

impl Drop for Deadlines {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.nudge.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table is consistent at every unlock; a panic elsewhere leaves it usable.
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks every deadline reached by `now` passed and wakes its waiter; the earliest of the
    /// others is when to look next.
    fn sweep_at(&self, now: Instant) -> Option<Instant> {
        let mut table = self.lock();
        let mut next: Option<Instant> = None;
        for entry in table.slots.iter_mut().flatten().filter(|entry| !entry.passed) {
            if entry.deadline <= now {
                entry.passed = true;
                entry.waker.wake_by_ref();
            } else {
                next = Some(next.map_or(entry.deadline, |next| next.min(entry.deadline)));
            }
        }
        // Shrinks a table a burst grew, once it has emptied.
        if table.free.len() == table.slots.len() && table.slots.capacity() > 64 {
            table.slots = Vec::new();
            table.free = Vec::new();
        }
        table.armed = next;
        next
    }
}

/// The sweeper: sleeps until the earliest deadline (or until nudged), marks those passed, and
/// again, until the table is closed.
async fn sweep(shared: Arc<Shared>) {
    /// Marks the sweeper gone however it ends (its runtime may drop it), so that the next
    /// deadline starts another.
    struct Gone<'a>(&'a Shared);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            let mut table = self.0.lock();
            table.sweeping = false;
            table.armed = None;
        }
    }
    let _gone = Gone(&shared);
    loop {
        if shared.lock().closed {
            return;
        }
        let next = shared.sweep_at(Instant::now());
        let nudged = shared.nudge.notified();
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = nudged => {}
                }
            }
            None => nudged.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Waits on `slot` until its deadline passes, within `limit`.
    async fn passes(deadlines: &Deadlines, slot: &mut Slot, deadline: Instant) {
        std::future::poll_fn(|cx| deadlines.poll_passed(slot, deadline, cx)).await
    }

    #[tokio::test]
    async fn a_deadline_passes_when_its_time_has_come_and_not_before() {
        let deadlines = Deadlines::new();
        let start = Instant::now();
        let (mut early, mut late) = (None, None);
        let (at_early, at_late) = (start + Duration::from_millis(60), start + Duration::from_millis(150));
        // The later one registered first: the earlier one must nudge the sweeper.
        let late_wait = async {
            passes(&deadlines, &mut late, at_late).await;
            Instant::now()
        };
        let early_wait = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            passes(&deadlines, &mut early, at_early).await;
            Instant::now()
        };
        let (late_at, early_at) = tokio::join!(late_wait, early_wait);
        assert!(early_at >= at_early && early_at < at_late, "{:?}", early_at - start);
        assert!(late_at >= at_late, "{:?}", late_at - start);
        deadlines.forget(&mut early);
        deadlines.forget(&mut late);
        assert!(early.is_none() && late.is_none());
    }

    #[tokio::test]
    async fn an_extended_deadline_passes_at_its_new_time() {
        let deadlines = Deadlines::new();
        let start = Instant::now();
        let mut slot = None;
        passes(&deadlines, &mut slot, start + Duration::from_millis(30)).await;
        let later = Instant::now() + Duration::from_millis(80);
        deadlines.extend(slot, later);
        passes(&deadlines, &mut slot, later).await;
        assert!(Instant::now() >= later);
        deadlines.forget(&mut slot);
    }

    #[tokio::test]
    async fn a_forgotten_slot_is_reused_and_the_sweeper_sleeps_until_the_next_deadline() {
        let deadlines = Deadlines::new();
        let far = Instant::now() + Duration::from_secs(3600);
        let waker = Waker::noop();
        let cx = Context::from_waker(waker);
        let (mut a, mut b) = (None, None);
        assert!(deadlines.poll_passed(&mut a, far, &cx).is_pending());
        deadlines.forget(&mut a);
        assert!(deadlines.poll_passed(&mut b, far, &cx).is_pending());
        assert_eq!(b, Some(0), "the freed slot is taken again");
        assert_eq!(deadlines.shared.lock().slots.len(), 1);
        deadlines.forget(&mut b);
        // A near deadline after a far one is swept in time.
        let mut c = None;
        let near = Instant::now() + Duration::from_millis(20);
        tokio::time::timeout(Duration::from_secs(5), passes(&deadlines, &mut c, near)).await.expect("passed in time");
        deadlines.forget(&mut c);
    }

    #[tokio::test]
    async fn dropping_the_table_ends_its_sweeper() {
        let deadlines = Deadlines::new();
        let shared = Arc::clone(&deadlines.shared);
        let waker = Waker::noop();
        let mut slot = None;
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(deadlines.poll_passed(&mut slot, far, &Context::from_waker(waker)).is_pending());
        deadlines.forget(&mut slot);
        drop(deadlines);
        for _ in 0..100 {
            if Arc::strong_count(&shared) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the sweeper still holds the table");
    }
}

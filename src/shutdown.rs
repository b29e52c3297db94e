//! The shutdown signal: one [`Trigger`] fires it for every [`Shutdown`] made from it. Everything
//! that must stop (listeners, refresh tasks, the certificate watcher, the reloader) waits on a
//! [`Shutdown`]; nothing needs the server to find it.

use tokio::sync::watch;

/// Fires shutdown for every [`Shutdown`] made from it.
pub struct Trigger(watch::Sender<bool>);

/// Resolves when shutdown has been asked for (or its trigger was dropped).
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and shutdown signal.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means stop.
        let _ = self.0.wait_for(|fired| *fired).await;
    }

    /// Resolves on the next change, or at once when the trigger has fired (or is gone) before
    /// this receiver was made: for a caller that polls the future by hand and must not miss an
    /// earlier signal.
    pub async fn changed(&mut self) {
        let _ = self.0.changed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_receiver_sees_the_trigger_and_a_dropped_trigger_counts() {
        let (trigger, mut a) = channel();
        let mut b = a.clone();
        trigger.fire();
        a.wait().await;
        b.wait().await;
        let (trigger, mut c) = channel();
        drop(trigger);
        c.wait().await;
    }
}

//! The writer behind the JSON-line logs (the access log, the audit log): the request path
//! queues an entry and never waits; a task of the log's own formats what is queued and writes
//! it in batches. When the writer falls behind, entries are dropped and counted.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::telemetry::metrics::Metrics;

/// Entries waiting for the writer; beyond this they are dropped and counted.
const QUEUE: usize = 8192;

/// Where a log's lines go.
pub enum Sink {
    Stdout,
    /// A file opened for appending.
    File(std::fs::File),
}

/// An entry that can be written as one JSON line.
pub trait Line: Send + 'static {
    /// Appends the line, with its newline, to `out`.
    fn line(&self, out: &mut Vec<u8>);
}

/// Which log a [`Lines`] is: how it is named in warnings, and where its losses are counted.
#[derive(Clone, Copy)]
pub struct Named {
    /// For warnings: "the access log".
    pub name: &'static str,
    pub dropped: fn(&Metrics),
}

/// The request path's end of a log; cloned wherever entries are made.
pub struct Lines<E> {
    queue: mpsc::Sender<E>,
    metrics: Arc<Metrics>,
    named: Named,
}

impl<E> Clone for Lines<E> {
    fn clone(&self) -> Self {
        Lines { queue: self.queue.clone(), metrics: Arc::clone(&self.metrics), named: self.named }
    }
}

impl<E: Line> Lines<E> {
    /// The log writing to `sink`, with the task that writes it, which ends once every
    /// [`Lines`] is dropped and what was queued is written.
    pub fn new(
        sink: Sink,
        metrics: Arc<Metrics>,
        named: Named,
    ) -> (Lines<E>, impl std::future::Future<Output = ()> + Send + 'static) {
        let sink: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match sink {
            Sink::Stdout => Box::new(tokio::io::stdout()),
            Sink::File(file) => Box::new(tokio::fs::File::from_std(file)),
        };
        let (queue, entries) = mpsc::channel(QUEUE);
        (Lines { queue, metrics, named }, write(entries, sink, named.name))
    }

    /// Queues an entry; when the writer is behind, the entry is dropped and counted.
    pub fn record(&self, entry: E) {
        if self.queue.try_send(entry).is_err() {
            (self.named.dropped)(&self.metrics);
        }
    }
}

/// Writes entries as they come, in batches: whatever is queued goes out in one write.
async fn write<E: Line>(
    mut entries: mpsc::Receiver<E>,
    mut sink: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    name: &'static str,
) {
    let mut buffer = Vec::with_capacity(64 * 1024);
    let mut warned = false;
    while let Some(entry) = entries.recv().await {
        entry.line(&mut buffer);
        while buffer.len() < 60 * 1024 {
            match entries.try_recv() {
                Ok(entry) => entry.line(&mut buffer),
                Err(_) => break,
            }
        }
        let written = async {
            sink.write_all(&buffer).await?;
            sink.flush().await
        };
        if let Err(e) = written.await {
            if !warned {
                crate::warn!("cannot write {name}: {e}; lines are being lost");
                warned = true;
            }
        } else if warned {
            crate::info!("{name} is being written again");
            warned = false;
        }
        buffer.clear();
    }
}

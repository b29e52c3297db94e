//! The client's socket as hyper sees it: it stamps connection activity as bytes arrive and,
//! when the watchdog gave up on a request head, leaves a 408 as it is dropped.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::common::activity::Activity;
use crate::common::date::http_date;

/// The client's socket (plain or TLS) as hyper sees it: it stamps the ticks in which bytes
/// arrive, tells HTTP/2's preface from an HTTP/1 request by the first bytes, and, when the
/// watchdog gave up on a request head, says `408` as it is dropped.
pub struct Watched<I: Farewell> {
    io: I,
    activity: Arc<Activity>,
    /// The last write waited for the client to read: a response is still on its way, and
    /// nothing may be written after it.
    blocked: bool,
    /// No bytes have arrived yet.
    first: bool,
}

impl<I: Farewell> Watched<I> {
    pub fn new(io: I, activity: Arc<Activity>) -> Watched<I> {
        Watched { io, activity, blocked: false, first: true }
    }

    fn wrote<T>(&mut self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        self.blocked = polled.is_pending();
        polled
    }
}

impl<I: Farewell> AsyncRead for Watched<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if polled.is_ready() && buf.filled().len() > before {
            if this.first {
                this.first = false;
                if buf.filled()[before..].starts_with(b"PRI ") {
                    this.activity.h2.store(true, Ordering::Relaxed);
                }
            }
            this.activity.mark(&this.activity.read);
        }
        polled
    }
}

impl<I: Farewell> AsyncWrite for Watched<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.wrote(polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<I: Farewell> Drop for Watched<I> {
    fn drop(&mut self) {
        // RFC 9110 §15.5.9: the client that was sending a request learns why the connection
        // closes. Only on HTTP/1, only between responses, and never on an idle connection, where
        // it could pass for the answer to a request the client sends at that moment.
        if self.activity.timed_out.load(Ordering::Relaxed) && !self.blocked && !self.activity.h2.load(Ordering::Relaxed)
        {
            self.io.farewell(&request_timeout(SystemTime::now()));
        }
    }
}

/// A socket that can take a few last bytes without waiting, as it is dropped.
pub trait Farewell: AsyncRead + AsyncWrite + Unpin {
    /// Writes `bytes` if the socket takes them at once; best effort, errors ignored.
    fn farewell(&mut self, bytes: &[u8]);
}

impl Farewell for TcpStream {
    fn farewell(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Ok(n @ 1..) = self.try_write(rest) {
            rest = &rest[n..];
        }
    }
}

impl Farewell for tokio_rustls::server::TlsStream<TcpStream> {
    fn farewell(&mut self, bytes: &[u8]) {
        let (tcp, tls) = self.get_mut();
        if io::Write::write_all(&mut tls.writer(), bytes).is_err() {
            return;
        }
        tls.send_close_notify();
        let mut out = TryWrite(tcp);
        while tls.wants_write() {
            if !matches!(tls.write_tls(&mut out), Ok(1..)) {
                break;
            }
        }
    }
}

/// A TCP socket as a `std::io::Write` that never waits: rustls writes its records through it.
struct TryWrite<'a>(&'a TcpStream);

impl io::Write for TryWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const BODY_408: &[u8] =
    br#"{"error":"request_timeout","error_description":"The request headers did not arrive in time"}"#;

/// The 408 the watchdog leaves on a connection whose request head was too slow, with the
/// `Date` an origin server must send (RFC 9110 §6.6.1) and `Connection: close`.
fn request_timeout(now: SystemTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 408 Request Timeout\r\ndate: ");
    out.extend_from_slice(&http_date(now));
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncache-control: no-store\r\nconnection: close\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", BODY_408.len()).as_bytes());
    out.extend_from_slice(BODY_408);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_408_is_complete() {
        let response = String::from_utf8(request_timeout(SystemTime::UNIX_EPOCH)).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 408 Request Timeout\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"));
        assert!(head.contains("\r\nconnection: close"));
        assert!(head.ends_with(&format!("content-length: {}", body.len())));
        assert_eq!(body.as_bytes(), BODY_408);
    }
}

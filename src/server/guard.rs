//! The connection guard: an I/O wrapper between the socket and hyper that
//! holds every request head back until `server::head` accepts it, so hyper
//! never parses a head it would refuse with its own empty-bodied 400, 414 or
//! 431. A refused head is answered here with the router's JSON error shape
//! and the connection is closed. Bodies pass through as they arrive, while
//! their framing is followed to find where the next request starts: every
//! head of a kept-alive (or pipelined) connection is checked, not just the
//! first.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::head::{self, Body};
use super::listen::Dropped;
use super::request::RequestError;
use crate::config::ServerConfig;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// `inner`, with every request head checked before hyper reads it.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    config: Arc<ServerConfig>,
    /// Read from the socket and not yet given to hyper; the first `cleared`
    /// bytes are checked (a head, body bytes) and hyper may have them.
    buffer: Vec<u8>,
    cleared: usize,
    /// What the bytes after `cleared` are.
    reading: Reading,
    /// Whether hyper has had any byte: until then it has nothing to answer.
    handed_over: bool,
    refusal: Option<Refusal>,
    refused: watch::Sender<bool>,
}

#[derive(Debug)]
enum Reading {
    Head,
    Body(Body),
}

/// The answer to a refused head, and how much of it is written.
#[derive(Debug)]
struct Refusal {
    bytes: Vec<u8>,
    written: usize,
}

impl<S> Guarded<S> {
    /// The guard, and a signal that turns true when a head is refused while
    /// hyper may still be answering earlier requests: the connection should
    /// then be shut down gracefully, and the refusal follows its last
    /// response.
    pub fn new(inner: S, config: Arc<ServerConfig>) -> (Self, watch::Receiver<bool>) {
        let (refused, signal) = watch::channel(false);
        let guarded = Self {
            inner,
            config,
            buffer: Vec::new(),
            cleared: 0,
            reading: Reading::Head,
            handed_over: false,
            refusal: None,
            refused,
        };
        (guarded, signal)
    }

    /// Checks what is buffered past `cleared`, as far as it goes.
    fn advance(&mut self) {
        while self.cleared < self.buffer.len() && self.refusal.is_none() {
            let rest = &self.buffer[self.cleared..];
            match &mut self.reading {
                Reading::Body(body) => {
                    self.cleared += body.consume(rest);
                    if body.is_done() {
                        self.reading = Reading::Head;
                    }
                }
                Reading::Head => match head::inspect(rest, &self.config) {
                    Ok(Some(head)) => {
                        self.cleared += head.len;
                        if !head.body.is_done() {
                            self.reading = Reading::Body(head.body);
                        }
                    }
                    Ok(None) => return,
                    Err(error) => self.refuse(&error),
                },
            }
        }
    }

    fn refuse(&mut self, error: &RequestError) {
        tracing::debug!(code = error.code(), "request head refused");
        Dropped::BadHead.count();
        self.refusal = Some(Refusal { bytes: refusal(error), written: 0 });
    }
}

/// A whole HTTP/1.1 response for `error`, closing the connection.
fn refusal(error: &RequestError) -> Vec<u8> {
    let status = error.status();
    let body = super::error_body(error.code(), &error.to_string()).to_string();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len()
    );
    [head.into_bytes(), body.into_bytes()].concat()
}

impl<S: AsyncWrite + Unpin> Guarded<S> {
    fn poll_write_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Self { inner, refusal, .. } = self;
        let Some(refusal) = refusal else { return Poll::Ready(Ok(())) };
        while refusal.written < refusal.bytes.len() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &refusal.bytes[refusal.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            refusal.written += n;
        }
        Pin::new(inner).poll_flush(cx)
    }

    /// hyper's read after a refusal.
    fn poll_refused(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.handed_over {
            // No more input for hyper: it is shut down once it has written
            // what it owes, and `poll_shutdown` writes the refusal after.
            self.refused.send_replace(true);
            return Poll::Pending;
        }
        // hyper has had nothing, so owes nothing: answer now, then end its
        // input, which closes the connection.
        ready!(self.poll_write_refusal(cx))?;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.cleared > 0 {
                let n = this.cleared.min(out.remaining());
                out.put_slice(&this.buffer[..n]);
                this.buffer.drain(..n);
                this.cleared -= n;
                this.handed_over = true;
                return Poll::Ready(Ok(()));
            }
            if this.refusal.is_some() {
                return this.poll_refused(cx);
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of input; an incomplete head is dropped, as hyper would.
                return Poll::Ready(Ok(()));
            }
            this.buffer.extend_from_slice(read.filled());
            this.advance();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bytes)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_refusal(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

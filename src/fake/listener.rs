//! A TCP listener whose connections a handler can cut: the "drop the connection" fault.
//!
//! axum hides the socket from handlers, so each accepted stream is wrapped with a shared abort flag that the
//! handler receives as connect info. Once the flag is set every read and write fails, hyper abandons the
//! connection without writing a byte, and the socket is closed: the client sees the connection die with no
//! response, exactly like a gateway that fell over mid-request.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The handler's grip on its connection.
#[derive(Debug, Clone)]
pub struct ConnectionControl {
    aborted: Arc<AtomicBool>,
}

impl ConnectionControl {
    /// Makes every further read and write on the connection fail, so no response is sent.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
    }
}

/// A TCP stream that fails all I/O once aborted.
#[derive(Debug)]
pub struct AbortableStream {
    inner: TcpStream,
    aborted: Arc<AtomicBool>,
}

impl AbortableStream {
    fn check(&self) -> io::Result<()> {
        if self.aborted.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection dropped by an injected fault",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for AbortableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AbortableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A `TcpListener` handing out `AbortableStream`s.
#[derive(Debug)]
pub struct AbortableListener {
    inner: TcpListener,
}

impl AbortableListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl Listener for AbortableListener {
    type Io = AbortableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let io = AbortableStream {
                        inner: stream,
                        aborted: Arc::new(AtomicBool::new(false)),
                    };
                    return (io, addr);
                }
                // Out of file descriptors and the like: back off briefly, as axum's own listener does.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl Connected<IncomingStream<'_, AbortableListener>> for ConnectionControl {
    fn connect_info(stream: IncomingStream<'_, AbortableListener>) -> Self {
        Self {
            aborted: stream.io().aborted.clone(),
        }
    }
}

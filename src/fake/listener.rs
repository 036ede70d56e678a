//! A TCP listener whose connections a handler can cut (the "drop the connection" fault), serving plain HTTP or,
//! with a certificate, HTTPS — so a client can be tested over TLS to a host name, as it meets the real EIAM.
//!
//! axum hides the socket from handlers, so each accepted stream is wrapped with a shared abort flag that the
//! handler receives as connect info. Once the flag is set every read and write fails, hyper abandons the
//! connection without writing a byte, and the socket is closed: the client sees the connection die with no
//! response, exactly like a gateway that fell over mid-request.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client gets to finish its TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a TLS server configuration could not be built from the PEM files.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A file could not be read or held no usable PEM object.
    #[error(
        "{path}: {reason}; give a PEM certificate chain (--tls-cert) and its PEM private key (--tls-key)"
    )]
    Pem {
        /// The file.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// rustls refused the pair (for example, the key does not match the certificate).
    #[error("the TLS certificate and key do not make a server configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A rustls server configuration from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsSetupError> {
    let (chain, key) =
        crate::tls::read_pem_pair(cert_file, key_file).map_err(|problem| TlsSetupError::Pem {
            path: problem.path.display().to_string(),
            reason: problem.reason,
        })?;
    Ok(TlsAcceptor::from(Arc::new(crate::tls::http1_server(
        chain, key,
    )?)))
}

/// A connection's transport: plain TCP, or TLS over it.
#[derive(Debug)]
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

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

/// A connection that fails all I/O once aborted.
#[derive(Debug)]
pub struct AbortableStream {
    inner: Transport,
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

/// A bound listener handing out `AbortableStream`s, over plain TCP or TLS.
#[derive(Debug)]
pub struct AbortableListener {
    local: SocketAddr,
    incoming: Incoming,
}

#[derive(Debug)]
enum Incoming {
    Plain(TcpListener),
    /// Handshakes run in their own tasks, so one slow client cannot hold up the others; finished connections
    /// arrive here. The accept task stops with the listener.
    Tls {
        handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
        accept_task: JoinHandle<()>,
    },
}

impl Drop for AbortableListener {
    fn drop(&mut self) {
        if let Incoming::Tls { accept_task, .. } = &self.incoming {
            accept_task.abort();
        }
    }
}

impl AbortableListener {
    /// Serves plain HTTP on a bound listener.
    pub fn new(inner: TcpListener) -> io::Result<Self> {
        Ok(Self {
            local: inner.local_addr()?,
            incoming: Incoming::Plain(inner),
        })
    }

    /// Serves HTTPS on a bound listener with `acceptor`'s certificate.
    pub fn with_tls(inner: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        let local = inner.local_addr()?;
        let (sender, handshaken) = mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            loop {
                let (stream, addr) = accept_tcp(&inner).await;
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, addr)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%addr, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local,
            incoming: Incoming::Tls {
                handshaken,
                accept_task,
            },
        })
    }
}

/// The next TCP connection, with Nagle off.
async fn accept_tcp(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                return (stream, addr);
            }
            // Out of file descriptors and the like: back off briefly, as axum's own listener does.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

impl Listener for AbortableListener {
    type Io = AbortableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (inner, addr) = match &mut self.incoming {
            Incoming::Plain(listener) => {
                let (stream, addr) = accept_tcp(listener).await;
                (Transport::Plain(stream), addr)
            }
            Incoming::Tls { handshaken, .. } => match handshaken.recv().await {
                Some((stream, addr)) => (Transport::Tls(Box::new(stream)), addr),
                // The accept task never ends on its own; it is gone only when the listener is dropped.
                None => std::future::pending().await,
            },
        };
        let io = AbortableStream {
            inner,
            aborted: Arc::new(AtomicBool::new(false)),
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, AbortableListener>> for ConnectionControl {
    fn connect_info(stream: IncomingStream<'_, AbortableListener>) -> Self {
        Self {
            aborted: stream.io().aborted.clone(),
        }
    }
}

//! Serving the API's router on a TCP listener so that idle connections cannot
//! starve it: a connection has 10 s to send each request head (which also ends
//! idle keep-alive connections), at most `max_connections` are open at once
//! (when full the loop stops accepting), and every connection task is owned and
//! drained at shutdown.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower_service::Service as _;

/// How long a connection may take to send a request head, counted from when
/// the server waits for one: from the connection's start, and again after each
/// answer, so it is also how long a keep-alive connection may stay idle.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the loop waits before accepting again after an error that is not
/// about one connection (out of descriptors, EMFILE): not a busy loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `stop` turns true (or its sender is
/// dropped), then lets every open connection finish its request and returns
/// once all have closed.
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(true);
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    let stop_connections = stop.clone();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            Some(finished) = connections.join_next() => {
                if let Err(error) = finished {
                    tracing::warn!(%error, "an API connection task failed");
                }
            }
            (stream, remote, slot) = accept(&listener, &slots) => {
                let stop = stop_connections.clone();
                connections.spawn(serve_connection(builder.clone(), stream, remote, slot, router.clone(), stop));
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// The next connection and the slot it takes; waits for a free slot first, so
/// a full server leaves new connections in the listen backlog.
async fn accept(listener: &TcpListener, slots: &Arc<Semaphore>) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
    let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => return (stream, remote, slot),
            // One connection that went away before it was accepted.
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                tracing::warn!(%error, "cannot accept an API connection; trying again shortly");
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

/// Serves one connection, upgrades (the event stream's WebSocket) included;
/// when `stop` turns true, finishes the request in progress and closes.
async fn serve_connection(
    builder: Arc<http1::Builder>,
    stream: TcpStream,
    remote: SocketAddr,
    slot: OwnedSemaphorePermit,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    // Answers go out as soon as they are written: with Nagle's algorithm a
    // response written in two pieces waits a round trip for the first's ACK.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        // The caller's address is what Tailscale identity auth asks whois about.
        request.extensions_mut().insert(ConnectInfo(remote));
        router.clone().call(request)
    });
    let connection = builder.serve_connection(TokioIo::new(Counted { stream, _slot: slot }), service).with_upgrades();
    tokio::pin!(connection);
    let stopping = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopping => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%remote, %error, "API connection ended");
    }
}

/// A connection's socket with its slot: the slot is freed when the socket is
/// closed, also after the connection was upgraded to a WebSocket and handed
/// over to its handler.
struct Counted {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::time::timeout;

    use super::*;

    /// Answers with the caller's address as the handlers see it.
    fn echo_caller() -> Router {
        Router::new().route("/", get(|ConnectInfo(caller): ConnectInfo<SocketAddr>| async move { caller.to_string() }))
    }

    async fn read_answer(stream: &mut TcpStream) -> String {
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn a_full_server_leaves_new_connections_waiting_until_one_closes_and_stops_with_idle_ones_open() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(run(listener, echo_caller(), 2, stopped));
        let first = TcpStream::connect(address).await.unwrap();
        let _second = TcpStream::connect(address).await.unwrap();

        // The kernel completes the third handshake, but the server does not take it.
        let mut third = TcpStream::connect(address).await.unwrap();
        third.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let waiting = timeout(Duration::from_millis(300), read_answer(&mut third)).await;
        assert!(waiting.is_err(), "a third connection was served beside two: {waiting:?}");
        drop(first);
        let answer = timeout(Duration::from_secs(5), read_answer(&mut third)).await.expect("served once one closed");
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        assert!(answer.ends_with(&third.local_addr().unwrap().to_string()), "the caller's address: {answer}");

        // The second connection is still open and idle: stopping closes it.
        stop.send(true).unwrap();
        timeout(Duration::from_secs(5), server).await.expect("the server stops").unwrap();
    }
}

//! Serving a router on a TCP listener: axum's `serve` loop, with hyper's deadline for a
//! request's headers turned on.
//!
//! Why not `axum::serve`: it builds hyper's connection without a timer, and hyper then skips its
//! header-read deadline, so a client that opens a connection and never finishes a request's
//! headers holds it, and the buffer hyper keeps for it, for ever. The request timeout
//! (`TimeoutLayer`, 30 s) only starts once the headers are in. Its connections also accept
//! HTTP/2 without TLS ("prior knowledge"), first reading the opening bytes to tell the two
//! apart with no deadline at all (a client that connects and sends nothing is kept), and HTTP/2
//! has no header-read deadline in hyper; nothing of allim's speaks it (the ALB forwards
//! HTTP/1.1, SDKs send HTTP/1.1 over plain HTTP), so this serves hyper's HTTP/1 connection alone,
//! not the builder that tells the two apart. The rest is what
//! `axum::serve` does: connections accepted by axum's own `Listener` (a failed accept is skipped,
//! or logged and retried after a second), and on shutdown no new connections, in-flight
//! requests finished, then return.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a connection may take to send a request's headers, counted from when the server
/// starts waiting for them, so also how long an idle keep-alive connection stays open. Longer
/// than the load balancer's idle timeout (60 s, `infra/allim.yaml`), as the ALB documentation
/// asks of targets: the ALB then always closes an idle connection first, instead of sending a
/// request on one allim is closing (a 502 to the client).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(65);

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting, lets each
/// connection finish the request it is on, and returns when all are closed.
pub async fn serve(mut listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            // An error here is the client's (it went away, sent garbage, or took too long over
            // its headers): hyper has answered what it could; nothing of allim's to report.
            let _ = connection.await;
        });
    }
    drop(listener);
    connections.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads until the server closes the connection (failing if it has not after twice the
    /// deadline); what it sent.
    async fn read_to_close(stream: &mut tokio::net::TcpStream) -> String {
        let mut got = Vec::new();
        tokio::time::timeout(2 * HEADER_READ_TIMEOUT, stream.read_to_end(&mut got))
            .await
            .expect("the server kept the connection open")
            .unwrap();
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Paused clock: time moves only when every task waits, straight to the next deadline, so
    /// the elapsed time read here is the server's deadline, not the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn silent_unfinished_and_idle_connections_are_closed_after_the_deadline_not_before() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, router, shutdown.clone()));

        // HTTP/2 with prior knowledge is not spoken: closed at once, without an answer.
        let mut h2 = tokio::net::TcpStream::connect(addr).await.unwrap();
        h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        let start = tokio::time::Instant::now();
        assert_eq!(read_to_close(&mut h2).await, "");
        assert_eq!(start.elapsed(), Duration::ZERO);

        // A connection that sends nothing at all.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let start = tokio::time::Instant::now();
        assert_eq!(read_to_close(&mut silent).await, "");
        let waited = start.elapsed();
        assert!(
            waited >= HEADER_READ_TIMEOUT && waited < HEADER_READ_TIMEOUT + Duration::from_secs(1),
            "a silent connection closed after {waited:?}"
        );

        // Headers begun and never finished.
        let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nHost: allim\r\n").await.unwrap();
        let start = tokio::time::Instant::now();
        let answer = read_to_close(&mut half).await;
        let waited = start.elapsed();
        assert!(
            waited >= HEADER_READ_TIMEOUT && waited < HEADER_READ_TIMEOUT + Duration::from_secs(1),
            "closed after {waited:?}"
        );
        assert_eq!(answer, "", "hyper closes without an answer");

        // A keep-alive connection: answered, then closed once idle for the deadline, which is
        // longer than the ALB's 60 s idle timeout.
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: allim\r\n\r\n").await.unwrap();
        let mut first = [0u8; 512];
        let n = idle.read(&mut first).await.unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
        let start = tokio::time::Instant::now();
        read_to_close(&mut idle).await;
        let waited = start.elapsed();
        assert!(
            waited > Duration::from_secs(60),
            "an idle connection closed after {waited:?}"
        );
        assert!(
            waited < HEADER_READ_TIMEOUT + Duration::from_secs(1),
            "closed after {waited:?}"
        );

        shutdown.cancel();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_finishes_the_request_in_flight_and_refuses_new_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The handler says it has the request, then waits to be released.
        let entered = std::sync::Arc::new(tokio::sync::Notify::new());
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let (has_it, held) = (entered.clone(), release.clone());
        let router = Router::new().route(
            "/slow",
            axum::routing::get(move || {
                let (has_it, held) = (has_it.clone(), held.clone());
                async move {
                    has_it.notify_one();
                    held.notified().await;
                    "done"
                }
            }),
        );
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, router, shutdown.clone()));

        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /slow HTTP/1.1\r\nHost: allim\r\n\r\n")
            .await
            .unwrap();
        entered.notified().await;
        shutdown.cancel();
        // The listener is closed once the loop has seen the cancellation; the server itself
        // must not return while the request is in flight.
        let refused = async {
            loop {
                if tokio::net::TcpStream::connect(addr).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), refused)
            .await
            .expect("the listener stays open after shutdown");
        assert!(!server.is_finished(), "the server returned with a request in flight");
        release.notify_one();
        let answer = read_to_close(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(answer.ends_with("done"), "{answer:?}");
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server did not return after its last connection closed")
            .unwrap();
    }
}

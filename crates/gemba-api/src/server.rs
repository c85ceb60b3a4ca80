//! The HTTP(S) server loop: TLS with rustls from PEM files, a cap on open connections, a deadline
//! for request headers and TLS handshakes (slow-loris), and graceful shutdown (docs/SECURITY.md).

use std::future::Future;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use gemba_engine::Engine;
use gemba_engine::config::TlsConfig;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("server.tls: {0}")]
    Tls(String),
    #[error("HTTP server: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a certificate chain and private key (PEM) into a rustls server configuration.
pub fn tls_config(cfg: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &Path, what: &str| {
        std::fs::read(p)
            .map_err(|e| ServeError::Tls(format!("cannot read {what} {}: {e}", p.display())))
    };
    let cert_pem = read(&cfg.cert_file, "cert_file")?;
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_reader_iter(BufReader::new(&cert_pem[..]))
            .collect::<Result<_, _>>()
            .map_err(|e| ServeError::Tls(format!("cert_file {}: {e}", cfg.cert_file.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "cert_file {} holds no CERTIFICATE block",
            cfg.cert_file.display()
        )));
    }
    let key_pem = read(&cfg.key_file, "key_file")?;
    let key = PrivateKeyDer::from_pem_reader(BufReader::new(&key_pem[..])).map_err(|e| {
        ServeError::Tls(format!(
            "key_file {}: no private key in PEM form ({e})",
            cfg.key_file.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` completes, then waits up to 5 s for open
/// requests. Each connection gets a [`ConnectInfo`] with the client's address.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let cfg = engine.config().server.clone();
    let tls = match &cfg.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(tls_config(t)?)),
        None => None,
    };
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let header_timeout = Duration::from_secs(cfg.header_read_timeout_s.max(1));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            engine.metrics().connections_refused.inc();
            tokio::spawn(refuse(stream, tls.is_none(), cfg.max_connections));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let metrics = engine.metrics_arc();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            metrics.connections_open.inc();
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let result = match tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let conn = http.serve_connection(TokioIo::new(tls_stream), service);
                            watcher.watch(conn).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            metrics.connections_open.dec();
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("closed connections still open after 5 s (live streams)");
    }
    Ok(())
}

/// Answers a connection over the limit with 503 (plain HTTP) or just closes it (TLS).
async fn refuse(mut stream: tokio::net::TcpStream, plain: bool, max: usize) {
    if plain {
        let body = format!(
            "{{\"error\":{{\"code\":\"too_many_connections\",\"message\":\"{max} connections are open (server.max_connections); retry later\"}}}}"
        );
        let msg = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ =
            tokio::time::timeout(Duration::from_secs(1), stream.write_all(msg.as_bytes())).await;
    }
    let _ = stream.shutdown().await;
}

/// `https` with TLS configured, else `http`.
pub fn scheme(engine: &Engine) -> &'static str {
    if engine.config().server.tls.is_some() {
        "https"
    } else {
        "http"
    }
}

//! A tiny in-process HTTP/1.1 server for protocol edge cases a real registry will not produce on
//! demand (503 then success, stale tokens, redirects to another host, wrong digests, answers
//! that stall or trickle). Each connection answers one request and closes; connections are
//! served concurrently, so one stalled answer does not hold up the next. Test-only; listens on
//! 127.0.0.1 only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Silence before anything is sent.
    pub delay: Duration,
    /// After the head and this many body bytes, silence for the duration, then the rest.
    pub pause_after: Option<(usize, Duration)>,
    /// The body in pieces of this size, one every duration.
    pub trickle: Option<(usize, Duration)>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            pause_after: None,
            trickle: None,
        }
    }
    pub fn delay(mut self, d: Duration) -> Response {
        self.delay = d;
        self
    }
    pub fn pause_after(mut self, bytes: usize, d: Duration) -> Response {
        self.pause_after = Some((bytes, d));
        self
    }
    pub fn trickle(mut self, bytes: usize, every: Duration) -> Response {
        self.trickle = Some((bytes, every));
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Response {
        self.body = b.into();
        self
    }
}

type Handler = dyn Fn(&Request, usize) -> Response + Send + Sync;

pub(crate) struct FakeServer {
    pub addr: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts a server; `handler` gets each request and its 0-based index.
    pub async fn start(
        handler: impl Fn(&Request, usize) -> Response + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let reqs = requests.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (reqs, handler) = (reqs.clone(), handler.clone());
                // Dropped with the accept task (when the server is dropped), aborting them.
                conns.spawn(serve(sock, reqs, handler));
            }
        });
        FakeServer {
            addr,
            requests,
            task,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    reqs: Arc<Mutex<Vec<Request>>>,
    handler: Arc<Handler>,
) {
    let Some(req) = read_request(&mut sock).await else {
        return;
    };
    let n = {
        let mut r = reqs.lock().unwrap();
        r.push(req.clone());
        r.len() - 1
    };
    let resp = handler(&req, n);
    tokio::time::sleep(resp.delay).await;
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", resp.status);
    let mut has_len = false;
    for (k, v) in &resp.headers {
        has_len |= k.eq_ignore_ascii_case("content-length");
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    out.push_str("\r\n");
    if sock.write_all(out.as_bytes()).await.is_err() {
        return;
    }
    if req.method != "HEAD" {
        let mut body: &[u8] = &resp.body;
        if let Some((n, pause)) = resp.pause_after {
            let (first, rest) = body.split_at(n.min(body.len()));
            let _ = sock.write_all(first).await;
            let _ = sock.flush().await;
            tokio::time::sleep(pause).await;
            body = rest;
        }
        match resp.trickle {
            Some((n, every)) => {
                for piece in body.chunks(n.max(1)) {
                    if sock.write_all(piece).await.is_err() {
                        return;
                    }
                    let _ = sock.flush().await;
                    tokio::time::sleep(every).await;
                }
            }
            None => {
                let _ = sock.write_all(body).await;
            }
        }
    }
    let _ = sock.shutdown().await;
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end..].to_vec();
    if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        while body.len() < len {
            let n = sock.read(&mut tmp).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&tmp[..n]);
        }
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = sock.read(&mut tmp).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&tmp[..n]);
        }
    }
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// A [`FakeServer`] behind HTTPS: a TLS terminator on its own port (certificate for
/// `127.0.0.1` from a throwaway CA, written to `ca`) that relays each request to the plain fake
/// and the answer back. For the rules about what may follow an HTTPS answer.
pub(crate) struct TlsFakeServer {
    /// `127.0.0.1:PORT` of the HTTPS side.
    pub addr: String,
    /// The CA to trust (`--registry-certificate addr=ca`).
    pub ca: std::path::PathBuf,
    pub plain: FakeServer,
    stop: Arc<std::sync::atomic::AtomicBool>,
    _dir: tempfile::TempDir,
}

impl Drop for TlsFakeServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}

impl TlsFakeServer {
    pub async fn start(
        handler: impl Fn(&Request, usize) -> Response + Send + Sync + 'static,
    ) -> TlsFakeServer {
        let plain = FakeServer::start(handler).await;
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca_cert).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop2, backend) = (stop.clone(), plain.addr.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = conn else { continue };
                let (config, backend) = (config.clone(), backend.clone());
                std::thread::spawn(move || {
                    let _ = relay_tls(tcp, config, &backend);
                });
            }
        });
        TlsFakeServer {
            addr,
            ca,
            plain,
            stop,
            _dir: dir,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.plain.requests()
    }
}

/// One request over TLS to the plain backend and its answer back (bodies with
/// `Content-Length` only, which is all these tests send over TLS).
fn relay_tls(
    tcp: std::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    backend: &str,
) -> std::io::Result<()> {
    use std::io::{Read, Write};
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tls.read(&mut tmp)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = tls.read(&mut tmp)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let mut up = std::net::TcpStream::connect(backend)?;
    up.write_all(&buf)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    tls.write_all(&answer)?;
    tls.conn.send_close_notify();
    tls.flush()
}

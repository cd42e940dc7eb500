//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1, put between gantry and a real registry so the
//! tests can prove what gantry does when the network or the registry misbehaves: error statuses
//! with and without `Retry-After`, connections reset in the middle of a blob upload or download,
//! stalls, registries that stop answering (before the answer or halfway through it), transfers
//! throttled to a crawl, a 401 with a fresh challenge in the middle of a push, and a declined
//! cross-repository mount.
//!
//! gantry is pointed at the proxy's address as if it were the registry (`--insecure-registry`).
//! The `Host` header is forwarded unchanged, so distribution builds its `Location` headers with
//! the proxy's address and every later request comes back through the proxy. Each client
//! connection carries one request (`Connection: close` both ways), which keeps the relaying
//! simple: after the request, the upstream answer is copied byte for byte until upstream closes.
//!
//! Rules are matched in order against the method and the request target (path and query); the
//! first rule whose window (`nth` matching request, for `times` requests) covers the request
//! decides the fault. Every request is logged with what the client saw, for assertions.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the proxy does to a request a rule picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status itself (the request never reaches the registry), with `Retry-After`
    /// in seconds when given.
    Status { code: u16, retry_after: Option<u64> },
    /// Forward the request, but reset the client connection after `after` bytes of its body.
    ResetUpload { after: usize },
    /// Forward the request, relay the answer's headers and `after` bytes of its body, then reset.
    ResetDownload { after: usize },
    /// Hold the request this long, then forward it.
    Stall(Duration),
    /// Read the request and never answer it (nor forward it): the connection stays open and
    /// silent until the client gives up on it.
    Hang,
    /// Forward the request, relay the answer's headers and `after` bytes of its body, then fall
    /// silent until the client gives up.
    HangDownload { after: usize },
    /// Forward the request, reading its body from the client `chunk` bytes at a time, one
    /// chunk every `every`: an upload that crawls but keeps moving.
    SlowUpload { chunk: usize, every: Duration },
    /// Forward the request and relay the answer's body `chunk` bytes every `every`.
    SlowDownload { chunk: usize, every: Duration },
    /// Answer 401 with the registry's own current challenge (`WWW-Authenticate` of `GET /v2/`),
    /// as a registry does when a token expires in the middle of a push.
    FreshChallenge,
    /// Forward a cross-repository mount (`POST .../blobs/uploads/?mount=..&from=..`) without its
    /// `mount` and `from` parameters, so the registry opens an upload session and answers 202.
    DeclineMount,
    /// Answer this status with this JSON body itself, for registry errors distribution never
    /// sends (ECR's `TAG_INVALID` for an immutable tag, Harbor's immutability message).
    Answer { code: u16, body: String },
}

impl Fault {
    fn name(&self) -> String {
        match self {
            Fault::Status { code, retry_after } => match retry_after {
                Some(s) => format!("status {code} retry-after {s}"),
                None => format!("status {code}"),
            },
            Fault::ResetUpload { after } => format!("reset upload after {after}"),
            Fault::ResetDownload { after } => format!("reset download after {after}"),
            Fault::Stall(d) => format!("stall {d:?}"),
            Fault::Hang => "hang".into(),
            Fault::HangDownload { after } => format!("hang download after {after}"),
            Fault::SlowUpload { chunk, every } => format!("slow upload {chunk} per {every:?}"),
            Fault::SlowDownload { chunk, every } => {
                format!("slow download {chunk} per {every:?}")
            }
            Fault::FreshChallenge => "fresh challenge".into(),
            Fault::DeclineMount => "decline mount".into(),
            Fault::Answer { code, .. } => format!("answer {code}"),
        }
    }
}

/// Which requests get a fault: `method` (exact, or `*`) and a substring of the target.
#[derive(Clone, Debug)]
pub struct Rule {
    method: String,
    target: String,
    nth: usize,
    times: usize,
    fault: Fault,
    seen: usize,
}

impl Rule {
    /// A rule firing on the first matching request only.
    pub fn new(method: &str, target_contains: &str, fault: Fault) -> Rule {
        Rule {
            method: method.to_string(),
            target: target_contains.to_string(),
            nth: 1,
            times: 1,
            fault,
            seen: 0,
        }
    }

    /// Fire on the `n`th matching request (1-based) instead of the first.
    pub fn nth(mut self, n: usize) -> Rule {
        self.nth = n.max(1);
        self
    }

    /// Fire on `n` matching requests in a row.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = n;
        self
    }

    /// Fire on every matching request from the `nth` on.
    pub fn always(self) -> Rule {
        self.times(usize::MAX)
    }

    fn matches(&self, method: &str, target: &str) -> bool {
        (self.method == "*" || self.method.eq_ignore_ascii_case(method))
            && target.contains(&self.target)
    }
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: String,
    /// Path and query as the client sent them.
    pub target: String,
    /// The status the client saw (0 when its connection was reset before an answer).
    pub status: u16,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    /// When the request arrived.
    pub at: Instant,
    /// The order in which the proxy read the request's head and chose its fault.
    order: u64,
    /// From arrival until the client saw the status (throttled transfers: until the last byte).
    pub took: Duration,
}

struct State {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    hits: Mutex<Vec<Hit>>,
    /// Counts requests as their faults are chosen, under the `rules` lock.
    next: AtomicU64,
}

pub struct FaultProxy {
    /// `127.0.0.1:PORT`: give this to gantry as the registry.
    pub addr: String,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`host:port`, plain HTTP) with these rules.
    pub fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            rules: Mutex::new(rules),
            hits: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (state2, stop2) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let state = state2.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                    let _ = handle(stream, &state);
                });
            }
        });
        FaultProxy {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Every request so far, in arrival order (a request is logged when it ends, so the log
    /// itself is in order of completion).
    pub fn hits(&self) -> Vec<Hit> {
        let mut hits = lock(&self.state.hits).clone();
        hits.sort_by_key(|h| h.order);
        hits
    }

    /// The requests that got a fault.
    pub fn faulted(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.fault.is_some())
            .collect()
    }

    /// The requests with this method whose target contains `target`.
    pub fn matching(&self, method: &str, target: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.method == method && h.target.contains(target))
            .collect()
    }

    /// The log as text, for failure messages.
    pub fn describe(&self) -> String {
        self.hits()
            .iter()
            .map(|h| {
                format!(
                    "{} {} -> {} in {:?}{}",
                    h.method,
                    h.target,
                    h.status,
                    h.took,
                    h.fault
                        .as_ref()
                        .map(|f| format!(" [{}]", f.name()))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a message body is framed.
#[derive(Clone, Copy)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

struct Head {
    first_line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn read(r: &mut impl BufRead) -> io::Result<Option<Head>> {
        let mut first_line = String::new();
        if r.read_line(&mut first_line)? == 0 {
            return Ok(None);
        }
        let first_line = first_line.trim_end().to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                break;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Ok(Some(Head {
            first_line,
            headers,
        }))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn framing(&self) -> Framing {
        if self
            .get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(n) = self.get("content-length").and_then(|v| v.parse().ok()) {
            Framing::Length(n)
        } else {
            Framing::None
        }
    }

    /// The head with `Connection: close`, ready to send.
    fn bytes(&self, first_line: &str) -> Vec<u8> {
        let mut out = format!("{first_line}\r\n");
        for (k, v) in &self.headers {
            if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("keep-alive") {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

/// Copies a request body with its framing; stops after `limit` bytes of the raw body when given
/// and returns whether it got there.
fn copy_body(
    r: &mut impl BufRead,
    w: &mut impl Write,
    framing: Framing,
    limit: Option<usize>,
) -> io::Result<bool> {
    let mut budget = limit.unwrap_or(usize::MAX);
    let mut take = |r: &mut dyn BufRead, w: &mut dyn Write, n: u64| -> io::Result<bool> {
        let mut left = n;
        let mut buf = [0u8; 16 * 1024];
        while left > 0 {
            let want = (left.min(buf.len() as u64) as usize).min(budget);
            if want == 0 {
                return Ok(true);
            }
            let got = r.read(&mut buf[..want])?;
            if got == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body cut"));
            }
            w.write_all(&buf[..got])?;
            left -= got as u64;
            budget -= got;
        }
        Ok(false)
    };
    match framing {
        Framing::None => Ok(false),
        Framing::Length(n) => take(r, w, n),
        Framing::Chunked => loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            w.write_all(size_line.as_bytes())?;
            let size = u64::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                loop {
                    let mut trailer = String::new();
                    r.read_line(&mut trailer)?;
                    w.write_all(trailer.as_bytes())?;
                    if trailer.trim().is_empty() {
                        return Ok(false);
                    }
                }
            }
            if take(r, w, size + 2)? {
                return Ok(true);
            }
        },
    }
}

/// Closes a socket with a TCP reset (SO_LINGER 0) instead of an orderly FIN.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

fn answer(client: &mut TcpStream, code: u16, extra_headers: &[(String, String)]) -> io::Result<()> {
    let body = format!(
        "{{\"errors\":[{{\"code\":\"FAULT\",\"message\":\"injected by the fault proxy ({code})\"}}]}}"
    );
    answer_with(client, code, extra_headers, &body)
}

fn answer_with(
    client: &mut TcpStream,
    code: u16,
    extra_headers: &[(String, String)],
    body: &str,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    client.write_all(head.as_bytes())?;
    client.write_all(body.as_bytes())?;
    client.flush()
}

/// Chooses the fault for a request and numbers it, both under one lock, so that the first
/// request to be numbered is the one the first firing of a rule applied to.
fn pick_fault(state: &State, method: &str, target: &str) -> (Option<Fault>, u64) {
    let mut rules = lock(&state.rules);
    let order = state.next.fetch_add(1, Ordering::SeqCst);
    let mut chosen = None;
    for rule in rules.iter_mut() {
        if !rule.matches(method, target) {
            continue;
        }
        rule.seen += 1;
        let fires = rule.seen >= rule.nth && rule.seen - rule.nth < rule.times;
        if fires && chosen.is_none() {
            chosen = Some(rule.fault.clone());
        }
    }
    (chosen, order)
}

/// Removes the `mount` and `from` query parameters of a target.
fn without_mount(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("mount=") && !p.starts_with("from="))
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

fn handle(mut client: TcpStream, state: &State) -> io::Result<()> {
    let arrived = Instant::now();
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(head) = Head::read(&mut reader)? else {
        return Ok(());
    };
    let mut parts = head.first_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let version = parts.next().unwrap_or("HTTP/1.1").to_string();
    let (fault, order) = pick_fault(state, &method, &target);
    let log = |status: u16| {
        lock(&state.hits).push(Hit {
            method: method.clone(),
            target: target.clone(),
            status,
            fault: fault.clone(),
            at: arrived,
            order,
            took: arrived.elapsed(),
        });
    };
    let framing = head.framing();
    match &fault {
        Some(Fault::Status { code, retry_after }) => {
            copy_body(&mut reader, &mut io::sink(), framing, None)?;
            let extra: Vec<(String, String)> = retry_after
                .iter()
                .map(|s| ("Retry-After".to_string(), s.to_string()))
                .collect();
            log(*code);
            return answer(&mut client, *code, &extra);
        }
        Some(Fault::Answer { code, body }) => {
            copy_body(&mut reader, &mut io::sink(), framing, None)?;
            log(*code);
            return answer_with(&mut client, *code, &[], body);
        }
        Some(Fault::FreshChallenge) => {
            copy_body(&mut reader, &mut io::sink(), framing, None)?;
            let challenges = upstream_challenges(state, head.get("host").unwrap_or(""))?;
            log(401);
            return answer(&mut client, 401, &challenges);
        }
        Some(Fault::Stall(d)) => std::thread::sleep(*d),
        Some(Fault::Hang) => {
            copy_body(&mut reader, &mut io::sink(), framing, None)?;
            log(0);
            wait_for_close(&mut reader);
            return Ok(());
        }
        _ => {}
    }
    let forwarded_target = match &fault {
        Some(Fault::DeclineMount) => without_mount(&target),
        _ => target.clone(),
    };
    let mut upstream = TcpStream::connect(&state.upstream)?;
    upstream.set_read_timeout(Some(Duration::from_secs(60)))?;
    upstream.write_all(&head.bytes(&format!("{method} {forwarded_target} {version}")))?;
    if let Some(Fault::ResetUpload { after }) = &fault {
        let _ = copy_body(&mut reader, &mut upstream, framing, Some(*after));
        log(0);
        reset(client);
        return Ok(());
    }
    match &fault {
        Some(Fault::SlowUpload { chunk, every }) => {
            let mut paced = Paced::new(&mut upstream, *chunk, *every);
            copy_body(&mut reader, &mut paced, framing, None)?;
        }
        _ => {
            copy_body(&mut reader, &mut upstream, framing, None)?;
        }
    }
    upstream.flush()?;
    let mut up_reader = BufReader::new(upstream);
    let Some(resp) = Head::read(&mut up_reader)? else {
        log(0);
        return Ok(());
    };
    let status: u16 = resp
        .first_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    client.write_all(&resp.bytes(&resp.first_line))?;
    if let Some(Fault::ResetDownload { after }) = &fault {
        let mut limited = up_reader.take(*after as u64);
        io::copy(&mut limited, &mut client)?;
        client.flush()?;
        log(0);
        reset(client);
        return Ok(());
    }
    if let Some(Fault::HangDownload { after }) = &fault {
        let mut limited = up_reader.take(*after as u64);
        io::copy(&mut limited, &mut client)?;
        client.flush()?;
        log(0);
        wait_for_close(&mut reader);
        return Ok(());
    }
    if let Some(Fault::SlowDownload { chunk, every }) = &fault {
        let mut paced = Paced::new(&mut client, *chunk, *every);
        let copied = match resp.framing() {
            Framing::None => io::copy(&mut up_reader, &mut paced).map(drop),
            framing => copy_body(&mut up_reader, &mut paced, framing, None).map(drop),
        };
        // Logged even when the client went away mid-transfer: the request was made.
        log(status);
        copied?;
        return client.flush();
    }
    log(status);
    if method != "HEAD" {
        match resp.framing() {
            Framing::None => {
                io::copy(&mut up_reader, &mut client)?;
            }
            framing => {
                copy_body(&mut up_reader, &mut client, framing, None)?;
            }
        }
    }
    client.flush()
}

/// Waits until the client closes its side of the connection (or its read timeout passes),
/// sending nothing: a registry that has stopped answering.
fn wait_for_close(reader: &mut impl Read) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// A writer that passes at most `chunk` bytes on every `every`.
struct Paced<'a, W: Write> {
    inner: &'a mut W,
    chunk: usize,
    every: Duration,
    /// Bytes passed since the last pause.
    in_chunk: usize,
}

impl<'a, W: Write> Paced<'a, W> {
    fn new(inner: &'a mut W, chunk: usize, every: Duration) -> Self {
        Paced {
            inner,
            chunk: chunk.max(1),
            every,
            in_chunk: 0,
        }
    }
}

impl<W: Write> Write for Paced<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.in_chunk >= self.chunk {
            self.inner.flush()?;
            std::thread::sleep(self.every);
            self.in_chunk = 0;
        }
        let n = buf.len().min(self.chunk - self.in_chunk);
        let n = self.inner.write(&buf[..n])?;
        self.in_chunk += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The `WWW-Authenticate` headers the registry sends now for an anonymous `GET /v2/`.
fn upstream_challenges(state: &State, host: &str) -> io::Result<Vec<(String, String)>> {
    let mut up = TcpStream::connect(&state.upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        up,
        "GET /v2/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut r = BufReader::new(up);
    let head = Head::read(&mut r)?.unwrap_or(Head {
        first_line: String::new(),
        headers: Vec::new(),
    });
    Ok(head
        .headers
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_windows_count_matching_requests_only() {
        let state = State {
            upstream: String::new(),
            rules: Mutex::new(vec![Rule::new(
                "PUT",
                "/manifests/",
                Fault::Status {
                    code: 503,
                    retry_after: None,
                },
            )
            .nth(2)
            .times(2)]),
            hits: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        };
        let fired: Vec<bool> = [
            ("PUT", "/v2/a/manifests/x"),
            ("GET", "/v2/a/manifests/x"),
            ("PUT", "/v2/a/manifests/x"),
            ("PUT", "/v2/a/manifests/x"),
            ("PUT", "/v2/a/manifests/x"),
        ]
        .iter()
        .map(|(m, t)| pick_fault(&state, m, t).0.is_some())
        .collect();
        assert_eq!(fired, [false, false, true, true, false]);
    }

    #[test]
    fn declined_mount_drops_mount_and_from_only() {
        assert_eq!(
            without_mount("/v2/app/blobs/uploads/?mount=sha256%3Aab&from=base%2Fbusybox"),
            "/v2/app/blobs/uploads/"
        );
        assert_eq!(
            without_mount("/v2/app/blobs/uploads/?from=b&x=1&mount=c"),
            "/v2/app/blobs/uploads/?x=1"
        );
        assert_eq!(without_mount("/v2/"), "/v2/");
    }
}

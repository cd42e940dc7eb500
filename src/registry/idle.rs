//! Idle timeouts: a registry (or a proxy in front of it) that stops answering must not hang a
//! CI job until the job's own limit kills it.
//!
//! The rule is "nothing moved for the idle window", not "the call took too long": a multi-GiB
//! layer crawling over a slow link keeps resetting the clock with every chunk, while a
//! connection on which no byte goes either way for the window is given up and retried like a
//! dropped connection. reqwest's own `read_timeout` cannot express this for uploads: its clock
//! for the answer starts when the request starts and ignores the request body, so it would kill
//! any upload that takes longer than the window. Here the request body marks progress itself
//! ([`Progress::touch`] on every chunk handed to the connection), the wait for the answer is
//! raced against that clock, and every read of an answer's body is bounded by the window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Response;

use super::error::RegistryError;
use crate::env;

/// How long a registry connection may sit with no byte moving either way.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The idle window: `explicit` when given, else [`env::GANTRY_REGISTRY_IDLE_TIMEOUT`], else
/// [`DEFAULT_IDLE_TIMEOUT`]. A value that is not a whole number of seconds above zero is an
/// error, never a silent default.
pub(crate) fn idle_timeout(explicit: Option<Duration>) -> Result<Duration, RegistryError> {
    if let Some(d) = explicit {
        return Ok(d);
    }
    match env::var(env::GANTRY_REGISTRY_IDLE_TIMEOUT) {
        None => Ok(DEFAULT_IDLE_TIMEOUT),
        Some(v) => parse_seconds(&v).ok_or(RegistryError::BadIdleTimeout { value: v }),
    }
}

fn parse_seconds(v: &str) -> Option<Duration> {
    match v.trim().parse::<u64>() {
        Ok(s) if s > 0 => Some(Duration::from_secs(s)),
        _ => None,
    }
}

/// When a byte last moved on one request. Cheap to clone; clones share the clock.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    origin: Instant,
    /// Milliseconds after `origin` of the last progress.
    last_ms: Arc<AtomicU64>,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            origin: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Something moved now.
    pub(crate) fn touch(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }

    /// Resolves once nothing has moved for `window`; pending for as long as something does.
    pub(crate) async fn stalled(&self, window: Duration) {
        loop {
            let idle = self.idle_for();
            if idle >= window {
                return;
            }
            tokio::time::sleep(window - idle).await;
        }
    }
}

/// Why reading an answer's body failed.
#[derive(Debug)]
pub(crate) enum BodyError {
    Http(reqwest::Error),
    /// No chunk arrived within the idle window.
    Stalled,
}

/// The next chunk of an answer's body, or [`BodyError::Stalled`] when none arrives in `window`.
pub(crate) async fn next_chunk(
    resp: &mut Response,
    window: Duration,
) -> Result<Option<Bytes>, BodyError> {
    match tokio::time::timeout(window, resp.chunk()).await {
        Ok(r) => r.map_err(BodyError::Http),
        Err(_) => Err(BodyError::Stalled),
    }
}

/// An answer's whole body, read chunk by chunk under the idle window; reading stops as soon as
/// more than `limit` bytes arrived (the caller sees the longer buffer and refuses it).
pub(crate) async fn read_to_end(
    mut resp: Response,
    window: Duration,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    while let Some(chunk) = next_chunk(&mut resp, window).await? {
        out.extend_from_slice(&chunk);
        if out.len() > limit {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_window_is_whole_seconds_above_zero() {
        assert_eq!(parse_seconds("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_seconds(" 5 "), Some(Duration::from_secs(5)));
        for bad in ["0", "-1", "1.5", "60s", ""] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
        assert_eq!(
            idle_timeout(Some(Duration::from_millis(300))).unwrap(),
            Duration::from_millis(300)
        );
        let msg = RegistryError::BadIdleTimeout {
            value: "60s".into(),
        }
        .to_string();
        assert!(
            msg.contains("`60s`") && msg.contains("hint:") && msg.contains("60"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn progress_keeps_the_stall_clock_from_firing() {
        let p = Progress::new();
        let window = Duration::from_millis(300);
        let ticker = {
            let p = p.clone();
            async move {
                // 1.2 s of activity, a touch every 100 ms: never idle for the whole window.
                for _ in 0..12 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    p.touch();
                }
            }
        };
        let start = Instant::now();
        tokio::join!(ticker, p.stalled(window));
        // The stall fired a window after the last touch, not a window after the start.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1450) && took < Duration::from_millis(2500),
            "{took:?}"
        );
        // Without touches it fires after one window.
        let idle = Progress::new();
        let start = Instant::now();
        idle.stalled(window).await;
        let took = start.elapsed();
        assert!(
            took >= window && took < Duration::from_millis(800),
            "{took:?}"
        );
    }
}

//! When and how long to wait before trying a registry call again.
//!
//! Registries and the proxies in front of them fail transiently (connection resets, 429 rate
//! limits, 5xx from a load balancer). Those are retried with exponential backoff and full jitter,
//! honouring `Retry-After`; everything else is returned at once.

use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

/// First backoff step.
pub const BASE_DELAY: Duration = Duration::from_millis(200);
/// Longest wait between two attempts (also caps `Retry-After`).
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// How many extra attempts a call may make, and the delays between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub extra_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    pub fn new(extra_attempts: u32) -> Self {
        RetryPolicy {
            extra_attempts,
            base: BASE_DELAY,
            cap: MAX_DELAY,
        }
    }

    /// The wait before attempt `attempt + 1` (attempt 0 is the first try): a random duration up to
    /// `base * 2^attempt` capped at `cap`, or `Retry-After` when the server sent one.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.cap);
        }
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.cap);
        // Full jitter, but never less than a tenth of the step so retries do not hammer.
        let min = exp / 10;
        let ms = rand::rng().random_range(min.as_millis()..=exp.as_millis().max(min.as_millis()));
        Duration::from_millis(ms as u64)
    }
}

/// Statuses that say "try again later" rather than "no".
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Errors from the HTTP stack worth another attempt: connecting, timeouts, a body cut short.
/// A bad certificate or a malformed URL will not improve by retrying.
pub fn is_retryable_error(err: &reqwest::Error) -> bool {
    if err.is_builder() || err.is_redirect() {
        return false;
    }
    let text = super::error::chain(err).to_ascii_lowercase();
    if text.contains("certificate") || text.contains("tls") && text.contains("handshake") {
        return false;
    }
    err.is_connect() || err.is_timeout() || err.is_request() || err.is_body()
}

/// `Retry-After` in seconds (the HTTP-date form is rare from registries and is ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::new(5);
        for _ in 0..50 {
            let d0 = p.delay(0, None);
            assert!(
                d0 >= Duration::from_millis(20) && d0 <= BASE_DELAY,
                "{d0:?}"
            );
            let d3 = p.delay(3, None);
            assert!(d3 <= Duration::from_millis(1600), "{d3:?}");
            assert!(p.delay(30, None) <= MAX_DELAY);
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = RetryPolicy::new(1);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        assert_eq!(p.delay(0, retry_after(&h)), Duration::from_secs(2));
        assert_eq!(p.delay(0, Some(Duration::from_secs(600))), MAX_DELAY);
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn retryable_statuses() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 201, 202, 400, 401, 403, 404, 501] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }
}

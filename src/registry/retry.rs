//! When and how long to wait before trying a registry call again.
//!
//! Registries and the proxies in front of them fail transiently (connection resets, 429 rate
//! limits, 5xx from a load balancer). Those are retried with exponential backoff and full jitter,
//! honouring `Retry-After`; everything else is returned at once.
//!
//! Our own backoff stays short ([`MAX_DELAY`]): it only spaces out attempts. A registry's
//! `Retry-After` is its own statement of when it will serve again (Docker Hub and GHCR rate
//! limits ask for tens of seconds), and retrying earlier just burns an attempt on another 429,
//! so it is honoured up to [`MAX_RETRY_AFTER`] and the wait is logged.

use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

/// First backoff step.
pub const BASE_DELAY: Duration = Duration::from_millis(200);
/// Longest wait of our own backoff between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// Longest `Retry-After` honoured: a registry asking for more still gets its attempt after a
/// minute rather than stalling the job for as long as it likes.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How many extra attempts a call may make, and the delays between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub extra_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// Cap on a server's `Retry-After`.
    pub retry_after_cap: Duration,
}

impl RetryPolicy {
    pub fn new(extra_attempts: u32) -> Self {
        RetryPolicy {
            extra_attempts,
            base: BASE_DELAY,
            cap: MAX_DELAY,
            retry_after_cap: MAX_RETRY_AFTER,
        }
    }

    /// The wait before attempt `attempt + 1` (attempt 0 is the first try): a random duration up to
    /// `base * 2^attempt` capped at `cap`, or `Retry-After` (capped at `retry_after_cap`) when
    /// the server sent one.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with_jitter(attempt, retry_after, rand::rng().random_range(0.0..=1.0))
    }

    /// [`RetryPolicy::delay`] with the random part given: `jitter` in `0..=1` picks the wait
    /// between a tenth of the step and the whole step.
    pub fn delay_with_jitter(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.retry_after_cap);
        }
        let step = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.cap);
        // Full jitter, but never less than a tenth of the step so retries do not hammer.
        let min = step / 10;
        min + (step - min).mul_f64(jitter.clamp(0.0, 1.0))
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
    if is_plain_http_answer(err) {
        return false;
    }
    err.is_connect() || err.is_timeout() || err.is_request() || err.is_body()
}

/// Whether a TLS handshake failed because the server answered in plain HTTP: rustls reads the
/// `HTTP/1.1 400` as a TLS record of an invalid content type.
pub fn is_plain_http_answer(err: &reqwest::Error) -> bool {
    let text = super::error::chain(err);
    text.contains("InvalidContentType") || text.contains("received corrupt message")
}

/// `Retry-After` in seconds (the HTTP-date form is rare from registries and is ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each attempt's wait lies between a tenth of its step and the step, the step doubles per
    /// attempt up to the cap, and the random part really varies: a constant delay, a linear one
    /// or one without jitter fails here.
    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::new(5);
        let ms = |attempt, jitter| p.delay_with_jitter(attempt, None, jitter).as_millis();
        // bounds per attempt: [step/10, step], step = 200 ms * 2^attempt, capped at 5 s
        let steps = [200, 400, 800, 1600, 3200, 5000, 5000];
        for (attempt, step) in steps.iter().enumerate() {
            assert_eq!(ms(attempt as u32, 0.0), step / 10, "attempt {attempt}");
            assert_eq!(ms(attempt as u32, 1.0), *step, "attempt {attempt}");
            assert_eq!(
                ms(attempt as u32, 0.5),
                (step / 10 + step) / 2,
                "attempt {attempt}"
            );
        }
        assert_eq!(p.delay_with_jitter(40, None, 1.0), MAX_DELAY);
        // The real, random delays: within the bounds, and spread over them.
        for (attempt, step) in steps.iter().enumerate() {
            let samples: Vec<u128> = (0..200)
                .map(|_| p.delay(attempt as u32, None).as_millis())
                .collect();
            let (lo, hi) = (step / 10, *step);
            assert!(
                samples.iter().all(|d| (lo..=hi).contains(d)),
                "attempt {attempt}: {samples:?} not within {lo}..={hi} ms"
            );
            let (min, max) = (samples.iter().min().unwrap(), samples.iter().max().unwrap());
            // 200 uniform samples: the smallest is in the bottom third, the largest in the top.
            assert!(
                *min < lo + (hi - lo) / 3 && *max > hi - (hi - lo) / 3,
                "attempt {attempt}: no jitter, samples span only {min}..={max} ms"
            );
        }
        // Averages double from one attempt to the next until the cap.
        let mean = |attempt: u32| {
            (0..400)
                .map(|_| p.delay(attempt, None).as_secs_f64())
                .sum::<f64>()
                / 400.0
        };
        for attempt in 0..4 {
            let (a, b) = (mean(attempt), mean(attempt + 1));
            assert!(
                b > 1.6 * a,
                "attempt {attempt}: mean {a:.3} s, next {b:.3} s"
            );
        }
    }

    /// `Retry-After` beyond our own backoff cap is honoured, up to a minute.
    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = RetryPolicy::new(1);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        assert_eq!(p.delay(0, retry_after(&h)), Duration::from_secs(2));
        h.insert(RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(p.delay(3, retry_after(&h)), Duration::from_secs(30));
        assert!(p.delay(3, retry_after(&h)) > MAX_DELAY);
        assert_eq!(p.delay(0, Some(Duration::from_secs(60))), MAX_RETRY_AFTER);
        assert_eq!(p.delay(0, Some(Duration::from_secs(600))), MAX_RETRY_AFTER);
        assert_eq!(p.delay(0, Some(Duration::ZERO)), Duration::ZERO);
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

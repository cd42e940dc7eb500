//! All user-facing output: log lines, progress bars, and the data gantry prints.
//!
//! Data (digests, JSON) goes to stdout through [`data`]; everything else goes to stderr through
//! `tracing`. Progress bars appear only on a terminal outside CI; elsewhere each step is one plain
//! log line, so CI logs stay readable.

#![allow(clippy::print_stdout)]

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, Verbosity};
use crate::env;

/// Sets up the global logger once, from the resolved log settings.
pub fn init_logging(verbosity: Verbosity, format: LogFormat, timestamp: bool) {
    let level = match verbosity {
        Verbosity::Panic | Verbosity::Fatal | Verbosity::Error => "error",
        Verbosity::Warn => "warn",
        Verbosity::Info => "info",
        Verbosity::Debug => "debug",
        Verbosity::Trace => "trace",
    };
    let filter = EnvFilter::new(format!("warn,gantry={level}"));
    let color = format == LogFormat::Color
        && std::io::stderr().is_terminal()
        && env::var(env::NO_COLOR).is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match (format, timestamp) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (_, true) => builder.with_ansi(color).try_init(),
        (_, false) => builder.with_ansi(color).without_time().try_init(),
    };
    // A second initialisation (tests calling run twice) keeps the first logger.
    let _ = result;
}

/// Whether progress bars are drawn: stderr is a terminal and no CI variable is set.
pub fn progress_enabled() -> bool {
    std::io::stderr().is_terminal() && env::var(env::CI).is_none()
}

/// A progress indicator for one transfer or layer: a bar on a terminal, one log line at the end
/// otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    watcher: Option<(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
}

impl Progress {
    pub fn bytes(label: impl Into<String>, total: Option<u64>) -> Progress {
        let label = label.into();
        let bar = progress_enabled().then(|| {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let style = ProgressStyle::with_template(
                "{spinner} {msg:40!} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(label.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            label,
            watcher: None,
        }
    }

    /// A byte indicator that follows the size of a file another component is writing (a blob
    /// being downloaded to `path`), so no component has to report its own progress.
    pub fn watch_file(
        label: impl Into<String>,
        total: Option<u64>,
        path: std::path::PathBuf,
    ) -> Progress {
        let mut p = Progress::bytes(label, total);
        if let Some(bar) = p.bar.clone() {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stop2 = stop.clone();
            let handle = std::thread::spawn(move || {
                while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(m) = std::fs::metadata(&path) {
                        bar.set_position(m.len());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            p.watcher = Some((stop, handle));
        }
        p
    }

    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Ends the indicator with a one-line outcome that is logged in every mode (unless empty).
    pub fn finish(mut self, outcome: &str) {
        if let Some((stop, handle)) = self.watcher.take() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = handle.join();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if !outcome.is_empty() {
            tracing::info!("{} {}", self.label, outcome);
        }
    }
}

/// Writes one line of data to stdout. A closed pipe is not an error.
pub fn data(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// Formats a byte count for people: `12.3 MB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: &[&str] = &["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(12_345_678), "12.3 MB");
        assert_eq!(human_bytes(1_000), "1.0 kB");
    }
}

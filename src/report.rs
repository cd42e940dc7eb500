//! All user-facing output: log lines, progress bars, and the data gantry prints.
//!
//! Data (digests, JSON) goes to stdout through [`data`]; everything else goes to stderr through
//! `tracing`. Progress bars appear only on a terminal outside CI and outside `--log-format
//! json` ([`progress_mode`]); elsewhere each step is one plain log line, so CI logs stay
//! readable and JSON logs stay one object per line.
//!
//! Progress is measured without the measured code knowing about bars: a download by the size
//! of the file being written ([`Progress::watch_file`]), a push by how far the upload has read
//! the blob files ([`Progress::watch_reads`]), a layer by the bytes the layer writer reports
//! ([`Progress::inc`]).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, Verbosity};
use crate::env;

/// The log format the logger was set up with (the first [`init_logging`] wins).
static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

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
    if result.is_ok() {
        let _ = LOG_FORMAT.set(format);
    }
}

/// Prints the error that ends a command: `error: ...` on stderr, or, with `--log-format json`,
/// one JSON log object like every other line (so a JSON log stays parseable to its end).
pub fn print_error(message: &str) {
    if LOG_FORMAT.get() == Some(&LogFormat::Json) {
        tracing::error!("{message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars that redraw in place (indicatif).
    Bars,
    /// One plain log line per finished step.
    Lines,
}

/// Bars only when stderr is a terminal, no `CI` variable is set (any non-empty value), and log
/// lines are not JSON (a redrawn bar would break one-object-per-line).
pub fn progress_mode(
    stderr_is_terminal: bool,
    ci: Option<&str>,
    log_format: Option<LogFormat>,
) -> ProgressMode {
    let ci = ci.is_some_and(|v| !v.is_empty());
    if stderr_is_terminal && !ci && log_format != Some(LogFormat::Json) {
        ProgressMode::Bars
    } else {
        ProgressMode::Lines
    }
}

/// Whether progress bars are drawn in this process.
pub fn progress_enabled() -> bool {
    progress_mode(
        std::io::stderr().is_terminal(),
        env::var(env::CI).as_deref(),
        LOG_FORMAT.get().copied(),
    ) == ProgressMode::Bars
}

/// A thread that samples a position for a bar until it is told to stop.
struct Watcher {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Watcher {
    fn spawn(
        bar: ProgressBar,
        mut sample: impl FnMut() -> Option<u64> + Send + 'static,
    ) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                if let Some(pos) = sample() {
                    bar.set_position(pos);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Watcher { stop, handle }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

/// A bar with a known total, in decimal units like [`human_bytes`].
const BAR_TEMPLATE: &str =
    "{msg:40!} [{bar:25}] {decimal_bytes:>10}/{decimal_total_bytes:10} {decimal_bytes_per_sec:>12}";
/// A spinner for a transfer of unknown size.
const SPINNER_TEMPLATE: &str =
    "{spinner} {msg:40!} {decimal_bytes:>10} {decimal_bytes_per_sec:>12}";

/// A progress indicator for one transfer or layer: a bar on a terminal, one log line at the end
/// otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    watcher: Option<Watcher>,
}

impl Progress {
    pub fn bytes(label: impl Into<String>, total: Option<u64>) -> Progress {
        Progress::new(label.into(), total, progress_enabled())
    }

    fn new(label: String, total: Option<u64>, bars: bool) -> Progress {
        let bar = bars.then(|| {
            let (bar, template) = match total {
                Some(t) => (ProgressBar::new(t), BAR_TEMPLATE),
                None => (ProgressBar::new_spinner(), SPINNER_TEMPLATE),
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
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

    /// Whether this indicator draws a bar (else it only logs its outcome line).
    pub fn is_bar(&self) -> bool {
        self.bar.is_some()
    }

    /// A byte indicator that follows the size of a file another component is writing (a blob
    /// being downloaded to `path`), so no component has to report its own progress.
    pub fn watch_file(label: impl Into<String>, total: Option<u64>, path: PathBuf) -> Progress {
        let mut p = Progress::bytes(label, total);
        if let Some(bar) = p.bar.clone() {
            p.watcher = Some(Watcher::spawn(bar, move || {
                std::fs::metadata(&path).ok().map(|m| m.len())
            }));
        }
        p
    }

    /// A byte indicator for files another component reads through (blobs being uploaded): the
    /// bar's total is their size, its position the sum of how far this process has read each of
    /// them, taken from the file offsets in `/proc/self/fdinfo`. A file read twice (an upload
    /// retried from the start) counts once, at its furthest point.
    pub fn watch_reads(label: impl Into<String>, files: &[PathBuf]) -> Progress {
        let sizes: BTreeMap<PathBuf, u64> = files
            .iter()
            .filter_map(|f| {
                let real = std::fs::canonicalize(f).ok()?;
                let size = std::fs::metadata(&real).ok()?.len();
                Some((real, size))
            })
            .collect();
        let total = sizes.values().sum();
        let mut p = Progress::bytes(label, Some(total));
        if let Some(bar) = p.bar.clone() {
            let mut furthest: BTreeMap<PathBuf, u64> = BTreeMap::new();
            p.watcher = Some(Watcher::spawn(bar, move || {
                for (path, pos) in open_file_offsets() {
                    if let Some(size) = sizes.get(&path) {
                        let seen = furthest.entry(path).or_default();
                        *seen = (*seen).max(pos.min(*size));
                    }
                }
                Some(furthest.values().sum())
            }));
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
        if let Some(w) = self.watcher.take() {
            w.stop();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if !outcome.is_empty() {
            tracing::info!("{} {}", self.label, outcome);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An indicator dropped on an error path stops its thread and clears its bar too.
        if let Some(w) = self.watcher.take() {
            w.stop();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The regular files this process has open and each descriptor's offset (`pos:` of
/// `/proc/self/fdinfo/N`). Descriptors that close while being read are skipped.
fn open_file_offsets() -> Vec<(PathBuf, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let info = std::path::Path::new("/proc/self/fdinfo").join(entry.file_name());
        let Ok(text) = std::fs::read_to_string(info) else {
            continue;
        };
        if let Some(pos) = text
            .lines()
            .find_map(|l| l.strip_prefix("pos:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            out.push((target, pos));
        }
    }
    out
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
    fn bars_only_on_a_terminal_outside_ci_and_json() {
        use ProgressMode::{Bars, Lines};
        let cases = [
            (true, None, None, Bars),
            (true, None, Some(LogFormat::Color), Bars),
            (true, None, Some(LogFormat::Text), Bars),
            (true, Some(""), Some(LogFormat::Text), Bars),
            (true, Some("true"), Some(LogFormat::Color), Lines),
            (true, Some("1"), None, Lines),
            (true, None, Some(LogFormat::Json), Lines),
            (false, None, Some(LogFormat::Color), Lines),
            (false, Some("true"), None, Lines),
        ];
        for (tty, ci, format, want) in cases {
            assert_eq!(
                progress_mode(tty, ci, format),
                want,
                "{tty} {ci:?} {format:?}"
            );
        }
        for t in [BAR_TEMPLATE, SPINNER_TEMPLATE] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
        assert!(Progress::new("x".into(), Some(10), true).is_bar());
        assert!(!Progress::new("x".into(), Some(10), false).is_bar());
    }

    #[test]
    fn read_offsets_of_open_files_are_seen() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let mut f = std::fs::File::open(&path).unwrap();
        let mut buf = vec![0u8; 4096];
        f.read_exact(&mut buf).unwrap();
        let real = std::fs::canonicalize(&path).unwrap();
        let offsets = open_file_offsets();
        assert!(
            offsets.iter().any(|(p, pos)| *p == real && *pos == 4096),
            "{offsets:?}"
        );
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(12_345_678), "12.3 MB");
        assert_eq!(human_bytes(1_000), "1.0 kB");
    }
}

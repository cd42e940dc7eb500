//! Interrupting a build (SIGINT, SIGTERM) wherever it holds something to undo: while a base layer
//! downloads, while a RUN runs, while a RUN's snapshot is taken, and while an image is pushed.
//! Each test checks that gantry stops within 5 seconds with a non-zero code and leaves no mount,
//! no work directory and no temporary file behind (gantry's `TMPDIR` is a private directory here,
//! so anything left in it is gantry's), that no tag moved, and that the next build works.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::need_root;
use crate::build_tests::push_busybox;
use crate::harness::faultproxy::{Fault, FaultProxy, Rule};
use crate::harness::registry::TestRegistry;
use crate::harness::*;

/// The private directories of one interrupted build.
struct Dirs {
    home: PathBuf,
    work: PathBuf,
    tmpdir: PathBuf,
    ctx: PathBuf,
}

impl Dirs {
    fn new(tmp: &Path) -> Dirs {
        let d = Dirs {
            home: tmp.join("home"),
            work: tmp.join("work"),
            tmpdir: tmp.join("tmpdir"),
            ctx: tmp.join("ctx"),
        };
        for p in [&d.home, &d.work, &d.tmpdir, &d.ctx] {
            std::fs::create_dir_all(p).unwrap();
        }
        d
    }

    /// A gantry build of `dockerfile` with these directories.
    fn command(&self, dockerfile: &str, args: &[&str]) -> std::process::Command {
        write_files(&self.ctx, &[("Dockerfile", dockerfile)]);
        let mut cmd = gantry(&self.home);
        cmd.env("GANTRY_WORK_DIR", &self.work)
            .env("TMPDIR", &self.tmpdir)
            .arg("build")
            .arg("--context")
            .arg(&self.ctx)
            .args(args);
        cmd
    }

    /// Starts the build; its stderr is collected line by line.
    fn start(&self, dockerfile: &str, args: &[&str]) -> Build {
        spawn(self.command(dockerfile, args))
    }

    /// Checks that nothing of an interrupted build is left.
    fn assert_clean(&self) {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo.contains(self.work.to_str().unwrap()),
            "a mount under the work directory is left:\n{mountinfo}"
        );
        for dir in [&self.work, &self.tmpdir] {
            let left: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert!(left.is_empty(), "left in `{}`: {left:?}", dir.display());
        }
    }
}

/// Starts `cmd` (a gantry command); its stderr is collected line by line.
fn spawn(mut cmd: std::process::Command) -> Build {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(String::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            log2.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
    Build { child, lines, log }
}

struct Build {
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<String>>,
}

impl Build {
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_line(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("no line with `{needle}` in time:\n{}", self.log()),
            }
        }
    }

    /// Waits until `ready` holds (polling), failing with the log after `timeout`.
    fn wait_until(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("gantry ended ({status}) before {what}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal`, checks that gantry exits with `code` within 5 seconds, and returns its log.
    fn interrupt(mut self, signal: i32, code: i32) -> String {
        let sent = Instant::now();
        // SAFETY: kill(2) on the child this test started.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(5),
                "gantry did not stop within 5 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The stderr reader ends with the process.
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log();
        assert_eq!(status.code(), Some(code), "{log}");
        let name = if signal == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        assert!(log.contains(&format!("interrupted by {name}")), "{log}");
        log
    }
}

/// Any file below `dir` whose name ends in `suffix` and that holds at least `min` bytes.
fn has_file(dir: &Path, suffix: &str, min: u64) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => has_file(&p, suffix, min),
            Ok(md) => p.to_string_lossy().ends_with(suffix) && md.len() >= min,
            Err(_) => false,
        }
    })
}

/// The digest of the (only) layer of the busybox fixture.
fn busybox_layer() -> (String, u64) {
    let layout = fixtures::busybox();
    let manifest: serde_json::Value = serde_json::from_slice(&fixtures::blob(
        &layout,
        &fixtures::manifest_digest(&layout, fixtures::BUSYBOX_TAG),
    ))
    .unwrap();
    let layer = &manifest["layers"][0];
    (
        layer["digest"].as_str().unwrap().to_string(),
        layer["size"].as_u64().unwrap(),
    )
}

/// Sends `signal` to a build that is running a RUN step.
fn interrupted_run_cleans_up(signal: i32, expected_code: i32) {
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let dirs = Dirs::new(tmp.path());
    let sleeper = format!("sleep {}", 60 + signal);
    let build = dirs.start(
        &format!("FROM {base}\nRUN echo started && {sleeper}\n"),
        &["--no-push", "--insecure-registry", &reg.addr],
    );
    build.wait_line("started", Duration::from_secs(60));
    build.interrupt(signal, expected_code);
    dirs.assert_clean();
    // No `sleep` from the sandbox is still running.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &sleeper])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "sandboxed command still running: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
    ok(run(&mut dirs.command(
        &format!("FROM {base}\nRUN echo again > /again\n"),
        &["--no-push", "--insecure-registry", &reg.addr],
    )));
    dirs.assert_clean();
}

#[test]
fn sigterm_during_run_stops_and_cleans_up() {
    if !need_root("sigterm_during_run_stops_and_cleans_up") {
        return;
    }
    interrupted_run_cleans_up(libc::SIGTERM, 143);
}

#[test]
fn sigint_during_run_stops_and_cleans_up() {
    if !need_root("sigint_during_run_stops_and_cleans_up") {
        return;
    }
    interrupted_run_cleans_up(libc::SIGINT, 130);
}

/// The base layer comes through a proxy at 32 KiB/s; the signal comes once part of it is on disk.
#[test]
fn sigterm_during_pull_stops_and_cleans_up() {
    if !need_root("sigterm_during_pull_stops_and_cleans_up") {
        return;
    }
    let reg = TestRegistry::plain();
    push_busybox(&reg);
    let (layer, _) = busybox_layer();
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![Rule::new(
            "GET",
            &format!("/blobs/{layer}"),
            // About 32 KiB a second.
            Fault::SlowDownload {
                chunk: 4096,
                every: Duration::from_millis(125),
            },
        )
        .always()],
    );
    let tmp = tempfile::tempdir().unwrap();
    let dirs = Dirs::new(tmp.path());
    let mut build = dirs.start(
        &format!(
            "FROM {}/base/busybox:latest\nRUN echo never > /never\n",
            proxy.addr
        ),
        &["--no-push", "--insecure-registry", &proxy.addr],
    );
    let work = dirs.work.clone();
    build.wait_until(
        "the base layer download to start",
        Duration::from_secs(30),
        || has_file(&work, ".tmp", 64 * 1024),
    );
    let log = build.interrupt(libc::SIGTERM, 143);
    assert!(!log.contains("unpacked"), "the pull had ended: {log}");
    dirs.assert_clean();
    // The proxy logs a throttled download when its copy ends, which for a client that went
    // away is the first write that fails after the close: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.matching("GET", &layer).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !proxy.matching("GET", &layer).is_empty(),
        "the base layer was not fetched through the proxy: {}",
        proxy.describe()
    );
    ok(run(&mut dirs.command(
        &format!(
            "FROM {}/base/busybox:latest\nRUN echo again > /again\n",
            reg.addr
        ),
        &["--no-push", "--insecure-registry", &reg.addr],
    )));
    dirs.assert_clean();
}

/// The RUN writes many files and a large one; the signal comes as soon as the command has
/// finished, while gantry walks the changes and compresses the layer.
#[test]
fn sigterm_during_snapshot_stops_and_cleans_up() {
    if !need_root("sigterm_during_snapshot_stops_and_cleans_up") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let dirs = Dirs::new(tmp.path());
    let build = dirs.start(
        &format!(
            "FROM {base}\n\
             RUN mkdir /many && cd /many && seq 1 10000 | xargs touch && \
             head -c 64000000 /dev/urandom > /big && echo command-finished\n"
        ),
        &["--no-push", "--insecure-registry", &reg.addr],
    );
    build.wait_line("command-finished", Duration::from_secs(120));
    let log = build.interrupt(libc::SIGTERM, 143);
    assert!(
        !log.contains("from RUN"),
        "the layer was finished before the signal: {log}"
    );
    dirs.assert_clean();
    ok(run(&mut dirs.command(
        &format!("FROM {base}\nRUN echo again > /again\n"),
        &["--no-push", "--insecure-registry", &reg.addr],
    )));
    dirs.assert_clean();
}

/// The destination already holds an old image under the tag. Every blob upload to it stalls; the
/// signal comes once gantry has spooled the base layer to its temporary directory for the upload
/// (a base layer that lives on another registry and was never needed locally, as here where the
/// build only changes the config). The tag must still name the old image.
#[test]
fn sigterm_during_push_stops_cleans_up_and_moves_no_tag() {
    if !need_root("sigterm_during_push_stops_cleans_up_and_moves_no_tag") {
        return;
    }
    let src = TestRegistry::plain();
    let base = push_busybox(&src);
    let dst = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let tag = format!("{}/app/pushed:1", dst.addr);
    let old_digest = ok(crate::build_tests::build_in(
        &tmp.path().join("old"),
        "FROM scratch\nCOPY old.txt /old.txt\n",
        &[("old.txt", "the old image\n")],
        &["--destination", &tag, "--insecure-registry", &dst.addr],
    ));
    let proxy = FaultProxy::start(
        &dst.addr,
        vec![Rule::new(
            "POST",
            "/blobs/uploads/",
            Fault::Stall(Duration::from_secs(60)),
        )
        .always()],
    );
    let dirs = Dirs::new(&tmp.path().join("new"));
    let (_, layer_size) = busybox_layer();
    let mut build = dirs.start(
        &format!("FROM {base}\nENV IMAGE=new\n"),
        &[
            "--destination",
            &format!("{}/app/pushed:1", proxy.addr),
            "--insecure-registry",
            &proxy.addr,
            "--insecure-registry",
            &src.addr,
            "--skip-push-permission-check",
        ],
    );
    let spool = dirs.tmpdir.clone();
    build.wait_until(
        "the base layer to be spooled for the push",
        Duration::from_secs(60),
        || has_file(&spool, "/blob", layer_size),
    );
    build.interrupt(libc::SIGTERM, 143);
    dirs.assert_clean();
    let inspect = skopeo_inspect(&format!("docker://{tag}"), false, &["--tls-verify=false"]);
    assert_eq!(inspect["Digest"], old_digest.trim(), "the tag moved");
    // The next build pushes (straight to the registry) and moves the tag.
    let new_digest = ok(run(&mut dirs.command(
        &format!("FROM {base}\nENV IMAGE=new\n"),
        &[
            "--destination",
            &tag,
            "--insecure-registry",
            &dst.addr,
            "--insecure-registry",
            &src.addr,
        ],
    )));
    dirs.assert_clean();
    let inspect = skopeo_inspect(&format!("docker://{tag}"), false, &["--tls-verify=false"]);
    assert_eq!(inspect["Digest"], new_digest.trim());
    assert_ne!(new_digest, old_digest);
}

/// `gantry warm` downloads through a temporary name in `--cache-dir`; an interrupted download
/// leaves no partial blob there.
#[test]
fn sigterm_during_warm_leaves_no_partial_blob() {
    let reg = TestRegistry::plain();
    push_busybox(&reg);
    let (layer, _) = busybox_layer();
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![Rule::new(
            "GET",
            &format!("/blobs/{layer}"),
            // About 32 KiB a second.
            Fault::SlowDownload {
                chunk: 4096,
                every: Duration::from_millis(125),
            },
        )
        .always()],
    );
    let tmp = tempfile::tempdir().unwrap();
    let dirs = Dirs::new(tmp.path());
    let cache = tmp.path().join("cache");
    let warm = |registry: &str| {
        let mut cmd = gantry(&dirs.home);
        cmd.env("TMPDIR", &dirs.tmpdir)
            .arg("warm")
            .args(["--image", &format!("{registry}/base/busybox:latest")])
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--insecure-registry", registry]);
        cmd
    };
    let mut build = spawn(warm(&proxy.addr));
    build.wait_until(
        "the layer download to start",
        Duration::from_secs(30),
        || has_file(&cache, ".tmp", 64 * 1024),
    );
    build.interrupt(libc::SIGTERM, 143);
    let left: Vec<_> = std::fs::read_dir(cache.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left in the cache directory: {left:?}");
    dirs.assert_clean();
    ok(run(&mut warm(&reg.addr)));
    assert!(cache
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"))
        .is_file());
}

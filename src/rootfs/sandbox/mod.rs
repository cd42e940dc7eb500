//! The sandbox that runs RUN commands (DESIGN.md decision 2).
//!
//! gantry is multi-threaded (tokio), and forking a multi-threaded process to run Rust code before
//! `exec` is unsound, so [`run`] never forks gantry itself: it re-executes its own binary
//! (`/proc/self/exe`) with the hidden `sandbox-helper` subcommand, sends the request as JSON on the
//! helper's stdin, and waits. The single-threaded helper ([`helper::main`]) does the
//! unshare/fork/mount/chroot/setgroups/setgid/setuid/exec sequence, and failures come back as
//! JSON lines in a result file so that the caller gets one typed [`SandboxError`] whichever process
//! failed.
//!
//! Output: the command's stdout and stderr both go to gantry's stderr, unbuffered and in order
//! (logs go to stderr; stdout is for data such as digests). Its stdin is `/dev/null`.
//!
//! [`run`] blocks until the command ends; call it from `tokio::task::spawn_blocking`.

pub mod error;
pub mod helper;
pub mod inplace;
pub mod mounts;
pub mod rootless;
pub mod user;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

pub use error::SandboxError;
pub use inplace::{inplace_ignore_paths, IMAGE_MARKER};
pub use rootless::{IdMap, Subordinate};
pub use user::{ResolvedUser, UserError};

use crate::rootfs::privileged::Privileged;
use error::Failure;

/// The hidden subcommand that runs the helper.
pub const HELPER_SUBCOMMAND: &str = "sandbox-helper";
/// The binary re-executed as the helper by default.
pub const SELF_EXE: &str = "/proc/self/exe";

/// How RUN commands are isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// New mount, PID, UTS and IPC namespaces (and a user namespace when not root), chrooted
    /// into the rootfs.
    Chroot,
    /// In `/` of the current (container) filesystem, kaniko's way.
    InPlace,
}

/// What `--isolation` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationRequest {
    Auto,
    Chroot,
    InPlace,
}

/// One RUN command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The merged root (overlay mount point or plain directory); `/` for in-place.
    pub rootfs: PathBuf,
    /// The final argv (shell form already wrapped as `[shell..., cmd]`).
    pub argv: Vec<String>,
    /// `K=V` pairs: config Env plus build args. `PATH` and `HOME` get Docker's defaults when
    /// missing.
    pub env: Vec<String>,
    /// WORKDIR; created (root, 0755) when missing.
    pub cwd: String,
    /// The raw USER value: `name|uid[:group|gid]`, resolved in the rootfs.
    pub user: Option<String>,
    /// The hostname inside the UTS namespace (chroot only); the host's name when `None`.
    pub hostname: Option<String>,
    /// Where the run keeps its own files (the helper's result file, the copies of resolv.conf
    /// and hosts): a fresh `gantry-run-*` directory is made here and removed afterwards. The
    /// build passes its work directory, so that an interrupted run leaves nothing elsewhere and
    /// an in-place snapshot never sees these files; the system temp directory when `None`.
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
}

/// How a RUN ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// The exit code, or 128 + the signal number that killed the command.
    pub status: i32,
    /// Image paths the sandbox created as mount points (placeholders for `/proc`, `/dev`,
    /// `/sys`, `/etc/resolv.conf`, `/etc/hosts`, and any parent it needed): the snapshot must
    /// leave them out of the layer.
    pub created: Vec<PathBuf>,
}

/// What gantry sends the helper on its stdin.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum HelperInput {
    /// Check that namespaces (and the proc mount) work; nothing else.
    Probe {
        rootless: Option<IdMap>,
    },
    Run(Box<Request>),
}

/// A command for the helper to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub spec: RunSpec,
    pub isolation: Isolation,
    pub user: ResolvedUser,
    pub rootless: Option<IdMap>,
    /// Where the helper appends [`Event`] lines.
    pub result: PathBuf,
    pub resolv_conf: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
}

/// One line of the helper's result file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Failed { failure: Failure },
    Exited { status: i32 },
}

/// Runs one command with the given isolation, using this binary as the helper.
///
/// `ops` says whether gantry is privileged (root: plain namespaces; otherwise a user namespace
/// mapping the current ids to 0); the mounts themselves happen in the helper with the real calls.
pub fn run(
    spec: &RunSpec,
    isolation: Isolation,
    ops: &dyn Privileged,
) -> Result<RunOutcome, SandboxError> {
    run_with_helper(spec, isolation, ops, Path::new(SELF_EXE))
}

/// [`run`] with an explicit helper binary (tests run the `gantry` binary from a test process).
pub fn run_with_helper(
    spec: &RunSpec,
    isolation: Isolation,
    ops: &dyn Privileged,
    helper: &Path,
) -> Result<RunOutcome, SandboxError> {
    if spec.argv.is_empty() {
        return Err(SandboxError::EmptyCommand);
    }
    let root = match isolation {
        // Absolute and free of links, so that the helper's mounts and chroot see the same tree.
        Isolation::Chroot => {
            std::fs::canonicalize(&spec.rootfs).map_err(|source| SandboxError::Rootfs {
                path: spec.rootfs.clone(),
                source,
            })?
        }
        Isolation::InPlace => PathBuf::from("/"),
    };
    let user = resolve_user(&root, spec.user.as_deref())?;
    let rootless = match isolation {
        Isolation::Chroot if !ops.is_privileged() => Some(IdMap::current()),
        _ => None,
    };
    if let Some(map) = rootless {
        if !map.covers(user.uid, &user.groups) {
            return Err(SandboxError::Unmapped {
                user: spec.user.clone().unwrap_or_default(),
                uid: user.uid,
                gid: user.gid,
                subordinate: map.subordinate.is_some(),
            });
        }
    }
    let created = match isolation {
        Isolation::Chroot => mounts::prepare_rootfs(&root)?,
        Isolation::InPlace => Vec::new(),
    };

    let mut work = tempfile::Builder::new();
    work.prefix("gantry-run-");
    let work = match &spec.work_dir {
        Some(dir) => work.tempdir_in(dir),
        None => work.tempdir(),
    }
    .map_err(|source| SandboxError::Step {
        step: "create a work directory",
        source,
    })?;
    let result = work.path().join("result");
    std::fs::write(&result, b"").map_err(|source| SandboxError::Step {
        step: "create the result file",
        source,
    })?;
    let copy = |name: &str, host: &str| -> Option<PathBuf> {
        let dest = work.path().join(name);
        std::fs::copy(host, &dest).ok().map(|_| dest)
    };
    let mut spec = spec.clone();
    spec.rootfs = root;
    let request = Request {
        resolv_conf: copy("resolv.conf", "/etc/resolv.conf"),
        hosts: copy("hosts", "/etc/hosts"),
        spec,
        isolation,
        user,
        rootless,
        result: result.clone(),
    };
    let status = spawn_helper(helper, &HelperInput::Run(Box::new(request)))?;
    let events = read_events(&result)?;
    if let Some(failure) = events.iter().find_map(|e| match e {
        Event::Failed { failure } => Some(failure.clone()),
        Event::Exited { .. } => None,
    }) {
        return Err(failure.into_error());
    }
    if !events.iter().any(|e| matches!(e, Event::Exited { .. })) {
        return Err(SandboxError::Helper {
            detail: format!("it ended with status {status} before the command finished"),
        });
    }
    Ok(RunOutcome { status, created })
}

/// Resolves USER against the files of `root`.
pub fn resolve_user(root: &Path, user: Option<&str>) -> Result<ResolvedUser, SandboxError> {
    let read = |p: &str| {
        mounts::host_path(root, Path::new(p))
            .ok()
            .and_then(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    Ok(user::resolve(
        user,
        read(user::PASSWD).as_deref(),
        read(user::GROUP).as_deref(),
    )?)
}

/// Starts the helper, sends `input`, waits; returns its exit code (128 + signal when killed).
fn spawn_helper(helper: &Path, input: &HelperInput) -> Result<i32, SandboxError> {
    let stdout: Stdio = {
        use std::os::fd::AsFd;
        match std::io::stderr().as_fd().try_clone_to_owned() {
            Ok(fd) => fd.into(),
            Err(_) => Stdio::inherit(),
        }
    };
    let mut cmd = Command::new(helper);
    cmd.stdout(stdout).stderr(Stdio::inherit());
    let mut child = start_helper(cmd, input)?;
    crate::interrupt::register_pid(child.id());
    let status = child.wait().map_err(|source| SandboxError::Spawn {
        exe: helper.to_path_buf(),
        source,
    });
    crate::interrupt::unregister_pid(child.id());
    let status = status?;
    Ok(exit_code(status))
}

/// Spawns `cmd` (the helper binary, with stdout and stderr already set up) as the helper, sends
/// `input`, and writes the user-namespace maps when the input asks gantry to (subordinate ids).
/// Public so that tests can start the helper as another user.
pub fn start_helper(
    mut cmd: Command,
    input: &HelperInput,
) -> Result<std::process::Child, SandboxError> {
    let exe = PathBuf::from(cmd.get_program());
    let mut child = cmd
        .arg(HELPER_SUBCOMMAND)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|source| SandboxError::Spawn {
            exe: exe.clone(),
            source,
        })?;
    let json = serde_json::to_vec(input).map_err(|e| SandboxError::Helper {
        detail: format!("cannot encode the request: {e}"),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that died early shows up in its exit status.
        let _ = stdin.write_all(&json);
    }
    let map = match input {
        HelperInput::Probe { rootless } => *rootless,
        HelperInput::Run(req) => req.rootless,
    };
    if let Some(map) = map.filter(|m| m.subordinate.is_some()) {
        if let Err(e) = map_stopped_helper(child.id(), &map) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    Ok(child)
}

/// Waits until the helper stops itself after creating its user namespace, writes the maps and
/// lets it continue. A helper that exited instead is left for the caller to reap.
fn map_stopped_helper(pid: u32, map: &IdMap) -> Result<(), SandboxError> {
    loop {
        // SAFETY: `info` is a valid out pointer; WNOWAIT leaves the state for a later wait.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WSTOPPED | libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(SandboxError::Step {
                step: "wait for the helper's user namespace",
                source: e,
            });
        }
        if info.si_code != libc::CLD_STOPPED {
            return Ok(());
        }
        break;
    }
    rootless::write_maps(pid, map)?;
    let pid = libc::pid_t::try_from(pid).unwrap_or(0);
    // SAFETY: signalling our own child.
    if unsafe { libc::kill(pid, libc::SIGCONT) } != 0 {
        return Err(SandboxError::Step {
            step: "continue the helper",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => 128,
    }
}

fn read_events(path: &Path) -> Result<Vec<Event>, SandboxError> {
    let text = std::fs::read_to_string(path).map_err(|source| SandboxError::Step {
        step: "read the helper's result",
        source,
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| SandboxError::Helper {
                detail: format!("unreadable result line `{l}`: {e}"),
            })
        })
        .collect()
}

/// Picks the isolation mode; see [`choose_isolation_with`].
pub fn choose_isolation(
    requested: IsolationRequest,
    force: bool,
) -> Result<Isolation, SandboxError> {
    choose_isolation_with(
        requested,
        force,
        &crate::rootfs::privileged::Real,
        Path::new(SELF_EXE),
        Path::new(IMAGE_MARKER),
    )
}

/// `chroot` when namespaces work (as root, or rootless through a user namespace; checked by
/// running the helper in probe mode); `in-place` when asked for, or on `auto` when namespaces do
/// not work, and then only inside gantry's image (the `marker` file exists) or with `force`.
pub fn choose_isolation_with(
    requested: IsolationRequest,
    force: bool,
    ops: &dyn Privileged,
    helper: &Path,
    marker: &Path,
) -> Result<Isolation, SandboxError> {
    let in_place = || {
        if force || marker.exists() {
            Ok(Isolation::InPlace)
        } else {
            Err(SandboxError::InPlaceOutsideImage {
                marker: marker.to_path_buf(),
            })
        }
    };
    match requested {
        IsolationRequest::InPlace => in_place(),
        IsolationRequest::Chroot => probe(ops, helper).map(|()| Isolation::Chroot),
        IsolationRequest::Auto => match probe(ops, helper) {
            Ok(()) => Ok(Isolation::Chroot),
            Err(e) => in_place().map_err(|_| e),
        },
    }
}

/// Runs the helper in probe mode: namespaces plus a proc mount, in a throwaway namespace.
pub fn probe(ops: &dyn Privileged, helper: &Path) -> Result<(), SandboxError> {
    let rootless = (!ops.is_privileged()).then(IdMap::current);
    let input = HelperInput::Probe { rootless };
    // The probe writes its failure, if any, to stdout as one JSON line; capture it.
    let mut cmd = Command::new(helper);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = start_helper(cmd, &input)?
        .wait_with_output()
        .map_err(|source| SandboxError::Spawn {
            exe: helper.to_path_buf(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    match text
        .lines()
        .find_map(|l| serde_json::from_str::<Event>(l).ok())
    {
        Some(Event::Failed { failure }) => Err(failure.into_error()),
        _ => Err(SandboxError::Helper {
            detail: format!(
                "probe ended with status {}: {}",
                exit_code(out.status),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
    }
}

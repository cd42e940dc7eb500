//! The helper process: `gantry sandbox-helper`, re-executed by [`super::run`].
//!
//! It is single-threaded (nothing here starts a runtime), which is what makes `fork` followed by
//! Rust code sound. The process tree of a chroot RUN:
//!
//! ```text
//! gantry (multi-threaded) ── helper: unshare(user?) + unshare(mount, PID, UTS, IPC), waits
//!                              └─ PID 1 of the new PID namespace: hostname, mounts, chroot,
//!                                 WORKDIR; reaps every orphan until the command ends
//!                                  └─ the command: setgroups, setgid, setuid, execve
//! ```
//!
//! When PID 1 exits the kernel kills whatever the command left running, and when the last process
//! of the mount namespace is gone its mounts go with it: nothing is left to unmount on the host.
//! An in-place RUN skips the namespaces and the chroot. Failures are appended as JSON lines
//! ([`Event`]) to the request's result file, opened before the chroot and kept across it.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::error::Failure;
use super::mounts::{self, flags, Sources};
use super::{Event, HelperInput, IdMap, Isolation, Request};
use crate::rootfs::privileged::{Privileged, Real};

/// Docker's PATH for images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Exit code of the helper when the sandbox itself failed (the reason is in the result file).
const SETUP_FAILED: i32 = 125;
/// Exit code of the command's process when `execve` failed.
const EXEC_FAILED: i32 = 127;

/// Where events go: the result file for a run, stdout for a probe.
struct Sink(std::fs::File);

impl Sink {
    fn send(&self, event: &Event) {
        if let Ok(mut line) = serde_json::to_vec(event) {
            line.push(b'\n');
            // One write call per line: the file is opened for appending, so lines from PID 1 and
            // the command's process never interleave.
            let _ = (&self.0).write_all(&line);
        }
    }

    fn fail(&self, failure: Failure) {
        self.send(&Event::Failed { failure });
    }
}

/// Entry point of `gantry sandbox-helper`: reads a [`HelperInput`] from stdin and returns the
/// exit code for the process.
pub fn main() -> i32 {
    // The helper dies with gantry, whatever kills gantry.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let mut buf = Vec::new();
    let input = io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice::<HelperInput>(&buf).map_err(|e| e.to_string()));
    match input {
        Ok(HelperInput::Probe { rootless }) => probe(rootless),
        Ok(HelperInput::Run(req)) => run(&req),
        Err(e) => {
            let _ = writeln!(
                io::stderr(),
                "error: `gantry sandbox-helper` is internal to gantry and reads a JSON request on stdin: {e}"
            );
            2
        }
    }
}

fn run(req: &Request) -> i32 {
    let file = match std::fs::OpenOptions::new().append(true).open(&req.result) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(
                io::stderr(),
                "error: cannot open the sandbox result file `{}`: {e}",
                req.result.display()
            );
            return SETUP_FAILED;
        }
    };
    let sink = Sink(file);
    let status = match run_outer(req, &sink) {
        Ok(status) => status,
        Err(f) => {
            sink.fail(f);
            SETUP_FAILED
        }
    };
    sink.send(&Event::Exited { status });
    status
}

fn run_outer(req: &Request, sink: &Sink) -> Result<i32, Failure> {
    stdin_from_dev_null()?;
    match req.isolation {
        Isolation::InPlace => command(req, sink, false),
        Isolation::Chroot => {
            enter_namespaces(req.rootless)?;
            let pid = fork()?;
            if pid == 0 {
                // PID 1 of the namespace dies with the helper, and takes every process of the
                // namespace with it.
                // SAFETY: prctl with integer arguments only.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                }
                let code = match pid1(req, sink) {
                    Ok(code) => code,
                    Err(f) => {
                        sink.fail(f);
                        SETUP_FAILED
                    }
                };
                exit_now(code);
            }
            wait_for(pid, false)
        }
    }
}

/// PID 1 of the new PID namespace.
fn pid1(req: &Request, sink: &Sink) -> Result<i32, Failure> {
    if let Some(name) = &req.spec.hostname {
        // SAFETY: the pointer and length describe `name`'s bytes.
        let r = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
        if r != 0 {
            return Err(step("sethostname", io::Error::last_os_error()));
        }
    }
    let sources = Sources::host(req.resolv_conf.clone(), req.hosts.clone());
    mounts::mount_all(&Real, &req.spec.rootfs, &sources).map_err(|e| Failure::from_error(&e))?;
    rustix::process::chroot(&req.spec.rootfs).map_err(|e| step("chroot", e.into()))?;
    rustix::process::chdir("/").map_err(|e| step("chdir /", e.into()))?;
    command(req, sink, true)
}

/// Creates WORKDIR, forks the command and waits for it. As PID 1 (`reap`), every child is
/// waited for, so orphans the command leaves behind do not stay zombies.
fn command(req: &Request, sink: &Sink, reap: bool) -> Result<i32, Failure> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let cwd = if req.spec.cwd.starts_with('/') {
        req.spec.cwd.clone()
    } else {
        format!("/{}", req.spec.cwd)
    };
    let workdir_err = |e: io::Error| Failure::Workdir {
        path: cwd.clone(),
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&cwd)
        .map_err(workdir_err)?;
    rustix::process::chdir(cwd.as_str()).map_err(|e| workdir_err(e.into()))?;

    let env = build_env(&req.spec.env, &req.user.home);
    let search = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let program = find_program(&req.spec.argv[0], search)?;
    let cstr = |s: &[u8]| {
        CString::new(s).map_err(|_| Failure::Request {
            detail: format!("`{}` contains a NUL byte", String::from_utf8_lossy(s)),
        })
    };
    let c_program = cstr(program.as_os_str().as_bytes())?;
    let c_argv = req
        .spec
        .argv
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let c_env = env
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;

    let pid = fork()?;
    if pid == 0 {
        let failure = exec(
            &program,
            &c_program,
            &c_argv,
            &c_env,
            &req.user.groups,
            req.user.gid,
            req.user.uid,
            req.rootless.is_some_and(|m| m.subordinate.is_none()),
        );
        sink.fail(failure);
        exit_now(EXEC_FAILED);
    }
    wait_for(pid, reap)
}

/// In the command's process: drop to the user and exec. Returns only on failure.
#[allow(clippy::too_many_arguments)]
fn exec(
    program: &Path,
    c_program: &CString,
    argv: &[CString],
    env: &[CString],
    groups: &[u32],
    gid: u32,
    uid: u32,
    setgroups_denied: bool,
) -> Failure {
    // Rust ignores SIGPIPE at startup and ignored signals survive exec: restore the defaults
    // so that `yes | head` ends as it does in a shell.
    // SAFETY: plain libc calls on this single-threaded process, with valid arguments.
    unsafe {
        for sig in [libc::SIGPIPE, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    // A single-id user namespace forbids setgroups (it was denied before the map was written).
    if !setgroups_denied {
        let list: Vec<libc::gid_t> = groups.to_vec();
        // SAFETY: the pointer and length describe `list`.
        if unsafe { libc::setgroups(list.len(), list.as_ptr()) } != 0 {
            return step("setgroups", io::Error::last_os_error());
        }
    }
    // SAFETY: plain system calls.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return step("setgid", io::Error::last_os_error());
    }
    // SAFETY: plain system calls.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return step("setuid", io::Error::last_os_error());
    }
    let mut c_argv: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    c_argv.push(std::ptr::null());
    let mut c_env: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    c_env.push(std::ptr::null());
    // SAFETY: NUL-terminated strings in NULL-terminated arrays, all alive for the call.
    unsafe { libc::execve(c_program.as_ptr(), c_argv.as_ptr(), c_env.as_ptr()) };
    let err = io::Error::last_os_error();
    exec_failure(program, &err)
}

/// Turns an `execve` error into the message the user needs.
fn exec_failure(program: &Path, err: &io::Error) -> Failure {
    let path = program.display().to_string();
    match err.raw_os_error() {
        // A foreign ELF gets ENOEXEC without a binfmt_misc handler; ENOENT means a handler
        // matched and its emulator is missing from the root (registered without the F flag).
        Some(libc::ENOENT) if program.exists() => match elf_machine(program) {
            Some(machine) if host_machine().is_some_and(|h| h != machine) => {
                Failure::Emulator { path, machine }
            }
            _ => Failure::Interpreter { path },
        },
        Some(libc::ENOENT) => Failure::NotFound {
            path,
            searched: None,
        },
        Some(libc::ENOEXEC) => Failure::ExecFormat {
            machine: elf_machine(program),
            path,
        },
        other => Failure::Exec {
            path,
            errno: other.unwrap_or(libc::EIO),
        },
    }
}

/// The ELF `e_machine` of the machine gantry was built for, when known.
fn host_machine() -> Option<u16> {
    Some(match std::env::consts::ARCH {
        "x86" => 0x03,
        "x86_64" => 0x3e,
        "arm" => 0x28,
        "aarch64" => 0xb7,
        "powerpc64" => 0x15,
        "s390x" => 0x16,
        "riscv64" => 0xf3,
        "loongarch64" => 0x102,
        _ => return None,
    })
}

/// The `e_machine` of an ELF file, if `path` is one.
pub fn elf_machine(path: &Path) -> Option<u16> {
    let mut head = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    if head[..4] != *b"\x7fELF" {
        return None;
    }
    let bytes = [head[18], head[19]];
    Some(match head[5] {
        2 => u16::from_be_bytes(bytes),
        _ => u16::from_le_bytes(bytes),
    })
}

/// The command's environment: the spec's, plus Docker's `PATH` and `HOME` when it has none.
pub fn build_env(env: &[String], home: &str) -> Vec<String> {
    let has = |k: &str| {
        env.iter()
            .any(|e| e.split_once('=').map(|(n, _)| n) == Some(k))
    };
    let mut out = env.to_vec();
    if !has("PATH") {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOME") {
        out.push(format!("HOME={home}"));
    }
    out
}

/// `execvp`'s lookup: a name with a `/` is used as is; otherwise the first executable regular
/// file of that name in `search`.
pub fn find_program(name: &str, search: &str) -> Result<PathBuf, Failure> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    for dir in search.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if let Ok(m) = std::fs::metadata(&candidate) {
            if m.is_file() && m.mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(Failure::NotFound {
        path: name.to_string(),
        searched: Some(search.to_string()),
    })
}

/// Creates the namespaces: first the user namespace (rootless) with the current ids mapped to 0,
/// then mount, PID, UTS and IPC.
fn enter_namespaces(rootless: Option<IdMap>) -> Result<(), Failure> {
    let ns_err = |what: &str, e: io::Error| Failure::Namespaces {
        what: what.to_string(),
        rootless: rootless.is_some(),
        errno: e.raw_os_error().unwrap_or(libc::EPERM),
    };
    if let Some(ids) = rootless {
        // SAFETY: unshare on a single-threaded process.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
            return Err(ns_err("user", io::Error::last_os_error()));
        }
        let write = |file: &str, text: String| {
            std::fs::write(file, text).map_err(|e| Failure::IdMap {
                file: file.to_string(),
                errno: e.raw_os_error().unwrap_or(libc::EPERM),
            })
        };
        // Kernels before 3.19 have no setgroups file; nothing to deny there.
        if ids.subordinate.is_none() && Path::new("/proc/self/setgroups").exists() {
            write("/proc/self/setgroups", "deny".into())?;
        }
        if ids.subordinate.is_some() {
            // gantry writes the maps with newuidmap/newgidmap while we are stopped; see
            // `rootless`.
            // SAFETY: stopping ourselves; gantry sends SIGCONT.
            unsafe { libc::raise(libc::SIGSTOP) };
        } else {
            write("/proc/self/uid_map", format!("0 {} 1\n", ids.uid))?;
            write("/proc/self/gid_map", format!("0 {} 1\n", ids.gid))?;
        }
    }
    let all = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    // SAFETY: unshare on a single-threaded process.
    if unsafe { libc::unshare(all) } != 0 {
        return Err(ns_err(
            "mount, PID, UTS and IPC",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Probe mode: the namespaces, then a proc mount in the new PID namespace. The failure, if
/// any, goes to stdout as one [`Event`] line.
fn probe(rootless: Option<IdMap>) -> i32 {
    let sink = match io::stdout()
        .lock()
        .flush()
        .and_then(|_| rustix::io::dup(io::stdout()).map_err(io::Error::from))
    {
        Ok(fd) => Sink(std::fs::File::from(fd)),
        Err(_) => return SETUP_FAILED,
    };
    let result = (|| -> Result<i32, Failure> {
        enter_namespaces(rootless)?;
        let dir = tempfile::Builder::new()
            .prefix("gantry-probe-")
            .tempdir()
            .map_err(|e| step("create a probe directory", e))?;
        let pid = fork()?;
        if pid == 0 {
            let target = dir.path();
            let r = Real
                .mount(
                    "none",
                    Path::new("/"),
                    "",
                    flags::REC | flags::PRIVATE,
                    None,
                )
                .and_then(|_| {
                    Real.mount(
                        "proc",
                        target,
                        "proc",
                        flags::NOSUID | flags::NODEV | flags::NOEXEC,
                        None,
                    )
                })
                .and_then(|_| Real.unmount(target));
            if let Err(e) = r {
                sink.fail(Failure::Mount {
                    target: "/proc".into(),
                    fstype: "proc".into(),
                    errno: e.raw_os_error().unwrap_or(libc::EPERM),
                });
                exit_now(1);
            }
            exit_now(0);
        }
        wait_for(pid, false)
    })();
    match result {
        Ok(code) => code,
        Err(f) => {
            sink.fail(f);
            1
        }
    }
}

fn stdin_from_dev_null() -> Result<(), Failure> {
    let null = std::fs::File::open("/dev/null").map_err(|e| step("open /dev/null", e))?;
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are valid; dup2 onto 0 replaces stdin.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(step("redirect stdin", io::Error::last_os_error()));
    }
    Ok(())
}

fn fork() -> Result<libc::pid_t, Failure> {
    // SAFETY: the helper is single-threaded, so the child may run any code before exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(step("fork", io::Error::last_os_error()));
    }
    Ok(pid)
}

/// Ends a forked process without running the parent's exit handlers twice.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no shared state.
    unsafe { libc::_exit(code) }
}

/// Waits for `pid` (reaping every other child too when `reap`) and returns its exit code, or
/// 128 + signal.
fn wait_for(pid: libc::pid_t, reap: bool) -> Result<i32, Failure> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(if reap { -1 } else { pid }, &mut status, 0) };
        if r == pid {
            return Ok(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                128
            });
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(step("wait", e));
            }
        }
    }
}

fn step(step: &str, e: io::Error) -> Failure {
    Failure::Step {
        step: step.to_string(),
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_gets_docker_defaults_only_when_missing() {
        let env = build_env(&["A=1".into()], "/home/app");
        assert_eq!(
            env,
            vec![
                "A=1".to_string(),
                format!("PATH={DEFAULT_PATH}"),
                "HOME=/home/app".into()
            ]
        );
        let env = build_env(&["PATH=/x".into(), "HOME=/h".into()], "/root");
        assert_eq!(env, vec!["PATH=/x".to_string(), "HOME=/h".into()]);
    }

    #[test]
    fn program_lookup_follows_path_order_and_skips_non_executables() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("tool"), "x").unwrap();
        std::fs::write(b.join("tool"), "x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let search = format!("{}:{}", a.display(), b.display());
        assert_eq!(find_program("tool", &search).unwrap(), b.join("tool"));
        assert_eq!(
            find_program("./rel/tool", &search).unwrap(),
            PathBuf::from("./rel/tool")
        );
        assert_eq!(
            find_program("nope", "/x:/y").unwrap_err(),
            Failure::NotFound {
                path: "nope".into(),
                searched: Some("/x:/y".into())
            }
        );
    }

    #[test]
    fn exec_errors_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert!(matches!(
            exec_failure(&missing, &io::Error::from_raw_os_error(libc::ENOENT)),
            Failure::NotFound { .. }
        ));
        // An arm64 ELF header on an amd64 machine (or the reverse).
        let elf = dir.path().join("elf");
        let mut head = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0".to_vec();
        head.extend_from_slice(&0xb7u16.to_le_bytes());
        std::fs::write(&elf, &head).unwrap();
        assert_eq!(
            exec_failure(&elf, &io::Error::from_raw_os_error(libc::ENOEXEC)),
            Failure::ExecFormat {
                path: elf.display().to_string(),
                machine: Some(0xb7)
            }
        );
        // ENOENT for a foreign binary: a binfmt_misc handler matched, its emulator is missing.
        let foreign = if host_machine() == Some(0xb7) {
            0x3e
        } else {
            0xb7
        };
        let mut head = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0".to_vec();
        head.extend_from_slice(&u16::to_le_bytes(foreign));
        std::fs::write(&elf, &head).unwrap();
        assert_eq!(
            exec_failure(&elf, &io::Error::from_raw_os_error(libc::ENOENT)),
            Failure::Emulator {
                path: elf.display().to_string(),
                machine: foreign
            }
        );
        // ENOENT for a native binary: its own loader (or `#!` interpreter) is missing.
        let native = dir.path().join("native");
        let mut head = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0".to_vec();
        head.extend_from_slice(&u16::to_le_bytes(host_machine().unwrap_or(0x3e)));
        std::fs::write(&native, &head).unwrap();
        assert!(matches!(
            exec_failure(&native, &io::Error::from_raw_os_error(libc::ENOENT)),
            Failure::Interpreter { .. }
        ));
    }
}

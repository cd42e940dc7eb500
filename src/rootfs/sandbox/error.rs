//! What can go wrong when a RUN command is isolated and started, as one message per cause.
//!
//! Failures that happen in the helper process (a mount, the exec of the command) cross back to
//! gantry as [`Failure`] records (plain data, JSON lines in the helper's result file) and become
//! [`SandboxError`] values here, so the caller sees the same enum whichever process failed.

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::user::UserError;

/// The sysctls that turn unprivileged user namespaces off, named in messages.
const USERNS_SYSCTLS: &str = "`kernel.unprivileged_userns_clone` (Debian, Ubuntu) or \
     `user.max_user_namespaces`";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    User(#[from] UserError),

    #[error("the root filesystem `{}` cannot be used: {source}", path.display())]
    Rootfs { path: PathBuf, source: io::Error },

    #[error("RUN has no command\nhint: give RUN a command, e.g. `RUN true`")]
    EmptyCommand,

    #[error(
        "`{path}` does not exist in the image{}\n\
         hint: install it in the image first, or check the spelling and the image's PATH",
        searched.as_ref().map(|s| format!(" (searched PATH `{s}`)")).unwrap_or_default()
    )]
    NotFound {
        path: String,
        searched: Option<String>,
    },

    #[error(
        "`{path}` exists in the image but cannot be started: its interpreter (the `#!` line or \
         the ELF dynamic loader) does not exist in the image\n\
         hint: install the interpreter, or check that the binary was built for this image"
    )]
    InterpreterNotFound { path: String },

    #[error(
        "`{path}` cannot be executed on this machine: exec format error{}\n\
         hint: to run binaries of another architecture, install `qemu-user-static` and register \
         it with binfmt_misc (on Debian/Ubuntu `apt-get install qemu-user-static binfmt-support`; \
         elsewhere `docker run --privileged --rm tonistiigi/binfmt --install all`)",
        arch.as_ref().map(|a| format!(" (a {a} binary)")).unwrap_or_default()
    )]
    ExecFormat { path: String, arch: Option<String> },

    // The kernel looks the emulator up when the binary is executed, inside the chroot, unless
    // the binfmt_misc entry has the F (fix-binary) flag, which opens it at registration.
    #[error(
        "`{path}` is a {arch} binary; binfmt_misc has an emulator registered for it, but the \
         emulator cannot be found inside the image's root filesystem (it was registered without \
         the F flag)\n\
         hint: register the emulator with the F (fix-binary) flag: `apt-get install \
         qemu-user-static binfmt-support` (Debian's entries have it), or `docker run --privileged \
         --rm tonistiigi/binfmt --install all`; check the `flags:` line in \
         /proc/sys/fs/binfmt_misc/qemu-*"
    )]
    EmulatorNotInRoot { path: String, arch: String },

    #[error("cannot execute `{path}`: {source}")]
    Exec { path: String, source: io::Error },

    #[error(
        "cannot create the {what} namespaces for RUN: {source}\n\
         hint: {}",
        if *rootless {
            format!("run gantry as root, or allow user namespaces: {USERNS_SYSCTLS} must allow them, \
                     and a container needs a seccomp/AppArmor profile that permits `unshare`")
        } else {
            "run gantry in a privileged container (CAP_SYS_ADMIN), or inside gantry's image with \
             `--isolation in-place`".to_string()
        }
    )]
    Namespaces {
        what: String,
        rootless: bool,
        source: io::Error,
    },

    #[error(
        "cannot map ids into the user namespace ({file}): {source}\n\
         hint: allow user namespaces ({USERNS_SYSCTLS}), or run gantry as root"
    )]
    IdMap { file: String, source: io::Error },

    #[error(
        "USER `{user}` (uid {uid}, gid {gid}) is outside the ids the rootless sandbox maps ({})\n\
         hint: run gantry as root, or give this user subordinate ids in `/etc/subuid` and \
         `/etc/subgid` and install `newuidmap`/`newgidmap` (Debian package `uidmap`)",
        if *subordinate { "0, then its subordinate ranges" } else { "only uid 0 and gid 0" }
    )]
    Unmapped {
        user: String,
        uid: u32,
        gid: u32,
        subordinate: bool,
    },

    #[error(
        "`{tool}` could not map the user namespace: {detail}\n\
         hint: check this user's ranges in `/etc/subuid` and `/etc/subgid`"
    )]
    MapTool { tool: String, detail: String },

    #[error("cannot mount `{fstype}` on `{}`: {source}", target.display())]
    Mount {
        target: PathBuf,
        fstype: String,
        source: io::Error,
    },

    #[error("cannot prepare `{}` in the root filesystem: {source}", path.display())]
    MountPoint { path: PathBuf, source: io::Error },

    #[error("sandbox step `{step}` failed: {source}")]
    Step {
        step: &'static str,
        source: io::Error,
    },

    #[error("cannot create the working directory `{path}` (WORKDIR): {source}")]
    Workdir { path: String, source: io::Error },

    #[error(
        "cannot start the sandbox helper `{}`: {source}\n\
         hint: gantry re-executes itself to run commands; `/proc` must be mounted",
        exe.display()
    )]
    Spawn { exe: PathBuf, source: io::Error },

    #[error("the sandbox helper failed without a report ({detail})")]
    Helper { detail: String },

    #[error(
        "refusing to run in place outside gantry's image: RUN would modify this machine's `/` \
         (`{}` does not exist)\n\
         hint: use `--isolation chroot`, or pass `--force` if this really is a throwaway container",
        marker.display()
    )]
    InPlaceOutsideImage { marker: PathBuf },
}

/// A failure inside the helper, as data that crosses the process boundary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    NotFound {
        path: String,
        searched: Option<String>,
    },
    Interpreter {
        path: String,
    },
    ExecFormat {
        path: String,
        machine: Option<u16>,
    },
    /// A foreign binary that a binfmt_misc entry matched, whose emulator is not in the root.
    Emulator {
        path: String,
        machine: u16,
    },
    Exec {
        path: String,
        errno: i32,
    },
    Namespaces {
        what: String,
        rootless: bool,
        errno: i32,
    },
    IdMap {
        file: String,
        errno: i32,
    },
    Mount {
        target: PathBuf,
        fstype: String,
        errno: i32,
    },
    MountPoint {
        path: PathBuf,
        errno: i32,
    },
    Workdir {
        path: String,
        errno: i32,
    },
    Step {
        step: String,
        errno: i32,
    },
    Request {
        detail: String,
    },
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Failure {
    /// The helper-side record of an error raised by shared code (the mount plan).
    pub fn from_error(e: &SandboxError) -> Failure {
        match e {
            SandboxError::Mount {
                target,
                fstype,
                source,
            } => Failure::Mount {
                target: target.clone(),
                fstype: fstype.clone(),
                errno: errno(source),
            },
            SandboxError::MountPoint { path, source } => Failure::MountPoint {
                path: path.clone(),
                errno: errno(source),
            },
            other => Failure::Request {
                detail: other.to_string(),
            },
        }
    }

    pub fn into_error(self) -> SandboxError {
        let io = io::Error::from_raw_os_error;
        match self {
            Failure::NotFound { path, searched } => SandboxError::NotFound { path, searched },
            Failure::Interpreter { path } => SandboxError::InterpreterNotFound { path },
            Failure::ExecFormat { path, machine } => SandboxError::ExecFormat {
                path,
                arch: machine.map(elf_machine_name),
            },
            Failure::Emulator { path, machine } => SandboxError::EmulatorNotInRoot {
                path,
                arch: elf_machine_name(machine),
            },
            Failure::Exec { path, errno } => SandboxError::Exec {
                path,
                source: io(errno),
            },
            Failure::Namespaces {
                what,
                rootless,
                errno,
            } => SandboxError::Namespaces {
                what,
                rootless,
                source: io(errno),
            },
            Failure::IdMap { file, errno } => SandboxError::IdMap {
                file,
                source: io(errno),
            },
            Failure::Mount {
                target,
                fstype,
                errno,
            } => SandboxError::Mount {
                target,
                fstype,
                source: io(errno),
            },
            Failure::MountPoint { path, errno } => SandboxError::MountPoint {
                path,
                source: io(errno),
            },
            Failure::Workdir { path, errno } => SandboxError::Workdir {
                path,
                source: io(errno),
            },
            Failure::Step { step, errno } => SandboxError::Helper {
                detail: format!("{step}: {}", io(errno)),
            },
            Failure::Request { detail } => SandboxError::Helper { detail },
        }
    }
}

/// A readable name for an ELF `e_machine` value.
pub fn elf_machine_name(machine: u16) -> String {
    match machine {
        0x03 => "386".into(),
        0x08 => "mips".into(),
        0x14 => "ppc".into(),
        0x15 => "ppc64".into(),
        0x16 => "s390x".into(),
        0x28 => "arm".into(),
        0x3e => "amd64".into(),
        0xb7 => "arm64".into(),
        0xf3 => "riscv".into(),
        0x102 => "loong64".into(),
        other => format!("ELF machine {other:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_value_and_the_fix() {
        let e = Failure::NotFound {
            path: "/bin/bash".into(),
            searched: None,
        }
        .into_error();
        assert_eq!(
            e.to_string(),
            "`/bin/bash` does not exist in the image\n\
             hint: install it in the image first, or check the spelling and the image's PATH"
        );
        let e = Failure::ExecFormat {
            path: "/bin/sh".into(),
            machine: Some(0xb7),
        }
        .into_error();
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "`/bin/sh` cannot be executed on this machine: exec format error (a arm64 binary)"
            ),
            "{msg}"
        );
        assert!(msg.contains("qemu-user-static") && msg.contains("binfmt_misc"));
        let e = Failure::Emulator {
            path: "/bin/sh".into(),
            machine: 0xb7,
        }
        .into_error();
        let msg = e.to_string();
        assert!(
            msg.starts_with("`/bin/sh` is a arm64 binary; binfmt_misc has an emulator registered"),
            "{msg}"
        );
        assert!(msg.contains("hint: register the emulator with the F (fix-binary) flag"));
        let e = Failure::Namespaces {
            what: "user".into(),
            rootless: true,
            errno: libc::EPERM,
        }
        .into_error();
        let msg = e.to_string();
        assert!(msg.contains("kernel.unprivileged_userns_clone"), "{msg}");
        assert!(msg.contains("user.max_user_namespaces"), "{msg}");
    }

    #[test]
    fn failures_round_trip_as_json() {
        let f = Failure::Mount {
            target: "/r/proc".into(),
            fstype: "proc".into(),
            errno: libc::EPERM,
        };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"mount","target":"/r/proc","fstype":"proc","errno":1}"#
        );
        assert_eq!(serde_json::from_str::<Failure>(&text).unwrap(), f);
    }
}

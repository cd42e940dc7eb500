//! The privileged seam (DESIGN.md decision 8): every call that needs root or a namespace goes
//! through [`Privileged`], so extraction, snapshot and sandbox logic can be tested without root
//! against [`Recorder`], and the real thing ([`Real`]) is tested as root.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a device node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

/// The privileged operations gantry performs. Paths given here were already resolved inside the
/// root by the caller (or are the caller's own work directories).
pub trait Privileged: Send + Sync {
    /// `mknod` a device or FIFO.
    fn mknod(
        &self,
        path: &Path,
        kind: DeviceKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()>;
    /// `lchown`: owners without following a link.
    fn lchown(&self, path: &Path, uid: u64, gid: u64) -> io::Result<()>;
    /// `lsetxattr`.
    fn set_xattr(&self, path: &Path, name: &str, value: &[u8]) -> io::Result<()>;
    /// `mount(2)`; `fstype` and `data` as the syscall takes them.
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// `umount2(path, MNT_DETACH)`.
    fn unmount(&self, target: &Path) -> io::Result<()>;
    /// Whether the process may do all of the above (it is root, or holds the capabilities).
    fn is_privileged(&self) -> bool;
}

/// The real implementation: system calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Real;

impl Privileged for Real {
    fn mknod(
        &self,
        path: &Path,
        kind: DeviceKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        use rustix::fs::FileType;
        let ft = match kind {
            DeviceKind::Char => FileType::CharacterDevice,
            DeviceKind::Block => FileType::BlockDevice,
            DeviceKind::Fifo => FileType::Fifo,
        };
        let dev = rustix::fs::makedev(major, minor);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            ft,
            rustix::fs::Mode::from_raw_mode(mode & 0o7777),
            dev,
        )?;
        Ok(())
    }

    fn lchown(&self, path: &Path, uid: u64, gid: u64) -> io::Result<()> {
        let uid = u32::try_from(uid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let gid = u32::try_from(gid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        rustix::fs::chownat(
            rustix::fs::CWD,
            path,
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    fn set_xattr(&self, path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
        rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())?;
        Ok(())
    }

    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()> {
        let flags = rustix::mount::MountFlags::from_bits_retain(flags as _);
        let data = data
            .map(|d| {
                std::ffi::CString::new(d).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
            })
            .transpose()?;
        rustix::mount::mount(source, target, fstype, flags, data.as_deref())?;
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH)?;
        Ok(())
    }

    fn is_privileged(&self) -> bool {
        rustix::process::geteuid().is_root()
    }
}

/// One call recorded by [`Recorder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Mknod {
        path: PathBuf,
        kind: DeviceKind,
        mode: u32,
        major: u32,
        minor: u32,
    },
    Lchown {
        path: PathBuf,
        uid: u64,
        gid: u64,
    },
    SetXattr {
        path: PathBuf,
        name: String,
        value: Vec<u8>,
    },
    Mount {
        source: String,
        target: PathBuf,
        fstype: String,
        flags: u64,
        data: Option<String>,
    },
    Unmount {
        target: PathBuf,
    },
}

/// A fake that records every call and succeeds (or fails with `fail_with` for calls whose path
/// ends in one of `fail_paths`), for tests that run without root.
#[derive(Debug, Default)]
pub struct Recorder {
    calls: Mutex<Vec<Call>>,
    pub privileged: bool,
    pub fail_paths: Vec<OsString>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            privileged: true,
            ..Default::default()
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, path: &Path, call: Call) -> io::Result<()> {
        if self
            .fail_paths
            .iter()
            .any(|f| path.file_name() == Some(f.as_os_str()))
        {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
        Ok(())
    }
}

impl Privileged for Recorder {
    fn mknod(
        &self,
        path: &Path,
        kind: DeviceKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.record(
            path,
            Call::Mknod {
                path: path.into(),
                kind,
                mode,
                major,
                minor,
            },
        )
    }
    fn lchown(&self, path: &Path, uid: u64, gid: u64) -> io::Result<()> {
        self.record(
            path,
            Call::Lchown {
                path: path.into(),
                uid,
                gid,
            },
        )
    }
    fn set_xattr(&self, path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
        self.record(
            path,
            Call::SetXattr {
                path: path.into(),
                name: name.into(),
                value: value.to_vec(),
            },
        )
    }
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(
            target,
            Call::Mount {
                source: source.into(),
                target: target.into(),
                fstype: fstype.into(),
                flags,
                data: data.map(str::to_string),
            },
        )
    }
    fn unmount(&self, target: &Path) -> io::Result<()> {
        self.record(
            target,
            Call::Unmount {
                target: target.into(),
            },
        )
    }
    fn is_privileged(&self) -> bool {
        self.privileged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_records_and_fails_on_request() {
        let mut r = Recorder::new();
        r.fail_paths.push("deny".into());
        r.lchown(Path::new("/x/a"), 1, 2).unwrap();
        assert!(r.lchown(Path::new("/x/deny"), 1, 2).is_err());
        assert_eq!(
            r.calls(),
            vec![Call::Lchown {
                path: "/x/a".into(),
                uid: 1,
                gid: 2
            }]
        );
    }

    #[test]
    fn real_lchown_to_self_works_unprivileged() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let uid = rustix::process::geteuid().as_raw() as u64;
        let gid = rustix::process::getegid().as_raw() as u64;
        Real.lchown(&f, uid, gid).unwrap();
    }
}

//! What the chroot sandbox mounts, and the mount points it has to create first.
//!
//! Two halves. [`prepare_rootfs`] runs in gantry itself before the helper starts: it makes sure
//! `/proc`, `/dev`, `/sys`, `/etc/resolv.conf` and `/etc/hosts` exist in the root (paths resolved
//! inside the root, so an image's symlink cannot point a mount at the host) and returns what it had
//! to create, because the snapshot must leave those placeholders out of the layer.
//! [`mount_all`] runs in the helper, in the new mount namespace, through [`Privileged`] so the
//! plan is pinned by tests with the recorder; nothing it mounts is visible on the host and nothing
//! needs unmounting: the namespace dies with the helper.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::rootfs::privileged::Privileged;

use super::SandboxError;

/// `mount(2)` flags used by the plan (values from `<sys/mount.h>`).
// `c_ulong` is 32 bits on some targets, so the casts are not always no-ops.
#[allow(clippy::unnecessary_cast)]
pub mod flags {
    pub const RDONLY: u64 = libc::MS_RDONLY as u64;
    pub const NOSUID: u64 = libc::MS_NOSUID as u64;
    pub const NODEV: u64 = libc::MS_NODEV as u64;
    pub const NOEXEC: u64 = libc::MS_NOEXEC as u64;
    pub const REMOUNT: u64 = libc::MS_REMOUNT as u64;
    pub const BIND: u64 = libc::MS_BIND as u64;
    pub const REC: u64 = libc::MS_REC as u64;
    pub const PRIVATE: u64 = libc::MS_PRIVATE as u64;
    pub const STRICTATIME: u64 = libc::MS_STRICTATIME as u64;
    pub const RELATIME: u64 = libc::MS_RELATIME as u64;
    pub const NOATIME: u64 = libc::MS_NOATIME as u64;
    pub const NODIRATIME: u64 = libc::MS_NODIRATIME as u64;
}

/// Directories every RUN needs as mount points.
pub const MOUNT_DIRS: &[&str] = &["/proc", "/dev", "/sys"];
/// Files bind-mounted from gantry's copies of the host's files (host network).
pub const MOUNT_FILES: &[&str] = &["/etc/resolv.conf", "/etc/hosts"];
/// Device nodes bind-mounted from the host's `/dev`.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

const MAX_SYMLINKS: usize = 40;

/// Resolves `path` (absolute inside the image) the way the kernel would after `chroot(root)`:
/// symlinks are followed, absolute link targets restart at the root and `..` never climbs above
/// it. Returns the resolved absolute path inside the image; components that do not exist are kept
/// as written.
pub fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, path);
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0usize;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let mut host = root.to_path_buf();
        host.extend(&resolved);
        host.push(&name);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(&host)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                push_components(&mut pending, &target);
            }
            _ => resolved.push(name),
        }
    }
    let mut out = PathBuf::from("/");
    out.extend(resolved);
    Ok(out)
}

/// Pushes the components of `path` onto a stack so that the first component is popped first.
fn push_components(stack: &mut Vec<OsString>, path: &Path) {
    let comps: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    stack.extend(comps.into_iter().rev());
}

/// The host path of an image path after resolving it inside `root`.
pub fn host_path(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let inner = resolve_in_root(root, path)?;
    Ok(root.join(inner.strip_prefix("/").unwrap_or(&inner)))
}

/// Makes sure the mount points exist in `root`; returns the image paths it created (directories
/// and empty files, parents before children), which the snapshot must ignore.
pub fn prepare_rootfs(root: &Path) -> Result<Vec<PathBuf>, SandboxError> {
    let mut created = Vec::new();
    for dir in MOUNT_DIRS {
        ensure(root, Path::new(dir), true, &mut created)?;
    }
    for file in MOUNT_FILES {
        ensure(root, Path::new(file), false, &mut created)?;
    }
    Ok(created)
}

fn ensure(
    root: &Path,
    path: &Path,
    dir: bool,
    created: &mut Vec<PathBuf>,
) -> Result<(), SandboxError> {
    let err = |source: io::Error| SandboxError::MountPoint {
        path: path.to_path_buf(),
        source,
    };
    let inner = resolve_in_root(root, path).map_err(err)?;
    // Parents first, each resolved again in case a parent is itself a link.
    let mut parent = PathBuf::from("/");
    let mut comps: Vec<_> = inner.components().skip(1).collect();
    let last = comps.pop();
    for c in comps {
        parent.push(c);
        let host = root.join(parent.strip_prefix("/").unwrap_or(&parent));
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("`{}` is not a directory", parent.display()),
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_dir(&host).map_err(err)?;
                created.push(parent.clone());
            }
            Err(e) => return Err(err(e)),
        }
    }
    if last.is_none() {
        return Ok(());
    }
    let host = root.join(inner.strip_prefix("/").unwrap_or(&inner));
    match std::fs::symlink_metadata(&host) {
        Ok(m) if m.is_dir() == dir => Ok(()),
        Ok(_) => Err(err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` is not a {} in the image",
                inner.display(),
                if dir { "directory" } else { "regular file" }
            ),
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if dir {
                create_dir(&host).map_err(err)?;
            } else {
                create_file(&host).map_err(err)?;
            }
            created.push(inner);
            Ok(())
        }
        Err(e) => Err(err(e)),
    }
}

fn create_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o755).create(path)?;
    // The umask may have taken bits away; mount points are 0755 like Docker's.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
}

fn create_file(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
}

/// Where [`mount_all`] takes its sources from: the host's `/dev` and `/sys`, and gantry's copies
/// of resolv.conf and hosts (copies, so a RUN that writes them cannot change the host's files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sources {
    pub dev: PathBuf,
    pub sys: PathBuf,
    pub resolv_conf: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    /// Mount flags that must be kept on the read-only remount of `/sys` (locked flags in a user
    /// namespace); see [`locked_flags`].
    pub sys_flags: u64,
}

impl Sources {
    pub fn host(resolv_conf: Option<PathBuf>, hosts: Option<PathBuf>) -> Sources {
        Sources {
            dev: "/dev".into(),
            sys: "/sys".into(),
            resolv_conf,
            hosts,
            sys_flags: locked_flags(Path::new("/sys")),
        }
    }
}

/// The flags of the mount at `path` that a remount inside a user namespace must repeat.
pub fn locked_flags(path: &Path) -> u64 {
    use rustix::fs::StatVfsMountFlags as F;
    let Ok(st) = rustix::fs::statvfs(path) else {
        return 0;
    };
    let f = st.f_flag;
    [
        (F::NOSUID, flags::NOSUID),
        (F::NODEV, flags::NODEV),
        (F::NOEXEC, flags::NOEXEC),
        (F::NOATIME, flags::NOATIME),
        (F::NODIRATIME, flags::NODIRATIME),
        (F::RELATIME, flags::RELATIME),
    ]
    .into_iter()
    .filter(|(v, _)| f.contains(*v))
    .fold(0, |acc, (_, m)| acc | m)
}

/// Mounts /proc, /dev, /sys, /etc/resolv.conf and /etc/hosts into `root`. Must run in a private
/// mount namespace (it first makes every mount private so nothing propagates to the host) and,
/// for `/proc`, inside the new PID namespace.
pub fn mount_all(ops: &dyn Privileged, root: &Path, src: &Sources) -> Result<(), SandboxError> {
    let m = |source: &str, target: &Path, fstype: &str, fl: u64, data: Option<&str>| {
        ops.mount(source, target, fstype, fl, data)
            .map_err(|e| SandboxError::Mount {
                target: target.to_path_buf(),
                fstype: if fstype.is_empty() { "bind" } else { fstype }.to_string(),
                source: e,
            })
    };
    let at = |p: &str| {
        host_path(root, Path::new(p)).map_err(|e| SandboxError::MountPoint {
            path: p.into(),
            source: e,
        })
    };
    let fs_err = |p: &Path, e: io::Error| SandboxError::MountPoint {
        path: p.to_path_buf(),
        source: e,
    };

    m(
        "none",
        Path::new("/"),
        "",
        flags::REC | flags::PRIVATE,
        None,
    )?;

    let proc = at("/proc")?;
    m(
        "proc",
        &proc,
        "proc",
        flags::NOSUID | flags::NODEV | flags::NOEXEC,
        None,
    )?;

    let dev = at("/dev")?;
    m(
        "tmpfs",
        &dev,
        "tmpfs",
        flags::NOSUID | flags::STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for name in DEVICES {
        let host = src.dev.join(name);
        if !host.exists() {
            continue;
        }
        let target = dev.join(name);
        create_file(&target).map_err(|e| fs_err(&target, e))?;
        m(&host.to_string_lossy(), &target, "", flags::BIND, None)?;
    }
    let pts = dev.join("pts");
    create_dir(&pts).map_err(|e| fs_err(&pts, e))?;
    m(
        "devpts",
        &pts,
        "devpts",
        flags::NOSUID | flags::NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let shm = dev.join("shm");
    create_dir(&shm).map_err(|e| fs_err(&shm, e))?;
    m(
        "shm",
        &shm,
        "tmpfs",
        flags::NOSUID | flags::NODEV | flags::NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        let path = dev.join(link);
        std::os::unix::fs::symlink(target, &path).map_err(|e| fs_err(&path, e))?;
    }

    let sys = at("/sys")?;
    let sys_src = src.sys.to_string_lossy();
    m(&sys_src, &sys, "", flags::BIND | flags::REC, None)?;
    m(
        &sys_src,
        &sys,
        "",
        flags::BIND | flags::REMOUNT | flags::RDONLY | src.sys_flags,
        None,
    )?;

    for (file, source) in [
        ("/etc/resolv.conf", &src.resolv_conf),
        ("/etc/hosts", &src.hosts),
    ] {
        if let Some(source) = source {
            let target = at(file)?;
            m(&source.to_string_lossy(), &target, "", flags::BIND, None)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::privileged::{Call, Recorder};

    fn mount_targets(calls: &[Call]) -> Vec<(String, String, String, u64, Option<String>)> {
        calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => Some((
                    source.clone(),
                    target.display().to_string(),
                    fstype.clone(),
                    *flags,
                    data.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn resolve_follows_links_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("run/systemd")).unwrap();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../run/systemd/stub", root.join("etc/resolv.conf")).unwrap();
        std::os::unix::fs::symlink("/../../../../etc", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            resolve_in_root(root, Path::new("/etc/resolv.conf")).unwrap(),
            PathBuf::from("/run/systemd/stub")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/escape/hosts")).unwrap(),
            PathBuf::from("/etc/hosts")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/../../x/./y")).unwrap(),
            PathBuf::from("/x/y")
        );
        let e = resolve_in_root(root, Path::new("/loop/x")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn prepare_creates_and_reports_missing_mount_points() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("proc")).unwrap();
        let created = prepare_rootfs(root).unwrap();
        assert_eq!(
            created,
            ["/dev", "/sys", "/etc", "/etc/resolv.conf", "/etc/hosts"]
                .iter()
                .map(PathBuf::from)
                .collect::<Vec<_>>()
        );
        assert_eq!(std::fs::read(root.join("etc/hosts")).unwrap(), b"");
        // A second run finds everything in place.
        assert_eq!(prepare_rootfs(root).unwrap(), Vec::<PathBuf>::new());
    }

    #[test]
    fn prepare_keeps_placeholders_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in MOUNT_DIRS {
            std::fs::create_dir(root.join(&d[1..])).unwrap();
        }
        // An image whose /etc points at a host directory by absolute path.
        std::os::unix::fs::symlink(outside.path(), root.join("etc")).unwrap();
        let created = prepare_rootfs(root).unwrap();
        let inner = outside.path().strip_prefix("/").unwrap();
        assert_eq!(
            created[0],
            Path::new("/").join(inner.components().next().unwrap())
        );
        assert!(root.join(inner).join("resolv.conf").is_file());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn prepare_refuses_a_directory_where_a_file_is_mounted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/hosts")).unwrap();
        let e = prepare_rootfs(dir.path()).unwrap_err();
        assert!(
            e.to_string().contains("`/etc/hosts` is not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn mount_plan() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        prepare_rootfs(root).unwrap();
        let rec = Recorder::new();
        let src = Sources {
            dev: "/dev".into(),
            sys: "/sys".into(),
            resolv_conf: Some("/w/resolv.conf".into()),
            hosts: None,
            sys_flags: flags::NOSUID,
        };
        mount_all(&rec, root, &src).unwrap();
        let r = root.display().to_string();
        let mut expected = vec![
            (
                "none".to_string(),
                "/".to_string(),
                String::new(),
                flags::REC | flags::PRIVATE,
                None,
            ),
            (
                "proc".into(),
                format!("{r}/proc"),
                "proc".into(),
                flags::NOSUID | flags::NODEV | flags::NOEXEC,
                None,
            ),
            (
                "tmpfs".into(),
                format!("{r}/dev"),
                "tmpfs".into(),
                flags::NOSUID | flags::STRICTATIME,
                Some("mode=755,size=65536k".to_string()),
            ),
        ];
        for d in DEVICES {
            if Path::new("/dev").join(d).exists() {
                expected.push((
                    format!("/dev/{d}"),
                    format!("{r}/dev/{d}"),
                    String::new(),
                    flags::BIND,
                    None,
                ));
            }
        }
        expected.extend([
            (
                "devpts".into(),
                format!("{r}/dev/pts"),
                "devpts".into(),
                flags::NOSUID | flags::NOEXEC,
                Some("newinstance,ptmxmode=0666,mode=0620".to_string()),
            ),
            (
                "shm".into(),
                format!("{r}/dev/shm"),
                "tmpfs".into(),
                flags::NOSUID | flags::NODEV | flags::NOEXEC,
                Some("mode=1777,size=65536k".to_string()),
            ),
            (
                "/sys".into(),
                format!("{r}/sys"),
                String::new(),
                flags::BIND | flags::REC,
                None,
            ),
            (
                "/sys".into(),
                format!("{r}/sys"),
                String::new(),
                flags::BIND | flags::REMOUNT | flags::RDONLY | flags::NOSUID,
                None,
            ),
            (
                "/w/resolv.conf".into(),
                format!("{r}/etc/resolv.conf"),
                String::new(),
                flags::BIND,
                None,
            ),
        ]);
        assert_eq!(mount_targets(&rec.calls()), expected);
        assert_eq!(
            std::fs::read_link(root.join("dev/stdout")).unwrap(),
            PathBuf::from("/proc/self/fd/1")
        );
        assert_eq!(
            std::fs::read_link(root.join("dev/ptmx")).unwrap(),
            PathBuf::from("pts/ptmx")
        );
    }

    #[test]
    fn mount_failure_names_the_target() {
        let dir = tempfile::tempdir().unwrap();
        prepare_rootfs(dir.path()).unwrap();
        let mut rec = Recorder::new();
        rec.fail_paths.push("proc".into());
        let e = mount_all(&rec, dir.path(), &Sources::host(None, None)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("`{}/proc`", dir.path().display())),
            "{msg}"
        );
        assert!(msg.contains("`proc`"), "{msg}");
    }
}

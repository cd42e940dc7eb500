//! In-place isolation, kaniko's way: inside gantry's own image in an unprivileged container the
//! image is unpacked over `/` and RUN commands run there. This module knows how gantry recognises
//! its own image and which paths must stay out of every snapshot (and must not be overwritten
//! when unpacking).
//!
//! gantry's image carries the marker file [`IMAGE_MARKER`] (`/kaniko/.gantry-image`, next to
//! `/kaniko/executor`, so that kaniko's layout keeps working). Outside an image with that file,
//! in-place refuses to run unless `--force` is given, because it overwrites the root.

use std::path::{Path, PathBuf};

/// The file that marks gantry's own image; its Dockerfile must create it.
pub const IMAGE_MARKER: &str = "/kaniko/.gantry-image";

/// Paths that are never snapshotted in place, besides mount points. `/kaniko` holds gantry's own
/// files (the executor, the marker, the CA bundle, the docker config) as in kaniko's image;
/// `/busybox` is the debug image's shell, which the CI job's later script lines still need
/// (kaniko's debug image makes it a volume; gantry's keeps it out by name).
pub const FIXED_IGNORES: &[&str] = &[
    "/kaniko",
    "/busybox",
    "/workspace",
    "/proc",
    "/sys",
    "/dev",
    "/var/run",
];

/// Paths the in-place snapshot and unpacking must leave alone: gantry's own files (`/kaniko`,
/// `/busybox` and the running binary), `/workspace`, `/proc`, `/sys`, `/dev`, `/var/run`, and
/// every mount point in `/proc/self/mountinfo` except `/`. Sorted, without duplicates. The
/// executor adds `--ignore-path` values and the build's own directories and files, and drops
/// `/var/run` when `--ignore-var-run=false`.
pub fn inplace_ignore_paths() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let exe = std::fs::read_link("/proc/self/exe").ok();
    inplace_ignore_paths_from(&mountinfo, exe.as_deref())
}

/// [`inplace_ignore_paths`] from given inputs.
pub fn inplace_ignore_paths_from(mountinfo: &str, exe: Option<&Path>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = FIXED_IGNORES.iter().map(PathBuf::from).collect();
    out.extend(exe.map(Path::to_path_buf));
    out.extend(
        mount_points(mountinfo)
            .into_iter()
            .filter(|p| p != Path::new("/")),
    );
    out.sort();
    out.dedup();
    out
}

/// The mount points (field 5) of a mountinfo text, with the kernel's octal escapes decoded.
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

/// Decodes `\040`-style escapes (space, tab, newline, backslash) from mountinfo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:50 / /builds/my\\040project rw - tmpfs tmpfs rw
41 27 0:51 /etc/hosts /etc/hosts rw - ext4 /dev/vda rw
42 27 0:52 / /cache rw - tmpfs tmpfs rw
";

    #[test]
    fn ignore_paths_are_sorted_and_include_mounts_and_self() {
        let got = inplace_ignore_paths_from(MOUNTINFO, Some(Path::new("/kaniko/executor")));
        let want: Vec<PathBuf> = [
            "/builds/my project",
            "/busybox",
            "/cache",
            "/dev",
            "/etc/hosts",
            "/kaniko",
            "/kaniko/executor",
            "/proc",
            "/sys",
            "/var/run",
            "/workspace",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn real_mountinfo_has_proc() {
        assert!(inplace_ignore_paths().contains(&PathBuf::from("/proc")));
    }
}

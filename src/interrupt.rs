//! What gantry undoes when it is interrupted (SIGINT, SIGTERM): the sandbox helpers it started are
//! killed, the overlay mounts it made are detached, and its work directories and temporary files
//! are removed, before it exits non-zero. Components register what they create here and unregister
//! it when they have cleaned up themselves; the signal task only handles what is still registered.
//! Most things live in the build's work directory, which is registered once; what must live
//! elsewhere (a blob spooled for a push, a temporary file in `--cache-dir`) is registered on its
//! own, most simply with a [`Registered`] guard.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Default)]
struct Pending {
    pids: Vec<i32>,
    mounts: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    pids: Vec::new(),
    mounts: Vec::new(),
    dirs: Vec::new(),
});

fn with<T>(f: impl FnOnce(&mut Pending) -> T) -> T {
    let mut guard = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut guard)
}

pub fn register_pid(pid: u32) {
    with(|p| p.pids.push(pid as i32));
}

pub fn unregister_pid(pid: u32) {
    with(|p| p.pids.retain(|x| *x != pid as i32));
}

pub fn register_mount(path: &Path) {
    with(|p| p.mounts.push(path.to_path_buf()));
}

pub fn unregister_mount(path: &Path) {
    with(|p| p.mounts.retain(|x| x != path));
}

pub fn register_dir(path: &Path) {
    with(|p| p.dirs.push(path.to_path_buf()));
}

pub fn unregister_dir(path: &Path) {
    with(|p| p.dirs.retain(|x| x != path));
}

/// Registers a directory or file for removal on interruption until the guard is dropped. Declare
/// the guard after the owner of the path (a `TempDir`), so that it is unregistered first.
#[must_use = "the path is unregistered when the guard is dropped"]
pub struct Registered(PathBuf);

impl Registered {
    pub fn new(path: &Path) -> Registered {
        register_dir(path);
        Registered(path.to_path_buf())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        unregister_dir(&self.0);
    }
}

/// Undoes everything still registered: kill, then unmount (newest first), then remove.
pub fn cleanup() {
    let (pids, mounts, dirs) = with(|p| {
        (
            std::mem::take(&mut p.pids),
            std::mem::take(&mut p.mounts),
            std::mem::take(&mut p.dirs),
        )
    });
    for pid in pids {
        // SAFETY: kill(2) with a pid gantry started; a stale pid is at worst ESRCH.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let mut status = 0;
        // SAFETY: reaps the child just killed so its mounts namespace is gone before unmounting.
        unsafe {
            libc::waitpid(pid, &mut status, 0);
        }
    }
    for m in mounts.iter().rev() {
        let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
    }
    for d in dirs {
        // Registered paths are mostly directories; temporary files are registered the same way.
        match std::fs::symlink_metadata(&d) {
            Ok(md) if md.is_dir() => {
                let _ = std::fs::remove_dir_all(&d);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&d);
            }
            Err(_) => {}
        }
    }
}

/// Spawns the task that waits for SIGINT or SIGTERM, cleans up and exits (130 or 143). Must be
/// called inside a tokio runtime.
pub fn install() {
    tokio::spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot listen for SIGINT/SIGTERM: an interrupted build may leave its work directory behind");
            return;
        };
        let (name, code) = tokio::select! {
            _ = int.recv() => ("SIGINT", 130),
            _ = term.recv() => ("SIGTERM", 143),
        };
        tracing::error!(
            "interrupted by {name}: stopping, unmounting and removing work directories"
        );
        cleanup();
        std::process::exit(code);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_removes_registered_directories_only() {
        let keep = tempfile::tempdir().unwrap();
        let doomed = keep.path().join("work");
        std::fs::create_dir_all(doomed.join("a/b")).unwrap();
        register_dir(&doomed);
        let other = keep.path().join("other");
        std::fs::create_dir(&other).unwrap();
        register_dir(&other);
        unregister_dir(&other);
        let file = keep.path().join("blob.tmp-1");
        std::fs::write(&file, "partial").unwrap();
        let guard = Registered::new(&file);
        let kept_file = keep.path().join("kept.tmp");
        std::fs::write(&kept_file, "done").unwrap();
        drop(Registered::new(&kept_file));
        cleanup();
        assert!(!doomed.exists());
        assert!(other.exists());
        assert!(!file.exists(), "a registered file is removed");
        assert!(kept_file.exists(), "a dropped guard unregisters its file");
        drop(guard);
    }
}

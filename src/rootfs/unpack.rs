//! Extracting whole layers into a directory, safely, for RUN: the root filesystem a command runs
//! in (DESIGN.md decisions 1-3).
//!
//! A layer is untrusted input. The `tar` crate's own `unpack` checks paths on the host, so it is
//! not used: every path here is resolved relative to a directory file descriptor of the
//! destination with `openat2(RESOLVE_IN_ROOT)`, so `..`, absolute symlinks and relative symlinks
//! that point out all resolve *inside* the destination, the way they would inside a container. The
//! final component of an entry is never followed: whatever is there is removed and the entry is
//! created fresh (`O_EXCL | O_NOFOLLOW`), so a file cannot be written through a symlink or into a
//! hard-linked inode of a lower layer. Entry names and hard-link targets with `..` components are
//! refused outright: no real layer writer produces them.
//!
//! Two whiteout modes: [`WhiteoutMode::Overlay`] turns OCI whiteouts into overlayfs ones (each
//! layer in its own directory, used as a lower layer), [`WhiteoutMode::Apply`] applies them to one
//! merged tree. Calls that need privileges (mknod, lchown, setxattr) go through [`Privileged`]
//! with the entry's path as resolved inside the root (`/proc/self/fd` of its parent directory).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec};
use rustix::io::Errno;

use super::privileged::{DeviceKind, Privileged};
use crate::layer::{for_each_entry, LayerError, ReadEntry, ReadKind};

/// What OCI whiteouts become.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// The destination is an overlayfs lower layer: `.wh.name` becomes a 0/0 character device
    /// `name`, `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory.
    #[default]
    Overlay,
    /// The destination is one merged tree: a whiteout deletes its path, an opaque marker deletes
    /// what lower layers put in its directory.
    Apply,
}

/// How layers are extracted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackOptions {
    pub whiteouts: WhiteoutMode,
    /// `--image-fs-extract-retry`: extra attempts after a failed extraction (I/O errors only; a
    /// refused entry is never retried).
    pub retries: u32,
    /// Absolute-style image paths (`/proc`, `/workspace`) whose entries are skipped and never
    /// deleted: what in-place isolation keeps out of the root it unpacks over.
    pub ignore: Vec<String>,
}

/// Counts of one extraction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Entries read from the layer.
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Whiteouts and opaque markers handled.
    pub whiteouts: u64,
    /// Entries skipped: device nodes when unprivileged, ignored paths, unknown entry types.
    pub skipped: u64,
}

/// Why a layer could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer `{}`: entry `{entry}` is refused: {reason}\nhint: the layer is malformed or crafted to write outside the root filesystem; rebuild it with a standard tool or use another image", layer.display())]
    Refused {
        layer: PathBuf,
        entry: String,
        reason: &'static str,
    },
    #[error("layer `{}`: hard link `{entry}` points to `{target}`, which {reason}\nhint: a hard link must point to a file of the same or an earlier layer", layer.display())]
    BadLink {
        layer: PathBuf,
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error("layer `{}`: cannot {action} `{entry}`: {source}\nhint: check that the extraction directory is on a local filesystem with free space", layer.display())]
    Entry {
        layer: PathBuf,
        entry: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot open extraction directory `{}`: {source}\nhint: it must be a writable directory", dest.display())]
    Dest {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("a layer extraction thread panicked")]
    WorkerPanicked,
}

impl UnpackError {
    /// Whether another attempt could succeed: I/O trouble, not a refused layer.
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            UnpackError::Entry { .. } | UnpackError::Dest { .. } | UnpackError::Layer(_)
        )
    }
}

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT_PREFIX: &str = ".wh.";

/// Extracts the layer blob at `blob` into `dest` (created if missing), retrying up to
/// `opts.retries` times on I/O errors.
pub fn unpack_layer(
    blob: &Path,
    media_type: &str,
    dest: &Path,
    opts: &UnpackOptions,
    ops: &dyn Privileged,
) -> Result<UnpackStats, UnpackError> {
    let mut attempt = 0;
    loop {
        match unpack_once(blob, media_type, dest, opts, ops) {
            Ok(stats) => return Ok(stats),
            Err(e) if attempt < opts.retries && e.is_retryable() => {
                attempt += 1;
                tracing::warn!(layer = %blob.display(), attempt, error = %e, "layer extraction failed, retrying");
                std::thread::sleep(Duration::from_millis(200 << attempt.min(5)));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Extracts each `(blob, media type, dest)` job into its own directory, a few at a time on
/// threads. Returns the stats in job order, or the error of the first failed job (in job order).
pub fn unpack_layers_parallel(
    jobs: Vec<(PathBuf, String, PathBuf)>,
    opts: &UnpackOptions,
    ops: &dyn Privileged,
) -> Result<Vec<UnpackStats>, UnpackError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4)
        .min(jobs.len());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<UnpackStats, UnpackError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let panicked = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((blob, media_type, dest)) = jobs.get(i) else {
                        return;
                    };
                    let r = unpack_layer(blob, media_type, dest, opts, ops);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                })
            })
            .collect();
        handles.into_iter().any(|h| h.join().is_err())
    });
    if panicked {
        return Err(UnpackError::WorkerPanicked);
    }
    let results = results
        .into_inner()
        .map_err(|_| UnpackError::WorkerPanicked)?;
    let mut stats = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Some(Ok(s)) => stats.push(s),
            Some(Err(e)) => return Err(e),
            // Not started because an earlier job failed; that error comes first in job order
            // only if it was earlier, so keep looking.
            None => continue,
        }
    }
    if stats.len() != jobs.len() {
        return Err(UnpackError::WorkerPanicked);
    }
    Ok(stats)
}

fn unpack_once(
    blob: &Path,
    media_type: &str,
    dest: &Path,
    opts: &UnpackOptions,
    ops: &dyn Privileged,
) -> Result<UnpackStats, UnpackError> {
    let dest_err = |source| UnpackError::Dest {
        dest: dest.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dest).map_err(dest_err)?;
    let root = rfs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| dest_err(e.into()))?;
    let root_real = fd_path(root.as_fd()).map_err(dest_err)?;
    let mut u = Unpacker {
        layer: blob,
        root,
        root_real,
        opts,
        ops,
        privileged: ops.is_privileged(),
        seen: HashSet::new(),
        dirs: Vec::new(),
        stats: UnpackStats::default(),
    };
    for_each_entry(blob, media_type, |e: &ReadEntry, data: &mut dyn Read| {
        u.entry(e, data)
    })?;
    u.finish_dirs()?;
    Ok(u.stats)
}

/// A directory's mode and mtime, applied after its contents are written.
struct DirMeta {
    rel: String,
    entry: String,
    mode: u32,
    mtime: i64,
}

struct Unpacker<'a> {
    layer: &'a Path,
    root: OwnedFd,
    /// The destination's path as the kernel names it, to check seam paths against.
    root_real: PathBuf,
    opts: &'a UnpackOptions,
    ops: &'a dyn Privileged,
    privileged: bool,
    /// Paths (relative, `a/b`) this layer created, which its opaque markers must keep.
    seen: HashSet<String>,
    dirs: Vec<DirMeta>,
    stats: UnpackStats,
}

impl Unpacker<'_> {
    fn refused(&self, e: &ReadEntry, reason: &'static str) -> UnpackError {
        UnpackError::Refused {
            layer: self.layer.to_path_buf(),
            entry: e.path.clone(),
            reason,
        }
    }

    fn ignored(&self, rel: &str) -> bool {
        self.opts.ignore.iter().any(|i| {
            let i = i.trim_matches('/');
            !i.is_empty() && (rel == i || rel.strip_prefix(i).is_some_and(|r| r.starts_with('/')))
        })
    }

    fn entry(&mut self, e: &ReadEntry, data: &mut dyn Read) -> Result<(), UnpackError> {
        self.stats.entries += 1;
        let rel = relative(&e.path).map_err(|reason| self.refused(e, reason))?;
        if self.ignored(&rel) {
            self.stats.skipped += 1;
            return Ok(());
        }
        if rel.is_empty() {
            // `./` itself: only its metadata can apply.
            if e.kind != ReadKind::Dir {
                return Err(self.refused(e, "only a directory can be the root"));
            }
            self.dirs.push(DirMeta {
                rel,
                entry: e.path.clone(),
                mode: e.mode,
                mtime: e.mtime,
            });
            return Ok(());
        }
        let (parent, base) = split(&rel);
        if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) {
            self.stats.whiteouts += 1;
            return self.whiteout(e, parent, target);
        }
        let pfd = self.resolve_dir(parent, true).map_err(entry_err(
            self.layer,
            &e.path,
            "create the parent directory of",
        ))?;
        let layer = self.layer;
        let io = |action| entry_err(layer, &e.path, action);
        match e.kind {
            ReadKind::Dir => {
                match rfs::statat(&pfd, base, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        self.remove_all(&pfd, base).map_err(io("replace"))?;
                        mkdir(&pfd, base).map_err(io("create directory"))?;
                    }
                    Err(Errno::NOENT) => mkdir(&pfd, base).map_err(io("create directory"))?,
                    Err(err) => return Err(io("inspect")(err.into())),
                }
                self.owner_and_xattrs(&pfd, base, e)?;
                self.dirs.push(DirMeta {
                    rel: rel.clone(),
                    entry: e.path.clone(),
                    mode: e.mode,
                    mtime: e.mtime,
                });
            }
            ReadKind::File | ReadKind::Other(b'S') => {
                self.remove_all(&pfd, base).map_err(io("replace"))?;
                let fd = rfs::openat2(
                    &pfd,
                    base,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
                    Mode::from_raw_mode(0o600),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )
                .map_err(|err| io("create file")(err.into()))?;
                let mut file = File::from(fd);
                self.stats.bytes += io::copy(data, &mut file).map_err(io("write file"))?;
                self.owner_and_xattrs(&pfd, base, e)?;
                rfs::fchmod(&file, Mode::from_raw_mode(e.mode & 0o7777))
                    .map_err(|err| io("set the mode of")(err.into()))?;
                rfs::futimens(&file, &times(e.mtime))
                    .map_err(|err| io("set the mtime of")(err.into()))?;
            }
            ReadKind::Symlink => {
                let target = e.link.clone().unwrap_or_default();
                self.remove_all(&pfd, base).map_err(io("replace"))?;
                rfs::symlinkat(target.as_str(), &pfd, base)
                    .map_err(|err| io("create symlink")(err.into()))?;
                self.owner_and_xattrs(&pfd, base, e)?;
                set_mtime_at(&pfd, base, e.mtime).map_err(io("set the mtime of"))?;
            }
            ReadKind::Hardlink => self.hardlink(e, &rel, &pfd, base)?,
            ReadKind::CharDevice | ReadKind::BlockDevice | ReadKind::Fifo => {
                self.device(e, &pfd, base)?
            }
            ReadKind::Other(flag) => {
                tracing::debug!(layer = %self.layer.display(), entry = %e.path, flag, "skipping tar entry of unknown type");
                self.stats.skipped += 1;
                return Ok(());
            }
        }
        if self.opts.whiteouts == WhiteoutMode::Apply {
            self.seen.insert(rel);
        }
        Ok(())
    }

    fn whiteout(&mut self, e: &ReadEntry, parent: &str, target: &str) -> Result<(), UnpackError> {
        let opaque = target == &OPAQUE[WHITEOUT_PREFIX.len()..];
        if !opaque && (target.is_empty() || target == "." || target == "..") {
            return Err(self.refused(e, "a whiteout must name a file or directory"));
        }
        let layer = self.layer;
        let io = |action| entry_err(layer, &e.path, action);
        match (self.opts.whiteouts, opaque) {
            (WhiteoutMode::Overlay, true) => {
                let pfd = self
                    .resolve_dir(parent, true)
                    .map_err(io("create the directory of"))?;
                let path = self.seam_path(&pfd, "").map_err(io("resolve"))?;
                self.ops
                    .set_xattr(&path, "trusted.overlay.opaque", b"y")
                    .map_err(io("mark opaque the directory of"))?;
            }
            (WhiteoutMode::Overlay, false) => {
                let pfd = self
                    .resolve_dir(parent, true)
                    .map_err(io("create the directory of"))?;
                self.remove_all(&pfd, target).map_err(io("replace"))?;
                let path = self.seam_path(&pfd, target).map_err(io("resolve"))?;
                self.ops
                    .mknod(&path, DeviceKind::Char, 0, 0, 0)
                    .map_err(io("create the overlay whiteout for"))?;
            }
            (WhiteoutMode::Apply, true) => {
                let pfd = match self.resolve_dir(parent, false) {
                    Ok(fd) => fd,
                    Err(err) if is_missing(&err) => return Ok(()),
                    Err(err) => return Err(io("resolve the directory of")(err)),
                };
                self.clear_lower(&pfd, parent)
                    .map_err(io("clear the opaque directory of"))?;
            }
            (WhiteoutMode::Apply, false) => {
                let rel = join(parent, target);
                if self.ignored(&rel) {
                    return Ok(());
                }
                let pfd = match self.resolve_dir(parent, false) {
                    Ok(fd) => fd,
                    Err(err) if is_missing(&err) => return Ok(()),
                    Err(err) => return Err(io("resolve the directory of")(err)),
                };
                self.remove_all(&pfd, target).map_err(io("delete"))?;
            }
        }
        Ok(())
    }

    fn hardlink(
        &mut self,
        e: &ReadEntry,
        rel: &str,
        pfd: &OwnedFd,
        base: &str,
    ) -> Result<(), UnpackError> {
        let raw = e.link.clone().unwrap_or_default();
        let bad = |reason| UnpackError::BadLink {
            layer: self.layer.to_path_buf(),
            entry: e.path.clone(),
            target: raw.clone(),
            reason,
        };
        let target = relative(&raw).map_err(|_| bad("leaves the root filesystem (`..`)"))?;
        if target.is_empty() {
            return Err(bad("is the root directory"));
        }
        if target == rel {
            return Ok(());
        }
        let (tparent, tbase) = split(&target);
        let tfd = self
            .resolve_dir(tparent, false)
            .map_err(|_| bad("does not exist"))?;
        match rfs::statat(&tfd, tbase, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(bad("is a directory"))
            }
            Ok(_) => {}
            Err(_) => return Err(bad("does not exist")),
        }
        let layer = self.layer;
        let io = |action| entry_err(layer, &e.path, action);
        self.remove_all(pfd, base).map_err(io("replace"))?;
        rfs::linkat(&tfd, tbase, pfd, base, AtFlags::empty())
            .map_err(|err| io("create hard link")(err.into()))?;
        Ok(())
    }

    fn device(&mut self, e: &ReadEntry, pfd: &OwnedFd, base: &str) -> Result<(), UnpackError> {
        let kind = match e.kind {
            ReadKind::CharDevice => DeviceKind::Char,
            ReadKind::BlockDevice => DeviceKind::Block,
            _ => DeviceKind::Fifo,
        };
        let layer = self.layer;
        let io = |action| entry_err(layer, &e.path, action);
        if !self.privileged && kind != DeviceKind::Fifo {
            // As rootless tools do: device nodes need privileges a rootless build lacks.
            tracing::debug!(layer = %self.layer.display(), entry = %e.path, "skipping device node: not privileged");
            self.stats.skipped += 1;
            return Ok(());
        }
        self.remove_all(pfd, base).map_err(io("replace"))?;
        if self.privileged {
            let path = self.seam_path(pfd, base).map_err(io("resolve"))?;
            self.ops
                .mknod(&path, kind, e.mode, e.dev_major, e.dev_minor)
                .map_err(io("create device node"))?;
        } else {
            rfs::mknodat(
                pfd,
                base,
                FileType::Fifo,
                Mode::from_raw_mode(e.mode & 0o7777),
                0,
            )
            .map_err(|err| io("create FIFO")(err.into()))?;
        }
        if let Err(Errno::NOENT) = rfs::statat(pfd, base, AtFlags::SYMLINK_NOFOLLOW) {
            // A recording seam created nothing; there is nothing to set metadata on.
            return Ok(());
        }
        self.owner_and_xattrs(pfd, base, e)?;
        if let Ok(fd) = rfs::openat2(
            pfd,
            base,
            OFlags::PATH | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ) {
            // chmod through the O_PATH descriptor's proc link: never follows a symlink.
            let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
            rfs::chmod(p.as_str(), Mode::from_raw_mode(e.mode & 0o7777))
                .map_err(|err| io("set the mode of")(err.into()))?;
        }
        set_mtime_at(pfd, base, e.mtime).map_err(io("set the mtime of"))?;
        Ok(())
    }

    /// Owners (when privileged) and extended attributes, after the contents: `chown` clears
    /// `security.capability` and setuid bits, so it comes first and the mode after it.
    fn owner_and_xattrs(
        &self,
        pfd: &OwnedFd,
        base: &str,
        e: &ReadEntry,
    ) -> Result<(), UnpackError> {
        if !self.privileged && e.xattrs.iter().all(|(n, _)| !n.starts_with("user.")) {
            return Ok(());
        }
        let layer = self.layer;
        let io = |action| entry_err(layer, &e.path, action);
        let path = self.seam_path(pfd, base).map_err(io("resolve"))?;
        if self.privileged {
            self.ops
                .lchown(&path, e.uid, e.gid)
                .map_err(io("set the owner of"))?;
        }
        for (name, value) in &e.xattrs {
            if !self.privileged && !name.starts_with("user.") {
                tracing::debug!(entry = %e.path, xattr = %name, "skipping extended attribute: not privileged");
                continue;
            }
            self.ops
                .set_xattr(&path, name, value)
                .map_err(io("set an extended attribute of"))?;
        }
        Ok(())
    }

    /// Applies directory modes and mtimes, deepest first, once everything inside is written.
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| b.rel.cmp(&a.rel));
        for d in dirs {
            let fd = match rfs::openat2(
                &self.root,
                if d.rel.is_empty() {
                    "."
                } else {
                    d.rel.as_str()
                },
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => fd,
                // Replaced or deleted by a later entry of the same layer.
                Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => continue,
                Err(err) => {
                    return Err(entry_err(self.layer, &d.entry, "open directory")(
                        err.into(),
                    ))
                }
            };
            rfs::fchmod(&fd, Mode::from_raw_mode(d.mode & 0o7777))
                .map_err(|err| entry_err(self.layer, &d.entry, "set the mode of")(err.into()))?;
            rfs::futimens(&fd, &times(d.mtime))
                .map_err(|err| entry_err(self.layer, &d.entry, "set the mtime of")(err.into()))?;
        }
        Ok(())
    }

    /// Opens directory `rel` (relative, `a/b`) resolved inside the root; with `create`, missing
    /// components are created (mode 0755, as Docker does for parents a layer does not list).
    fn resolve_dir(&self, rel: &str, create: bool) -> io::Result<OwnedFd> {
        let open = |path: &str| {
            rfs::openat2(
                &self.root,
                if path.is_empty() { "." } else { path },
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )
        };
        match open(rel) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) if create => {}
            Err(e) => return Err(e.into()),
        }
        let mut cur = open("")?;
        let mut prefix = String::with_capacity(rel.len());
        for comp in rel.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            cur = match open(&prefix) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    // A dangling symlink in the way still fails here, with ENOENT.
                    open(&prefix)?
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(cur)
    }

    /// The path the privileged seam gets for `name` in directory `dir`: the directory's real
    /// location (as the kernel resolved it inside the root) joined with a single component.
    fn seam_path(&self, dir: &OwnedFd, name: &str) -> io::Result<PathBuf> {
        let real = fd_path(dir.as_fd())?;
        if !real.starts_with(&self.root_real) {
            return Err(io::Error::other("directory resolved outside the root"));
        }
        Ok(if name.is_empty() {
            real
        } else {
            real.join(name)
        })
    }

    /// Apply mode, opaque marker in `dir` (`rel`): deletes every child this layer did not create,
    /// and recurses into the directories it did.
    fn clear_lower(&self, dir: &OwnedFd, rel: &str) -> io::Result<()> {
        for (name, is_dir) in list_dir(dir)? {
            let child = join(rel, &name);
            if self.ignored(&child) {
                continue;
            }
            if !self.seen.contains(&child) {
                self.remove_all(dir, &name)?;
            } else if is_dir {
                let fd = rfs::openat2(
                    dir,
                    name.as_str(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )?;
                self.clear_lower(&fd, &child)?;
            }
        }
        Ok(())
    }

    /// Removes `name` in `dir` whatever it is, recursively; a missing entry is fine. Never
    /// crosses into another mount.
    fn remove_all(&self, dir: &OwnedFd, name: &str) -> io::Result<()> {
        let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return rfs::unlinkat(dir, name, AtFlags::empty()).map_err(Into::into);
        }
        let fd = rfs::openat2(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV,
        )?;
        if !self.privileged {
            // A 0555 directory from a lower layer: make it writable to empty it.
            let _ = rfs::fchmod(&fd, Mode::from_raw_mode(0o700));
        }
        for (child, _) in list_dir(&fd)? {
            self.remove_all(&fd, &child)?;
        }
        rfs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(Into::into)
    }
}

fn entry_err(
    layer: &Path,
    entry: &str,
    action: &'static str,
) -> impl FnOnce(io::Error) -> UnpackError {
    let layer = layer.to_path_buf();
    let entry = entry.to_string();
    move |source| UnpackError::Entry {
        layer,
        entry,
        action,
        source,
    }
}

/// Children of a directory (not `.`/`..`), sorted, with whether each is a directory.
fn list_dir(dir: &OwnedFd) -> io::Result<Vec<(String, bool)>> {
    let fd = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    for entry in rfs::Dir::new(fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let is_dir = match entry.file_type() {
            FileType::Unknown => rfs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)?,
            t => t == FileType::Directory,
        };
        out.push((name, is_dir));
    }
    out.sort();
    Ok(out)
}

/// `/a/./b/` → `a/b`; `/` → ``. `..` anywhere is refused: lexical clean-up would hide what the
/// archive tried, and no honest layer writer emits it.
fn relative(path: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(path.len());
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err("its path contains a `..` component");
        }
        if part.contains('\0') {
            return Err("its path contains a NUL byte");
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(part);
    }
    Ok(out)
}

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`).
fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn is_missing(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR))
}

fn mkdir(dir: &OwnedFd, name: &str) -> io::Result<()> {
    rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700)).map_err(Into::into)
}

fn times(mtime: i64) -> rfs::Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    rfs::Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn set_mtime_at(dir: &OwnedFd, name: &str, mtime: i64) -> io::Result<()> {
    rfs::utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW).map_err(Into::into)
}

/// Where the kernel says a descriptor points.
fn fd_path(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;

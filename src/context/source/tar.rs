//! Unpacking a gzip tar context (`tar://`, `tar://stdin`, and every bucket object) into the
//! context directory, streaming and in-root.
//!
//! The archive is untrusted input, handled the way image layers are (see
//! `crate::rootfs::unpack`): the `tar` crate's `unpack` checks paths on the host, so it is not
//! used. Each entry's parent directory is resolved from a descriptor of the context directory
//! with `openat2(RESOLVE_IN_ROOT)`, so `..` and symlinks (absolute or relative) resolve *inside*
//! the context; the final component is removed and created fresh with `O_EXCL | O_NOFOLLOW`, so
//! nothing is written through a symlink. Entry names and hard-link targets with `..` are refused.
//! Device nodes and FIFOs are skipped: a context holds files to copy, and creating devices would
//! need privileges. The decoder reads the archive in fixed-size buffers, so memory stays bounded
//! whatever the size of the context.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use flate2::read::MultiGzDecoder;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec};
use rustix::io::Errno;

use super::SourceError;

/// Counts of one extraction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractStats {
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Device nodes, FIFOs and unknown entry types left out.
    pub skipped: u64,
}

/// Extracts the gzip tar file at `path` into `dest` (an existing directory).
pub fn extract_file(
    path: &Path,
    dest: &Path,
    source_name: &str,
) -> Result<ExtractStats, SourceError> {
    let file = File::open(path).map_err(|e| SourceError::Io {
        source_name: source_name.to_string(),
        action: "open the archive",
        path: path.to_path_buf(),
        hint: "check that the file exists and is readable; paths are relative to the working directory",
        cause: e,
    })?;
    extract_gzip(file, dest, source_name)
}

/// Extracts a gzip tar stream into `dest` (an existing directory), refusing a stream that is not
/// gzip.
pub fn extract_gzip<R: Read>(
    reader: R,
    dest: &Path,
    source_name: &str,
) -> Result<ExtractStats, SourceError> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let head = reader.fill_buf().map_err(|e| corrupt(source_name, e))?;
    if head.len() < 2 || head[..2] != [0x1f, 0x8b] {
        return Err(SourceError::NotGzip {
            source_name: source_name.to_string(),
        });
    }
    extract_tar(MultiGzDecoder::new(reader), dest, source_name)
}

/// Extracts a plain tar stream into `dest` (an existing directory).
pub fn extract_tar<R: Read>(
    reader: R,
    dest: &Path,
    source_name: &str,
) -> Result<ExtractStats, SourceError> {
    let root = rfs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SourceError::Io {
        source_name: source_name.to_string(),
        action: "open the context directory",
        path: dest.to_path_buf(),
        hint: "check that the work directory (GANTRY_WORK_DIR) is writable",
        cause: e.into(),
    })?;
    let mut x = Extractor {
        source_name,
        root,
        dirs: Vec::new(),
        stats: ExtractStats::default(),
    };
    let mut archive = ::tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| corrupt(source_name, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(source_name, e))?;
        x.entry(&mut entry)?;
    }
    x.finish_dirs()?;
    Ok(x.stats)
}

fn corrupt(source_name: &str, e: io::Error) -> SourceError {
    SourceError::Corrupt {
        source_name: source_name.to_string(),
        cause: e,
    }
}

struct Extractor<'a> {
    source_name: &'a str,
    root: OwnedFd,
    /// Directories with their mode and mtime, applied once their contents are written.
    dirs: Vec<(String, u32, i64)>,
    stats: ExtractStats,
}

impl Extractor<'_> {
    fn refused(&self, entry: &str, reason: &'static str) -> SourceError {
        SourceError::Refused {
            source_name: self.source_name.to_string(),
            entry: entry.to_string(),
            reason,
        }
    }

    fn write_err(&self, entry: &str) -> impl FnOnce(io::Error) -> SourceError {
        let source_name = self.source_name.to_string();
        let entry = entry.to_string();
        move |cause| SourceError::Write {
            source_name,
            entry,
            cause,
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut ::tar::Entry<'_, R>) -> Result<(), SourceError> {
        self.stats.entries += 1;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = relative(&name).map_err(|r| self.refused(&name, r))?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().map_err(|e| corrupt(self.source_name, e))? & 0o7777;
        let mtime = header.mtime().map_err(|e| corrupt(self.source_name, e))? as i64;
        if rel.is_empty() {
            if !kind.is_dir() {
                return Err(self.refused(&name, "only a directory can be the context root"));
            }
            self.dirs.push((rel, mode, mtime));
            return Ok(());
        }
        let (parent, base) = rel.rsplit_once('/').unwrap_or(("", rel.as_str()));
        let pfd = self.resolve_dir(parent).map_err(self.write_err(&name))?;
        match kind {
            ::tar::EntryType::Directory => {
                match rfs::statat(&pfd, base, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        remove_all(&pfd, base).map_err(self.write_err(&name))?;
                        mkdir(&pfd, base).map_err(self.write_err(&name))?;
                    }
                    Err(Errno::NOENT) => mkdir(&pfd, base).map_err(self.write_err(&name))?,
                    Err(e) => return Err(self.write_err(&name)(e.into())),
                }
                self.dirs.push((rel, mode, mtime));
            }
            ::tar::EntryType::Regular | ::tar::EntryType::Continuous => {
                remove_all(&pfd, base).map_err(self.write_err(&name))?;
                let fd = rfs::openat2(
                    &pfd,
                    base,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )
                .map_err(|e| self.write_err(&name)(e.into()))?;
                let mut file = File::from(fd);
                // A read error here is the archive's (truncated or corrupt data), not the disk's.
                let n = copy_entry(entry, &mut file).map_err(|e| match e {
                    CopyError::Read(e) => corrupt(self.source_name, e),
                    CopyError::Write(e) => self.write_err(&name)(e),
                })?;
                self.stats.bytes += n;
                rfs::fchmod(&file, Mode::from_raw_mode(mode))
                    .and_then(|()| rfs::futimens(&file, &times(mtime)))
                    .map_err(|e| self.write_err(&name)(e.into()))?;
            }
            ::tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                if target.is_empty() || target.contains('\0') {
                    return Err(self.refused(&name, "its symlink target is empty"));
                }
                remove_all(&pfd, base).map_err(self.write_err(&name))?;
                rfs::symlinkat(target.as_str(), &pfd, base)
                    .and_then(|()| {
                        rfs::utimensat(&pfd, base, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    })
                    .map_err(|e| self.write_err(&name)(e.into()))?;
            }
            ::tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                let target_rel = relative(&target).map_err(|r| self.refused(&name, r))?;
                if target_rel.is_empty() || target_rel == rel {
                    return Err(self.refused(&name, "its hard link points to itself or the root"));
                }
                let (tparent, tbase) = target_rel
                    .rsplit_once('/')
                    .unwrap_or(("", target_rel.as_str()));
                let tfd = self.resolve_dir_existing(tparent).map_err(|_| {
                    self.refused(&name, "its hard link target is not an earlier entry")
                })?;
                match rfs::statat(&tfd, tbase, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
                    _ => {
                        return Err(
                            self.refused(&name, "its hard link target is not an earlier file")
                        )
                    }
                }
                remove_all(&pfd, base).map_err(self.write_err(&name))?;
                rfs::linkat(&tfd, tbase, &pfd, base, AtFlags::empty())
                    .map_err(|e| self.write_err(&name)(e.into()))?;
            }
            ::tar::EntryType::XGlobalHeader | ::tar::EntryType::XHeader => {}
            _ => {
                tracing::debug!(entry = %name, "skipping a context archive entry that is not a file, directory or link");
                self.stats.skipped += 1;
            }
        }
        Ok(())
    }

    /// Applies directory modes and mtimes, deepest first, so that a read-only directory is
    /// locked only after its contents are in place.
    fn finish_dirs(&mut self) -> Result<(), SourceError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| b.0.cmp(&a.0));
        for (rel, mode, mtime) in dirs {
            let fd = self
                .resolve_dir_existing(&rel)
                .map_err(self.write_err(&rel))?;
            let fd = rfs::openat(
                &fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.write_err(&rel)(e.into()))?;
            rfs::fchmod(&fd, Mode::from_raw_mode(mode))
                .and_then(|()| rfs::futimens(&fd, &times(mtime)))
                .map_err(|e| self.write_err(&rel)(e.into()))?;
        }
        Ok(())
    }

    fn open_in_root(&self, path: &str) -> rustix::io::Result<OwnedFd> {
        rfs::openat2(
            &self.root,
            if path.is_empty() { "." } else { path },
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    fn resolve_dir_existing(&self, rel: &str) -> io::Result<OwnedFd> {
        self.open_in_root(rel).map_err(Into::into)
    }

    /// Opens directory `rel` resolved inside the root, creating missing components (0755).
    fn resolve_dir(&self, rel: &str) -> io::Result<OwnedFd> {
        match self.open_in_root(rel) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let mut cur = self.open_in_root("")?;
        let mut prefix = String::with_capacity(rel.len());
        for comp in rel.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            cur = match self.open_in_root(&prefix) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    self.open_in_root(&prefix)?
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(cur)
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

fn copy_entry(from: &mut impl Read, to: &mut File) -> Result<u64, CopyError> {
    use std::io::Write;
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

/// `./a/./b/` → `a/b`; `/` → ``; a leading `/` is dropped (in-root). `..` anywhere is refused:
/// no honest archiver emits it, and cleaning it lexically would hide what the archive tried.
pub(crate) fn relative(path: &str) -> Result<String, &'static str> {
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

fn mkdir(dir: &OwnedFd, name: &str) -> io::Result<()> {
    rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700)).map_err(Into::into)
}

/// Removes `name` in `dir` whatever it is, recursively; a missing entry is fine.
fn remove_all(dir: &OwnedFd, name: &str) -> io::Result<()> {
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
    let _ = rfs::fchmod(&fd, Mode::from_raw_mode(0o700));
    let mut children = Vec::new();
    for entry in rfs::Dir::read_from(&fd)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            children.push(String::from_utf8_lossy(n).into_owned());
        }
    }
    for child in children {
        remove_all(&fd, &child)?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(Into::into)
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

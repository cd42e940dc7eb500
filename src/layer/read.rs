//! Streaming a layer blob entry by entry, for building a base image's filesystem index.
//!
//! The executor reads each base layer exactly once: for every entry it gets the metadata (path,
//! type, mode, owner, size, link target, xattrs) and a reader over the contents, and keeps what it
//! needs (for instance the bytes of `/etc/passwd`). Nothing is written to disk here.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use super::LayerError;
use crate::image;

/// The type of a tar entry read from a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    CharDevice,
    BlockDevice,
    Fifo,
    /// Any other type flag (kept so the caller can decide to skip or refuse it).
    Other(u8),
}

/// One entry's metadata as read from a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadEntry {
    /// Absolute-style path without a trailing slash: `/usr/bin`, `/etc/.wh.old`.
    pub path: String,
    pub kind: ReadKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    /// Symlink target as stored, or a hard link's target as an absolute-style layer path.
    pub link: Option<String>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// `SCHILY.xattr.*` PAX records, sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Streams the layer blob at `blob`, calling `f` once per entry in archive order with its metadata
/// and a reader over its contents (empty for non-files). `media_type` picks the decompressor:
/// gzip for `…tar+gzip` / `…tar.gzip`, none for plain `…tar`; anything else is refused.
pub fn for_each_entry<E, F>(blob: &Path, media_type: &str, mut f: F) -> Result<(), E>
where
    E: From<LayerError>,
    F: FnMut(&ReadEntry, &mut dyn Read) -> Result<(), E>,
{
    let read_err = |source| LayerError::ReadBlob {
        path: blob.to_path_buf(),
        source,
    };
    let file = File::open(blob).map_err(read_err)?;
    let file = BufReader::with_capacity(256 * 1024, file);
    let reader: Box<dyn Read> = if is_gzip(media_type) {
        Box::new(GzDecoder::new(file))
    } else if is_plain(media_type) {
        Box::new(file)
    } else {
        return Err(LayerError::UnsupportedMediaType {
            media_type: media_type.to_string(),
        }
        .into());
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let info = describe(&mut entry).map_err(read_err)?;
        f(&info, &mut entry)?;
    }
    Ok(())
}

fn is_gzip(media_type: &str) -> bool {
    media_type == image::OCI_LAYER_GZIP
        || media_type == image::DOCKER_LAYER_GZIP
        || media_type == image::DOCKER_FOREIGN_LAYER
        || media_type == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
}

fn is_plain(media_type: &str) -> bool {
    media_type == image::OCI_LAYER_TAR
        || media_type == "application/vnd.docker.image.rootfs.diff.tar"
        || media_type == "application/vnd.oci.image.layer.nondistributable.v1.tar"
}

fn describe<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::io::Result<ReadEntry> {
    let path = absolute(&String::from_utf8_lossy(&entry.path_bytes()));
    let header = entry.header();
    let flag = header.entry_type();
    let kind = match flag {
        tar::EntryType::Regular | tar::EntryType::Continuous => ReadKind::File,
        tar::EntryType::Directory => ReadKind::Dir,
        tar::EntryType::Symlink => ReadKind::Symlink,
        tar::EntryType::Link => ReadKind::Hardlink,
        tar::EntryType::Char => ReadKind::CharDevice,
        tar::EntryType::Block => ReadKind::BlockDevice,
        tar::EntryType::Fifo => ReadKind::Fifo,
        other => ReadKind::Other(other.as_byte()),
    };
    let link = entry.link_name_bytes().map(|l| {
        let l = String::from_utf8_lossy(&l).into_owned();
        if kind == ReadKind::Hardlink {
            absolute(&l)
        } else {
            l
        }
    });
    let header = entry.header();
    let mode = header.mode()? & 0o7777;
    let uid = header.uid()?;
    let gid = header.gid()?;
    let mtime = header.mtime()? as i64;
    let dev_major = header.device_major().ok().flatten().unwrap_or(0);
    let dev_minor = header.device_minor().ok().flatten().unwrap_or(0);
    let size = entry.size();
    let mut xattrs = Vec::new();
    let mut pax_mtime = None;
    let mut pax_uid = None;
    let mut pax_gid = None;
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let key = ext.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((
                    String::from_utf8_lossy(name).into_owned(),
                    ext.value_bytes().to_vec(),
                ));
            } else if key == b"mtime" {
                // PAX times may carry a fraction; whole seconds are what layers record.
                let v = String::from_utf8_lossy(ext.value_bytes()).into_owned();
                pax_mtime = v.split('.').next().and_then(|s| s.parse::<i64>().ok());
            } else if key == b"uid" {
                pax_uid = std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|s| s.parse().ok());
            } else if key == b"gid" {
                pax_gid = std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|s| s.parse().ok());
            }
        }
    }
    xattrs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ReadEntry {
        path,
        kind,
        mode,
        uid: pax_uid.unwrap_or(uid),
        gid: pax_gid.unwrap_or(gid),
        size,
        mtime: pax_mtime.unwrap_or(mtime),
        link,
        dev_major,
        dev_minor,
        xattrs,
    })
}

/// `./usr/bin/` → `/usr/bin`; `.` components dropped, so `./` is `/`.
fn absolute(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for part in name.split('/').filter(|p| !p.is_empty() && *p != ".") {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

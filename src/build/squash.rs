//! `--single-snapshot`: the layers a final stage added on top of its base, merged into one.
//!
//! The layers are read in order and folded into one set of entries with the OCI rules: a later
//! entry replaces an earlier one at the same path; a non-directory replacing a directory removes
//! what was below it; a whiteout removes the path and everything below it and is kept (it hides
//! the base's copy); an opaque marker removes what earlier merged layers put below the directory
//! and is kept. File contents are spooled once each, so no layer is held in memory. A hard link
//! whose target is a file of the same layer becomes a copy of that file (its target could be
//! replaced by a later layer). Device nodes, which RUN snapshots never produce, are skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::layer::{
    for_each_entry, EntryKind, EntryMeta, EntrySource, LayerBlob, LayerEntry, LayerOptions,
    ReadKind,
};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Removes every key strictly below `dir`.
fn remove_below<V>(map: &mut BTreeMap<String, V>, dir: &str) {
    let lo = format!("{}/", dir.trim_end_matches('/'));
    let hi = format!("{}0", dir.trim_end_matches('/'));
    let below: Vec<String> = map.range(lo..hi).map(|(k, _)| k.clone()).collect();
    for k in below {
        map.remove(&k);
    }
}

/// Merges `layers` (blob path and media type, bottom first) into one layer written to
/// `blob_dir`, spooling file contents under `spool`.
pub fn squash(
    layers: &[(PathBuf, String)],
    spool: &Path,
    blob_dir: &Path,
    opts: &LayerOptions,
) -> Result<LayerBlob> {
    let mut merged: BTreeMap<String, LayerEntry> = BTreeMap::new();
    let mut opaque: BTreeSet<String> = BTreeSet::new();
    let mut counter = 0usize;
    std::fs::create_dir_all(spool)?;
    for (blob, media_type) in layers {
        let mut files_here: HashMap<String, (PathBuf, u64)> = HashMap::new();
        for_each_entry(blob, media_type, |e, reader| -> Result<()> {
            let (dir, name) = split(&e.path);
            let meta = EntryMeta {
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                mtime: e.mtime,
                xattrs: e.xattrs.clone(),
            };
            if name == OPAQUE {
                remove_below(&mut merged, dir);
                opaque.insert(dir.to_string());
                return Ok(());
            }
            if let Some(hidden) = name.strip_prefix(WHITEOUT) {
                let path = join(dir, hidden);
                remove_below(&mut merged, &path);
                let below: Vec<String> = opaque
                    .iter()
                    .filter(|o| o.starts_with(&format!("{path}/")) || **o == path)
                    .cloned()
                    .collect();
                for o in below {
                    opaque.remove(&o);
                }
                merged.insert(
                    path.clone(),
                    LayerEntry {
                        path,
                        kind: EntryKind::Whiteout,
                        meta,
                    },
                );
                return Ok(());
            }
            let kind = match e.kind {
                ReadKind::Dir => EntryKind::Dir,
                ReadKind::File => {
                    counter += 1;
                    let dest = spool.join(format!("squash-{counter}"));
                    let mut f = std::fs::File::create(&dest)
                        .with_context(|| format!("spooling `{}`", e.path))?;
                    let n = std::io::copy(reader, &mut f)
                        .with_context(|| format!("spooling `{}`", e.path))?;
                    files_here.insert(e.path.clone(), (dest.clone(), n));
                    EntryKind::File {
                        source: EntrySource::Path(dest),
                        size: n,
                    }
                }
                ReadKind::Symlink => EntryKind::Symlink(e.link.clone().unwrap_or_default()),
                ReadKind::Hardlink => {
                    let target = e.link.clone().unwrap_or_default();
                    match files_here.get(&target) {
                        Some((p, n)) => EntryKind::File {
                            source: EntrySource::Path(p.clone()),
                            size: *n,
                        },
                        None => EntryKind::Hardlink(target),
                    }
                }
                ReadKind::Fifo => EntryKind::Fifo,
                _ => {
                    tracing::debug!(path = %e.path, "--single-snapshot skips a device node");
                    return Ok(());
                }
            };
            if !matches!(kind, EntryKind::Dir) {
                remove_below(&mut merged, &e.path);
                opaque.remove(&e.path);
            }
            merged.insert(
                e.path.clone(),
                LayerEntry {
                    path: e.path.clone(),
                    kind,
                    meta,
                },
            );
            Ok(())
        })?;
    }
    let mut entries: Vec<LayerEntry> = Vec::with_capacity(merged.len() + opaque.len());
    for o in &opaque {
        if let Some(d) = merged.get(o) {
            entries.push(LayerEntry {
                path: o.clone(),
                kind: EntryKind::OpaqueDir,
                meta: d.meta.clone(),
            });
        }
    }
    entries.extend(merged.into_values());
    Ok(crate::layer::write_layer(blob_dir, entries, opts)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MediaTypes;

    fn meta() -> EntryMeta {
        EntryMeta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: vec![],
        }
    }

    fn file(path: &str, data: &str) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind: EntryKind::File {
                source: EntrySource::Bytes(data.as_bytes().to_vec()),
                size: data.len() as u64,
            },
            meta: meta(),
        }
    }

    fn entry(path: &str, kind: EntryKind) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind,
            meta: EntryMeta {
                mode: 0o755,
                ..meta()
            },
        }
    }

    /// Path, kind letter and content of every entry of a layer blob.
    fn listing(blob: &LayerBlob) -> Vec<String> {
        let mut out = Vec::new();
        for_each_entry(&blob.path, &blob.media_type, |e, r| -> Result<()> {
            let mut s = String::new();
            std::io::Read::read_to_string(r, &mut s)?;
            out.push(format!("{:?} {} {s}", e.kind, e.path));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn later_layers_win_and_whiteouts_and_opaque_dirs_survive() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = LayerOptions {
            media_types: MediaTypes::Oci,
            mtime_clamp: Some(0),
        };
        let write = |entries| crate::layer::write_layer(tmp.path(), entries, &opts).unwrap();
        let l1 = write(vec![
            entry("/app", EntryKind::Dir),
            file("/app/a", "one"),
            file("/app/gone", "x"),
            entry("/cache", EntryKind::Dir),
            file("/cache/junk", "j"),
            file("/replaced", "file first"),
            file("/data", "d"),
            entry("/data-link", EntryKind::Hardlink("/data".into())),
        ]);
        let l2 = write(vec![
            entry("/app", EntryKind::Dir),
            file("/app/a", "two"),
            entry("/app/gone", EntryKind::Whiteout),
            entry("/cache", EntryKind::Dir),
            entry("/cache", EntryKind::OpaqueDir),
            file("/cache/new", "n"),
            entry("/replaced", EntryKind::Dir),
            file("/replaced/inside", "i"),
            file("/data", "changed"),
        ]);
        let layers: Vec<(PathBuf, String)> = [&l1, &l2]
            .iter()
            .map(|l| (l.path.clone(), l.media_type.clone()))
            .collect();
        let out = tmp.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let squashed = squash(&layers, &tmp.path().join("spool"), &out, &opts).unwrap();
        assert_eq!(
            listing(&squashed),
            vec![
                "Dir /app ",
                "File /app/.wh.gone ",
                "File /app/a two",
                "Dir /cache ",
                "File /cache/.wh..wh..opq ",
                "File /cache/new n",
                "File /data changed",
                // The hard link's target was replaced later: the link keeps the first content.
                "File /data-link d",
                "Dir /replaced ",
                "File /replaced/inside i",
            ]
        );
    }
}

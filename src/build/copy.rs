//! COPY, ADD and WORKDIR: placing source items in the image and writing them as one layer.
//!
//! Destinations are resolved against the filesystem index of the stage, so a path through a
//! symlinked directory lands where Docker puts it (on a merged-/usr base, `COPY app /bin/app`
//! writes /usr/bin/app and /bin stays a link) - except with `--link`, whose layer is made
//! independently of the stage (BuildKit's meaning).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};

use crate::build::cache::Cached;
use crate::build::executor::{Builder, LayerRef, StageImage};
use crate::build::scope::StageScope;
use crate::build::sources::{self, ItemKind, SourceMatch};
use crate::dockerfile::{CopyArgs, Instruction, Stage};
use crate::image::Descriptor;
use crate::layer::{EntryKind, EntryMeta, LayerEntry};
use crate::rootfs::index::clean_path;
use crate::rootfs::{FsIndex, NodeKind};

/// Runs one COPY or ADD and returns its layer, or takes it from the layer cache when
/// `--cache-copy-layers` finds the step there.
///
/// What to copy is gathered first, without the stage's filesystem index: the cache key needs the
/// sources (their bytes are hashed) but not the image's files, so a hit neither downloads the
/// base layers to index them nor writes a layer. Destinations, `--chown` names and archives are
/// resolved only when the layer is written.
pub async fn copy(
    b: &mut Builder,
    image: &mut StageImage,
    scope: &StageScope,
    stage: &Stage,
    ins: &Instruction,
    args: &CopyArgs,
    is_add: bool,
) -> Result<LayerRef> {
    let expand = |w: &str| b.expand(&ins.kind, image, scope, w);
    let dest_raw = expand(&args.dest)?;
    let from = args.from.as_deref().map(expand).transpose()?;
    let chown = args.chown.as_deref().map(expand).transpose()?;
    let chmod_raw = args.chmod.as_deref().map(expand).transpose()?;
    let chmod = chmod_raw.as_deref().map(parse_chmod).transpose()?;
    let heredoc_names: Vec<&str> = args.heredocs.iter().map(|h| h.name.as_str()).collect();
    let srcs: Vec<String> = args
        .sources
        .iter()
        .filter(|s| !is_heredoc_marker(s, &heredoc_names))
        .map(|s| expand(s))
        .collect::<Result<_>>()?;
    if is_add && args.checksum.is_some() {
        if let Some(s) = srcs.iter().find(|s| !is_url(s) || sources::is_git_url(s)) {
            bail!("ADD --checksum is only valid with a URL source, not `{s}`\nhint: --checksum checks a file downloaded over http(s); remove it for context files and git repositories");
        }
    }
    if args.keep_git_dir && !srcs.iter().any(|s| sources::is_git_url(s)) {
        bail!("ADD --keep-git-dir applies to git repository sources, and none is given\nhint: remove --keep-git-dir, or add a git URL such as `https://host/repo.git#main`");
    }
    let spool = b.spool_dir.join(format!("{}-{}", stage.index, ins.line));

    // Gather what to copy: another image, or items from the context, URLs and heredocs (each
    // marked with whether ADD may extract it as an archive).
    let mut source_image = None;
    let mut items: Vec<SourceMatch> = Vec::new();
    let mut extractable: Vec<bool> = Vec::new();
    if let Some(from) = &from {
        source_image = Some(
            match b.earlier_stage(&from.to_ascii_lowercase(), stage.index) {
                Some(i) => b.stages[i]
                    .clone()
                    .ok_or_else(|| anyhow!("stage `{from}` was not built"))?,
                None if b.dockerfile.stage_by_name_or_index(from).is_some() => {
                    bail!("COPY --from=`{from}` refers to this stage or a later one\nhint: a stage can only copy from stages before it")
                }
                None => {
                    let platform = b.settings.platform.clone();
                    b.pull_image(from, &platform)
                        .await
                        .with_context(|| format!("COPY --from={from}"))?
                }
            },
        );
    } else {
        for src in &srcs {
            if is_add && sources::is_git_url(src) {
                let dir = spool.join(format!("git-{}", items.len()));
                items.push(sources::from_git(src, args.keep_git_dir, &dir)?);
                extractable.push(false);
                continue;
            }
            if is_add && is_url(src) {
                items.push(sources::from_url(src, args.checksum.as_deref(), &spool).await?);
                extractable.push(false);
                continue;
            }
            for m in sources::from_context(&b.context, src)? {
                items.push(m);
                extractable.push(is_add);
            }
        }
    }
    for h in &args.heredocs {
        items.push(sources::from_heredoc(
            &h.name,
            h.content.clone(),
            b.settings.fixed_time.unwrap_or(0),
        ));
        extractable.push(false);
    }

    let heredocs: Vec<(&str, &str)> = args
        .heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.content.as_str()))
        .collect();
    let what = format!(
        "{}\n{srcs:?}\n{dest_raw:?}\nfrom={from:?}\nchown={chown:?}\nchmod={chmod_raw:?}\nlink={}\nchecksum={:?}\nkeep-git-dir={}\n{heredocs:?}",
        if is_add { "ADD" } else { "COPY" },
        args.link,
        args.checksum,
        args.keep_git_dir,
    );
    let key = b.copy_key(
        image,
        ins,
        &what,
        source_image.as_ref().map(|s| &s.layers[..]),
        &items,
    )?;
    if let Some(key) = &key {
        if let Some(Some(layer)) = b.cache_lookup(ins, key).await {
            // The index no longer describes the image; it is rebuilt if needed.
            image.index = None;
            return Ok(layer);
        }
    }

    let index = b.index_of(image).await?;
    let owner = chown
        .as_deref()
        .map(|c| resolve_chown(&index, c))
        .transpose()?;
    // `--link`: the layer is made on its own, as if on an empty image, so it does not depend on
    // the state below it (BuildKit rebases it onto whatever base comes): the destination is not
    // resolved through the base's symlinks and every parent directory is written fresh (0755,
    // the --chown owner). Users and groups of --chown are still looked up in the image.
    let empty = FsIndex::new();
    let place_index: &FsIndex = if args.link { &empty } else { &index };
    let mut matches: Vec<SourceMatch> = Vec::new();
    if let (Some(mut source), Some(from)) = (source_image, from.as_deref()) {
        let src_index = b.index_of(&mut source).await?;
        let layers: Vec<_> = source
            .layers
            .iter()
            .map(|l| {
                (
                    b.blob_path(&l.descriptor.digest),
                    l.descriptor.media_type.clone(),
                )
            })
            .collect();
        matches.extend(sources::from_image(
            &src_index, &layers, &srcs, &spool, from,
        )?);
    }
    for (m, may_extract) in items.into_iter().zip(extractable) {
        if may_extract {
            if let ItemKind::File {
                source: crate::layer::EntrySource::Path(p),
                ..
            } = &m.top.kind
            {
                if let Some(kind) = sources::archive_kind(p)? {
                    let dir = spool.join(format!("archive-{}", matches.len()));
                    matches.push(sources::from_archive(p, kind, &dir)?);
                    continue;
                }
            }
        }
        matches.push(m);
    }
    if matches.is_empty() {
        bail!("nothing to copy");
    }

    // Where it goes.
    let workdir = image
        .config
        .config
        .working_dir
        .clone()
        .unwrap_or_else(|| "/".into());
    let dest_is_dir_syntax =
        dest_raw.ends_with('/') || dest_raw.ends_with("/.") || dest_raw == "." || dest_raw == "..";
    let dest = if dest_raw.starts_with('/') {
        clean_path(&dest_raw)
    } else {
        clean_path(&format!("{workdir}/{dest_raw}"))
    };
    let multiple = matches.len() > 1 || srcs.iter().any(|s| s.contains(['*', '?', '[']));
    if matches.len() > 1 && !dest_is_dir_syntax {
        bail!("copying more than one source needs a directory destination ending in `/`, not `{dest_raw}`");
    }
    let dest_is_dir = dest_is_dir_syntax || multiple || place_index.is_dir(&dest);

    let mtime_now = b
        .settings
        .fixed_time
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    let mut plan = Placement::new(place_index, owner, chmod, mtime_now);
    for m in matches {
        if m.is_dir() {
            let root = plan.resolve(&dest, true)?;
            plan.place_dir_root(&root, &m.top)?;
            for item in m.children {
                let path = if root == "/" {
                    format!("/{}", item.rel)
                } else {
                    format!("{root}/{}", item.rel)
                };
                plan.place(&path, item)?;
            }
        } else {
            let target = if dest_is_dir {
                let dir = plan.resolve(&dest, true)?;
                if m.name.is_empty() {
                    bail!("cannot tell the file name of a source for directory `{dest}`");
                }
                if dir == "/" {
                    format!("/{}", m.name)
                } else {
                    format!("{dir}/{}", m.name)
                }
            } else {
                plan.resolve(&dest, false)?
            };
            plan.place(&target, m.top)?;
        }
    }
    let layer = write_placement(b, image, plan, Cached::Copy).await?;
    if let Some(key) = key {
        b.cache_add(key, Some(&layer));
    }
    Ok(layer)
}

/// Runs WORKDIR: records the directory, and makes a layer creating it when it is missing (which
/// the layer cache remembers with RUN layers, so a cached build need not index the image).
pub async fn workdir(
    b: &mut Builder,
    image: &mut StageImage,
    ins: &Instruction,
    dir: &str,
) -> Result<Option<LayerRef>> {
    let current = image
        .config
        .config
        .working_dir
        .clone()
        .unwrap_or_else(|| "/".into());
    let path = if dir.starts_with('/') {
        clean_path(dir)
    } else {
        clean_path(&format!("{current}/{dir}"))
    };
    image.config.config.working_dir = Some(path.clone());
    let key = b.workdir_key(image, ins, &path);
    if let Some(key) = &key {
        if let Some(layer) = b.cache_lookup(ins, key).await {
            if layer.is_some() {
                image.index = None;
            }
            return Ok(layer);
        }
    }
    let index = b.index_of(image).await?;
    let layer = if index.is_dir(&path) {
        None
    } else {
        let mtime_now = b
            .settings
            .fixed_time
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
        let mut plan = Placement::new(&index, None, None, mtime_now);
        let real = plan.resolve(&path, true)?;
        plan.place(
            &real,
            sources::SourceItem {
                rel: String::new(),
                kind: ItemKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: mtime_now,
            },
        )?;
        Some(write_placement(b, image, plan, Cached::Run).await?)
    };
    if let Some(key) = key {
        b.cache_add(key, layer.as_ref());
    }
    Ok(layer)
}

/// The entries of a layer being assembled, by image path.
struct Placement<'a> {
    index: &'a FsIndex,
    owner: Option<(u64, u64)>,
    chmod: Option<u32>,
    now: i64,
    entries: BTreeMap<String, LayerEntry>,
}

impl<'a> Placement<'a> {
    fn new(index: &'a FsIndex, owner: Option<(u64, u64)>, chmod: Option<u32>, now: i64) -> Self {
        Placement {
            index,
            owner,
            chmod,
            now,
            entries: BTreeMap::new(),
        }
    }

    fn resolve(&self, path: &str, follow_last: bool) -> Result<String> {
        self.index
            .resolve(path, follow_last)
            .map_err(|e| anyhow!("{e}"))
    }

    fn meta(&self, item: &sources::SourceItem) -> EntryMeta {
        let (uid, gid) = self.owner.unwrap_or((item.uid, item.gid));
        let mode = match (&item.kind, self.chmod) {
            (ItemKind::Symlink(_), _) => 0o777,
            (_, Some(m)) => m,
            _ => item.mode & 0o7777,
        };
        EntryMeta {
            mode,
            uid,
            gid,
            mtime: item.mtime,
            xattrs: Vec::new(),
        }
    }

    /// The directory a directory source is copied into: created with the source directory's
    /// mode when missing, left as it is when it exists.
    fn place_dir_root(&mut self, root: &str, top: &sources::SourceItem) -> Result<()> {
        if self.index.is_dir(root) {
            self.add_parents(root);
            return Ok(());
        }
        let meta = self.meta(top);
        self.add_parents(root);
        self.entries.insert(
            root.to_string(),
            LayerEntry {
                path: root.to_string(),
                kind: EntryKind::Dir,
                meta,
            },
        );
        Ok(())
    }

    fn place(&mut self, path: &str, item: sources::SourceItem) -> Result<()> {
        // Parents are resolved through links in the image; the last component is replaced.
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let parent = self.resolve(if parent.is_empty() { "/" } else { parent }, true)?;
        let path = if parent == "/" {
            format!("/{name}")
        } else {
            format!("{parent}/{name}")
        };
        if path == "/" {
            return Ok(());
        }
        let meta = self.meta(&item);
        let kind = match item.kind {
            ItemKind::Dir => EntryKind::Dir,
            ItemKind::File { source, size } => EntryKind::File { source, size },
            ItemKind::Symlink(t) => EntryKind::Symlink(t),
        };
        if let (EntryKind::Dir, Some(existing)) = (&kind, self.index.get(&path)) {
            if let NodeKind::Symlink(_) = existing.kind {
                bail!("cannot copy directory to `{path}`: it is a symbolic link in the image");
            }
        }
        self.add_parents(&path);
        self.entries
            .insert(path.clone(), LayerEntry { path, kind, meta });
        Ok(())
    }

    /// Adds every ancestor of `path` that the layer does not list yet: existing directories with
    /// their metadata in the image, missing ones as new directories (0755, the --chown owner).
    fn add_parents(&mut self, path: &str) {
        let mut ancestors = Vec::new();
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if parent.is_empty() {
                break;
            }
            ancestors.push(parent.to_string());
            p = parent;
        }
        for a in ancestors.into_iter().rev() {
            if self.entries.contains_key(&a) {
                continue;
            }
            let meta = match self.index.get(&a) {
                Some(n) if n.kind == NodeKind::Dir => EntryMeta {
                    mode: n.mode,
                    uid: n.uid,
                    gid: n.gid,
                    mtime: n.mtime,
                    xattrs: Vec::new(),
                },
                _ => {
                    let (uid, gid) = self.owner.unwrap_or((0, 0));
                    EntryMeta {
                        mode: 0o755,
                        uid,
                        gid,
                        mtime: self.now,
                        xattrs: Vec::new(),
                    }
                }
            };
            self.entries.insert(
                a.clone(),
                LayerEntry {
                    path: a,
                    kind: EntryKind::Dir,
                    meta,
                },
            );
        }
    }
}

/// Writes the placed entries as a layer, records them in the index, and returns the layer.
async fn write_placement(
    b: &Builder,
    image: &mut StageImage,
    plan: Placement<'_>,
    kind: Cached,
) -> Result<LayerRef> {
    let entries: Vec<LayerEntry> = plan.entries.into_values().collect();
    let mut index = image.index.as_deref().cloned().unwrap_or_default();
    index.apply_entries(&entries);
    let count = entries.len();
    let start = std::time::Instant::now();
    let blob = b.write_step_layer(image, entries, kind)?;
    tracing::info!(
        "layer {} ({} entries, {}) written in {:.2?}",
        crate::build::executor::short_digest(&blob.digest),
        count,
        crate::report::human_bytes(blob.size),
        start.elapsed()
    );
    image.index = Some(Arc::new(index));
    Ok(LayerRef {
        descriptor: Descriptor::new(blob.media_type.clone(), blob.digest.clone(), blob.size),
        diff_id: blob.diff_id,
        remote: None,
    })
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Whether a source word is the `<<NAME` marker of one of the instruction's heredocs.
fn is_heredoc_marker(s: &str, names: &[&str]) -> bool {
    let Some(rest) = s.strip_prefix("<<") else {
        return false;
    };
    let rest = rest
        .trim_start_matches('-')
        .trim_matches(|c| c == '"' || c == '\'');
    names.contains(&rest)
}

/// `--chmod`: octal permission bits.
fn parse_chmod(raw: &str) -> Result<u32> {
    u32::from_str_radix(raw, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            anyhow!("invalid --chmod `{raw}`\nhint: use octal permission bits such as 755 or 0644")
        })
}

/// `--chown`: `user[:group]` by number or by name in the image's /etc/passwd and /etc/group. A
/// user without a group uses the user's primary group (or, for a number, the same number).
pub fn resolve_chown(index: &FsIndex, raw: &str) -> Result<(u64, u64)> {
    let (user, group) = match raw.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (raw, None),
    };
    let (uid, primary) = match user.parse::<u64>() {
        Ok(n) => (n, n),
        Err(_) => index.lookup_user(user).ok_or_else(|| {
            anyhow!("--chown user `{user}` is not in the image's /etc/passwd\nhint: use a numeric uid, or create the user in the base image")
        })?,
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u64>() {
            Ok(n) => n,
            Err(_) => index.lookup_group(g).ok_or_else(|| {
                anyhow!("--chown group `{g}` is not in the image's /etc/group\nhint: use a numeric gid, or create the group in the base image")
            })?,
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::Node;

    #[test]
    fn chmod_is_octal() {
        assert_eq!(parse_chmod("755").unwrap(), 0o755);
        assert_eq!(parse_chmod("0644").unwrap(), 0o644);
        assert!(parse_chmod("u+x").is_err());
        assert!(parse_chmod("99999").is_err());
    }

    #[test]
    fn chown_by_number_and_name() {
        let mut idx = FsIndex::new();
        idx.insert("/etc", Node::dir(0o755, 0, 0, 0));
        for (p, c) in [
            (
                "/etc/passwd",
                "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
            ),
            ("/etc/group", "root:x:0:\nwheel:x:10:\n"),
        ] {
            idx.insert(
                p,
                Node {
                    kind: NodeKind::File,
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    size: c.len() as u64,
                    mtime: 0,
                },
            );
            idx.set_content(p, c.as_bytes().to_vec());
        }
        assert_eq!(resolve_chown(&idx, "10").unwrap(), (10, 10));
        assert_eq!(resolve_chown(&idx, "10:20").unwrap(), (10, 20));
        assert_eq!(resolve_chown(&idx, "app").unwrap(), (1000, 1001));
        assert_eq!(resolve_chown(&idx, "app:wheel").unwrap(), (1000, 10));
        let err = resolve_chown(&idx, "ghost").unwrap_err().to_string();
        assert!(err.contains("`ghost`"), "{err}");
        assert!(resolve_chown(&idx, "app:nogroup").is_err());
    }

    #[test]
    fn git_urls_are_told_apart_from_downloads() {
        for git in [
            "https://example.com/org/repo.git",
            "https://example.com/org/repo.git#v1.0",
            "https://example.com/org/repo.git/#main:docs",
            "http://127.0.0.1:8080/r.git",
            "git://example.com/org/repo",
            "git@github.com:org/repo.git",
            "ssh://git@example.com/org/repo.git",
        ] {
            assert!(sources::is_git_url(git), "{git}");
        }
        for plain in [
            "https://example.com/tool.tar.gz",
            "https://example.com/repo.git.tar.gz",
            "https://example.com/download?file=x.git",
            "http://example.com/",
            "repo.git",
            "./git@x",
        ] {
            assert!(!sources::is_git_url(plain), "{plain}");
        }
    }

    #[test]
    fn heredoc_markers() {
        assert!(is_heredoc_marker("<<EOF", &["EOF"]));
        assert!(is_heredoc_marker("<<-\"EOF\"", &["EOF"]));
        assert!(!is_heredoc_marker("file", &["EOF"]));
    }
}

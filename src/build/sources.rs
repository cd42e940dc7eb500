//! What COPY and ADD copy: source trees from the context, another stage or image, a heredoc, a
//! URL, a git repository or a local archive, each turned into the same list of items.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use sha2::Digest as _;

use crate::context::{BuildContext, FileKind};
use crate::layer::EntrySource;
use crate::rootfs::extract::{extract_contents, spool_path};
use crate::rootfs::{FsIndex, NodeKind};

#[derive(Debug)]
pub enum ItemKind {
    Dir,
    File { source: EntrySource, size: u64 },
    Symlink(String),
}

/// One thing to copy, at `rel` below the source's top (`""` is the top itself).
#[derive(Debug)]
pub struct SourceItem {
    pub rel: String,
    pub kind: ItemKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
}

/// One matched source: a file (no children) or a directory whose contents are copied.
#[derive(Debug)]
pub struct SourceMatch {
    /// The base name, used when the destination is a directory.
    pub name: String,
    pub top: SourceItem,
    pub children: Vec<SourceItem>,
}

impl SourceMatch {
    pub fn is_dir(&self) -> bool {
        matches!(self.top.kind, ItemKind::Dir)
    }
}

/// Expands one source against the build context: wildcards, directories walked, `.dockerignore`
/// applied. Sources are owned by root in the image unless `--chown` says otherwise.
pub fn from_context(ctx: &BuildContext, src: &str) -> Result<Vec<SourceMatch>> {
    let mut out = Vec::new();
    for path in ctx.resolve_source(src)? {
        let name = path.rel.rsplit('/').next().unwrap_or("").to_string();
        // The source itself is followed when it is a link (`abs` is resolved inside the root).
        let top = SourceItem {
            rel: String::new(),
            kind: match &path.meta.kind {
                FileKind::Dir => ItemKind::Dir,
                FileKind::File => ItemKind::File {
                    source: EntrySource::Path(path.abs.clone()),
                    size: path.meta.size,
                },
                FileKind::Symlink(t) => ItemKind::Symlink(t.clone()),
                FileKind::Other => bail!("COPY source `{src}` is a socket, FIFO or device; COPY copies files, directories and links"),
            },
            mode: path.meta.mode,
            uid: 0,
            gid: 0,
            mtime: path.meta.mtime,
        };
        let children = if matches!(top.kind, ItemKind::Dir) {
            ctx.walk(&path)?
                .into_iter()
                .filter_map(|e| {
                    let kind = match e.kind {
                        FileKind::Dir => ItemKind::Dir,
                        FileKind::File => ItemKind::File {
                            source: EntrySource::Path(e.abs.clone()),
                            size: e.size,
                        },
                        FileKind::Symlink(t) => ItemKind::Symlink(t),
                        // Sockets, FIFOs and devices in a context are not copied, as Docker.
                        FileKind::Other => return None,
                    };
                    Some(SourceItem {
                        rel: e.rel,
                        kind,
                        mode: e.mode,
                        uid: 0,
                        gid: 0,
                        mtime: e.mtime,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        out.push(SourceMatch {
            name,
            top,
            children,
        });
    }
    Ok(out)
}

/// Expands sources against another stage's or image's filesystem (COPY --from), keeping owners
/// and modes as they are there. File contents are extracted from the layers into `spool`.
pub fn from_image(
    index: &FsIndex,
    layers: &[(PathBuf, String)],
    srcs: &[String],
    spool: &Path,
    from: &str,
) -> Result<Vec<SourceMatch>> {
    let mut tops: Vec<String> = Vec::new();
    for src in srcs {
        let abs = crate::rootfs::index::clean_path(&format!("/{src}"));
        let matched = if has_glob(&abs) {
            glob_index(index, &abs)
        } else {
            vec![abs.clone()]
        };
        if matched.is_empty() {
            bail!("`{src}` matches nothing in `{from}`");
        }
        for m in matched {
            let real = index.resolve(&m, true).map_err(|e| anyhow!("{e}"))?;
            if index.get(&real).is_none() {
                bail!("`{src}` not found in `{from}`\nhint: check the path; COPY --from paths are absolute in that image");
            }
            tops.push(real);
        }
    }
    std::fs::create_dir_all(spool)?;
    tokio::task::block_in_place(|| extract_contents(layers, &tops, spool))?;
    let mut out = Vec::new();
    for top in tops {
        let node = index.get(&top).expect("checked above");
        let name = top.rsplit('/').next().unwrap_or("").to_string();
        let item = |rel: String, path: &str, n: &crate::rootfs::Node| -> Option<SourceItem> {
            let kind = match &n.kind {
                NodeKind::Dir => ItemKind::Dir,
                NodeKind::File | NodeKind::Hardlink(_) => {
                    let p = spool_path(spool, path);
                    let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                    ItemKind::File {
                        source: EntrySource::Path(p),
                        size,
                    }
                }
                NodeKind::Symlink(t) => ItemKind::Symlink(t.clone()),
                NodeKind::Other => return None,
            };
            Some(SourceItem {
                rel,
                kind,
                mode: n.mode,
                uid: n.uid,
                gid: n.gid,
                mtime: n.mtime,
            })
        };
        let top_item = item(String::new(), &top, node).ok_or_else(|| {
            anyhow!(
                "`{top}` in `{from}` is a device or FIFO; COPY copies files, directories and links"
            )
        })?;
        let children = if node.kind == NodeKind::Dir {
            let prefix_len = if top == "/" { 1 } else { top.len() + 1 };
            index
                .children(&top)
                .filter_map(|(p, n)| item(p[prefix_len..].to_string(), p, n))
                .collect()
        } else {
            Vec::new()
        };
        out.push(SourceMatch {
            name,
            top: top_item,
            children,
        });
    }
    Ok(out)
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Paths of the index matching a glob, component by component.
fn glob_index(index: &FsIndex, pattern: &str) -> Vec<String> {
    let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let mut current = vec!["/".to_string()];
    for comp in comps {
        let mut next = Vec::new();
        for dir in &current {
            if has_glob(comp) {
                let prefix_len = if dir == "/" { 1 } else { dir.len() + 1 };
                for (p, _) in index.children(dir) {
                    let rest = &p[prefix_len..];
                    if !rest.contains('/')
                        && crate::context::Glob::new(comp).is_ok_and(|g| g.matches(rest))
                    {
                        next.push(p.clone());
                    }
                }
            } else {
                let p = if dir == "/" {
                    format!("/{comp}")
                } else {
                    format!("{dir}/{comp}")
                };
                if index.get(&p).is_some() {
                    next.push(p);
                }
            }
        }
        current = next;
    }
    current
}

/// A heredoc used as a COPY source: a file named by its delimiter, mode 0644.
pub fn from_heredoc(name: &str, content: String, mtime: i64) -> SourceMatch {
    let bytes = content.into_bytes();
    SourceMatch {
        name: name.to_string(),
        top: SourceItem {
            rel: String::new(),
            kind: ItemKind::File {
                size: bytes.len() as u64,
                source: EntrySource::Bytes(bytes),
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime,
        },
        children: Vec::new(),
    }
}

/// Downloads an ADD URL into the spool: mode 0600, mtime from `Last-Modified`, checked against
/// `--checksum` when given.
pub async fn from_url(url: &str, checksum: Option<&str>, spool: &Path) -> Result<SourceMatch> {
    let parsed =
        url::Url::parse(url).with_context(|| format!("ADD source `{url}` is not a valid URL"))?;
    let name = parsed
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| anyhow!("building an HTTP client: {e}"))?;
    let resp = client.get(parsed.clone()).send().await.map_err(|e| {
        anyhow!("downloading `{url}`: {e}\nhint: check the URL is reachable from the build machine")
    })?;
    if !resp.status().is_success() {
        bail!("downloading `{url}`: the server answered {}", resp.status());
    }
    let mtime = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()
        })
        .map(|t| t.unix_timestamp())
        .unwrap_or(0);
    std::fs::create_dir_all(spool)?;
    let dest = spool.join(format!(
        "url-{}",
        hex::encode(sha2::Sha256::digest(url.as_bytes()))
    ));
    let mut file = tokio::fs::File::create(&dest).await?;
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    let mut stream = resp.bytes_stream();
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| anyhow!("downloading `{url}`: {e}"))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
    if let Some(want) = checksum {
        if want != got {
            bail!("ADD `{url}`: checksum mismatch: expected `{want}`, got `{got}`\nhint: update --checksum, or check that the URL serves the file you expect");
        }
    }
    let name = name.unwrap_or_else(|| "download".into());
    Ok(SourceMatch {
        name,
        top: SourceItem {
            rel: String::new(),
            kind: ItemKind::File {
                source: EntrySource::Path(dest),
                size,
            },
            mode: 0o600,
            uid: 0,
            gid: 0,
            mtime,
        },
        children: Vec::new(),
    })
}

/// Whether an ADD source names a git repository, as BuildKit tells: `git://`, `git@host:`,
/// `ssh://`, or an `http(s)://` address whose path ends in `.git` (a `#ref` may follow).
pub fn is_git_url(s: &str) -> bool {
    if s.starts_with("git://") || s.starts_with("git@") || s.starts_with("ssh://") {
        return true;
    }
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let location = rest.split('#').next().unwrap_or(rest);
    let path = location.split('?').next().unwrap_or(location);
    path.trim_end_matches('/').ends_with(".git")
}

/// Clones an ADD git source into `spool` with the git context code and lists its files. The
/// fragment is BuildKit's `#REF[:SUBDIR]`: REF a branch, a tag, `refs/...` or a full commit id
/// (default: the remote's HEAD); SUBDIR the directory of the repository to copy. `.git` is left
/// out unless `keep_git_dir`. Tracked files get 0644, or 0755 when executable (what git
/// records), whatever the umask of the checkout.
pub fn from_git(src: &str, keep_git_dir: bool, spool: &Path) -> Result<SourceMatch> {
    use crate::context::source::{git, GitContext, GitOptions};
    let (location, fragment) = match src.split_once('#') {
        Some((l, f)) => (l, Some(f)),
        None => (src, None),
    };
    if location.starts_with("git@") || location.starts_with("ssh://") {
        bail!(
            "ADD `{src}`: git over SSH is not supported (gantry's libgit2 is built without SSH)\n\
             hint: use the repository's https:// address; set GIT_TOKEN, or GIT_USERNAME and GIT_PASSWORD, for a private one"
        );
    }
    let (reference, subdir) = match fragment.filter(|f| !f.is_empty()) {
        None => (None, None),
        Some(f) => match f.split_once(':') {
            Some((r, d)) => (Some(r).filter(|r| !r.is_empty()), Some(d)),
            None => (Some(f), None),
        },
    };
    let mut url = url::Url::parse(location)
        .with_context(|| format!("ADD source `{src}` is not a valid git URL"))?;
    let url_credentials = (!url.username().is_empty()).then(|| {
        (
            url.username().to_string(),
            url.password().unwrap_or_default().to_string(),
        )
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let shown = match fragment {
        Some(f) => format!("{url}#{f}"),
        None => url.to_string(),
    };
    let context = |reference: Option<String>, commit: Option<String>| GitContext {
        url: url.to_string(),
        reference,
        commit,
        url_credentials: url_credentials.clone(),
        options: GitOptions::default(),
    };
    // A full commit id is checked out from what HEAD brings; `refs/...` is fetched as written;
    // any other name is a branch, else a tag (git's own order for a short name).
    let attempts: Vec<GitContext> = match reference {
        None => vec![context(None, None)],
        Some(r) if r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()) => {
            vec![context(None, Some(r.to_string()))]
        }
        Some(r) if r.starts_with("refs/") => vec![context(Some(r.to_string()), None)],
        Some(r) => vec![
            context(Some(format!("refs/heads/{r}")), None),
            context(Some(format!("refs/tags/{r}")), None),
        ],
    };
    let checkout = spool.join("git");
    let mut last_error = None;
    for attempt in &attempts {
        let _ = std::fs::remove_dir_all(&checkout);
        std::fs::create_dir_all(&checkout)?;
        match tokio::task::block_in_place(|| git::clone(attempt, &checkout, &shown)) {
            Ok(()) => {
                last_error = None;
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    if let Some(e) = last_error {
        let e = anyhow::Error::new(e);
        return Err(match (reference, attempts.len()) {
            (Some(r), 2) => e.context(format!(
                "ADD `{shown}`: `{r}` is neither a branch nor a tag of the repository"
            )),
            _ => e.context(format!("ADD `{shown}`")),
        });
    }
    let mut top_dir = checkout.clone();
    if let Some(d) = subdir
        .map(|d| d.trim_matches('/'))
        .filter(|d| !d.is_empty())
    {
        if d.split('/').any(|c| c == ".." || c == ".") {
            bail!("ADD `{src}`: the subdirectory `{d}` must stay inside the repository\nhint: write `#REF:path/in/repo`");
        }
        top_dir = checkout.join(d);
        if !std::fs::symlink_metadata(&top_dir).is_ok_and(|m| m.is_dir()) {
            bail!("ADD `{src}`: `{d}` is not a directory of the repository\nhint: write `#REF:path/in/repo` with an existing directory");
        }
    }
    let skip_git = !keep_git_dir && top_dir == checkout;
    let mut children = Vec::new();
    walk_checkout(&top_dir, "", skip_git, &mut children)?;
    Ok(SourceMatch {
        name: String::new(),
        top: SourceItem {
            rel: String::new(),
            kind: ItemKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
        },
        children,
    })
}

/// The files of a checkout below `dir`, in name order, as items relative to the top.
fn walk_checkout(dir: &Path, rel: &str, skip_git: bool, out: &mut Vec<SourceItem>) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading `{}`", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        if skip_git && rel.is_empty() && name == ".git" {
            continue;
        }
        let path = dir.join(&name);
        let item_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::symlink_metadata(&path)?;
        let (kind, mode) = if meta.is_dir() {
            (ItemKind::Dir, 0o755)
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?.to_string_lossy().into_owned();
            (ItemKind::Symlink(target), 0o777)
        } else if meta.is_file() {
            let mode = if meta.mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            (
                ItemKind::File {
                    source: EntrySource::Path(path.clone()),
                    size: meta.len(),
                },
                mode,
            )
        } else {
            continue;
        };
        let is_dir = matches!(kind, ItemKind::Dir);
        out.push(SourceItem {
            rel: item_rel.clone(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: meta.mtime(),
        });
        if is_dir {
            walk_checkout(&path, &item_rel, skip_git, out)?;
        }
    }
    Ok(())
}

/// Compression of a local file that ADD would extract.
#[derive(Debug, PartialEq, Eq)]
pub enum Archive {
    Tar,
    Gzip,
}

/// Whether ADD extracts this file: a tar archive, plain or gzip-compressed.
pub fn archive_kind(path: &Path) -> Result<Option<Archive>> {
    let mut head = [0u8; 512];
    let mut f = std::fs::File::open(path)?;
    let n = read_full(&mut f, &mut head)?;
    let head = &head[..n];
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(path)?);
        let mut inner = [0u8; 512];
        let m = read_full(&mut gz, &mut inner).unwrap_or(0);
        return Ok(is_tar_header(&inner[..m]).then_some(Archive::Gzip));
    }
    if head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
    {
        bail!(
            "`{}` is a bzip2, xz or zstd archive, which ADD does not extract in gantry yet\nhint: use a .tar or .tar.gz archive, or COPY the file",
            path.display()
        );
    }
    Ok(is_tar_header(head).then_some(Archive::Tar))
}

fn is_tar_header(h: &[u8]) -> bool {
    h.len() >= 262 && &h[257..262] == b"ustar"
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Unpacks a local archive for ADD into the spool: the archive's own owners, modes and times.
pub fn from_archive(path: &Path, kind: Archive, spool: &Path) -> Result<SourceMatch> {
    let file = std::fs::File::open(path)?;
    let reader: Box<dyn Read> = match kind {
        Archive::Gzip => Box::new(flate2::read::GzDecoder::new(file)),
        Archive::Tar => Box::new(file),
    };
    let mut archive = tar::Archive::new(reader);
    let mut children: Vec<SourceItem> = Vec::new();
    std::fs::create_dir_all(spool)?;
    for entry in archive
        .entries()
        .with_context(|| format!("reading archive `{}`", path.display()))?
    {
        let mut entry = entry.with_context(|| format!("reading archive `{}`", path.display()))?;
        let rel = crate::rootfs::index::clean_path(&String::from_utf8_lossy(&entry.path_bytes()));
        let rel = rel.trim_start_matches('/').to_string();
        if rel.is_empty() {
            continue;
        }
        let h = entry.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => ItemKind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Link => {
                let dest = spool_path(spool, &rel);
                if let Some(p) = dest.parent() {
                    std::fs::create_dir_all(p)?;
                }
                if h.entry_type() == tar::EntryType::Link {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    std::fs::copy(spool_path(spool, &target), &dest).with_context(|| {
                        format!(
                            "archive `{}`: hard link `{rel}` to `{target}`",
                            path.display()
                        )
                    })?;
                } else {
                    let mut out = std::fs::File::create(&dest)?;
                    std::io::copy(&mut entry, &mut out)?;
                }
                let size = std::fs::metadata(&dest)?.len();
                ItemKind::File {
                    source: EntrySource::Path(dest),
                    size,
                }
            }
            tar::EntryType::Symlink => ItemKind::Symlink(
                entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default(),
            ),
            _ => continue,
        };
        children.push(SourceItem {
            rel,
            kind,
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            mtime: h.mtime().unwrap_or(0) as i64,
        });
    }
    Ok(SourceMatch {
        name: String::new(),
        top: SourceItem {
            rel: String::new(),
            kind: ItemKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
        },
        children,
    })
}

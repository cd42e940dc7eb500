//! The filesystem index: path → type, mode, owner, size, link target, for the union of an image's
//! layers, with OCI whiteouts applied.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::rootfs::extract::{open_layer, LayerReadError};

/// Files whose contents the index keeps, because builds read them without a root filesystem.
const KEPT_FILES: &[&str] = &["/etc/passwd", "/etc/group"];
/// Symlinks followed while resolving one path, as Linux's MAXSYMLINKS.
const MAX_SYMLINKS: usize = 40;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File,
    Symlink(String),
    /// A hard link to another path in the image.
    Hardlink(String),
    /// Device nodes, FIFOs: present in the image, never copied by COPY.
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
}

impl Node {
    pub fn dir(mode: u32, uid: u64, gid: u64, mtime: i64) -> Node {
        Node {
            kind: NodeKind::Dir,
            mode,
            uid,
            gid,
            size: 0,
            mtime,
        }
    }
}

/// Why a path could not be resolved inside the image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("too many levels of symbolic links while resolving `{0}`")]
    Loop(String),
    #[error("`{path}`: `{component}` is a file, not a directory")]
    NotADirectory { path: String, component: String },
}

/// The union view of an image's layers.
#[derive(Clone, Debug, Default)]
pub struct FsIndex {
    nodes: BTreeMap<String, Node>,
    files: BTreeMap<String, Vec<u8>>,
}

/// What one layer says: its entries, and the paths it whites out.
#[derive(Debug, Default)]
pub struct LayerChanges {
    entries: Vec<(String, Node)>,
    files: Vec<(String, Vec<u8>)>,
    whiteouts: Vec<String>,
    opaque: Vec<String>,
}

impl FsIndex {
    pub fn new() -> FsIndex {
        let mut idx = FsIndex::default();
        idx.nodes.insert("/".into(), Node::dir(0o755, 0, 0, 0));
        idx
    }

    /// Builds the index of an image from its layer blobs (in order), reading layers in parallel.
    pub fn from_layers(layers: &[(std::path::PathBuf, String)]) -> Result<FsIndex, LayerReadError> {
        let changes: Vec<Result<LayerChanges, LayerReadError>> = std::thread::scope(|s| {
            let handles: Vec<_> = layers
                .iter()
                .map(|(path, media_type)| s.spawn(move || read_layer_changes(path, media_type)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(LayerReadError::Panicked)))
                .collect()
        });
        let mut idx = FsIndex::new();
        for c in changes {
            idx.apply(c?);
        }
        Ok(idx)
    }

    /// Applies one layer on top: whiteouts first (they only hide lower layers), then entries.
    pub fn apply(&mut self, changes: LayerChanges) {
        for dir in &changes.opaque {
            self.remove_children(dir);
        }
        for path in &changes.whiteouts {
            self.remove(path);
        }
        for (path, node) in changes.entries {
            self.insert(&path, node);
        }
        for (path, content) in changes.files {
            self.files.insert(path, content);
        }
    }

    /// Applies the entries of a layer gantry made (a RUN snapshot) on top of the index.
    pub fn apply_entries(&mut self, entries: &[crate::layer::LayerEntry]) {
        use crate::layer::EntryKind;
        for e in entries {
            let (kind, size) = match &e.kind {
                EntryKind::Whiteout => {
                    self.remove(&e.path);
                    continue;
                }
                EntryKind::OpaqueDir => {
                    self.remove_children(&e.path);
                    continue;
                }
                EntryKind::Dir => (NodeKind::Dir, 0),
                EntryKind::File { size, .. } => (NodeKind::File, *size),
                EntryKind::Symlink(t) => (NodeKind::Symlink(t.clone()), 0),
                EntryKind::Hardlink(t) => (NodeKind::Hardlink(t.clone()), 0),
                EntryKind::Fifo => (NodeKind::Other, 0),
            };
            self.insert(
                &e.path,
                Node {
                    kind,
                    mode: e.meta.mode,
                    uid: e.meta.uid,
                    gid: e.meta.gid,
                    size,
                    mtime: e.meta.mtime,
                },
            );
            if KEPT_FILES.contains(&e.path.as_str()) {
                if let EntryKind::File { source, .. } = &e.kind {
                    let content = match source {
                        crate::layer::EntrySource::Bytes(b) => Some(b.clone()),
                        crate::layer::EntrySource::Path(p) => std::fs::read(p).ok(),
                    };
                    if let Some(c) = content {
                        self.files.insert(e.path.clone(), c);
                    }
                }
            }
        }
    }

    /// Adds or replaces one path. Replacing a directory with something else drops its children.
    pub fn insert(&mut self, path: &str, node: Node) {
        if node.kind != NodeKind::Dir {
            if let Some(old) = self.nodes.get(path) {
                if old.kind == NodeKind::Dir {
                    self.remove_children(path);
                }
            }
            self.files.remove(path);
        }
        self.nodes.insert(path.to_string(), node);
    }

    /// Records the content of a file the build may read later (only for the kept files).
    pub fn set_content(&mut self, path: &str, content: Vec<u8>) {
        if KEPT_FILES.contains(&path) {
            self.files.insert(path.to_string(), content);
        }
    }

    pub fn remove(&mut self, path: &str) {
        self.remove_children(path);
        self.nodes.remove(path);
        self.files.remove(path);
    }

    fn remove_children(&mut self, dir: &str) {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
            self.files.remove(&k);
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The content of a kept file (`/etc/passwd`, `/etc/group`), after resolving symlinks.
    pub fn content(&self, path: &str) -> Option<&[u8]> {
        let real = self.resolve(path, true).ok()?;
        self.files.get(&real).map(Vec::as_slice)
    }

    /// Every path strictly below `dir`, in sorted order.
    pub fn children<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a Node)> + 'a {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.as_str() != "/")
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Resolves an absolute path inside the image the way the kernel would inside a chroot:
    /// symlinks in directory components are followed (absolute targets restart at the image
    /// root, `..` never climbs above it); the last component is followed only when `follow_last`.
    /// Components that do not exist are kept as they are.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, ResolveError> {
        let mut pending: Vec<String> = components(path).into_iter().rev().collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            match comp.as_str() {
                "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            current.push(comp);
            let joined = join(&current);
            let is_last = pending.is_empty();
            match self.nodes.get(&joined).map(|n| &n.kind) {
                Some(NodeKind::Symlink(target)) if !is_last || follow_last => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(ResolveError::Loop(path.to_string()));
                    }
                    current.pop();
                    if target.starts_with('/') {
                        current.clear();
                    }
                    for c in components(target).into_iter().rev() {
                        pending.push(c);
                    }
                }
                Some(NodeKind::File) | Some(NodeKind::Hardlink(_)) | Some(NodeKind::Other)
                    if !is_last =>
                {
                    return Err(ResolveError::NotADirectory {
                        path: path.to_string(),
                        component: joined,
                    });
                }
                _ => {}
            }
        }
        Ok(join(&current))
    }

    /// Whether the path (symlinks followed) is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        self.resolve(path, true)
            .ok()
            .and_then(|p| self.nodes.get(&p).map(|n| n.kind == NodeKind::Dir))
            .unwrap_or(false)
    }

    /// Looks a user up by name or number in the image's /etc/passwd: (uid, primary gid).
    pub fn lookup_user(&self, name: &str) -> Option<(u64, u64)> {
        let text = self.content("/etc/passwd")?;
        lookup_db(text, name, 2).and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
    }

    /// Looks a group up by name in the image's /etc/group.
    pub fn lookup_group(&self, name: &str) -> Option<u64> {
        let text = self.content("/etc/group")?;
        lookup_db(text, name, 2).and_then(|f| f[2].parse().ok())
    }
}

fn lookup_db<'a>(text: &'a [u8], name: &str, min_fields: usize) -> Option<Vec<&'a str>> {
    let text = std::str::from_utf8(text).ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > min_fields + 1 && f[0] == name)
}

/// The components of a path, without empty ones.
fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

fn join(components: &[String]) -> String {
    if components.is_empty() {
        "/".to_string()
    } else {
        format!("/{}", components.join("/"))
    }
}

/// Normalises a path from a tar entry to an absolute, clean image path.
pub fn clean_path(raw: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        "/".into()
    } else {
        format!("/{}", out.join("/"))
    }
}

/// Reads one layer blob into the changes it makes.
pub fn read_layer_changes(path: &Path, media_type: &str) -> Result<LayerChanges, LayerReadError> {
    let mut archive = open_layer(path, media_type)?;
    let mut changes = LayerChanges::default();
    let entries = archive.entries().map_err(|e| LayerReadError::io(path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| LayerReadError::io(path, e))?;
        let raw = entry.path_bytes();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let full = clean_path(&raw);
        let (dir, name) = match full.rsplit_once('/') {
            Some((d, n)) => (
                if d.is_empty() {
                    "/".to_string()
                } else {
                    d.to_string()
                },
                n.to_string(),
            ),
            None => ("/".to_string(), full.clone()),
        };
        if name == ".wh..wh..opq" {
            changes.opaque.push(dir);
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            changes.whiteouts.push(if dir == "/" {
                format!("/{hidden}")
            } else {
                format!("{dir}/{hidden}")
            });
            continue;
        }
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => NodeKind::Dir,
            tar::EntryType::Symlink => NodeKind::Symlink(link_name(&entry)),
            tar::EntryType::Link => NodeKind::Hardlink(clean_path(&link_name(&entry))),
            tar::EntryType::Regular | tar::EntryType::Continuous => NodeKind::File,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            _ => NodeKind::Other,
        };
        let node = Node {
            kind,
            mode: header.mode().unwrap_or(0o644) & 0o7777,
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            size: header.size().unwrap_or(0),
            mtime: header.mtime().unwrap_or(0) as i64,
        };
        if node.kind == NodeKind::File && KEPT_FILES.contains(&full.as_str()) {
            let mut content = Vec::new();
            entry
                .read_to_end(&mut content)
                .map_err(|e| LayerReadError::io(path, e))?;
            changes.files.push((full.clone(), content));
        }
        changes.entries.push((full, node));
    }
    Ok(changes)
}

fn link_name<R: Read>(entry: &tar::Entry<R>) -> String {
    entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Node {
        Node {
            kind: NodeKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 1,
            mtime: 0,
        }
    }

    fn link(t: &str) -> Node {
        Node {
            kind: NodeKind::Symlink(t.into()),
            ..file()
        }
    }

    fn debian_like() -> FsIndex {
        let mut idx = FsIndex::new();
        idx.insert("/usr", Node::dir(0o755, 0, 0, 0));
        idx.insert("/usr/bin", Node::dir(0o755, 0, 0, 0));
        idx.insert("/bin", link("usr/bin"));
        idx.insert("/etc", Node::dir(0o755, 0, 0, 0));
        idx.insert("/etc/alt", link("/etc/loop"));
        idx.insert("/etc/loop", link("/etc/alt"));
        idx.insert("/usr/bin/sh", file());
        idx.insert("/up", link("../../../usr"));
        idx
    }

    #[test]
    fn resolves_through_symlinked_directories() {
        let idx = debian_like();
        assert_eq!(idx.resolve("/bin/app", false).unwrap(), "/usr/bin/app");
        assert_eq!(idx.resolve("/bin", false).unwrap(), "/bin");
        assert_eq!(idx.resolve("/bin", true).unwrap(), "/usr/bin");
        assert!(idx.is_dir("/bin"));
        // `..` in a link target never climbs above the image root.
        assert_eq!(idx.resolve("/up/bin/x", false).unwrap(), "/usr/bin/x");
        assert_eq!(idx.resolve("/missing/a/../b", false).unwrap(), "/missing/b");
    }

    #[test]
    fn loops_and_files_as_directories_are_errors() {
        let idx = debian_like();
        assert_eq!(
            idx.resolve("/etc/alt/x", false),
            Err(ResolveError::Loop("/etc/alt/x".into()))
        );
        assert!(matches!(
            idx.resolve("/usr/bin/sh/x", false),
            Err(ResolveError::NotADirectory { .. })
        ));
    }

    #[test]
    fn whiteouts_hide_lower_layers_only() {
        let mut idx = debian_like();
        idx.apply(LayerChanges {
            entries: vec![("/usr/bin/new".into(), file())],
            opaque: vec!["/usr/bin".into()],
            ..Default::default()
        });
        assert!(idx.get("/usr/bin/sh").is_none());
        assert!(idx.get("/usr/bin/new").is_some());
        idx.apply(LayerChanges {
            whiteouts: vec!["/usr".into()],
            ..Default::default()
        });
        assert!(idx.get("/usr").is_none());
        assert!(idx.get("/usr/bin/new").is_none());
    }

    #[test]
    fn users_and_groups_from_passwd() {
        let mut idx = debian_like();
        idx.insert("/etc/passwd", file());
        idx.set_content(
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n".to_vec(),
        );
        idx.insert("/etc/group", file());
        idx.set_content("/etc/group", b"root:x:0:\nstaff:x:50:app\n".to_vec());
        assert_eq!(idx.lookup_user("app"), Some((1000, 1001)));
        assert_eq!(idx.lookup_user("nobody"), None);
        assert_eq!(idx.lookup_group("staff"), Some(50));
    }
}

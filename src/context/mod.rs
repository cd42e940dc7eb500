//! The build context: a local directory tree, filtered by `.dockerignore`, that COPY and ADD read
//! their sources from.
//!
//! Sources are resolved the way BuildKit does it: relative to the context root whatever leading
//! `/` they carry, with Go `filepath.Match` globs, and never outside the root - neither through
//! `..` nor through a symlink pointing out of it. Paths excluded by `.dockerignore` are invisible:
//! they match no glob and a literal source naming one is "not found". Walks are sorted so that the
//! layers built from them are deterministic.

mod ignore;
mod pattern;
pub mod source;
mod walk;

use std::path::{Path, PathBuf};

pub use ignore::DockerIgnore;
pub use pattern::Glob;
pub use walk::{ContextEntry, FileInfo, FileKind};

/// Why a context operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("cannot read the build context at `{}`: {source}\nhint: check that the context directory exists and is readable", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad pattern `{pattern}` on line {line} of .dockerignore: {reason}\nhint: patterns use Go filepath.Match syntax (`*`, `?`, `[a-z]`, `\\` escapes) plus `**`")]
    BadPattern {
        pattern: String,
        line: usize,
        reason: &'static str,
    },
    #[error("COPY/ADD source `{src}` was not found in the build context\nhint: sources are relative to the context directory; the path may also be excluded by .dockerignore")]
    NotFound { src: String },
    #[error("COPY/ADD source `{src}` is outside the build context\nhint: only files inside the context directory can be copied; move the file into the context or use a different context directory")]
    Outside { src: String },
    #[error("COPY/ADD source `{src}` goes through more than 40 symbolic links\nhint: there is probably a symlink loop in the build context")]
    SymlinkLoop { src: String },
    #[error("bad COPY/ADD source pattern `{src}`: {reason}\nhint: sources use Go filepath.Match syntax (`*`, `?`, `[a-z]`, `\\` escapes)")]
    BadGlob { src: String, reason: &'static str },
}

/// A source resolved in the context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextPath {
    /// Clean path relative to the root as the source names it (`""` = the root itself); a
    /// symlink keeps its own name here.
    pub rel: String,
    /// The file to read: symlinks along the way (and at the end) resolved inside the root.
    pub abs: PathBuf,
    /// `stat` of `abs`.
    pub meta: FileInfo,
}

/// A build context directory and its ignore rules.
#[derive(Clone, Debug)]
pub struct BuildContext {
    pub root: PathBuf,
    ignore: DockerIgnore,
}

impl BuildContext {
    /// Opens the context at `root`, reading `root/.dockerignore` if there is one.
    pub fn open(root: &Path) -> Result<Self, ContextError> {
        let file = root.join(".dockerignore");
        match std::fs::read_to_string(&file) {
            Ok(text) => Self::with_ignore_text(root, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::with_ignore_text(root, ""),
            Err(source) => Err(ContextError::Io { path: file, source }),
        }
    }

    /// Opens the context at `root` with the ignore rules in `ignore_file` (for instance
    /// `<Dockerfile>.dockerignore`, which takes precedence over the root's file).
    pub fn with_ignore_file(root: &Path, ignore_file: &Path) -> Result<Self, ContextError> {
        let text = std::fs::read_to_string(ignore_file).map_err(|source| ContextError::Io {
            path: ignore_file.to_path_buf(),
            source,
        })?;
        Self::with_ignore_text(root, &text)
    }

    /// Opens the context at `root` with ignore rules given as text.
    pub fn with_ignore_text(root: &Path, text: &str) -> Result<Self, ContextError> {
        let root = std::fs::canonicalize(root).map_err(|source| ContextError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        Ok(BuildContext {
            root,
            ignore: DockerIgnore::parse(text)?,
        })
    }

    /// Whether the context-relative path is excluded by `.dockerignore`.
    pub fn is_excluded(&self, rel: &str) -> bool {
        self.ignore.matches(rel)
    }

    /// Expands one COPY/ADD source (a relative path or a `filepath.Match` glob) against the
    /// context. Returns the matches sorted by path; an error when nothing matches or the source
    /// leads outside the context.
    pub fn resolve_source(&self, src: &str) -> Result<Vec<ContextPath>, ContextError> {
        let cleaned = pattern::clean(src.trim_start_matches('/'));
        if cleaned == ".." || cleaned.starts_with("../") {
            return Err(ContextError::Outside { src: src.into() });
        }
        let rel = if cleaned == "." {
            String::new()
        } else {
            cleaned
        };
        let candidates = if pattern::has_meta(&rel) {
            self.expand_glob(src, &rel)?
        } else {
            vec![rel]
        };
        let mut out = Vec::new();
        for rel in candidates {
            if self.is_excluded(&rel) {
                continue;
            }
            let abs = self.resolve_in_root(src, &rel)?;
            match std::fs::metadata(&abs) {
                Ok(md) => out.push(ContextPath {
                    rel,
                    abs,
                    meta: FileInfo::from_metadata(&md, None),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ContextError::Io { path: abs, source }),
            }
        }
        if out.is_empty() {
            return Err(ContextError::NotFound { src: src.into() });
        }
        out.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
        out.dedup_by(|a, b| a.rel == b.rel);
        Ok(out)
    }

    /// Context-relative paths matching a glob, one path segment at a time.
    fn expand_glob(&self, src: &str, rel: &str) -> Result<Vec<String>, ContextError> {
        let mut current = vec![String::new()];
        for segment in rel.split('/') {
            let mut next = Vec::new();
            if !pattern::has_meta(segment) {
                let segment = segment.to_string();
                next.extend(current.iter().map(|c| join(c, &segment)));
            } else {
                let glob = pattern::Glob::new(segment).map_err(|bad| ContextError::BadGlob {
                    src: src.into(),
                    reason: bad.0,
                })?;
                for dir in &current {
                    let abs = match self.resolve_in_root(src, dir) {
                        Ok(abs) => abs,
                        Err(ContextError::Outside { .. }) => continue,
                        Err(e) => return Err(e),
                    };
                    let Ok(entries) = std::fs::read_dir(&abs) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        let name = entry.file_name();
                        let Some(name) = name.to_str() else { continue };
                        if glob.matches(name) {
                            next.push(join(dir, name));
                        }
                    }
                }
            }
            current = next;
        }
        Ok(current)
    }

    /// The real location of the context-relative `rel`, following symlinks in every component
    /// but refusing any that leave the root.
    fn resolve_in_root(&self, src: &str, rel: &str) -> Result<PathBuf, ContextError> {
        let mut queue: Vec<String> = rel.split('/').rev().map(String::from).collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = queue.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    if resolved.pop().is_none() {
                        return Err(ContextError::Outside { src: src.into() });
                    }
                    continue;
                }
                _ => {}
            }
            resolved.push(part);
            let path = self.root.join(resolved.join("/"));
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !md.file_type().is_symlink() {
                continue;
            }
            hops += 1;
            if hops > 40 {
                return Err(ContextError::SymlinkLoop { src: src.into() });
            }
            let target = std::fs::read_link(&path).map_err(|source| ContextError::Io {
                path: path.clone(),
                source,
            })?;
            let target = target.to_string_lossy().into_owned();
            resolved.pop();
            if let Some(abs) = target.strip_prefix('/') {
                // An absolute link is fine only when it points back into the context.
                let root = self.root.to_string_lossy();
                let root = root.trim_start_matches('/');
                let inside = if root.is_empty() {
                    Some(abs)
                } else {
                    abs.strip_prefix(root)
                        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                };
                let Some(inside) = inside else {
                    return Err(ContextError::Outside { src: src.into() });
                };
                resolved.clear();
                queue.extend(inside.split('/').rev().map(String::from));
            } else {
                queue.extend(target.split('/').rev().map(String::from));
            }
        }
        Ok(self.root.join(resolved.join("/")))
    }

    /// Walks `dir` (sorted, symlinks not followed), returning entries relative to it. Paths
    /// excluded by `.dockerignore` are skipped; an excluded directory is still entered when an
    /// exception could re-include something beneath it, and is then listed if anything is.
    pub fn walk(&self, dir: &ContextPath) -> Result<Vec<ContextEntry>, ContextError> {
        let mut out = Vec::new();
        walk::walk_dir(&self.ignore, &dir.abs, &dir.rel, "", &mut out)?;
        out.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
        Ok(out)
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests;

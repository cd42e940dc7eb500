//! The "nothing outside" check the extraction targets share.
//!
//! Each input is extracted into a target directory four levels down a fresh temporary root,
//! beside a decoy directory with a fixed name and one file. An entry that escaped by up to four
//! `..` levels, or by a symlink the extractor followed on the host (`l -> ../../../../decoy`,
//! which the fuzzer can find because the decoy's name is fixed), lands somewhere in the
//! temporary root; [`Sandbox::check`] walks all of it without following symlinks and fails on
//! anything that is neither under the target nor the untouched decoy. Symlinks the extraction
//! created are then resolved the way a build reads them, with the build context's in-root
//! resolver, and must lead to a file inside the target.

use std::path::{Path, PathBuf};

const DECOY: &str = "decoy";
const SENTINEL: &[u8] = b"must stay as it is\n";

pub struct Sandbox {
    /// The temporary root: removed when the sandbox is dropped.
    root: tempfile::TempDir,
    /// Where the input is extracted (its parent exists; it may not).
    pub target: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("a/b/c");
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::create_dir(root.path().join(DECOY)).unwrap();
        std::fs::write(root.path().join(DECOY).join("sentinel"), SENTINEL).unwrap();
        Sandbox {
            target: parent.join("target"),
            root,
        }
    }

    /// Panics if the extraction touched anything outside the target, or left a symlink that
    /// resolves (in-root, as a build resolves it) outside the target.
    pub fn check(&self) {
        let root = self.root.path();
        let mut stack = vec![root.to_path_buf()];
        let mut symlinks = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let md = std::fs::symlink_metadata(&path).unwrap();
                if path.starts_with(&self.target) {
                    if md.file_type().is_symlink() {
                        symlinks.push(path.clone());
                    }
                } else {
                    let rel = path.strip_prefix(root).unwrap();
                    let allowed = ["a", "a/b", "a/b/c", DECOY]
                        .iter()
                        .any(|a| rel == Path::new(a))
                        && md.is_dir();
                    let sentinel = rel == Path::new(DECOY).join("sentinel")
                        && md.is_file()
                        && std::fs::read(&path).unwrap() == SENTINEL;
                    assert!(
                        allowed || sentinel,
                        "extraction wrote outside its target: {} ({:?})",
                        rel.display(),
                        md.file_type()
                    );
                }
                if md.is_dir() {
                    stack.push(path);
                }
            }
        }
        for name in ["a/b/c", DECOY] {
            assert!(root.join(name).is_dir(), "extraction removed `{name}`");
        }
        if symlinks.is_empty() {
            return;
        }
        let Ok(context) = gantry::context::BuildContext::with_ignore_text(&self.target, "") else {
            return;
        };
        for link in symlinks {
            let rel = link
                .strip_prefix(&self.target)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let Ok(found) = context.resolve_source(&rel) else {
                continue;
            };
            for f in found {
                let real = std::fs::canonicalize(&f.abs).unwrap_or(f.abs.clone());
                assert!(
                    real.starts_with(&context.root),
                    "symlink `{rel}` resolves outside the target to {}",
                    real.display()
                );
            }
        }
    }
}

//! Extraction of context archives: what lands where, and what is refused.

use std::io::Write;
use std::path::Path;

use super::tar::{extract_gzip, relative};
use super::{fetch, ContextSource, SourceError};

/// A gzip tar built entry by entry with raw headers, so that hostile names can be written.
struct ArchiveBuilder {
    tar: ::tar::Builder<Vec<u8>>,
}

impl ArchiveBuilder {
    fn new() -> Self {
        ArchiveBuilder {
            tar: ::tar::Builder::new(Vec::new()),
        }
    }

    fn entry(mut self, name: &str, kind: ::tar::EntryType, link: &str, data: &[u8]) -> Self {
        let mut h = ::tar::Header::new_gnu();
        h.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_mtime(1_000_000);
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        self.tar.append(&h, data).unwrap();
        self
    }

    fn file(self, name: &str, data: &str) -> Self {
        self.entry(name, ::tar::EntryType::Regular, "", data.as_bytes())
    }

    fn gzip(self) -> Vec<u8> {
        let raw = self.tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        gz.finish().unwrap()
    }
}

fn extract(bytes: &[u8], dest: &Path) -> Result<super::tar::ExtractStats, SourceError> {
    extract_gzip(bytes, dest, "tar://test.tar.gz")
}

#[test]
fn files_dirs_links_and_modes_land_in_the_context() {
    let d = tempfile::tempdir().unwrap();
    let gz = ArchiveBuilder::new()
        .entry("./", ::tar::EntryType::Directory, "", b"")
        .entry("./app/", ::tar::EntryType::Directory, "", b"")
        .file("./app/main.sh", "echo hi\n")
        .entry("./app/link", ::tar::EntryType::Symlink, "main.sh", b"")
        .entry("./app/hard", ::tar::EntryType::Link, "./app/main.sh", b"")
        .entry("./fifo", ::tar::EntryType::Fifo, "", b"")
        .gzip();
    let stats = extract(&gz, d.path()).unwrap();
    assert_eq!((stats.entries, stats.bytes, stats.skipped), (6, 8, 1));
    assert_eq!(
        std::fs::read_to_string(d.path().join("app/main.sh")).unwrap(),
        "echo hi\n"
    );
    assert_eq!(
        std::fs::read_link(d.path().join("app/link")).unwrap(),
        Path::new("main.sh")
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("app/hard")).unwrap(),
        "echo hi\n"
    );
    assert!(!d.path().join("fifo").exists());
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(d.path().join("app/main.sh")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o644, 1_000_000));
}

#[test]
fn dot_dot_entries_are_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    let inner = d.path().join("ctx");
    std::fs::create_dir(&inner).unwrap();
    let gz = ArchiveBuilder::new().file("../escape.txt", "x").gzip();
    let e = extract(&gz, &inner).unwrap_err().to_string();
    assert!(
        e.contains("context `tar://test.tar.gz`: archive entry `../escape.txt` is refused"),
        "{e}"
    );
    assert!(!d.path().join("escape.txt").exists());
}

#[test]
fn writes_through_symlinks_stay_inside_the_context() {
    let d = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let inner = d.path().join("ctx");
    std::fs::create_dir(&inner).unwrap();
    let out = outside.path().display().to_string();
    // An absolute symlink resolves inside the context, where its target does not exist: the
    // write fails instead of following it out.
    let gz = ArchiveBuilder::new()
        .entry("evil", ::tar::EntryType::Symlink, &out, b"")
        .file("evil/pwned", "x")
        .gzip();
    let e = extract(&gz, &inner).unwrap_err().to_string();
    assert!(e.contains("cannot write archive entry `evil/pwned`"), "{e}");
    assert!(!outside.path().join("pwned").exists());
    // `..` through a symlink stops at the context root; a leading `/` is the context root.
    let inner2 = d.path().join("ctx2");
    std::fs::create_dir(&inner2).unwrap();
    let gz = ArchiveBuilder::new()
        .entry("up", ::tar::EntryType::Symlink, "../..", b"")
        .file("up/pwned2", "y")
        .file("/abs/file", "z")
        .gzip();
    extract(&gz, &inner2).unwrap();
    assert!(!d.path().join("pwned2").exists());
    assert_eq!(std::fs::read_to_string(inner2.join("pwned2")).unwrap(), "y");
    assert_eq!(
        std::fs::read_to_string(inner2.join("abs/file")).unwrap(),
        "z"
    );
}

#[test]
fn a_hard_link_to_a_file_outside_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let gz = ArchiveBuilder::new()
        .entry("h", ::tar::EntryType::Link, "../../etc/passwd", b"")
        .gzip();
    let e = extract(&gz, d.path()).unwrap_err().to_string();
    assert!(
        e.contains("entry `h` is refused: its path contains a `..` component"),
        "{e}"
    );
    let gz = ArchiveBuilder::new()
        .entry("h", ::tar::EntryType::Link, "/etc/passwd", b"")
        .gzip();
    let e = extract(&gz, d.path()).unwrap_err().to_string();
    assert!(e.contains("hard link target is not an earlier"), "{e}");
}

#[test]
fn plain_and_truncated_archives_are_named() {
    let d = tempfile::tempdir().unwrap();
    let e = extract(b"plain text, not gzip", d.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("context `tar://test.tar.gz`: the archive is not gzip-compressed"),
        "{e}"
    );
    let gz = ArchiveBuilder::new().file("a", &"x".repeat(100_000)).gzip();
    let e = extract(&gz[..gz.len() / 2], d.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("the archive is corrupt or truncated"), "{e}");
}

#[test]
fn a_failed_fetch_leaves_nothing_in_the_work_directory() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("bad.tar.gz");
    std::fs::write(
        &archive,
        ArchiveBuilder::new()
            .file("ok", "1")
            .file("../x", "2")
            .gzip(),
    )
    .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let e = fetch(&ContextSource::Tar(archive.clone()), dest.path()).unwrap_err();
    assert!(e.to_string().contains("entry `../x` is refused"), "{e}");
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    let e = fetch(
        &ContextSource::Tar(work.path().join("missing.tar.gz")),
        dest.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot open the archive"), "{e}");
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
}

#[test]
fn context_values_parse_to_their_sources() {
    let p = |s: &str| ContextSource::parse(s, &[]).unwrap();
    assert_eq!(p("tar://stdin"), ContextSource::Stdin);
    assert_eq!(p("tar://a/b.tgz"), ContextSource::Tar("a/b.tgz".into()));
    assert_eq!(p("dir://x"), ContextSource::Dir("x".into()));
    assert_eq!(p("x"), ContextSource::Dir("x".into()));
    assert!(matches!(p("s3://b/k"), ContextSource::S3(_)));
    assert!(matches!(p("gs://b/k"), ContextSource::Gcs(_)));
    assert!(matches!(
        p("https://a.blob.core.windows.net/c/k"),
        ContextSource::Azure(_)
    ));
    let e = ContextSource::parse("ftp://x/y", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("context `ftp://x/y`: `ftp://` is not a context source"),
        "{e}"
    );
}

#[test]
fn relative_names_drop_dots_and_refuse_parents() {
    assert_eq!(relative("./a/./b/").unwrap(), "a/b");
    assert_eq!(relative("/").unwrap(), "");
    assert!(relative("a/../b").is_err());
}

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;

/// A context with a few files, directories, links and a `.dockerignore`.
fn fixture(ignore: &str) -> (tempfile::TempDir, BuildContext) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in [
        "src/sub",
        "docs",
        "build/keep",
        "build/tmp",
        "node_modules/pkg",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in [
        "Dockerfile",
        "a-b.txt",
        "src/main.rs",
        "src/lib.rs",
        "src/sub/x.rs",
        "docs/README.md",
        "docs/guide.md",
        "build/out.o",
        "build/keep/important",
        "build/tmp/junk",
        "node_modules/pkg/index.js",
    ] {
        fs::write(root.join(f), f.as_bytes()).unwrap();
    }
    fs::set_permissions(root.join("src/main.rs"), fs::Permissions::from_mode(0o751)).unwrap();
    symlink("main.rs", root.join("src/link.rs")).unwrap();
    fs::write(root.join(".dockerignore"), ignore).unwrap();
    let ctx = BuildContext::open(root).unwrap();
    (dir, ctx)
}

fn rels(entries: &[ContextEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.rel.as_str()).collect()
}

#[test]
fn walk_is_sorted_by_bytes_and_skips_excluded_paths() {
    let (_dir, ctx) = fixture("node_modules\n**/*.o\n");
    let root = ctx.resolve_source(".").unwrap();
    assert_eq!(root.len(), 1);
    assert_eq!(root[0].rel, "");
    let entries = ctx.walk(&root[0]).unwrap();
    assert_eq!(
        rels(&entries),
        vec![
            ".dockerignore",
            "Dockerfile",
            "a-b.txt",
            "build",
            "build/keep",
            "build/keep/important",
            "build/tmp",
            "build/tmp/junk",
            "docs",
            "docs/README.md",
            "docs/guide.md",
            "src",
            "src/lib.rs",
            "src/link.rs",
            "src/main.rs",
            "src/sub",
            "src/sub/x.rs",
        ]
    );
    let main = entries.iter().find(|e| e.rel == "src/main.rs").unwrap();
    assert_eq!(
        (main.kind.clone(), main.mode, main.size),
        (FileKind::File, 0o751, 11)
    );
    assert_eq!(main.abs, ctx.root.join("src/main.rs"));
    let link = entries.iter().find(|e| e.rel == "src/link.rs").unwrap();
    assert_eq!(link.kind, FileKind::Symlink("main.rs".into()));
    assert_eq!(
        entries.iter().find(|e| e.rel == "src").unwrap().kind,
        FileKind::Dir
    );
}

#[test]
fn exceptions_reinclude_files_under_excluded_directories() {
    let (_dir, ctx) = fixture("build\n!build/keep\ndocs/*\n!docs/README.md\n");
    let build = ctx.resolve_source("build/keep").unwrap();
    assert_eq!(build[0].rel, "build/keep");
    let root = &ctx.resolve_source("/").unwrap()[0];
    let entries = ctx.walk(root).unwrap();
    let listed = rels(&entries);
    assert!(listed.contains(&"build"), "{listed:?}");
    assert!(listed.contains(&"build/keep/important"), "{listed:?}");
    assert!(!listed.contains(&"build/out.o"), "{listed:?}");
    assert!(!listed.contains(&"build/tmp"), "{listed:?}");
    assert!(listed.contains(&"docs/README.md"), "{listed:?}");
    assert!(!listed.contains(&"docs/guide.md"), "{listed:?}");
    // A walk below the root reports paths relative to where it started.
    let src = &ctx.resolve_source("src").unwrap()[0];
    assert_eq!(
        rels(&ctx.walk(src).unwrap()),
        vec!["lib.rs", "link.rs", "main.rs", "sub", "sub/x.rs"]
    );
}

#[test]
fn globs_expand_sorted_and_hide_excluded_files() {
    let (_dir, ctx) = fixture("src/lib.rs\n");
    let found = ctx.resolve_source("src/*.rs").unwrap();
    let names: Vec<&str> = found.iter().map(|p| p.rel.as_str()).collect();
    assert_eq!(names, vec!["src/link.rs", "src/main.rs"]);
    // The symlink keeps its name but is read through to its target.
    assert_eq!(found[0].abs, ctx.root.join("src/main.rs"));
    assert_eq!(found[0].meta.kind, FileKind::File);
    let found = ctx.resolve_source("/*/[rR]EADME.?d").unwrap();
    assert_eq!(found[0].rel, "docs/README.md");
    let found = ctx.resolve_source("./src/sub/../main.rs").unwrap();
    assert_eq!(found[0].rel, "src/main.rs");
    assert_eq!(found[0].meta.mode, 0o751);
}

#[test]
fn missing_excluded_and_escaping_sources_are_errors() {
    let (dir, ctx) = fixture("src/lib.rs\n");
    for src in ["nope.txt", "src/lib.rs", "*.nothing"] {
        let err = ctx.resolve_source(src).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ContextError::NotFound { .. }), "{msg}");
        assert!(msg.contains(&format!("`{src}`")), "{msg}");
        assert!(msg.contains(".dockerignore"), "{msg}");
    }
    for src in ["../etc/passwd", "src/../../x", ".."] {
        let err = ctx.resolve_source(src).unwrap_err();
        assert!(matches!(err, ContextError::Outside { .. }), "{src}: {err}");
    }
    symlink("/etc", dir.path().join("etc")).unwrap();
    symlink("../..", dir.path().join("src/up")).unwrap();
    for src in ["etc/passwd", "src/up/x", "src/up"] {
        let err = ctx.resolve_source(src).unwrap_err();
        assert!(matches!(err, ContextError::Outside { .. }), "{src}: {err}");
        assert!(err.to_string().contains("hint:"), "{err}");
    }
    // An absolute link back into the context is fine.
    symlink(ctx.root.join("docs"), dir.path().join("docs-link")).unwrap();
    let found = ctx.resolve_source("docs-link/guide.md").unwrap();
    assert_eq!(found[0].abs, ctx.root.join("docs/guide.md"));
    symlink("loop", dir.path().join("loop")).unwrap();
    let err = ctx.resolve_source("loop").unwrap_err();
    assert!(matches!(err, ContextError::SymlinkLoop { .. }), "{err}");
    let err = ctx.resolve_source("src/[").unwrap_err();
    assert!(matches!(err, ContextError::BadGlob { .. }), "{err}");
}

#[test]
fn a_bad_dockerignore_fails_open_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(".dockerignore"), "ok\n\n[\n").unwrap();
    let err = BuildContext::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, ContextError::BadPattern { line: 3, .. }),
        "{err}"
    );
    let other = dir.path().join("Dockerfile.dockerignore");
    fs::write(&other, "*.md\n").unwrap();
    let ctx = BuildContext::with_ignore_file(dir.path(), &other).unwrap();
    assert!(ctx.is_excluded("README.md"));
    assert!(!ctx.is_excluded(".dockerignore"));
}

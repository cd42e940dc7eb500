//! COPY and ADD end to end, read back with GNU tar and umoci: `--chmod` on files and
//! directories, wildcards, `--from=<image>`, `--link`, and ADD of a git repository.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{build_in, build_in_env, push_busybox};
use crate::harness::fixtures;
use crate::harness::registry::TestRegistry;
use crate::harness::servers;
use crate::harness::*;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Builds into an OCI layout and unpacks it with umoci; returns (layout, rootfs).
fn build_and_unpack(
    tmp: &Path,
    name: &str,
    dockerfile: &str,
    files: &[(&str, &str)],
    args: &[&str],
    envs: &[(&str, &str)],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let layout = tmp.join(format!("layout-{name}"));
    let mut all = vec!["--no-push", "--oci-layout-path", layout.to_str().unwrap()];
    all.extend_from_slice(args);
    ok(build_in_env(
        &tmp.join(format!("ctx-{name}")),
        dockerfile,
        files,
        &all,
        envs,
    ));
    let rootfs = umoci_unpack(&layout, "latest", &tmp.join(format!("bundle-{name}")));
    (layout, rootfs)
}

#[test]
fn chmod_applies_to_copied_files_and_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx-chmod");
    write_files(
        &ctx,
        &[
            ("tree/a.txt", "a"),
            ("tree/sub/b.sh", "#!/bin/sh\n"),
            ("secret.txt", "s"),
            ("notes.txt", "n"),
        ],
    );
    std::fs::set_permissions(ctx.join("tree/sub/b.sh"), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(ctx.join("secret.txt"), PermissionsExt::from_mode(0o644)).unwrap();
    let (_, rootfs) = build_and_unpack(
        tmp.path(),
        "chmod",
        "FROM scratch\nCOPY --chmod=751 tree/ /opt/tree/\nCOPY --chmod=0600 secret.txt /etc/secret.txt\n\
         ADD --chmod=640 notes.txt /notes/\n",
        &[],
        &[],
        &[],
    );
    // Every copied file and directory gets the mode; parents gantry creates stay 0755.
    for p in [
        "opt/tree",
        "opt/tree/a.txt",
        "opt/tree/sub",
        "opt/tree/sub/b.sh",
    ] {
        assert_eq!(mode(&rootfs.join(p)), 0o751, "{p}");
    }
    assert_eq!(mode(&rootfs.join("etc/secret.txt")), 0o600);
    assert_eq!(mode(&rootfs.join("notes/notes.txt")), 0o640);
    assert_eq!(mode(&rootfs.join("opt")), 0o755);
    assert_eq!(mode(&rootfs.join("etc")), 0o755);
    // Without --chmod the context's modes are kept (the control for the above).
    let (_, plain) = build_and_unpack(
        tmp.path(),
        "nochmod",
        "FROM scratch\nCOPY tree/ /opt/tree/\n",
        &[("tree/a.txt", "a")],
        &[],
        &[],
    );
    assert_eq!(mode(&plain.join("opt/tree/a.txt")), 0o644);

    let err = fails(build_in(
        &tmp.path().join("ctx-bad"),
        "FROM scratch\nCOPY --chmod=u+x f /f\n",
        &[("f", "x")],
        &["--no-push"],
    ));
    assert!(
        err.contains("invalid --chmod `u+x`") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn wildcard_copy_copies_only_matching_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, rootfs) = build_and_unpack(
        tmp.path(),
        "glob",
        "FROM scratch\nCOPY *.txt /dst/\nCOPY conf/*.conf /etc/app/\nCOPY data?.bin /bins/\n\
         COPY [ab]*.md /md/\n",
        &[
            ("a.txt", "a"),
            ("b.txt", "b"),
            ("c.md", "c"),
            ("sub/d.txt", "d"),
            ("conf/x.conf", "x"),
            ("conf/y.ini", "y"),
            ("data1.bin", "1"),
            ("data22.bin", "22"),
            ("a.md", "am"),
            ("b.md", "bm"),
            ("z.md", "zm"),
        ],
        &[],
        &[],
    );
    let names = |dir: &str| {
        let mut v: Vec<String> = std::fs::read_dir(rootfs.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("dst"), ["a.txt", "b.txt"]);
    assert_eq!(names("etc/app"), ["x.conf"]);
    assert_eq!(names("bins"), ["data1.bin"]);
    assert_eq!(names("md"), ["a.md", "b.md"]);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("dst/b.txt")).unwrap(),
        "b"
    );
    let err = fails(build_in(
        &tmp.path().join("ctx-none"),
        "FROM scratch\nCOPY *.nothing /dst/\n",
        &[("a.txt", "a")],
        &["--no-push"],
    ));
    assert!(err.contains("*.nothing"), "{err}");
}

#[test]
fn copy_from_an_image_reference_pulls_that_image() {
    let reg = TestRegistry::plain();
    let image = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let (_, rootfs) = build_and_unpack(
        tmp.path(),
        "from-image",
        &format!(
            "FROM scratch\nCOPY --from={image} /bin/busybox /usr/bin/bb\nCOPY --from={image} /etc/passwd /etc/\n"
        ),
        &[],
        &["--insecure-registry", &reg.addr],
        &[],
    );
    let bb = rootfs.join("usr/bin/bb");
    assert!(
        std::fs::metadata(&bb).unwrap().len() > 500_000,
        "busybox is bigger"
    );
    assert_eq!(mode(&bb), 0o755);
    assert!(std::fs::read_to_string(rootfs.join("etc/passwd"))
        .unwrap()
        .contains("app:x:1000:1000"));
    assert!(
        !rootfs.join("bin").exists(),
        "only the named paths are copied"
    );
}

/// `(name, mode)` of every entry of a layer blob of `layout`, listed by GNU tar.
fn tar_entries(layout: &Path, digest: &str) -> Vec<(String, String)> {
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let out = ok(run(std::process::Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(&path)));
    out.lines()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[cols.len() - 1].to_string(), cols[0].to_string())
        })
        .collect()
}

fn layer_digests(layout: &Path) -> Vec<String> {
    let manifest: serde_json::Value = serde_json::from_slice(&fixtures::blob(
        layout,
        &fixtures::manifest_digest(layout, "latest"),
    ))
    .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn copy_link_writes_its_layer_independently_of_the_base() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx_files: &[(&str, &str)] = &[("d/keep.txt", "k"), ("f", "payload")];
    // The base has /srv at 0700 and /data, a symlink to srv (from a tar, made by GNU tar).
    let df = "FROM scratch AS base\nCOPY --chmod=700 d/ /srv/\nADD link.tar /\n\
              FROM base AS plain\nCOPY f /data/f\nCOPY f /srv/f\n\
              FROM base AS linked\nCOPY --link f /data/f\nCOPY --link f /srv/f\n\
              FROM scratch AS alone\nCOPY --link f /data/f\nCOPY --link f /srv/f\n";
    let mut layouts = std::collections::BTreeMap::new();
    for target in ["plain", "linked", "alone"] {
        let ctx = tmp.path().join(format!("ctx-{target}"));
        write_files(&ctx, ctx_files);
        let src = tmp.path().join(format!("link-src-{target}"));
        std::fs::create_dir_all(&src).unwrap();
        std::os::unix::fs::symlink("srv", src.join("data")).unwrap();
        ok(run(std::process::Command::new("tar")
            .arg("-cf")
            .arg(ctx.join("link.tar"))
            .arg("-C")
            .arg(&src)
            .arg("data")));
        let (layout, rootfs) = build_and_unpack(
            tmp.path(),
            target,
            df,
            &[],
            &["--reproducible", "--target", target],
            &[],
        );
        layouts.insert(target, (layout, rootfs));
    }
    let (plain, plain_root) = &layouts["plain"];
    let (linked, linked_root) = &layouts["linked"];
    let (alone, _) = &layouts["alone"];
    let plain_layers = layer_digests(plain);
    let linked_layers = layer_digests(linked);
    // Without --link the destination goes through the base's symlink, and /srv keeps 0700.
    assert_eq!(
        tar_entries(plain, &plain_layers[2]),
        [
            ("srv/".to_string(), "drwx------".to_string()),
            ("srv/f".to_string(), "-rw-r--r--".to_string())
        ]
    );
    assert!(std::fs::symlink_metadata(plain_root.join("data"))
        .unwrap()
        .file_type()
        .is_symlink());
    // With --link the layer knows nothing of the base: /data is a fresh directory, /srv 0755.
    assert_eq!(
        tar_entries(linked, &linked_layers[2]),
        [
            ("data/".to_string(), "drwxr-xr-x".to_string()),
            ("data/f".to_string(), "-rw-r--r--".to_string())
        ]
    );
    assert_eq!(
        tar_entries(linked, &linked_layers[3])[0],
        ("srv/".to_string(), "drwxr-xr-x".to_string())
    );
    assert!(linked_root.join("data").is_dir());
    assert_eq!(
        std::fs::read_to_string(linked_root.join("data/f")).unwrap(),
        "payload"
    );
    // So the same --link layers come out on any base, byte for byte.
    assert_eq!(&linked_layers[2..], &layer_digests(alone)[..]);
    assert_ne!(plain_layers[2], linked_layers[2]);
}

/// A bare repository `public/app.git` with two commits on `main` (tag `v1.0` on the first), a
/// `feature` branch, an executable file and a `docs/` directory. Returns the first commit.
fn publish_app_repo(tmp: &Path, root: &Path) -> String {
    let work = tmp.join("w-app");
    let bare = root.join("public/app.git");
    std::fs::create_dir_all(&work).unwrap();
    servers::git(&work, &["init", "-q"]);
    write_files(
        &work,
        &[
            ("README", "v1"),
            ("bin/tool", "#!/bin/sh\necho tool\n"),
            ("docs/guide.md", "guide"),
        ],
    );
    std::fs::set_permissions(work.join("bin/tool"), PermissionsExt::from_mode(0o755)).unwrap();
    servers::git(&work, &["add", "-A"]);
    servers::git(&work, &["commit", "-q", "-m", "one"]);
    let first = servers::git(&work, &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    servers::git(&work, &["tag", "-a", "v1.0", "-m", "release"]);
    servers::git(&work, &["checkout", "-q", "-b", "feature"]);
    write_files(&work, &[("feature.txt", "feature")]);
    servers::git(&work, &["add", "-A"]);
    servers::git(&work, &["commit", "-q", "-m", "feature"]);
    servers::git(&work, &["checkout", "-q", "main"]);
    write_files(&work, &[("README", "v2")]);
    servers::git(&work, &["commit", "-q", "-am", "two"]);
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    servers::git(
        tmp,
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            &bare.display().to_string(),
        ],
    );
    first
}

#[test]
fn add_git_url_clones_the_ref_without_dot_git_unless_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("git-root");
    let first = publish_app_repo(tmp.path(), &root);
    let (server, ca) = servers::git_server(tmp.path(), &root, "unused");
    let ca = ca.display().to_string();
    let env = [("SSL_CERT_FILE", ca.as_str())];
    let url = format!("https://{}/public/app.git", server.addr());
    let df = format!(
        "FROM scratch\nADD {url} /head/\nADD {url}#v1.0 /tag/\nADD {url}#feature /branch/\n\
         ADD {url}#{first} /commit/\nADD {url}#main:docs /docs/\nADD --keep-git-dir=true {url} /kept/\n"
    );
    let (_, rootfs) = build_and_unpack(tmp.path(), "git", &df, &[], &[], &env);
    let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap();
    assert_eq!(read("head/README"), "v2");
    assert_eq!(read("tag/README"), "v1");
    assert_eq!(read("branch/README"), "v1");
    assert_eq!(read("branch/feature.txt"), "feature");
    assert_eq!(read("commit/README"), "v1");
    assert!(!rootfs.join("commit/feature.txt").exists());
    assert_eq!(read("docs/guide.md"), "guide");
    assert!(
        !rootfs.join("docs/README").exists(),
        "only the subdirectory"
    );
    assert_eq!(mode(&rootfs.join("head/bin/tool")), 0o755);
    assert_eq!(mode(&rootfs.join("head/README")), 0o644);
    for p in ["head", "tag", "branch", "commit", "docs"] {
        assert!(!rootfs.join(p).join(".git").exists(), "{p}/.git");
    }
    assert!(rootfs.join("kept/.git/HEAD").is_file());
    assert_eq!(read("kept/README"), "v2");

    // A ref that names nothing, SSH, and --keep-git-dir without a repository are errors.
    for (source, want) in [
        (
            format!("ADD {url}#nope /x/"),
            "`nope` is neither a branch nor a tag".to_string(),
        ),
        (
            "ADD git@example.com:org/repo.git /x/".to_string(),
            "git over SSH is not supported".to_string(),
        ),
        (
            "ADD --keep-git-dir=true f /x/".to_string(),
            "--keep-git-dir applies to git repository sources".to_string(),
        ),
    ] {
        let err = fails(build_in_env(
            &tmp.path().join("ctx-bad"),
            &format!("FROM scratch\n{source}\n"),
            &[("f", "x")],
            &["--no-push"],
            &env,
        ));
        assert!(
            err.contains(&want) && err.contains("hint:"),
            "{source}: {err}"
        );
    }
}

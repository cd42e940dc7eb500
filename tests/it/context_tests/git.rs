//! `git://` contexts against `git http-backend` behind a TLS front: which reference and commit
//! are checked out (each gives different content, so a reference that were ignored would build
//! the wrong digest), the three ways of giving credentials, submodules, and what goes wrong.

use std::path::{Path, PathBuf};

use super::*;
use crate::harness::servers::{self, git, publish_repo, GIT_BASIC_PASSWORD, GIT_BASIC_USER};

/// `context_files()` with `app/hello.txt` saying `hello`.
fn files_saying(hello: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut files = context_files();
    files[1].1 = hello;
    files
}

const FEATURE_1: &str = "hello from feature commit 1\n";
const FEATURE_2: &str = "hello from feature commit 2\n";
const TAGGED: &str = "hello from the v1 tag\n";

/// The repositories the git tests clone, and the digest each checkout must build.
///
/// `public/app.git`: `main` has `context_files()`; `feature` adds two commits on top, each with
/// its own `app/hello.txt`; the annotated tag `v1` points at a commit that no branch contains.
/// `private/app.git` (token) and `basic/app.git` (user and password) hold `main` only.
struct GitFixture {
    server: servers::Server,
    ca: String,
    addr: String,
    dir: PathBuf,
    main: String,
    feature_1: String,
    feature_2: String,
    tagged: String,
    digest_main: String,
    digest_feature_1: String,
    digest_feature_2: String,
    digest_tagged: String,
}

/// Commits `files` over the work tree's current content; returns the commit id.
fn commit(work: &Path, files: &[(&str, &str)], message: &str) -> String {
    write_files(work, files);
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", message]);
    git(work, &["rev-parse", "HEAD"]).trim().to_string()
}

fn git_fixture(tmp: &Path) -> GitFixture {
    let (dir, digest_main) = reference(tmp);
    let root = tmp.join("git-root");
    let bare = root.join("public/app.git");
    let work = tmp.join("w-app");
    let main = publish_repo(&work, &bare, &context_files());
    git(&work, &["checkout", "-q", "-b", "feature"]);
    let feature_1 = commit(&work, &files_saying(FEATURE_1), "feature 1");
    let feature_2 = commit(&work, &files_saying(FEATURE_2), "feature 2");
    git(&work, &["checkout", "-q", "-b", "release", &main]);
    let tagged = commit(&work, &files_saying(TAGGED), "release");
    git(&work, &["tag", "-a", "v1", "-m", "v1"]);
    let bare_arg = bare.display().to_string();
    git(&work, &["push", "-q", &bare_arg, "feature", "refs/tags/v1"]);
    publish_repo(
        &tmp.join("w-priv"),
        &root.join("private/app.git"),
        &context_files(),
    );
    publish_repo(
        &tmp.join("w-basic"),
        &root.join("basic/app.git"),
        &context_files(),
    );
    let (server, ca) = servers::git_server(tmp, &root, "s3cret-token");
    let digest = |name: &str, hello| dir_digest(tmp, &tmp.join(name), &files_saying(hello), &[]);
    GitFixture {
        addr: server.addr(),
        server,
        ca: ca.display().to_string(),
        dir,
        main,
        digest_feature_1: digest("f1", FEATURE_1),
        digest_feature_2: digest("f2", FEATURE_2),
        digest_tagged: digest("tag", TAGGED),
        feature_1,
        feature_2,
        tagged,
        digest_main,
    }
}

#[test]
fn git_contexts_check_out_the_named_branch_tag_and_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let f = git_fixture(tmp.path());
    let t = tmp.path();
    let env = [("SSL_CERT_FILE", f.ca.as_str())];
    let url = format!("git://{}/public/app.git", f.addr);
    let digests = [
        &f.digest_main,
        &f.digest_feature_1,
        &f.digest_feature_2,
        &f.digest_tagged,
    ];
    for (i, a) in digests.iter().enumerate() {
        assert!(digests[i + 1..].iter().all(|b| a != b), "{digests:?}");
    }
    let got = |context: &str, extra: &[&str]| digest_of(build(t, "git", context, extra, &env));

    assert_eq!(got(&url, &[]), f.digest_main, "the remote's HEAD is main");
    assert_eq!(
        got(&format!("{url}#refs/heads/feature"), &[]),
        f.digest_feature_2
    );
    assert_eq!(got(&format!("{url}#feature"), &[]), f.digest_feature_2);
    assert_eq!(
        got(&format!("{url}#refs/heads/feature#{}", f.feature_1), &[]),
        f.digest_feature_1
    );
    // An abbreviated commit id.
    assert_eq!(
        got(
            &format!("{url}#refs/heads/feature#{}", &f.feature_1[..10]),
            &[]
        ),
        f.digest_feature_1
    );
    assert_eq!(got(&format!("{url}#refs/tags/v1"), &[]), f.digest_tagged);
    assert_eq!(
        got(&format!("{url}#refs/tags/v1#{}", f.tagged), &[]),
        f.digest_tagged
    );
    assert_eq!(
        got(&url, &["--git", "branch=feature,single-branch=true"]),
        f.digest_feature_2
    );
    assert_eq!(got(&url, &["--git", "branch=feature"]), f.digest_feature_2);
    // A commit outside the named reference is found in the other branches, as kaniko's clone
    // of all branches finds it, unless single-branch limits the clone to that reference.
    assert_eq!(
        got(&format!("{url}#refs/heads/main#{}", f.feature_2), &[]),
        f.digest_feature_2
    );
    assert_eq!(got(&format!("{url}##{}", f.tagged), &[]), f.digest_tagged);
    let only_main = format!("{url}#refs/heads/main#{}", f.feature_2);
    let e = one_error(
        build(t, "git", &only_main, &["--git", "single-branch=true"], &env),
        &only_main,
    );
    assert!(
        e.contains(&format!(
            "commit `{}` does not exist in `refs/heads/main`",
            f.feature_2
        )),
        "{e}"
    );

    // --context-sub-path applies inside the checkout.
    let sub = sub_path_reference(t, &f.dir);
    assert_eq!(got(&url, &["--context-sub-path", "other"]), sub);
    // A commit in the history of the named branch, with single-branch.
    assert_eq!(
        got(
            &format!("{url}#refs/heads/feature#{}", f.main),
            &["--git", "single-branch=true"]
        ),
        f.digest_main
    );
}

#[test]
fn git_credentials_come_from_the_token_the_user_and_password_or_the_url() {
    let tmp = tempfile::tempdir().unwrap();
    let f = git_fixture(tmp.path());
    let t = tmp.path();
    let ca = ("SSL_CERT_FILE", f.ca.as_str());
    let private = format!("git://{}/private/app.git", f.addr);
    let e = one_error(build(t, "git", &private, &[], &[ca]), &private);
    assert!(
        e.contains(&format!("context `{private}`: authentication failed")),
        "{e}"
    );
    assert!(
        e.contains("hint: set GIT_TOKEN, or GIT_USERNAME and GIT_PASSWORD"),
        "{e}"
    );
    let e = one_error(
        build(
            t,
            "git",
            &private,
            &[],
            &[ca, ("GIT_TOKEN", "tok-not-this-one")],
        ),
        &private,
    );
    assert!(e.contains("authentication failed"), "{e}");
    assert!(!e.contains("tok-not-this-one"), "{e}");
    let token = [ca, ("GIT_TOKEN", "s3cret-token")];
    assert_eq!(
        digest_of(build(t, "git", &private, &[], &token)),
        f.digest_main
    );
    let in_url = format!("git://s3cret-token@{}/private/app.git", f.addr);
    assert_eq!(
        digest_of(build(t, "git", &in_url, &[], &[ca])),
        f.digest_main
    );

    // User and password: from GIT_USERNAME/GIT_PASSWORD, or percent-encoded in the URL.
    let basic = format!("git://{}/basic/app.git", f.addr);
    let userpass = [
        ca,
        ("GIT_USERNAME", GIT_BASIC_USER),
        ("GIT_PASSWORD", GIT_BASIC_PASSWORD),
    ];
    assert_eq!(
        digest_of(build(t, "git", &basic, &[], &userpass)),
        f.digest_main
    );
    let wrong = [
        ca,
        ("GIT_USERNAME", GIT_BASIC_USER),
        ("GIT_PASSWORD", "pw-not-this-one"),
    ];
    let e = one_error(build(t, "git", &basic, &[], &wrong), &basic);
    assert!(e.contains("authentication failed"), "{e}");
    assert!(!e.contains("pw-not-this-one"), "{e}");
    let encoded = GIT_BASIC_PASSWORD.replace(':', "%3A").replace('@', "%40");
    let in_url = format!("git://{GIT_BASIC_USER}:{encoded}@{}/basic/app.git", f.addr);
    assert_eq!(
        digest_of(build(t, "git", &in_url, &[], &[ca])),
        f.digest_main
    );
    // Named without the user and password.
    let missing = format!("git://{GIT_BASIC_USER}:{encoded}@{}/basic/none.git", f.addr);
    let shown = format!("git://{}/basic/none.git", f.addr);
    let e = one_error(build(t, "git", &missing, &[], &[ca]), &shown);
    assert!(
        !e.contains(&encoded) && !e.contains(GIT_BASIC_PASSWORD),
        "{e}"
    );
    // The token wins over user and password, as in kaniko, so /basic/ refuses it.
    let both = [
        userpass[0],
        userpass[1],
        userpass[2],
        ("GIT_TOKEN", "s3cret-token"),
    ];
    let e = one_error(build(t, "git", &basic, &[], &both), &basic);
    assert!(e.contains("authentication failed"), "{e}");

    // Without the CA the certificate is refused, unless insecure-skip-tls.
    let url = format!("git://{}/public/app.git", f.addr);
    let e = one_error(build(t, "git", &url, &[], &[]), &url);
    assert!(e.contains(&format!("context `{url}`: cannot reach")), "{e}");
    assert_eq!(
        digest_of(build(
            t,
            "git",
            &url,
            &["--git", "insecure-skip-tls=true"],
            &[]
        )),
        f.digest_main
    );
    drop(f.server);
}

#[test]
fn git_bad_refs_commits_repositories_and_servers_are_named_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let f = git_fixture(tmp.path());
    let t = tmp.path();
    let env = [("SSL_CERT_FILE", f.ca.as_str())];
    let url = format!("git://{}/public/app.git", f.addr);

    let nope = format!("{url}#refs/heads/nope");
    let e = one_error(build(t, "git", &nope, &[], &env), &nope);
    assert!(
        e.contains(": the reference `refs/heads/nope` does not exist in the repository\n"),
        "{e}"
    );
    let e = one_error(build(t, "git", &url, &["--git", "branch=nope"], &env), &url);
    assert!(
        e.contains("the reference `refs/heads/nope` does not exist"),
        "{e}"
    );

    let bad_commit = "0123456789012345678901234567890123456789";
    let ctx = format!("{url}#refs/heads/main#{bad_commit}");
    let e = one_error(build(t, "git", &ctx, &[], &env), &ctx);
    assert!(
        e.contains(&format!(
            ": commit `{bad_commit}` does not exist in any branch or tag of the repository\n"
        )),
        "{e}"
    );
    let e = one_error(
        build(t, "git", &ctx, &["--git", "single-branch=true"], &env),
        &ctx,
    );
    assert!(
        e.contains(&format!(
            ": commit `{bad_commit}` does not exist in `refs/heads/main`\n"
        )),
        "{e}"
    );

    let none = format!("git://{}/public/none.git", f.addr);
    let e = one_error(build(t, "git", &none, &[], &env), &none);
    assert!(
        e.contains(&format!(
            ": the repository `https://{}/public/none.git` does not exist",
            f.addr
        )),
        "{e}"
    );

    let port = servers::closed_port();
    let closed = format!("git://127.0.0.1:{port}/public/app.git");
    let e = one_error(build(t, "git", &closed, &[], &env), &closed);
    assert!(
        e.contains(&format!(
            ": cannot reach `https://127.0.0.1:{port}/public/app.git`: "
        )),
        "{e}"
    );
    assert!(e.contains("Connection refused"), "{e}");
}

#[test]
fn git_submodules_are_checked_out_with_recurse_submodules() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("git-root");
    let (server, ca) = servers::git_server(tmp.path(), &root, "unused");
    publish_repo(
        &tmp.path().join("w-lib"),
        &root.join("public/lib.git"),
        &[("lib.txt", "from the submodule\n")],
    );
    let sup = tmp.path().join("w-super");
    std::fs::create_dir_all(&sup).unwrap();
    git(&sup, &["init", "-q"]);
    write_files(&sup, &[("Dockerfile", "FROM scratch\nCOPY lib/ /lib/\n")]);
    git(
        &sup,
        &[
            "submodule",
            "add",
            "-q",
            &root.join("public/lib.git").display().to_string(),
            "lib",
        ],
    );
    git(
        &sup,
        &[
            "config",
            "-f",
            ".gitmodules",
            "submodule.lib.url",
            &format!("https://{}/public/lib.git", server.addr()),
        ],
    );
    git(&sup, &["add", "-A"]);
    git(&sup, &["commit", "-q", "-m", "super"]);
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &sup.display().to_string(),
            &root.join("public/super.git").display().to_string(),
        ],
    );

    let ca = ca.display().to_string();
    let env = [("SSL_CERT_FILE", ca.as_str())];
    let url = format!("git://{}/public/super.git", server.addr());
    let layout = tmp.path().join("layout");
    let layout_arg = layout.display().to_string();
    ok(build(
        tmp.path(),
        "sub",
        &url,
        &[
            "--git",
            "recurse-submodules=true",
            "--oci-layout-path",
            &layout_arg,
        ],
        &env,
    ));
    let rootfs = umoci_unpack(&layout, "1", &tmp.path().join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("lib/lib.txt")).unwrap(),
        "from the submodule\n"
    );
    // Without recursion the submodule directory is empty, so the image differs.
    let with = digest_of(build(
        tmp.path(),
        "sub",
        &url,
        &["--git", "recurse-submodules=true"],
        &env,
    ));
    let without = digest_of(build(tmp.path(), "sub", &url, &[], &env));
    assert_ne!(with, without);
}

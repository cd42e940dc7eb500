//! Base images made by the harness itself, so no test needs the internet beyond Debian's mirror.
//!
//! `scripts/fixtures.sh` builds busybox and Debian bookworm images as OCI layouts from Debian
//! packages with GNU tar, gzip and jq - never with gantry, so a bug in gantry cannot hide in its
//! own base images - and caches them under `target/fixtures/`. These helpers run that script once
//! per fixture and test process, hand out the layout paths, and copy a layout into whichever local
//! registry a test started (with skopeo, again independent of the code under test).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Tag of the busybox layouts (`busybox`, `busybox-docker`, `busybox-multi`).
pub const BUSYBOX_TAG: &str = "latest";
/// Tag of the Debian layout.
pub const DEBIAN_TAG: &str = "bookworm";

/// The checkout the tests were built from.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the fixtures live: `$FIXTURES_DIR` when set, else `<repo>/target/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("FIXTURES_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join("target").join("fixtures"),
    }
}

/// OCI layout (tag [`BUSYBOX_TAG`]) of an amd64 busybox image: one layer with /bin/busybox, its
/// applet links, /etc/passwd and /etc/group (root, nobody, `app` 1000:1000), /tmp (1777), /root;
/// `Cmd ["sh"]`. OCI media types throughout.
pub fn busybox() -> PathBuf {
    static CELL: OnceLock<Result<Built, String>> = OnceLock::new();
    required("busybox", &CELL)
}

/// The same image as [`busybox`] with Docker schema 2 media types (manifest, config, layer).
///
/// Its index.json entry says `application/vnd.oci.image.manifest.v1+json` because skopeo 1.9's
/// `oci:` transport skips any other type there; the manifest blob itself (what gets pushed, with
/// its digest unchanged) is Docker schema 2.
pub fn busybox_docker() -> PathBuf {
    static CELL: OnceLock<Result<Built, String>> = OnceLock::new();
    required("busybox-docker", &CELL)
}

/// OCI layout (tag [`DEBIAN_TAG`]) of `debootstrap --variant=minbase bookworm`, one layer,
/// `Cmd ["bash"]`. The first run in a fresh checkout takes about a minute and needs root and the
/// machine's Debian mirror.
pub fn debian() -> PathBuf {
    static CELL: OnceLock<Result<Built, String>> = OnceLock::new();
    required("debian", &CELL)
}

/// Whether a fixture that cannot be made fails the tests instead of skipping them: in CI (`CI`
/// set, as GitHub, GitLab and `.ci/run` do) or with `GANTRY_REQUIRE_FIXTURES` set
/// (`scripts/test.sh` sets it). A value of `0` or `false` counts as unset.
pub fn fixtures_required() -> Option<&'static str> {
    required_by(&|name| std::env::var(name).ok())
}

/// [`fixtures_required`] over any environment: the variable that makes fixtures required.
fn required_by(get: &dyn Fn(&str) -> Option<String>) -> Option<&'static str> {
    let set = |name: &str| {
        get(name)
            .filter(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
            .is_some()
    };
    ["GANTRY_REQUIRE_FIXTURES", "CI"]
        .into_iter()
        .find(|name| set(name))
}

/// OCI layout (tag [`BUSYBOX_TAG`]) whose entry is an index of linux/amd64 and linux/arm64/v8
/// busybox images, or `None` when apt could not fetch `busybox-static:arm64`. The tests that need
/// it then skip, saying why on stderr (once per test process) - except where
/// [`fixtures_required`], where a missing fixture fails the test with the script's stderr.
pub fn busybox_multi() -> Option<PathBuf> {
    static CELL: OnceLock<Result<Built, String>> = OnceLock::new();
    match CELL.get_or_init(|| {
        let built = build("busybox-multi")?;
        if built.path.is_none() && fixtures_required().is_none() {
            // Straight to the process's stderr, past the test harness's capture, so that a
            // skip is seen in a plain `cargo test` run.
            let _ = writeln!(
                std::io::stderr(),
                "skipping the tests that need the multi-arch fixture `busybox-multi`: \
                 scripts/fixtures.sh could not make it:\n{}\n\
                 (set GANTRY_REQUIRE_FIXTURES=1 to make this a failure)",
                built.stderr.trim_end()
            );
        }
        Ok(built)
    }) {
        Ok(Built { path: Some(p), .. }) => Some(p.clone()),
        Ok(Built { path: None, stderr }) => match fixtures_required() {
            Some(var) => panic!(
                "fixture `busybox-multi` could not be made, and {var} is set, so the tests \
                 that need it fail instead of skipping; scripts/fixtures.sh said:\n{}\n\
                 hint: the machine's apt must reach busybox-static:arm64 (dpkg --add-architecture \
                 arm64 is done by the script); unset {var} to skip these tests",
                stderr.trim_end()
            ),
            None => None,
        },
        Err(message) => panic!("{message}"),
    }
}

/// What `scripts/fixtures.sh NAME` gave: the path it printed for NAME (none when it could not
/// make an optional fixture) and its stderr, which says why.
struct Built {
    path: Option<PathBuf>,
    stderr: String,
}

fn required(name: &str, cell: &OnceLock<Result<Built, String>>) -> PathBuf {
    match cell.get_or_init(|| build(name)) {
        Ok(Built {
            path: Some(path), ..
        }) => path.clone(),
        Ok(Built { path: None, .. }) => panic!(
            "fixture `{name}`: scripts/fixtures.sh succeeded but printed no path for it\n\
             hint: run `scripts/fixtures.sh {name}` by hand and read its stderr"
        ),
        Err(message) => panic!("{message}"),
    }
}

/// Runs `scripts/fixtures.sh NAME` (cached runs take milliseconds; the script locks, so test
/// processes running at once do not race) and returns the path it printed for NAME, with its
/// stderr.
fn build(name: &str) -> Result<Built, String> {
    let script = repo_root().join("scripts").join("fixtures.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(name)
        .env("FIXTURES_DIR", fixtures_dir())
        .output()
        .map_err(|err| {
            format!(
                "fixture `{name}`: could not run `{}`: {err}\nhint: install bash",
                script.display()
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "fixture `{name}`: `{}` failed ({}):\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(Built {
        path: stdout.lines().find_map(|line| {
            let (key, path) = line.split_once('=')?;
            (key == name).then(|| PathBuf::from(path))
        }),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Digest of the manifest (or index) that `layout`'s index.json names `tag`: what a registry
/// reports after [`push`], since the push preserves digests.
pub fn manifest_digest(layout: &Path, tag: &str) -> String {
    let path = layout.join("index.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading `{}`: {err}", path.display()));
    let index: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("parsing `{}`: {err}", path.display()));
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .and_then(|entry| entry["digest"].as_str())
        .unwrap_or_else(|| panic!("`{}` names no manifest `{tag}`", path.display()))
        .to_owned()
}

/// Reads a blob of `layout` by digest (`sha256:<hex>`).
pub fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let path = layout.join("blobs").join("sha256").join(hex);
    std::fs::read(&path).unwrap_or_else(|err| panic!("reading blob `{}`: {err}", path.display()))
}

/// Copies `layout:tag` to `dest` (`host:port/repo:tag`) with skopeo, every platform of an index
/// included and digests preserved, TLS verification off (plain HTTP or a self-signed registry).
/// `creds` is the registry login; `cert_dir` a containers-style certificate directory
/// (`*.crt` CAs, `*.cert`/`*.key` client pair). Returns the pushed manifest's digest.
pub fn push(
    layout: &Path,
    tag: &str,
    dest: &str,
    creds: Option<(&str, &str)>,
    cert_dir: Option<&Path>,
) -> String {
    let digest_file = tempfile::NamedTempFile::new().expect("creating a temporary digest file");
    let mut command = Command::new("skopeo");
    command
        .args(["copy", "--quiet", "--all", "--preserve-digests"])
        .arg("--retry-times=3")
        .arg("--dest-tls-verify=false")
        .arg("--digestfile")
        .arg(digest_file.path());
    if let Some((user, password)) = creds {
        command.arg(format!("--dest-creds={user}:{password}"));
    }
    if let Some(dir) = cert_dir {
        command.arg("--dest-cert-dir").arg(dir);
    }
    command
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"));
    let output = command.output().unwrap_or_else(|err| {
        panic!("could not run `skopeo`: {err}\nhint: apt-get install skopeo")
    });
    assert!(
        output.status.success(),
        "pushing `{}:{tag}` to `{dest}` with skopeo failed ({}):\n{}",
        layout.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim_end()
    );
    let pushed = std::fs::read_to_string(digest_file.path()).expect("reading skopeo's digest file");
    pushed.trim().to_owned()
}

#[cfg(test)]
mod tests {
    //! The fixtures are checked from their bytes (blob digests, tar entries, configs), so a broken
    //! script fails here rather than as a puzzling gantry failure elsewhere.

    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;
    use std::net::TcpListener;
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("fixture documents are JSON")
    }

    fn sha256(bytes: &[u8]) -> String {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
    }

    /// Reads a blob and checks it against its digest and the size its descriptor gives.
    fn checked_blob(layout: &Path, descriptor: &serde_json::Value) -> Vec<u8> {
        let digest = descriptor["digest"].as_str().expect("descriptor digest");
        let bytes = blob(layout, digest);
        assert_eq!(sha256(&bytes), digest, "blob content matches its digest");
        assert_eq!(
            Some(bytes.len() as u64),
            descriptor["size"].as_u64(),
            "blob size matches its descriptor"
        );
        bytes
    }

    struct Entry {
        kind: tar::EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        link: Option<String>,
        data: Vec<u8>,
    }

    /// Unpacks a gzip'd layer into path -> entry (contents kept for small files only), and
    /// returns the sha256 of the uncompressed tar too.
    fn layer_entries(gz: &[u8]) -> (BTreeMap<String, Entry>, String) {
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut tar_bytes)
            .expect("layer is gzip");
        let diff_id = sha256(&tar_bytes);
        let mut entries = BTreeMap::new();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        for entry in archive.entries().expect("layer is a tar") {
            let mut entry = entry.expect("tar entry");
            let path = entry
                .path()
                .expect("entry path")
                .to_string_lossy()
                .into_owned();
            let header = entry.header().clone();
            let link = entry
                .link_name()
                .expect("link name")
                .map(|l| l.to_string_lossy().into_owned());
            let mut data = Vec::new();
            if header.entry_size().unwrap_or(0) <= 64 * 1024 {
                entry.read_to_end(&mut data).expect("entry data");
            }
            entries.insert(
                path.trim_end_matches('/').to_owned(),
                Entry {
                    kind: header.entry_type(),
                    mode: header.mode().expect("mode") & 0o7777,
                    uid: header.uid().expect("uid"),
                    gid: header.gid().expect("gid"),
                    link,
                    data,
                },
            );
        }
        (entries, diff_id)
    }

    /// Follows index.json -> manifest -> config + single layer, checking every digest on the way.
    fn open_image(
        layout: &Path,
        tag: &str,
    ) -> (
        serde_json::Value,
        serde_json::Value,
        BTreeMap<String, Entry>,
    ) {
        let manifest_bytes = blob(layout, &manifest_digest(layout, tag));
        assert_eq!(sha256(&manifest_bytes), manifest_digest(layout, tag));
        let manifest = json(&manifest_bytes);
        let config = json(&checked_blob(layout, &manifest["config"]));
        let layers = manifest["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 1, "fixtures have one layer");
        let (entries, diff_id) = layer_entries(&checked_blob(layout, &layers[0]));
        assert_eq!(config["rootfs"]["diff_ids"][0], diff_id.as_str());
        (manifest, config, entries)
    }

    fn check_busybox_tree(entries: &BTreeMap<String, Entry>) {
        let busybox = &entries["bin/busybox"];
        assert_eq!(busybox.kind, tar::EntryType::Regular);
        assert_eq!(busybox.mode, 0o755);
        for applet in ["bin/sh", "bin/ls", "usr/bin/env"] {
            assert_eq!(entries[applet].kind, tar::EntryType::Symlink, "{applet}");
            assert_eq!(entries[applet].link.as_deref(), Some("/bin/busybox"));
        }
        assert_eq!(entries["tmp"].mode, 0o1777);
        assert_eq!(entries["root"].kind, tar::EntryType::Directory);
        let passwd = String::from_utf8(entries["etc/passwd"].data.clone()).expect("utf-8");
        assert!(passwd.contains("root:x:0:0:"), "{passwd}");
        assert!(passwd.contains("nobody:x:65534:65534:"), "{passwd}");
        assert!(passwd.contains("app:x:1000:1000:"), "{passwd}");
        let group = String::from_utf8(entries["etc/group"].data.clone()).expect("utf-8");
        assert!(group.contains("app:x:1000:"), "{group}");
        assert!(entries.values().all(|e| e.uid == 0 && e.gid == 0));
    }

    #[test]
    fn busybox_layout_is_an_oci_image_with_applets_and_users() {
        let layout = busybox();
        let (manifest, config, entries) = open_image(&layout, BUSYBOX_TAG);
        assert_eq!(manifest["mediaType"], OCI_MANIFEST);
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
        assert!(config["config"]["Env"][0]
            .as_str()
            .is_some_and(|env| env.starts_with("PATH=") && env.contains("/bin")));
        check_busybox_tree(&entries);
    }

    #[test]
    fn busybox_docker_layout_has_docker_media_types_and_the_same_layer() {
        let layout = busybox_docker();
        let (manifest, config, entries) = open_image(&layout, BUSYBOX_TAG);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.docker.container.image.v1+json"
        );
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        check_busybox_tree(&entries);
        let (oci_manifest, oci_config, _) = open_image(&busybox(), BUSYBOX_TAG);
        assert_eq!(
            manifest["layers"][0]["digest"],
            oci_manifest["layers"][0]["digest"]
        );
        assert_eq!(config, oci_config);
    }

    #[test]
    fn busybox_layouts_are_rebuilt_byte_for_byte() {
        // A fresh build in another directory gives the same manifest digests as the cached one:
        // sorted tar entries, mtime 0, gzip -n and compact JSON leave nothing to chance.
        let dir = tempfile::tempdir().expect("temp dir");
        let script = repo_root().join("scripts").join("fixtures.sh");
        let output = Command::new("bash")
            .arg(&script)
            .args(["busybox", "busybox-docker"])
            .env("FIXTURES_DIR", dir.path())
            .output()
            .expect("running fixtures.sh");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).expect("utf-8");
        let fresh = dir.path().canonicalize().expect("canonical temp dir");
        assert_eq!(
            stdout,
            format!(
                "busybox={0}/busybox\nbusybox-docker={0}/busybox-docker\n",
                fresh.display()
            )
        );
        for (cached, name) in [(busybox(), "busybox"), (busybox_docker(), "busybox-docker")] {
            assert_eq!(
                manifest_digest(&fresh.join(name), BUSYBOX_TAG),
                manifest_digest(&cached, BUSYBOX_TAG),
                "{name}"
            );
        }
    }

    #[test]
    fn debian_layout_is_a_minbase_bookworm_with_owners_and_devices() {
        let layout = debian();
        let (manifest, config, entries) = open_image(&layout, DEBIAN_TAG);
        assert_eq!(manifest["mediaType"], OCI_MANIFEST);
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["bash"]));
        // /etc/os-release is a link to ../usr/lib/os-release on bookworm.
        assert_eq!(
            entries["etc/os-release"].link.as_deref(),
            Some("../usr/lib/os-release")
        );
        let os_release =
            String::from_utf8(entries["usr/lib/os-release"].data.clone()).expect("utf-8");
        assert!(
            os_release.contains("VERSION_CODENAME=bookworm"),
            "{os_release}"
        );
        assert_eq!(entries["usr/bin/bash"].kind, tar::EntryType::Regular);
        assert!(entries.contains_key("usr/bin/apt-get"), "minbase has apt");
        // Owners are kept as debootstrap left them (not flattened to root).
        assert!(
            entries.values().any(|e| e.gid != 0),
            "some entries are group-owned by a system group"
        );
        assert_eq!(entries["dev/null"].kind, tar::EntryType::Char);
    }

    #[test]
    fn missing_fixtures_fail_in_ci_and_with_gantry_require_fixtures() {
        fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            }
        }
        assert_eq!(required_by(&env(&[])), None);
        assert_eq!(required_by(&env(&[("CI", "true")])), Some("CI"));
        assert_eq!(
            required_by(&env(&[("GANTRY_REQUIRE_FIXTURES", "1"), ("CI", "true")])),
            Some("GANTRY_REQUIRE_FIXTURES")
        );
        for off in ["", "0", "false", "FALSE"] {
            let unset = env(&[("CI", off), ("GANTRY_REQUIRE_FIXTURES", off)]);
            assert_eq!(required_by(&unset), None, "{off:?}");
        }
        // scripts/test.sh (which .ci/run runs) asks for them.
        let test_sh = std::fs::read_to_string(repo_root().join("scripts/test.sh")).unwrap();
        assert!(
            test_sh.contains("\nexport GANTRY_REQUIRE_FIXTURES=1\n"),
            "scripts/test.sh must export GANTRY_REQUIRE_FIXTURES=1"
        );
        // And where they are required, this process has the multi-arch fixture (or has failed).
        if fixtures_required().is_some() {
            assert!(busybox_multi().is_some());
        }
    }

    #[test]
    fn busybox_multi_layout_is_an_index_of_amd64_and_arm64() {
        let Some(layout) = busybox_multi() else {
            // The script printed why (no arm64 package from apt); that case is allowed.
            return;
        };
        let index_bytes = blob(&layout, &manifest_digest(&layout, BUSYBOX_TAG));
        let index = json(&index_bytes);
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let platforms: Vec<String> = index["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .map(|m| {
                let manifest = json(&checked_blob(&layout, m));
                let config = json(&checked_blob(&layout, &manifest["config"]));
                assert_eq!(config["architecture"], m["platform"]["architecture"]);
                format!(
                    "{}/{}",
                    m["platform"]["os"].as_str().unwrap_or(""),
                    m["platform"]["architecture"].as_str().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    }

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    /// A throwaway plain-HTTP `docker-registry` for the push test (the shared registry harness
    /// has richer ones; this keeps the fixtures' own test self-contained).
    struct Registry {
        child: Child,
        addr: String,
        _dir: tempfile::TempDir,
    }

    impl Drop for Registry {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn start_registry() -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {addr}\nlog:\n  level: error\n",
                dir.path().join("data").display()
            ),
        )
        .expect("writing registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting docker-registry (apt-get install docker-registry)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            addr,
            _dir: dir,
        }
    }

    fn registry_manifest(addr: &str, repo: &str, tag: &str) -> (String, String) {
        let output = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{addr}/{repo}:{tag}"))
            .output()
            .expect("running skopeo inspect");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let media_type = json(&output.stdout)["mediaType"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        (sha256(&output.stdout), media_type)
    }

    #[test]
    fn push_keeps_digests_and_docker_media_types() {
        let registry = start_registry();
        for (layout, repo) in [(busybox(), "busybox"), (busybox_docker(), "busybox-docker")] {
            let dest = format!("{}/{repo}:{BUSYBOX_TAG}", registry.addr);
            let pushed = push(&layout, BUSYBOX_TAG, &dest, None, None);
            assert_eq!(pushed, manifest_digest(&layout, BUSYBOX_TAG));
            let (served, media_type) = registry_manifest(&registry.addr, repo, BUSYBOX_TAG);
            assert_eq!(
                served, pushed,
                "{repo}: the registry serves the layout's bytes"
            );
            let expected = if repo == "busybox" {
                OCI_MANIFEST
            } else {
                "application/vnd.docker.distribution.manifest.v2+json"
            };
            assert_eq!(media_type, expected, "{repo}");
        }
    }
}

//! Table tests for the tag algorithm: every rule type on every GitHub event and GitLab pipeline
//! kind. GitHub cases read the payloads in `tests/fixtures/ci/`; expectations follow
//! metadata-action's documented behaviour and the test names it uses (`tag16`, `raw07`, …).

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::ci::rules::{parse_flavor, parse_images, parse_tags};

const SHA: &str = "860c1904a1ce19322e91ac35af1ab07466440c37";
const GL_SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn gh(event: &str, git_ref: &str, payload: &str, extra: &[(&str, &str)]) -> Pipeline {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ci")
        .join(payload);
    let mut env: BTreeMap<String, String> = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", event),
        ("GITHUB_REF", git_ref),
        ("GITHUB_SHA", SHA),
        ("GITHUB_REPOSITORY", "octocat/Hello-World"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("GITHUB_EVENT_PATH".into(), fixture.display().to_string());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Pipeline::detect(&env, Path::new("/nonexistent")).unwrap()
}

fn gl(pairs: &[(&str, &str)]) -> Pipeline {
    let mut env: BTreeMap<String, String> = [
        ("GITLAB_CI", "true"),
        ("CI_COMMIT_SHA", GL_SHA),
        ("CI_DEFAULT_BRANCH", "main"),
        ("CI_REGISTRY_IMAGE", "registry.example.com/group/app"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in pairs {
        env.insert(k.to_string(), v.to_string());
    }
    Pipeline::detect(&env, Path::new("/nonexistent")).unwrap()
}

fn gl_branch(b: &str) -> Pipeline {
    gl(&[
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_COMMIT_BRANCH", b),
        ("CI_COMMIT_REF_NAME", b),
    ])
}

fn gl_tag(t: &str) -> Pipeline {
    gl(&[
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_COMMIT_TAG", t),
        ("CI_COMMIT_REF_NAME", t),
    ])
}

fn gl_mr() -> Pipeline {
    gl(&[
        ("CI_PIPELINE_SOURCE", "merge_request_event"),
        ("CI_MERGE_REQUEST_IID", "42"),
        ("CI_COMMIT_REF_NAME", "feature/x"),
        ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
    ])
}

fn now() -> Timestamp {
    "2020-01-10T00:30:00Z".parse().unwrap()
}

fn run(
    p: &Pipeline,
    tags: &[&str],
    flavor: &[&str],
    images: &[&str],
) -> Result<Metadata, TagsError> {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let inputs = Inputs {
        images: parse_images(&strings(images))?,
        tags: parse_tags(&strings(tags))?,
        flavor: parse_flavor(&strings(flavor))?,
        short_sha_length: p.short_sha_length,
        now: now(),
    };
    compute(p, &inputs)
}

struct Case {
    name: &'static str,
    pipeline: Pipeline,
    tags: &'static [&'static str],
    flavor: &'static [&'static str],
    want: &'static [&'static str],
}

fn check(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        match run(&c.pipeline, c.tags, c.flavor, &[]) {
            Ok(m) if m.tag_names == c.want => {}
            Ok(m) => failures.push(format!(
                "{}: got {:?}, want {:?} (warnings {:?})",
                c.name, m.tag_names, c.want, m.warnings
            )),
            Err(e) => failures.push(format!("{}: error {e}", c.name)),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

macro_rules! case {
    ($name:expr, $p:expr, $tags:expr, $flavor:expr, $want:expr) => {
        Case {
            name: $name,
            pipeline: $p,
            tags: $tags,
            flavor: $flavor,
            want: $want,
        }
    };
}

#[test]
fn github_push_to_default_branch() {
    let p = || gh("push", "refs/heads/master", "push.json", &[]);
    check(vec![
        case!("defaults", p(), &[], &[], &["master"]),
        case!("edge default branch", p(), &["type=edge"], &[], &["edge"]),
        case!(
            "edge other branch",
            p(),
            &["type=edge,branch=dev"],
            &[],
            &[]
        ),
        case!(
            "latest on default branch",
            p(),
            &[
                "type=raw,value=latest,enable={{is_default_branch}}",
                "type=sha"
            ],
            &[],
            &["latest", "sha-860c190"]
        ),
        case!(
            "sha long",
            p(),
            &["type=sha,format=long"],
            &[],
            &["sha-860c1904a1ce19322e91ac35af1ab07466440c37"]
        ),
        case!(
            "semver needs a tag",
            p(),
            &["type=semver,pattern={{version}}"],
            &[],
            &[]
        ),
        case!(
            "semver from value",
            p(),
            &["type=semver,pattern={{version}},value=v1.2.3"],
            &[],
            &["1.2.3", "latest"]
        ),
        case!(
            "pep440 from value",
            p(),
            &["type=pep440,pattern={{major}}.{{minor}},value=1.2.3"],
            &[],
            &["1.2", "latest"]
        ),
        case!(
            "match from value",
            p(),
            &[r"type=match,pattern=v(\d+),group=1,value=v42"],
            &[],
            &["42", "latest"]
        ),
        case!("schedule on push", p(), &["type=schedule"], &[], &[]),
        case!(
            "raw07 latest=true",
            p(),
            &[],
            &["latest=true"],
            &["master", "latest"]
        ),
        case!(
            "latest=false",
            p(),
            &["type=semver,pattern={{version}},value=v1.2.3"],
            &["latest=false"],
            &["1.2.3"]
        ),
        case!(
            "flavor prefix and suffix",
            p(),
            &[],
            &["prefix=foo-", "suffix=-bar"],
            &["foo-master-bar"]
        ),
        case!(
            "empty prefix beats flavor",
            p(),
            &["type=sha,prefix="],
            &["prefix=foo-"],
            &["860c190"]
        ),
        case!(
            "flavor onlatest",
            p(),
            &["type=ref,event=branch"],
            &["latest=true", "prefix=foo-,onlatest=true", "suffix=-bar"],
            &["foo-master-bar", "foo-latest"]
        ),
        case!(
            "expressions",
            p(),
            &["type=raw,value={{branch}}-{{sha}}-{{date 'YYYYMMDD'}}"],
            &[],
            &["master-860c190-20200110"]
        ),
        case!(
            "commit_date from payload",
            p(),
            &["type=raw,value={{commit_date 'YYYYMMDD-HHmmss'}}"],
            &[],
            &["20200109-220511"]
        ),
        case!(
            "priority order",
            p(),
            &[
                "type=sha",
                "type=raw,value=a,priority=50",
                "type=ref,event=branch"
            ],
            &[],
            &["master", "sha-860c190", "a"]
        ),
        case!(
            "duplicates emitted once",
            p(),
            &["type=raw,value=latest"],
            &["latest=true"],
            &["latest"]
        ),
        case!(
            "enable false",
            p(),
            &["type=raw,value=a,enable=false", "type=raw,value=b"],
            &[],
            &["b"]
        ),
    ]);
}

#[test]
fn github_push_to_other_branches() {
    let b = |r: &str| gh("push", r, "push.json", &[]);
    let long = format!("refs/heads/{}", "a".repeat(200));
    check(vec![
        case!(
            "sanitized",
            b("refs/heads/my/feature#1245"),
            &[],
            &[],
            &["my-feature-1245"]
        ),
        case!(
            "not default",
            b("refs/heads/dev"),
            &[
                "type=raw,value=latest,enable={{is_default_branch}}",
                "type=raw,value={{is_not_default_branch}}"
            ],
            &[],
            &["true"]
        ),
        case!(
            "edge named branch",
            b("refs/heads/dev"),
            &["type=edge,branch=dev"],
            &[],
            &["edge"]
        ),
        case!(
            "leading dash fixed",
            b("refs/heads/-leading/"),
            &[],
            &[],
            &["leading-"]
        ),
        case!(
            "leading dot fixed",
            b("refs/heads/.x"),
            &["type=ref,event=branch,prefix=.."],
            &[],
            &["x"]
        ),
    ]);
    let m = run(&b(&long), &[], &[], &[]).unwrap();
    assert_eq!(m.tag_names, vec!["a".repeat(128)]);
    assert!(
        m.warnings.iter().any(|w| w.contains("at most 128")),
        "{:?}",
        m.warnings
    );
    let m = run(&b("refs/heads/-leading/"), &[], &[], &[]).unwrap();
    assert_eq!(
        m.warnings,
        vec!["tag `-leading-` changed to `leading-`: a tag may not start with `.` or `-`"]
    );
    let m = run(&b("refs/heads/--"), &[], &[], &[]).unwrap();
    assert!(m.tag_names.is_empty());
    assert!(
        m.warnings[0].starts_with("dropped tag `--`"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn github_tag_push() {
    let t = |r: &str| gh("push", r, "tag.json", &[]);
    check(vec![
        case!(
            "defaults",
            t("refs/tags/v1.1.1"),
            &[],
            &[],
            &["v1.1.1", "latest"]
        ),
        case!(
            "semver set",
            t("refs/tags/v1.1.1"),
            &[
                "type=semver,pattern={{version}}",
                "type=semver,pattern={{major}}.{{minor}}",
                "type=semver,pattern={{major}}"
            ],
            &[],
            &["1.1.1", "1.1", "1", "latest"]
        ),
        case!(
            "semver raw",
            t("refs/tags/v1.1.1"),
            &["type=semver,pattern={{raw}}"],
            &[],
            &["v1.1.1", "latest"]
        ),
        case!(
            "tag16 raw first means no latest",
            t("refs/tags/v1.1.1"),
            &["type=raw,priority=2000,foo", "type=ref,event=tag"],
            &[],
            &["foo", "v1.1.1"]
        ),
        case!(
            "prerelease collapses",
            t("refs/tags/v2.0.8-beta.67"),
            &[
                "type=semver,pattern={{version}}",
                "type=semver,pattern={{major}}.{{minor}}"
            ],
            &[],
            &["2.0.8-beta.67"]
        ),
        case!(
            "prerelease raw",
            t("refs/tags/v2.0.8-beta.67"),
            &["type=semver,pattern={{ raw }}"],
            &[],
            &["v2.0.8-beta.67"]
        ),
        case!(
            "prerelease ref tag gets latest",
            t("refs/tags/v2.0.8-beta.67"),
            &[],
            &[],
            &["v2.0.8-beta.67", "latest"]
        ),
        case!(
            "invalid semver",
            t("refs/tags/release1"),
            &["type=semver,pattern={{version}}"],
            &[],
            &[]
        ),
        case!(
            "semver match",
            t("refs/tags/p1/v1.2.3"),
            &["type=semver,pattern={{version}},match=p1/v(\\d.\\d.\\d)$"],
            &[],
            &["1.2.3", "latest"]
        ),
        case!(
            "match whole",
            t("refs/tags/v1.1.1"),
            &[r"type=match,pattern=\d.\d.\d"],
            &[],
            &["1.1.1", "latest"]
        ),
        case!(
            "match group",
            t("refs/tags/v1.1.1"),
            &[r#"type=match,"pattern=v(\d{1,3}.\d)",group=1"#],
            &[],
            &["1.1", "latest"]
        ),
        case!(
            "match flags",
            t("refs/tags/V1.1.1"),
            &[r"type=match,pattern=/^v(\d)/i,group=1"],
            &[],
            &["1", "latest"]
        ),
        // metadata-action matches the raw tag name: the `/` stays for the pattern to see,
        // and only the result is sanitized.
        case!(
            "match sees the slash",
            t("refs/tags/release/v1.2.3"),
            &[r"type=match,pattern=release/v(\d+\.\d+),group=1"],
            &[],
            &["1.2", "latest"]
        ),
        case!(
            "match result with a slash is sanitized",
            t("refs/tags/release/v1.2.3"),
            &[r"type=match,pattern=^release/v\d+"],
            &[],
            &["release-v1", "latest"]
        ),
        case!(
            "match value keeps its slash",
            t("refs/tags/v1.1.1"),
            &[r"type=match,pattern=a/(\w+),group=1,value=a/b"],
            &[],
            &["b", "latest"]
        ),
        // semver (unlike match) turns `/` into `-` first: `v1.2.3/x` is the prerelease
        // `v1.2.3-x`, and `{{raw}}` is the replaced text.
        case!(
            "semver sees dashes",
            t("refs/tags/v1.2.3/x"),
            &["type=semver,pattern={{raw}}"],
            &[],
            &["v1.2.3-x"]
        ),
        case!(
            "semver after match and slash",
            t("refs/tags/app/1.2.3-rc/1"),
            &["type=semver,pattern={{version}},match=^app/(.*)$"],
            &[],
            &["1.2.3-rc-1"]
        ),
        // npm's strict `semver.valid`: one optional `v`, nothing else before the version.
        case!(
            "semver strict equals",
            t("refs/tags/=1.2.3"),
            &["type=semver,pattern={{version}}"],
            &[],
            &[]
        ),
        case!(
            "semver strict vv",
            t("refs/tags/vv1.2.3"),
            &["type=semver,pattern={{version}}"],
            &[],
            &[]
        ),
        case!(
            "semver strict capital V",
            t("refs/tags/V1.2.3"),
            &["type=semver,pattern={{version}}", "type=ref,event=tag"],
            &[],
            &["V1.2.3", "latest"]
        ),
        case!(
            "semver strict space",
            t("refs/tags/v1.1.1"),
            &["type=semver,pattern={{version}},value=v 1.2.3"],
            &[],
            &[]
        ),
        case!(
            "match no group",
            t("refs/tags/v1.1.1"),
            &[r"type=match,pattern=v(\d),group=3"],
            &[],
            &[]
        ),
        case!(
            "pep440 rc",
            t("refs/tags/1.2.3rc2"),
            &["type=pep440,pattern={{version}}"],
            &[],
            &["1.2.3rc2"]
        ),
        case!(
            "pep440 beta",
            t("refs/tags/1.1beta2"),
            &["type=pep440,pattern={{major}}"],
            &[],
            &["1.1b2"]
        ),
        case!(
            "pep440 post",
            t("refs/tags/1.2post1"),
            &["type=pep440,pattern={{version}}"],
            &[],
            &["1.2.post1"]
        ),
        case!(
            "pep440 dev raw",
            t("refs/tags/1.0dev4"),
            &["type=pep440,pattern={{raw}}"],
            &[],
            &["1.0dev4"]
        ),
        case!(
            "pep440 final",
            t("refs/tags/v1.2.3"),
            &[
                "type=pep440,pattern={{major}}.{{minor}}",
                "type=pep440,pattern={{raw}}"
            ],
            &[],
            &["1.2", "v1.2.3", "latest"]
        ),
        case!(
            "base_ref and not default",
            t("refs/tags/v1.1.1"),
            &["type=raw,value={{base_ref}}-{{tag}}-{{is_default_branch}}"],
            &[],
            &["master-v1.1.1-false"]
        ),
        case!(
            "branch rule on tag",
            t("refs/tags/v1.1.1"),
            &["type=ref,event=branch", "type=edge"],
            &[],
            &[]
        ),
    ]);
}

#[test]
fn github_pull_requests() {
    let pr = || {
        gh(
            "pull_request",
            "refs/pull/15/merge",
            "pull_request.json",
            &[],
        )
    };
    let target = || {
        gh(
            "pull_request_target",
            "refs/heads/master",
            "pull_request_target.json",
            &[],
        )
    };
    let head = || {
        gh(
            "pull_request",
            "refs/pull/15/merge",
            "pull_request.json",
            &[("DOCKER_METADATA_PR_HEAD_SHA", "true")],
        )
    };
    check(vec![
        case!("defaults", pr(), &[], &[], &["pr-15"]),
        case!(
            "no prefix",
            pr(),
            &["type=ref,event=pr,prefix="],
            &[],
            &["15"]
        ),
        case!(
            "pr prefix beats flavor",
            pr(),
            &["type=ref,event=pr"],
            &["prefix=x-"],
            &["pr-15"]
        ),
        case!("sha", pr(), &["type=sha"], &[], &["sha-860c190"]),
        case!("head sha", head(), &["type=sha"], &[], &["sha-743fc2f"]),
        case!(
            "expressions",
            pr(),
            &["type=raw,value=b{{branch}}-{{base_ref}}-{{is_default_branch}}"],
            &[],
            &["b-master-false"]
        ),
        case!(
            "branch and tag rules",
            pr(),
            &[
                "type=ref,event=branch",
                "type=ref,event=tag",
                "type=semver,pattern={{version}}"
            ],
            &[],
            &[]
        ),
        case!("target defaults", target(), &[], &[], &["pr-15"]),
        case!(
            "target branch rule",
            target(),
            &["type=ref,event=branch"],
            &[],
            &[]
        ),
    ]);
}

#[test]
fn github_schedule_release_dispatch() {
    let s = || gh("schedule", "refs/heads/master", "schedule.json", &[]);
    let r = || gh("release", "refs/tags/v1.1.1", "release.json", &[]);
    let w = || {
        gh(
            "workflow_dispatch",
            "refs/heads/master",
            "workflow_dispatch.json",
            &[],
        )
    };
    check(vec![
        case!("schedule defaults", s(), &[], &[], &["nightly", "master"]),
        case!(
            "schedule pattern",
            s(),
            &["type=schedule,pattern={{date 'YYYYMMDD-hhmmss' tz='Asia/Tokyo'}}"],
            &[],
            &["20200110-093000"]
        ),
        case!(
            "schedule is default branch",
            s(),
            &["type=raw,value=x,enable={{is_default_branch}}"],
            &[],
            &["x"]
        ),
        case!(
            "schedule sha",
            s(),
            &["type=sha,format=long,prefix="],
            &[],
            &[SHA]
        ),
        case!("release defaults", r(), &[], &[], &["v1.1.1", "latest"]),
        case!(
            "release semver",
            r(),
            &["type=semver,pattern={{major}}.{{minor}}.{{patch}}"],
            &[],
            &["1.1.1", "latest"]
        ),
        case!("dispatch defaults", w(), &[], &[], &["master"]),
        case!("dispatch edge", w(), &["type=edge"], &[], &["edge"]),
    ]);
}

#[test]
fn gitlab_pipelines() {
    check(vec![
        case!(
            "branch defaults",
            gl_branch("feature/x"),
            &[],
            &[],
            &["feature-x"]
        ),
        case!(
            "branch sha is 8",
            gl_branch("feature/x"),
            &["type=sha"],
            &[],
            &["sha-01234567"]
        ),
        case!(
            "branch not default",
            gl_branch("feature/x"),
            &["type=raw,value=latest,enable={{is_default_branch}}"],
            &[],
            &[]
        ),
        case!(
            "default branch",
            gl_branch("main"),
            &[
                "type=raw,value=latest,enable={{is_default_branch}}",
                "type=edge"
            ],
            &[],
            &["edge", "latest"]
        ),
        case!(
            "tag defaults",
            gl_tag("v1.2.3"),
            &[],
            &[],
            &["v1.2.3", "latest"]
        ),
        case!(
            "tag semver",
            gl_tag("v1.2.3"),
            &["type=semver,pattern={{major}}.{{minor}}"],
            &[],
            &["1.2", "latest"]
        ),
        case!("mr defaults", gl_mr(), &[], &[], &["mr-42"]),
        case!(
            "mr base",
            gl_mr(),
            &["type=raw,value={{base_ref}}"],
            &[],
            &["main"]
        ),
        case!(
            "schedule",
            gl(&[
                ("CI_PIPELINE_SOURCE", "schedule"),
                ("CI_COMMIT_BRANCH", "main")
            ]),
            &["type=schedule,pattern=nightly-{{date 'YYYY'}}"],
            &[],
            &["nightly-2020"]
        ),
    ]);
}

#[test]
fn preset_latest_tag_sha_matches_the_seed_pipeline() {
    for (p, want) in [
        (gl_branch("main"), vec!["latest".to_string()]),
        (gl_tag("v1.2.3"), vec!["v1.2.3".to_string()]),
        (gl_branch("feature/x"), vec![GL_SHA.to_string()]),
        (gl_mr(), vec![GL_SHA.to_string()]),
    ] {
        let (tags, flavor) = rules::preset_latest_tag_sha(&p);
        let m = compute(
            &p,
            &Inputs {
                images: vec![],
                tags,
                flavor,
                short_sha_length: 8,
                now: now(),
            },
        )
        .unwrap();
        assert_eq!(m.tag_names, want, "{}", p.git_ref);
    }
}

#[test]
fn images_are_lower_cased_and_multiplied() {
    let p = gh("push", "refs/tags/v1.1.1", "tag.json", &[]);
    let m = run(
        &p,
        &[],
        &[],
        &[
            "ghcr.io/MyUSER/MyApp",
            "name=org/app,enable={{is_default_branch}}",
            "docker.io/user/app",
        ],
    )
    .unwrap();
    assert_eq!(
        m.tags,
        vec![
            "ghcr.io/myuser/myapp:v1.1.1",
            "ghcr.io/myuser/myapp:latest",
            "docker.io/user/app:v1.1.1",
            "docker.io/user/app:latest"
        ]
    );
    assert_eq!(m.version, "v1.1.1");
}

#[test]
fn errors_and_warnings() {
    let p = gh("push", "refs/heads/master", "push.json", &[]);
    let e = run(&p, &["type=raw,value=a,enable=maybe"], &[], &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`type=raw,value=a,enable=maybe`") && e.contains("`maybe`"),
        "{e}"
    );
    let e = run(&p, &["type=raw,value={{nope}}"], &[], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("{{nope}}"), "{e}");
    let m = run(&p, &["type=ref,event=tag"], &[], &[]).unwrap();
    assert!(m.tags.is_empty());
    assert_eq!(
        m.warnings,
        vec![
            "tag rule `type=ref,event=tag` gives no tag here: the ref `refs/heads/master` is not a tag",
            "no tag was generated: no tag rule applies to this pipeline"
        ]
    );
    let m = run(
        &gh("push", "refs/tags/release1", "tag.json", &[]),
        &["type=semver,pattern={{version}}"],
        &[],
        &[],
    )
    .unwrap();
    assert!(
        m.warnings[0].contains("`release1` is not a valid semantic version"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn a_user_rule_that_gives_nothing_is_named_in_a_warning_and_changes_no_tag() {
    let feature = gh("push", "refs/heads/feature/x", "push.json", &[]);
    let rules = [
        "type=edge",
        "type=ref,event=branch",
        "type=ref,event=tag",
        "type=edge,branch=dev",
        "type=raw,value={{tag}}",
        "type=schedule",
        "type=semver,pattern={{version}}",
        "type=match,pattern=x(y?),group=1,value=x",
    ];
    let m = run(&feature, &rules, &[], &[]).unwrap();
    assert_eq!(m.tag_names, ["feature-x"]);
    assert_eq!(
        m.warnings,
        [
            // In priority order, as the rules are applied.
            "tag rule `type=schedule` gives no tag here: the event is `push`, not a schedule",
            "tag rule `type=semver,pattern={{version}}` gives no tag here: the ref `refs/heads/feature/x` is not a tag and the rule has no `value`",
            "tag rule `type=match,pattern=x(y?),group=1,value=x` gives no tag here: the matched text is empty",
            "tag rule `type=edge` gives no tag here: the branch `feature/x` is not the default branch `master`",
            "tag rule `type=edge,branch=dev` gives no tag here: the branch `feature/x` is not `dev`",
            "tag rule `type=ref,event=tag` gives no tag here: the ref `refs/heads/feature/x` is not a tag",
            "tag rule `type=raw,value={{tag}}` gives no tag here: its value is empty here",
        ]
    );
    // Without the rules that give nothing, the outputs are the same.
    let quiet = run(&feature, &["type=ref,event=branch"], &[], &[]).unwrap();
    assert_eq!(quiet.tags, m.tags);
    assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
    // metadata-action's default rules (and the preset) are not warned about: on a branch the
    // tag, pull request and schedule defaults give nothing by design.
    let defaults = run(&feature, &[], &[], &[]).unwrap();
    assert_eq!(defaults.tag_names, ["feature-x"]);
    assert!(defaults.warnings.is_empty(), "{:?}", defaults.warnings);
    let (tags, flavor) = rules::preset_latest_tag_sha(&feature);
    let preset = compute(
        &feature,
        &Inputs {
            images: vec![],
            tags,
            flavor,
            short_sha_length: 7,
            now: now(),
        },
    )
    .unwrap();
    assert!(preset.warnings.is_empty(), "{:?}", preset.warnings);
    // A disabled rule is not "giving nothing": it was switched off.
    let off = run(&feature, &["type=edge,enable=false", "type=sha"], &[], &[]).unwrap();
    assert!(off.warnings.is_empty(), "{:?}", off.warnings);
    // A rule that already warned (an invalid version) is not warned about twice.
    let bad = run(
        &gh("push", "refs/tags/release1", "tag.json", &[]),
        &["type=semver,pattern={{version}}", "type=ref,event=tag"],
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(bad.warnings.len(), 1, "{:?}", bad.warnings);
    // GitLab: no default branch known and no `branch=`.
    let gl_no_default = gl(&[
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_DEFAULT_BRANCH", ""),
    ]);
    let m = run(&gl_no_default, &["type=edge", "type=sha"], &[], &[]).unwrap();
    assert_eq!(
        m.warnings,
        ["tag rule `type=edge` gives no tag here: the default branch is not known here; name it with `branch=`"]
    );
}

/// One rule of every type (and both sha formats), for the event matrix.
const MATRIX_RULES: [&str; 12] = [
    "type=schedule",
    "type=schedule,pattern={{date 'YYYYMMDD'}}",
    "type=semver,pattern={{version}}",
    "type=pep440,pattern={{version}}",
    r"type=match,pattern=\d.\d.\d",
    "type=edge",
    "type=ref,event=branch",
    "type=ref,event=tag",
    "type=ref,event=pr",
    "type=raw,value=foo",
    "type=sha",
    "type=sha,format=long",
];

/// A pipeline, what each of [`MATRIX_RULES`] gives on it alone, and what all of them give
/// together (sorted by priority, de-duplicated, `latest` from the first contributing rule).
struct MatrixRow {
    name: &'static str,
    pipeline: Pipeline,
    alone: [&'static [&'static str]; 12],
    together: &'static [&'static str],
}

const GH_LONG: &str = "sha-860c1904a1ce19322e91ac35af1ab07466440c37";
const GL_LONG: &str = "sha-0123456789abcdef0123456789abcdef01234567";
const NONE: &[&str] = &[];

/// Every rule type on every GitHub event fixture and GitLab pipeline kind. The expected values
/// are worked out from metadata-action's algorithm (ci-reference §1.2-1.4), not from gantry:
/// schedule needs an event matching `schedule`; semver, pep440 and match need a `refs/tags/`
/// ref; edge needs `refs/heads/<default branch>`; ref,event=X needs the matching ref kind;
/// raw and sha always apply; `latest` comes with semver/pep440 finals, match and ref,event=tag.
#[test]
fn every_rule_type_on_every_event() {
    let gh_branch = |event: &str, payload: &str| gh(event, "refs/heads/master", payload, &[]);
    let gh_tag = |event: &str, payload: &str| gh(event, "refs/tags/v1.1.1", payload, &[]);
    let branch_row: [&[&str]; 12] = [
        NONE,
        NONE,
        NONE,
        NONE,
        NONE,
        &["edge"],
        &["master"],
        NONE,
        NONE,
        &["foo"],
        &["sha-860c190"],
        &[GH_LONG],
    ];
    let branch_all: &[&str] = &["edge", "master", "foo", "sha-860c190", GH_LONG];
    let tag_row: [&[&str]; 12] = [
        NONE,
        NONE,
        &["1.1.1", "latest"],
        &["1.1.1", "latest"],
        &["1.1.1", "latest"],
        NONE,
        NONE,
        &["v1.1.1", "latest"],
        NONE,
        &["foo"],
        &["sha-860c190"],
        &[GH_LONG],
    ];
    let tag_all: &[&str] = &["1.1.1", "v1.1.1", "foo", "sha-860c190", GH_LONG, "latest"];
    let pr_row: [&[&str]; 12] = [
        NONE,
        NONE,
        NONE,
        NONE,
        NONE,
        NONE,
        NONE,
        NONE,
        &["pr-15"],
        &["foo"],
        &["sha-860c190"],
        &[GH_LONG],
    ];
    let pr_all: &[&str] = &["pr-15", "foo", "sha-860c190", GH_LONG];
    let rows = vec![
        MatrixRow {
            name: "github push",
            pipeline: gh_branch("push", "push.json"),
            alone: branch_row,
            together: branch_all,
        },
        MatrixRow {
            name: "github tag push",
            pipeline: gh_tag("push", "tag.json"),
            alone: tag_row,
            together: tag_all,
        },
        MatrixRow {
            name: "github pull_request",
            pipeline: gh(
                "pull_request",
                "refs/pull/15/merge",
                "pull_request.json",
                &[],
            ),
            alone: pr_row,
            together: pr_all,
        },
        // GITHUB_REF is the base branch; the pull request ref comes from the payload's number.
        MatrixRow {
            name: "github pull_request_target",
            pipeline: gh_branch("pull_request_target", "pull_request_target.json"),
            alone: pr_row,
            together: pr_all,
        },
        MatrixRow {
            name: "github schedule",
            pipeline: gh_branch("schedule", "schedule.json"),
            alone: [
                &["nightly"],
                &["20200110"],
                NONE,
                NONE,
                NONE,
                &["edge"],
                &["master"],
                NONE,
                NONE,
                &["foo"],
                &["sha-860c190"],
                &[GH_LONG],
            ],
            together: &[
                "nightly",
                "20200110",
                "edge",
                "master",
                "foo",
                "sha-860c190",
                GH_LONG,
            ],
        },
        MatrixRow {
            name: "github release",
            pipeline: gh_tag("release", "release.json"),
            alone: tag_row,
            together: tag_all,
        },
        MatrixRow {
            name: "github workflow_dispatch",
            pipeline: gh_branch("workflow_dispatch", "workflow_dispatch.json"),
            alone: branch_row,
            together: branch_all,
        },
        MatrixRow {
            name: "gitlab branch",
            pipeline: gl_branch("feature/x"),
            alone: [
                NONE,
                NONE,
                NONE,
                NONE,
                NONE,
                NONE,
                &["feature-x"],
                NONE,
                NONE,
                &["foo"],
                &["sha-01234567"],
                &[GL_LONG],
            ],
            together: &["feature-x", "foo", "sha-01234567", GL_LONG],
        },
        MatrixRow {
            name: "gitlab default branch",
            pipeline: gl_branch("main"),
            alone: [
                NONE,
                NONE,
                NONE,
                NONE,
                NONE,
                &["edge"],
                &["main"],
                NONE,
                NONE,
                &["foo"],
                &["sha-01234567"],
                &[GL_LONG],
            ],
            together: &["edge", "main", "foo", "sha-01234567", GL_LONG],
        },
        MatrixRow {
            name: "gitlab tag",
            pipeline: gl_tag("v1.2.3"),
            alone: [
                NONE,
                NONE,
                &["1.2.3", "latest"],
                &["1.2.3", "latest"],
                &["1.2.3", "latest"],
                NONE,
                NONE,
                &["v1.2.3", "latest"],
                NONE,
                &["foo"],
                &["sha-01234567"],
                &[GL_LONG],
            ],
            together: &["1.2.3", "v1.2.3", "foo", "sha-01234567", GL_LONG, "latest"],
        },
        // A merge request pipeline sets CI_COMMIT_REF_NAME but not CI_COMMIT_BRANCH: no branch.
        MatrixRow {
            name: "gitlab merge request",
            pipeline: gl_mr(),
            alone: [
                NONE,
                NONE,
                NONE,
                NONE,
                NONE,
                NONE,
                NONE,
                NONE,
                &["mr-42"],
                &["foo"],
                &["sha-01234567"],
                &[GL_LONG],
            ],
            together: &["mr-42", "foo", "sha-01234567", GL_LONG],
        },
        MatrixRow {
            name: "gitlab schedule",
            pipeline: gl(&[
                ("CI_PIPELINE_SOURCE", "schedule"),
                ("CI_COMMIT_BRANCH", "main"),
                ("CI_COMMIT_REF_NAME", "main"),
            ]),
            alone: [
                &["nightly"],
                &["20200110"],
                NONE,
                NONE,
                NONE,
                &["edge"],
                &["main"],
                NONE,
                NONE,
                &["foo"],
                &["sha-01234567"],
                &[GL_LONG],
            ],
            together: &[
                "nightly",
                "20200110",
                "edge",
                "main",
                "foo",
                "sha-01234567",
                GL_LONG,
            ],
        },
    ];
    let mut failures = Vec::new();
    for row in &rows {
        for (rule, want) in MATRIX_RULES.iter().zip(row.alone) {
            let m = match run(&row.pipeline, &[rule], &[], &[]) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!("{} / {rule}: error {e}", row.name));
                    continue;
                }
            };
            if m.tag_names != want {
                failures.push(format!(
                    "{} / {rule}: got {:?}, want {want:?}",
                    row.name, m.tag_names
                ));
            }
            // A rule that gives nothing is named in a warning; one that gives a tag is not.
            let named = m
                .warnings
                .iter()
                .any(|w| w.starts_with(&format!("tag rule `{rule}` gives no tag here: ")));
            if named != want.is_empty() {
                failures.push(format!("{} / {rule}: warnings {:?}", row.name, m.warnings));
            }
        }
        match run(&row.pipeline, &MATRIX_RULES, &[], &[]) {
            Ok(m) if m.tag_names == row.together => {}
            Ok(m) => failures.push(format!(
                "{} / all rules: got {:?}, want {:?}",
                row.name, m.tag_names, row.together
            )),
            Err(e) => failures.push(format!("{} / all rules: error {e}", row.name)),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

//! The neutral description of the pipeline a command runs in.
//!
//! GitHub Actions (`GITHUB_*` plus the event payload at `GITHUB_EVENT_PATH`), GitLab CI (`CI_*`)
//! and, outside CI, the local git repository are each mapped onto the same [`Pipeline`], using
//! metadata-action's ref conventions: `refs/heads/<branch>`, `refs/tags/<tag>` and
//! `refs/pull/<n>/merge` (a GitLab merge request is a pull request here). Nothing calls a
//! network API: repository data and the default branch come from the payload or the variables.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::Value;

use crate::ci::Env;
use crate::env;

/// Which system described the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    /// No CI: the local git repository.
    Git,
    /// Nothing found: only rules that need no pipeline (`type=raw`) give tags.
    None,
}

/// A registry credential taken from the CI environment. Held in memory only.
#[derive(Clone, PartialEq, Eq)]
pub struct CiCredentials {
    /// `host[:port]` the credential belongs to; it is never sent anywhere else.
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for CiCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CiCredentials {{ registry: {:?}, username: {:?}, password: <redacted> }}",
            self.registry, self.username
        )
    }
}

/// Everything the tag rules, labels and outputs need to know about the pipeline.
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    pub provider: Option<Provider>,
    /// metadata-action's event name: GitHub's event, or GitLab's `CI_PIPELINE_SOURCE`.
    pub event: String,
    /// `refs/heads/…`, `refs/tags/…`, `refs/pull/<n>/merge`, or empty.
    pub git_ref: String,
    pub sha: String,
    pub default_branch: Option<String>,
    /// The pull/merge request's target branch, or the branch a tag was pushed from.
    pub base_ref: String,
    pub commit_time: Option<Timestamp>,
    /// The repository's web address (`source`/`url` labels).
    pub repo_url: String,
    pub title: String,
    pub description: String,
    pub license: String,
    /// The image the pipeline pushes to by default: `CI_REGISTRY_IMAGE`, `ghcr.io/<owner>/<repo>`.
    pub default_image: Option<String>,
    pub credentials: Option<CiCredentials>,
    /// The run or job address, for summaries.
    pub run_url: String,
    /// Default length of `type=sha` short SHAs and `{{sha}}`: 7 on GitHub, 8 on GitLab.
    pub short_sha_length: usize,
    /// Default prefix of `type=ref,event=pr`: `pr-` on GitHub, `mr-` on GitLab.
    pub pr_prefix: String,
}

/// Why the pipeline could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot read the GitHub event payload `{path}`: {source}\nhint: GITHUB_EVENT_PATH must name the JSON file GitHub Actions writes; unset it outside Actions")]
    ReadPayload {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the GitHub event payload `{path}` is not JSON: {source}")]
    ParsePayload {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{name} is `{value}`, not a positive number\nhint: set it to the number of SHA characters to keep, e.g. 7")]
    ShortShaLength { name: &'static str, value: String },
    #[error("cannot read the git repository at `{path}`: {message}")]
    Git { path: PathBuf, message: String },
}

impl Pipeline {
    /// Reads the pipeline: GitHub Actions, else GitLab CI, else the git repository at or above
    /// `dir`, else an empty description with [`Provider::None`].
    pub fn detect(env: &dyn Env, dir: &Path) -> Result<Pipeline, PipelineError> {
        let mut p = if env.get(env::GITHUB_ACTIONS).as_deref() == Some("true") {
            github(env)?
        } else if env.get(env::GITLAB_CI).as_deref() == Some("true") {
            gitlab(env)
        } else if let Some(repo) = crate::ci::git::find_repo(dir) {
            crate::ci::git::pipeline(&repo)?
        } else {
            Pipeline {
                provider: Some(Provider::None),
                short_sha_length: 7,
                pr_prefix: "pr-".into(),
                ..Pipeline::default()
            }
        };
        if let Some(v) = env.get(env::DOCKER_METADATA_SHORT_SHA_LENGTH) {
            p.short_sha_length = parse_short_sha_length(env::DOCKER_METADATA_SHORT_SHA_LENGTH, &v)?;
        }
        Ok(p)
    }

    pub fn provider(&self) -> Provider {
        self.provider.unwrap_or(Provider::None)
    }

    /// The branch name when the ref is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    /// The tag name when the ref is a tag.
    pub fn tag(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/tags/")
    }

    /// The pull/merge request number when the ref is one.
    pub fn pull_request(&self) -> Option<&str> {
        let rest = self.git_ref.strip_prefix("refs/pull/")?;
        Some(rest.strip_suffix("/merge").unwrap_or(rest))
    }

    /// The SHA cut to `len` characters.
    pub fn short_sha(&self, len: usize) -> &str {
        match self.sha.char_indices().nth(len) {
            Some((i, _)) => &self.sha[..i],
            None => &self.sha,
        }
    }

    /// metadata-action's `{{is_default_branch}}`: the branch is the default branch, or the event
    /// is one that GitHub runs on the default branch (`create`, `discussion`, `issues`, `schedule`).
    pub fn is_default_branch(&self) -> bool {
        if let (Some(branch), Some(default)) = (self.branch(), &self.default_branch) {
            if branch == default {
                return true;
            }
        }
        !self.git_ref.is_empty()
            && ["create", "discussion", "issues", "schedule"]
                .iter()
                .any(|e| self.event.contains(e))
    }
}

/// Parses a short SHA length from a flag or variable.
pub fn parse_short_sha_length(name: &'static str, value: &str) -> Result<usize, PipelineError> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| PipelineError::ShortShaLength {
            name,
            value: value.to_string(),
        })
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

fn parse_time(s: &str) -> Option<Timestamp> {
    s.trim().parse::<Timestamp>().ok()
}

fn github(env: &dyn Env) -> Result<Pipeline, PipelineError> {
    let payload = match env.get(env::GITHUB_EVENT_PATH) {
        Some(path) => {
            let path = PathBuf::from(path);
            let bytes = std::fs::read(&path).map_err(|source| PipelineError::ReadPayload {
                path: path.clone(),
                source,
            })?;
            serde_json::from_slice(&bytes)
                .map_err(|source| PipelineError::ParsePayload { path, source })?
        }
        None => Value::Null,
    };
    let event = env.get(env::GITHUB_EVENT_NAME).unwrap_or_default();
    let is_pr = event == "pull_request" || event == "pull_request_target";
    let mut git_ref = env.get(env::GITHUB_REF).unwrap_or_default();
    // For pull_request_target GitHub sets GITHUB_REF to the base branch; metadata-action rebuilds
    // the pull request ref from the payload so that `type=ref,event=pr` works.
    if event == "pull_request_target" {
        if let Some(n) = payload.get("number").and_then(Value::as_u64) {
            git_ref = format!("refs/pull/{n}/merge");
        }
    }
    let mut sha = env.get(env::GITHUB_SHA).unwrap_or_default();
    if is_pr && env.get(env::DOCKER_METADATA_PR_HEAD_SHA).as_deref() == Some("true") {
        if let Some(head) = str_at(&payload, &["pull_request", "head", "sha"]) {
            sha = head.to_string();
        }
    }
    let base_ref = if git_ref.starts_with("refs/tags/") {
        str_at(&payload, &["base_ref"])
            .map(|b| b.strip_prefix("refs/heads/").unwrap_or(b).to_string())
            .unwrap_or_default()
    } else if git_ref.starts_with("refs/pull/") {
        str_at(&payload, &["pull_request", "base", "ref"])
            .unwrap_or_default()
            .to_string()
    } else {
        String::new()
    };
    let commit_time = payload
        .get("commits")
        .and_then(Value::as_array)
        .and_then(|commits| {
            commits
                .iter()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(sha.as_str()))
        })
        .or_else(|| {
            payload
                .get("head_commit")
                .filter(|c| c.get("id").and_then(Value::as_str) == Some(sha.as_str()))
        })
        .and_then(|c| c.get("timestamp").and_then(Value::as_str))
        .and_then(parse_time);
    let repository = env.get(env::GITHUB_REPOSITORY).unwrap_or_default();
    let server = env
        .get(env::GITHUB_SERVER_URL)
        .unwrap_or_else(|| "https://github.com".into());
    let repo = payload.get("repository").cloned().unwrap_or(Value::Null);
    let repo_url = str_at(&repo, &["html_url"])
        .map(str::to_string)
        .or_else(|| (!repository.is_empty()).then(|| format!("{server}/{repository}")))
        .unwrap_or_default();
    let title = str_at(&repo, &["name"])
        .map(str::to_string)
        .or_else(|| repository.rsplit('/').next().map(str::to_string))
        .unwrap_or_default();
    let credentials = match (env.get(env::GITHUB_ACTOR), env.get(env::GITHUB_TOKEN)) {
        (Some(username), Some(password)) => Some(CiCredentials {
            registry: "ghcr.io".into(),
            username,
            password,
        }),
        _ => None,
    };
    let run_url = match env.get(env::GITHUB_RUN_ID) {
        Some(id) if !repository.is_empty() => format!("{server}/{repository}/actions/runs/{id}"),
        _ => String::new(),
    };
    Ok(Pipeline {
        provider: Some(Provider::GitHub),
        event,
        git_ref,
        sha,
        default_branch: str_at(&repo, &["default_branch"]).map(str::to_string),
        base_ref,
        commit_time,
        repo_url,
        title,
        description: str_at(&repo, &["description"])
            .unwrap_or_default()
            .to_string(),
        license: str_at(&repo, &["license", "spdx_id"])
            .unwrap_or_default()
            .to_string(),
        default_image: (!repository.is_empty())
            .then(|| format!("ghcr.io/{}", repository.to_lowercase())),
        credentials,
        run_url,
        short_sha_length: 7,
        pr_prefix: "pr-".into(),
    })
}

fn gitlab(env: &dyn Env) -> Pipeline {
    let event = env.get(env::CI_PIPELINE_SOURCE).unwrap_or_default();
    let mr = env.get(env::CI_MERGE_REQUEST_IID);
    let (git_ref, base_ref) = if let Some(tag) = env.get(env::CI_COMMIT_TAG) {
        (format!("refs/tags/{tag}"), String::new())
    } else if let Some(iid) = &mr {
        (
            format!("refs/pull/{iid}/merge"),
            env.get(env::CI_MERGE_REQUEST_TARGET_BRANCH_NAME)
                .unwrap_or_default(),
        )
    } else if let Some(branch) = env
        .get(env::CI_COMMIT_BRANCH)
        .or_else(|| env.get(env::CI_COMMIT_REF_NAME))
    {
        (format!("refs/heads/{branch}"), String::new())
    } else {
        (String::new(), String::new())
    };
    let registry = env.get(env::CI_REGISTRY);
    let username = env.get(env::CI_REGISTRY_USER);
    let credentials = match (&registry, env.get(env::CI_REGISTRY_PASSWORD)) {
        (Some(reg), Some(password)) => Some(CiCredentials {
            registry: reg.clone(),
            username: username.unwrap_or_else(|| "gitlab-ci-token".into()),
            password,
        }),
        (Some(reg), None) => env.get(env::CI_JOB_TOKEN).map(|token| CiCredentials {
            registry: reg.clone(),
            username: "gitlab-ci-token".into(),
            password: token,
        }),
        _ => None,
    };
    Pipeline {
        provider: Some(Provider::GitLab),
        event,
        git_ref,
        sha: env.get(env::CI_COMMIT_SHA).unwrap_or_default(),
        default_branch: env.get(env::CI_DEFAULT_BRANCH),
        base_ref,
        commit_time: env
            .get(env::CI_COMMIT_TIMESTAMP)
            .as_deref()
            .and_then(parse_time),
        repo_url: env.get(env::CI_PROJECT_URL).unwrap_or_default(),
        title: env
            .get(env::CI_PROJECT_TITLE)
            .or_else(|| env.get(env::CI_PROJECT_NAME))
            .unwrap_or_default(),
        description: env.get(env::CI_PROJECT_DESCRIPTION).unwrap_or_default(),
        license: String::new(),
        default_image: env.get(env::CI_REGISTRY_IMAGE),
        credentials,
        run_url: env.get(env::CI_JOB_URL).unwrap_or_default(),
        // GitLab's own CI_COMMIT_SHORT_SHA is 8 characters; tags match what GitLab shows.
        short_sha_length: 8,
        pr_prefix: "mr-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn gitlab_merge_request_is_a_pull_request_with_mr_prefix() {
        let env = env_of(&[
            ("GITLAB_CI", "true"),
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_MERGE_REQUEST_IID", "42"),
            ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
            ("CI_COMMIT_REF_NAME", "feature/x"),
            ("CI_COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567"),
            ("CI_REGISTRY", "registry.example.com"),
            ("CI_JOB_TOKEN", "tok"),
        ]);
        let p = Pipeline::detect(&env, Path::new("/nonexistent")).unwrap();
        assert_eq!(p.provider(), Provider::GitLab);
        assert_eq!(p.git_ref, "refs/pull/42/merge");
        assert_eq!(p.pull_request(), Some("42"));
        assert_eq!(p.base_ref, "main");
        assert_eq!(p.pr_prefix, "mr-");
        assert_eq!(p.short_sha(p.short_sha_length), "01234567");
        let creds = p.credentials.unwrap();
        assert_eq!(creds.username, "gitlab-ci-token");
        assert_eq!(creds.password, "tok");
        assert!(!format!("{creds:?}").contains("tok\""));
    }

    #[test]
    fn short_sha_length_variable_is_checked() {
        let env = env_of(&[
            ("GITLAB_CI", "true"),
            ("DOCKER_METADATA_SHORT_SHA_LENGTH", "x"),
        ]);
        let err = Pipeline::detect(&env, Path::new("/nonexistent")).unwrap_err();
        assert!(err.to_string().contains("`x`"), "{err}");
    }

    #[test]
    fn default_branch_rules() {
        let mut p = Pipeline {
            git_ref: "refs/heads/main".into(),
            default_branch: Some("main".into()),
            event: "push".into(),
            ..Pipeline::default()
        };
        assert!(p.is_default_branch());
        p.git_ref = "refs/heads/dev".into();
        assert!(!p.is_default_branch());
        p.event = "schedule".into();
        assert!(p.is_default_branch());
        p.git_ref.clear();
        assert!(!p.is_default_branch());
    }
}

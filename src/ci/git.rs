//! Outside CI: the branch, the tag at HEAD, the SHA and the commit time from the local git
//! repository, read with git2 (loose and packed refs and objects, linked worktrees).

use std::path::{Path, PathBuf};

use crate::ci::pipeline::{Pipeline, PipelineError, Provider};

/// A located repository.
pub struct Repo {
    repo: git2::Repository,
    pub git_dir: PathBuf,
}

/// Finds the repository at or above `dir`.
pub fn find_repo(dir: &Path) -> Option<Repo> {
    let repo = git2::Repository::discover(dir).ok()?;
    let git_dir = repo.path().to_path_buf();
    Some(Repo { repo, git_dir })
}

impl Repo {
    fn error(&self, e: git2::Error) -> PipelineError {
        PipelineError::Git {
            path: self.git_dir.clone(),
            message: e.message().to_string(),
        }
    }

    /// Every tag name whose target (annotated tags peeled) is the commit `sha`, sorted.
    pub fn tags_at(&self, sha: &str) -> Vec<String> {
        let Ok(refs) = self.repo.references_glob("refs/tags/*") else {
            return Vec::new();
        };
        let mut tags: Vec<String> = refs
            .flatten()
            .filter(|r| r.peel_to_commit().is_ok_and(|c| c.id().to_string() == sha))
            .filter_map(|r| {
                r.name()
                    .ok()
                    .and_then(|n| n.strip_prefix("refs/tags/"))
                    .map(str::to_string)
            })
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }
}

/// The pipeline description of a local checkout: the branch if HEAD is on one, else the first
/// tag (sorted) pointing at HEAD, as metadata-action's `context: git` does.
pub fn pipeline(repo: &Repo) -> Result<Pipeline, PipelineError> {
    let head = repo.repo.head().map_err(|e| repo.error(e))?;
    let commit = head.peel_to_commit().map_err(|e| repo.error(e))?;
    let sha = commit.id().to_string();
    let branch = if head.is_branch() {
        head.shorthand().ok().map(str::to_string)
    } else {
        None
    };
    let git_ref = match branch {
        Some(b) => format!("refs/heads/{b}"),
        None => match repo.tags_at(&sha).into_iter().next() {
            Some(t) => format!("refs/tags/{t}"),
            None => String::new(),
        },
    };
    let default_branch = repo
        .repo
        .find_reference("refs/remotes/origin/HEAD")
        .ok()
        .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_string))
        .and_then(|t| t.strip_prefix("refs/remotes/origin/").map(str::to_string));
    Ok(Pipeline {
        provider: Some(Provider::Git),
        event: "push".into(),
        git_ref,
        commit_time: jiff::Timestamp::from_second(commit.time().seconds()).ok(),
        sha,
        default_branch,
        short_sha_length: 7,
        pr_prefix: "pr-".into(),
        ..Pipeline::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .env("GIT_COMMITTER_DATE", "1700000000 +0000")
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", out);
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn reads_branch_sha_annotated_tag_and_commit_time() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        git(d, &["init", "-q", "-b", "feature/x"]);
        git(d, &["commit", "-q", "--allow-empty", "-m", "one"]);
        git(d, &["tag", "-a", "-m", "release", "v1.2.3"]);
        let sha = git(d, &["rev-parse", "HEAD"]);
        let repo = find_repo(&d.join(".")).unwrap();
        let p = pipeline(&repo).unwrap();
        assert_eq!(p.git_ref, "refs/heads/feature/x");
        assert_eq!(p.sha, sha);
        assert_eq!(p.commit_time.unwrap().as_second(), 1_700_000_000);
        assert_eq!(repo.tags_at(&sha), vec!["v1.2.3"]);
        // Detached at the tag: the tag becomes the ref, also once refs are packed.
        git(d, &["checkout", "-q", "--detach"]);
        git(d, &["gc", "-q", "--aggressive"]);
        let p = pipeline(&find_repo(d).unwrap()).unwrap();
        assert_eq!(p.git_ref, "refs/tags/v1.2.3");
        assert_eq!(p.sha, sha);
        // Refs and objects now live in packs only; the commit time is still read.
        assert!(!d.join(".git/refs/tags/v1.2.3").exists());
        assert_eq!(p.commit_time.unwrap().as_second(), 1_700_000_000);
    }
}

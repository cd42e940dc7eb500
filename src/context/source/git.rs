//! `git://host/repo.git#ref#commit` contexts, cloned over HTTPS with libgit2 (git2), as kaniko
//! does.
//!
//! The fragment has kaniko's two optional parts: a reference (`refs/heads/main`,
//! `refs/pull/1/head`, or a branch name) and a commit to check out. `--git` adds `branch=`,
//! `single-branch=` (look for the commit in the named reference only, instead of in every
//! branch and tag as kaniko's full clone does), `recurse-submodules=` and `insecure-skip-tls=`.
//! Only the named reference is fetched unless the commit is elsewhere. Credentials, in kaniko's
//! order: `GIT_TOKEN` (sent as the Basic username), else `GIT_USERNAME`/`GIT_PASSWORD`, else
//! user and password written in the URL. They are offered only to the repository's own host, so
//! a submodule on another host never receives them. Extra CA certificates come from
//! `SSL_CERT_FILE`.

use std::path::Path;

use git2::{build::CheckoutBuilder, FetchOptions, Oid, RemoteCallbacks, Repository};

use super::SourceError;
use crate::env;

/// `--git` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitOptions {
    pub branch: Option<String>,
    pub single_branch: bool,
    pub recurse_submodules: bool,
    pub insecure_skip_tls: bool,
}

impl GitOptions {
    /// Parses `--git` values: comma-separated `key=value` pairs, possibly over several flags.
    pub fn parse(values: &[String]) -> Result<GitOptions, SourceError> {
        let mut o = GitOptions::default();
        for raw in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
            if raw.is_empty() {
                continue;
            }
            let bad = |reason: String| {
                SourceError::Invalid {
                source_name: format!("--git {raw}"),
                reason,
                hint: "use `--git branch=NAME,single-branch=false,recurse-submodules=false,insecure-skip-tls=false`",
            }
            };
            let (k, v) = raw
                .split_once('=')
                .ok_or_else(|| bad("expected key=value".into()))?;
            // kaniko parses these with Go's strconv.ParseBool.
            let flag = || {
                crate::cli::go_bool(v)
                    .map_err(|e| bad(e.lines().next().unwrap_or_default().to_string()))
            };
            match k {
                "branch" => o.branch = Some(v.to_string()).filter(|b| !b.is_empty()),
                "single-branch" => o.single_branch = flag()?,
                "recurse-submodules" => o.recurse_submodules = flag()?,
                "insecure-skip-tls" => o.insecure_skip_tls = flag()?,
                _ => return Err(bad(format!("unknown option `{k}`"))),
            }
        }
        Ok(o)
    }
}

/// A git context: the HTTPS URL to clone, what to check out, and how.
#[derive(Clone, PartialEq, Eq)]
pub struct GitContext {
    /// `https://host/path` without credentials.
    pub url: String,
    pub reference: Option<String>,
    pub commit: Option<String>,
    /// User and password written in the context URL.
    pub url_credentials: Option<(String, String)>,
    pub options: GitOptions,
}

impl std::fmt::Debug for GitContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitContext")
            .field("url", &self.url)
            .field("reference", &self.reference)
            .field("commit", &self.commit)
            .field(
                "url_credentials",
                &self.url_credentials.as_ref().map(|_| "***"),
            )
            .field("options", &self.options)
            .finish()
    }
}

impl GitContext {
    pub fn parse(raw: &str, git_options: &[String]) -> Result<GitContext, SourceError> {
        let options = GitOptions::parse(git_options)?;
        let rest = raw.strip_prefix("git://").unwrap_or(raw);
        let mut parts = rest.split('#');
        let location = parts.next().unwrap_or_default();
        let reference = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
        let commit = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
        let redacted = redact(raw);
        let invalid = |reason: String| {
            SourceError::Invalid {
            source_name: redacted.clone(),
            reason,
            hint: "use `git://HOST/OWNER/REPO.git`, optionally with `#refs/heads/BRANCH` and `#COMMIT`",
        }
        };
        if parts.next().is_some() {
            return Err(invalid("more than two `#` parts".into()));
        }
        let mut url = url::Url::parse(&format!("https://{location}"))
            .map_err(|e| invalid(format!("not a repository address: {e}")))?;
        if url.host_str().is_none_or(str::is_empty) || url.path().trim_matches('/').is_empty() {
            return Err(invalid("no host or repository path".into()));
        }
        let url_credentials = (!url.username().is_empty()).then(|| {
            let user = percent_decode(url.username());
            let pass = url.password().map(percent_decode).unwrap_or_default();
            (user, pass)
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if let Some(c) = &commit {
            if Oid::from_str(c).is_err() {
                return Err(invalid(format!(
                    "commit `{c}` is not a hexadecimal object id"
                )));
            }
        }
        Ok(GitContext {
            url: url.to_string(),
            reference,
            commit,
            url_credentials,
            options,
        })
    }

    pub fn display_name(&self) -> String {
        let mut s = self.url.replacen("https://", "git://", 1);
        if let Some(r) = &self.reference {
            s.push('#');
            s.push_str(r);
        }
        if let Some(c) = &self.commit {
            if self.reference.is_none() {
                s.push('#');
            }
            s.push('#');
            s.push_str(c);
        }
        s
    }

    /// The refspec to fetch and the local name it lands under.
    fn refspec(&self) -> (String, String) {
        let wanted = self
            .reference
            .clone()
            .or_else(|| self.options.branch.clone())
            .map(|r| {
                if r.starts_with("refs/") {
                    r
                } else {
                    format!("refs/heads/{r}")
                }
            });
        match wanted {
            Some(r) => (format!("+{r}:refs/gantry/wanted"), r),
            None => ("+HEAD:refs/gantry/wanted".into(), "HEAD".into()),
        }
    }
}

/// Credentials in the context URL are replaced by `***` in anything shown.
fn redact(raw: &str) -> String {
    match (raw.find("://"), raw.find('@')) {
        (Some(s), Some(at)) if at > s && !raw[s + 3..at].contains('/') => {
            format!("{}***{}", &raw[..s + 3], &raw[at..])
        }
        _ => raw.to_string(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The credentials to offer: `GIT_TOKEN`, else `GIT_USERNAME`/`GIT_PASSWORD`, else the URL's;
/// with where they came from, for the log.
fn credentials(ctx: &GitContext) -> Option<(String, String, &'static str)> {
    if let Some(token) = env::var(env::GIT_TOKEN) {
        return Some((token, String::new(), "GIT_TOKEN"));
    }
    let user = env::var(env::GIT_USERNAME);
    let pass = env::var(env::GIT_PASSWORD);
    if user.is_some() || pass.is_some() {
        return Some((
            user.unwrap_or_default(),
            pass.unwrap_or_default(),
            "GIT_USERNAME/GIT_PASSWORD",
        ));
    }
    ctx.url_credentials
        .clone()
        .map(|(u, p)| (u, p, "the context URL"))
}

fn callbacks<'a>(
    ctx: &'a GitContext,
    host: &'a str,
    tries: &'a std::cell::Cell<u32>,
) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    let creds = credentials(ctx);
    cb.credentials(move |url, _user, _allowed| {
        let same_host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(|h| h == host))
            .unwrap_or(false);
        tries.set(tries.get() + 1);
        match (&creds, same_host, tries.get()) {
            // Offered once: a second request means the server refused them.
            (Some((u, p, from)), true, 1) => {
                tracing::trace!(host = %host, from, "offering git credentials");
                git2::Cred::userpass_plaintext(u, p)
            }
            (Some(_), false, _) => {
                tracing::debug!(url = %url, "not offering git credentials to another host");
                Err(git2::Error::from_str("authentication required"))
            }
            _ => Err(git2::Error::from_str("authentication required")),
        }
    });
    if ctx.options.insecure_skip_tls {
        cb.certificate_check(|_, _| Ok(git2::CertificateCheckStatus::CertificateOk));
    }
    cb
}

fn git_err(source_name: &str, action: &str, e: &git2::Error, hint: &'static str) -> SourceError {
    SourceError::Git {
        source_name: source_name.to_string(),
        message: format!("{action}: {}", e.message()),
        hint,
    }
}

/// Where every branch and tag lands when a commit is looked for beyond the named reference.
const ALL_REFSPECS: [&str; 2] = [
    "+refs/heads/*:refs/gantry/heads/*",
    "+refs/tags/*:refs/gantry/tags/*",
];

/// Clones the repository into `dest` (an existing, empty directory) and checks out the
/// requested reference or commit, with submodules when asked.
///
/// Only the named reference (or the remote's HEAD) is fetched first. A commit that it does not
/// contain is then looked for in every branch and tag, as kaniko's clone of all branches finds
/// it, unless `single-branch=true` limits the clone to that one reference.
pub fn clone(ctx: &GitContext, dest: &Path, source_name: &str) -> Result<(), SourceError> {
    set_ca_file();
    let repo = Repository::init(dest).map_err(|e| {
        git_err(
            source_name,
            "creating the repository",
            &e,
            "check that the work directory is writable",
        )
    })?;
    let (refspec, wanted) = ctx.refspec();
    fetch_into(&repo, ctx, source_name, &[refspec.as_str()], &wanted)?;
    let fetched = repo
        .find_reference("refs/gantry/wanted")
        .and_then(|r| r.peel_to_commit())
        .map_err(|_| SourceError::Git {
            source_name: source_name.to_string(),
            message: format!("the reference `{wanted}` does not exist in the repository"),
            hint: "check the branch or reference name; `git ls-remote URL` lists them",
        })?;
    let commit = match &ctx.commit {
        Some(c) => {
            let mut found = find_commit(&repo, c);
            if found.is_none() && !ctx.options.single_branch {
                fetch_into(
                    &repo,
                    ctx,
                    source_name,
                    &ALL_REFSPECS,
                    "every branch and tag",
                )?;
                found = find_commit(&repo, c);
            }
            found.ok_or_else(|| SourceError::Git {
                source_name: source_name.to_string(),
                message: if ctx.options.single_branch {
                    format!("commit `{c}` does not exist in `{wanted}`")
                } else {
                    format!("commit `{c}` does not exist in any branch or tag of the repository")
                },
                hint: "check the commit id, and name the reference that contains it (`#refs/heads/BRANCH#COMMIT`)",
            })?
        }
        None => fetched,
    };
    remove_gantry_refs(&repo);
    repo.checkout_tree(commit.as_object(), Some(CheckoutBuilder::new().force()))
        .and_then(|()| repo.set_head_detached(commit.id()))
        .map_err(|e| {
            git_err(
                source_name,
                "checking out the commit",
                &e,
                "check that the work directory is writable and has free space",
            )
        })?;
    tracing::info!(context = %source_name, commit = %commit.id(), "checked out the git context");
    if ctx.options.recurse_submodules {
        update_submodules(&repo, ctx, source_name)?;
    }
    Ok(())
}

/// The commit `c` names (a full or abbreviated id), if the repository has it.
fn find_commit<'r>(repo: &'r Repository, c: &str) -> Option<git2::Commit<'r>> {
    Oid::from_str(c)
        .and_then(|oid| repo.find_commit(oid))
        .or_else(|_| repo.revparse_single(c).and_then(|o| o.peel_to_commit()))
        .ok()
}

/// Drops the references this module fetched into, so the context's `.git` holds only the
/// detached checkout.
fn remove_gantry_refs(repo: &Repository) {
    let Ok(refs) = repo.references_glob("refs/gantry/*") else {
        return;
    };
    let names: Vec<String> = refs
        .flatten()
        .filter_map(|r| r.name().ok().map(str::to_string))
        .collect();
    for name in names {
        if let Ok(mut r) = repo.find_reference(&name) {
            let _ = r.delete();
        }
    }
}

/// Fetches `refspecs` from the context's URL; `what` names them in messages.
fn fetch_into(
    repo: &Repository,
    ctx: &GitContext,
    source_name: &str,
    refspecs: &[&str],
    what: &str,
) -> Result<(), SourceError> {
    let host = url::Url::parse(&ctx.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let tries = std::cell::Cell::new(0);
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(ctx, &host, &tries));
    let mut remote = repo.remote_anonymous(&ctx.url).map_err(|e| {
        git_err(
            source_name,
            "preparing the remote",
            &e,
            "check the repository URL",
        )
    })?;
    tracing::debug!(context = %source_name, url = %ctx.url, ?refspecs, "fetching");
    remote.fetch(refspecs, Some(&mut opts), None).map_err(|e| {
        let auth = e.code() == git2::ErrorCode::Auth || e.message().contains("authentication");
        let (what, hint) = match e.class() {
            _ if auth => (
                "authentication failed".to_string(),
                "set GIT_TOKEN, or GIT_USERNAME and GIT_PASSWORD, with access to the repository",
            ),
            git2::ErrorClass::Http if e.message().contains("404") => (
                format!("the repository `{}` does not exist", ctx.url),
                "check the host and path of the repository (`git://HOST/OWNER/REPO.git`)",
            ),
            git2::ErrorClass::Ssl | git2::ErrorClass::Net | git2::ErrorClass::Os => (
                format!("cannot reach `{}`", ctx.url),
                "check the address; for a private CA set SSL_CERT_FILE, or pass --git insecure-skip-tls=true",
            ),
            _ => (
                format!("fetching {what}"),
                "check that the repository and the branch or reference exist",
            ),
        };
        git_err(source_name, &what, &e, hint)
    })?;
    Ok(())
}

fn update_submodules(
    repo: &Repository,
    ctx: &GitContext,
    source_name: &str,
) -> Result<(), SourceError> {
    let host = url::Url::parse(&ctx.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let mut subs = repo.submodules().map_err(|e| {
        git_err(
            source_name,
            "reading .gitmodules",
            &e,
            "check the repository's .gitmodules",
        )
    })?;
    subs.sort_by(|a, b| a.path().cmp(b.path()));
    for mut sub in subs {
        let path = sub.path().display().to_string();
        let tries = std::cell::Cell::new(0);
        let mut fetch = FetchOptions::new();
        fetch.remote_callbacks(callbacks(ctx, &host, &tries));
        let mut opts = git2::SubmoduleUpdateOptions::new();
        opts.fetch(fetch);
        sub.update(true, Some(&mut opts)).map_err(|e| {
            git_err(
                source_name,
                &format!("updating submodule `{path}`"),
                &e,
                "check the submodule's URL and that the commit it pins exists",
            )
        })?;
        let sub_repo = sub.open().map_err(|e| {
            git_err(
                source_name,
                &format!("opening submodule `{path}`"),
                &e,
                "check the submodule",
            )
        })?;
        update_submodules(&sub_repo, ctx, source_name)?;
    }
    Ok(())
}

/// Points libgit2's OpenSSL at `SSL_CERT_FILE` when it is set, once per process.
fn set_ca_file() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Some(file) = env::var(env::SSL_CERT_FILE) {
            // SAFETY: called once, before any libgit2 network operation of this process.
            if let Err(e) = unsafe { git2::opts::set_ssl_cert_file(&file) } {
                tracing::warn!(file = %file, error = %e, "cannot use SSL_CERT_FILE for git contexts");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kaniko_fragments_and_strips_url_credentials() {
        let g = GitContext::parse(
            "git://u:t%40k@example.com/o/r.git#refs/heads/dev#0123abc",
            &["branch=x,single-branch=true".into()],
        )
        .unwrap();
        assert_eq!(g.url, "https://example.com/o/r.git");
        assert_eq!(g.reference.as_deref(), Some("refs/heads/dev"));
        assert_eq!(g.commit.as_deref(), Some("0123abc"));
        assert_eq!(g.url_credentials, Some(("u".into(), "t@k".into())));
        assert!(g.options.single_branch);
        assert_eq!(
            g.display_name(),
            "git://example.com/o/r.git#refs/heads/dev#0123abc"
        );
        assert!(!format!("{g:?}").contains("t%40k"));
    }

    #[test]
    fn bad_git_inputs_name_the_source_without_secrets() {
        let e = GitContext::parse("git://u:secret@example.com/r.git#main#nothex", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("commit `nothex` is not a hexadecimal"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = GitOptions::parse(&["depth=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown option `depth`"), "{e}");
    }

    #[test]
    fn boolean_options_take_go_booleans_as_kaniko_does() {
        let o = GitOptions::parse(&["single-branch=1,recurse-submodules=T".into()]).unwrap();
        assert!(o.single_branch && o.recurse_submodules);
        let o = GitOptions::parse(&["insecure-skip-tls=FALSE".into()]).unwrap();
        assert!(!o.insecure_skip_tls);
        let e = GitOptions::parse(&["single-branch=yes".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`yes` is not a boolean"), "{e}");
    }

    #[test]
    fn a_branch_option_or_name_becomes_a_heads_refspec() {
        let g = GitContext::parse("git://h/r.git", &["branch=dev".into()]).unwrap();
        assert_eq!(g.refspec().0, "+refs/heads/dev:refs/gantry/wanted");
        let g = GitContext::parse("git://h/r.git#refs/pull/1/head", &[]).unwrap();
        assert_eq!(g.refspec().0, "+refs/pull/1/head:refs/gantry/wanted");
        let g = GitContext::parse("git://h/r.git", &[]).unwrap();
        assert_eq!(g.refspec().0, "+HEAD:refs/gantry/wanted");
    }
}

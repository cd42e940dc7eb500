//! Every environment variable gantry reads, documented once.
//!
//! Code elsewhere refers to these constants instead of spelling variable names, so this file is
//! the complete list of what the environment can change.

/// kaniko's switch for `--no-push`: a Go boolean (`1`, `t`, `true`, `0`, `f`, `false`, ...; see
/// `crate::cli::go_bool`). `--no-push` on the command line wins.
pub const KANIKO_NO_PUSH: &str = "KANIKO_NO_PUSH";
/// kaniko's `--registry-mirror`, a `;`-separated list.
pub const KANIKO_REGISTRY_MIRROR: &str = "KANIKO_REGISTRY_MIRROR";
/// kaniko's `--registry-map`, `from=to` entries separated by `;`.
pub const KANIKO_REGISTRY_MAP: &str = "KANIKO_REGISTRY_MAP";
/// Seconds since the epoch used for every timestamp gantry writes (reproducible builds).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// Set by every CI system: no progress bars.
pub const CI: &str = "CI";
/// <https://no-color.org>: no colour in logs.
pub const NO_COLOR: &str = "NO_COLOR";
/// Directory holding `config.json` with registry credentials.
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// Where gantry keeps its work directories (default: the system temporary directory).
pub const GANTRY_WORK_DIR: &str = "GANTRY_WORK_DIR";

/// Seconds a registry connection may go without a byte moving either way before gantry gives up
/// on that attempt and retries it like a dropped connection (default 60). An idle timeout, not a
/// total one: a slow transfer that keeps moving is never cut. Read by `crate::registry` only.
pub const GANTRY_REGISTRY_IDLE_TIMEOUT: &str = "GANTRY_REGISTRY_IDLE_TIMEOUT";

/// Set to `1` to snapshot RUN steps by comparing metadata walks even where overlayfs works (the
/// way gantry works where overlayfs cannot be mounted); for diagnosis and tests.
pub const GANTRY_NO_OVERLAY: &str = "GANTRY_NO_OVERLAY";

/// The proxy build arguments Docker predefines: taken from the environment only when passed with
/// `--build-arg NAME` and never written into the image history.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Reads a variable, treating an empty value as unset.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------------------------
// CI pipelines (`gantry tags`, `gantry ci build`): read by `crate::ci::pipeline` only.
// ---------------------------------------------------------------------------------------------

/// `true` inside GitHub Actions.
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
/// The event that started the workflow (`push`, `pull_request`, ...).
pub const GITHUB_EVENT_NAME: &str = "GITHUB_EVENT_NAME";
/// Path of the webhook payload JSON (repository data, default branch, PR number, commits).
pub const GITHUB_EVENT_PATH: &str = "GITHUB_EVENT_PATH";
/// The commit the workflow runs on.
pub const GITHUB_SHA: &str = "GITHUB_SHA";
/// The full ref (`refs/heads/main`, `refs/tags/v1`, `refs/pull/1/merge`).
pub const GITHUB_REF: &str = "GITHUB_REF";
/// `owner/repo`.
pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
/// `https://github.com` or the GitHub Enterprise address.
pub const GITHUB_SERVER_URL: &str = "GITHUB_SERVER_URL";
/// The run id, for the run URL.
pub const GITHUB_RUN_ID: &str = "GITHUB_RUN_ID";
/// The user that started the run: the username for ghcr.io.
pub const GITHUB_ACTOR: &str = "GITHUB_ACTOR";
/// The workflow token: the password for ghcr.io (must be passed to the step's env explicitly).
pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
/// File that step outputs are appended to.
pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
/// File that the step's Markdown summary is appended to.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// metadata-action's switch: `true` uses the pull request head SHA instead of the merge commit.
pub const DOCKER_METADATA_PR_HEAD_SHA: &str = "DOCKER_METADATA_PR_HEAD_SHA";
/// metadata-action's short SHA length (default 7 on GitHub, 8 on GitLab); `--short-sha-length` wins.
pub const DOCKER_METADATA_SHORT_SHA_LENGTH: &str = "DOCKER_METADATA_SHORT_SHA_LENGTH";

/// `true` inside GitLab CI.
pub const GITLAB_CI: &str = "GITLAB_CI";
/// How the pipeline started (`push`, `merge_request_event`, `schedule`, `web`, ...).
pub const CI_PIPELINE_SOURCE: &str = "CI_PIPELINE_SOURCE";
/// The tag name, in tag pipelines only.
pub const CI_COMMIT_TAG: &str = "CI_COMMIT_TAG";
/// The branch name, in branch pipelines only (not in tag or merge request pipelines).
pub const CI_COMMIT_BRANCH: &str = "CI_COMMIT_BRANCH";
/// The branch or tag built; in merge request pipelines, the source branch.
pub const CI_COMMIT_REF_NAME: &str = "CI_COMMIT_REF_NAME";
/// The commit built.
pub const CI_COMMIT_SHA: &str = "CI_COMMIT_SHA";
/// The commit time, ISO 8601.
pub const CI_COMMIT_TIMESTAMP: &str = "CI_COMMIT_TIMESTAMP";
/// The project's default branch.
pub const CI_DEFAULT_BRANCH: &str = "CI_DEFAULT_BRANCH";
/// The merge request number (project-level), in merge request pipelines.
pub const CI_MERGE_REQUEST_IID: &str = "CI_MERGE_REQUEST_IID";
/// The merge request's target branch.
pub const CI_MERGE_REQUEST_TARGET_BRANCH_NAME: &str = "CI_MERGE_REQUEST_TARGET_BRANCH_NAME";
/// The merge request's source branch.
pub const CI_MERGE_REQUEST_SOURCE_BRANCH_NAME: &str = "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME";
/// The project's container registry, `host[:port]`.
pub const CI_REGISTRY: &str = "CI_REGISTRY";
/// The project's image name in its registry, `host[:port]/group/project`.
pub const CI_REGISTRY_IMAGE: &str = "CI_REGISTRY_IMAGE";
/// Registry username for this job.
pub const CI_REGISTRY_USER: &str = "CI_REGISTRY_USER";
/// Registry password for this job.
pub const CI_REGISTRY_PASSWORD: &str = "CI_REGISTRY_PASSWORD";
/// The job token; with the user `gitlab-ci-token`, a registry credential when no password is set.
pub const CI_JOB_TOKEN: &str = "CI_JOB_TOKEN";
/// The project's web address (`source` and `url` labels).
pub const CI_PROJECT_URL: &str = "CI_PROJECT_URL";
/// The project's display title (`title` label).
pub const CI_PROJECT_TITLE: &str = "CI_PROJECT_TITLE";
/// The project's path name (`title` label when there is no title).
pub const CI_PROJECT_NAME: &str = "CI_PROJECT_NAME";
/// The project's description (`description` label).
pub const CI_PROJECT_DESCRIPTION: &str = "CI_PROJECT_DESCRIPTION";
/// The job's web address.
pub const CI_JOB_URL: &str = "CI_JOB_URL";

// ---------------------------------------------------------------------------------------------
// Build context sources (`--context git://`, `s3://`, `gs://`, Azure Blob): read by
// `crate::context::source` only.
// ---------------------------------------------------------------------------------------------

/// The user's home directory: where `~/.aws` lives.
pub const HOME: &str = "HOME";
/// git contexts: a token, sent as the HTTP Basic username (kaniko's convention); wins over
/// `GIT_USERNAME`/`GIT_PASSWORD`.
pub const GIT_TOKEN: &str = "GIT_TOKEN";
/// git contexts: HTTP Basic username.
pub const GIT_USERNAME: &str = "GIT_USERNAME";
/// git contexts: HTTP Basic password.
pub const GIT_PASSWORD: &str = "GIT_PASSWORD";
/// A PEM bundle of CA certificates that git contexts trust (OpenSSL's variable).
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// S3 contexts: access key id.
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// S3 contexts: secret access key.
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// S3 contexts: session token of temporary credentials.
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// S3 contexts: the profile of the shared credentials and config files (default `default`).
pub const AWS_PROFILE: &str = "AWS_PROFILE";
/// S3 contexts: the shared credentials file (default `~/.aws/credentials`).
pub const AWS_SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
/// S3 contexts: the shared config file (default `~/.aws/config`), for the region.
pub const AWS_CONFIG_FILE: &str = "AWS_CONFIG_FILE";
/// S3 contexts: the region (default: the profile's, else `us-east-1`).
pub const AWS_REGION: &str = "AWS_REGION";
/// S3 contexts: the region when `AWS_REGION` is unset.
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// kaniko's S3-compatible endpoint, e.g. `http://minio:9000`.
pub const S3_ENDPOINT: &str = "S3_ENDPOINT";
/// kaniko's switch for path-style bucket addressing (`true`), which most S3-compatible stores need.
pub const S3_FORCE_PATH_STYLE: &str = "S3_FORCE_PATH_STYLE";
/// GCS contexts: a service-account (or authorized-user) JSON key file.
pub const GOOGLE_APPLICATION_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// GCS contexts: a custom endpoint (`host:port` or a URL), as Google's client libraries read it
/// for emulators; no credentials are needed then.
pub const STORAGE_EMULATOR_HOST: &str = "STORAGE_EMULATOR_HOST";
/// Azure Blob contexts: the storage account key (SharedKey authentication).
pub const AZURE_STORAGE_ACCESS_KEY: &str = "AZURE_STORAGE_ACCESS_KEY";
/// Azure Blob contexts: a connection string; its `BlobEndpoint` is the custom endpoint (Azurite),
/// its `AccountKey` the key, and `UseDevelopmentStorage=true` means Azurite's defaults.
pub const AZURE_STORAGE_CONNECTION_STRING: &str = "AZURE_STORAGE_CONNECTION_STRING";

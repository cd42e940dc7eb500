//! The one error type of the registry module.
//!
//! Every variant carries what a user needs to act on it as data (registry host, repository, the
//! operation that failed, the HTTP status), and its message ends with a `hint:` line when there is
//! a fix to suggest. Credentials and tokens never appear in any variant.

use std::path::PathBuf;

/// What gantry was doing when a registry call failed ("pull manifest", "push blob", ...).
pub type Operation = &'static str;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "invalid image reference `{reference}`: {reason}\nhint: references look like \
         [registry[:port]/]name[:tag][@sha256:<64 hex>], with a lower-case name made of \
         [a-z0-9] separated by `.`, `_`, `__`, `-` or `/`"
    )]
    InvalidReference { reference: String, reason: String },

    #[error(
        "cannot reach registry `{registry}` to {operation}: {detail}\nhint: check the address and \
         that the registry is running; for a registry without TLS use \
         --insecure-registry={registry}, for a private CA use --registry-certificate \
         {registry}=ca.pem (or --skip-tls-verify-registry={registry})"
    )]
    Unreachable {
        registry: String,
        operation: Operation,
        detail: String,
    },

    #[error(
        "registry `{registry}` stopped responding to {operation} `{repository}`: nothing was \
         sent or received for {} s (idle timeout)\nhint: the registry or a proxy in front of it \
         stalled; allow retries (--push-retry, --image-download-retry), or raise \
         GANTRY_REGISTRY_IDLE_TIMEOUT (seconds) for a registry that is slow to answer",
        idle.as_secs_f64()
    )]
    Stalled {
        registry: String,
        repository: String,
        operation: Operation,
        idle: std::time::Duration,
    },

    #[error(
        "registry `{registry}` answered in plain HTTP when gantry asked over HTTPS to \
         {operation} `{repository}`\nhint: gantry uses HTTPS unless told otherwise; for a \
         registry without TLS pass --insecure-registry={registry} (or --insecure for every \
         push, --insecure-pull for every pull)"
    )]
    PlainHttp {
        registry: String,
        repository: String,
        operation: Operation,
    },

    #[error(
        "registry `{registry}` {how} `{url}` while trying to {operation}: plain HTTP after HTTPS, \
         refused so that nothing (credentials included) travels unencrypted\nhint: if `{host}` \
         really serves only plain HTTP, allow it with --insecure-registry={host}"
    )]
    Downgrade {
        registry: String,
        operation: Operation,
        /// "redirected", "named the token service", ...
        how: &'static str,
        /// The refused URL without its query (which may hold a signature).
        url: String,
        host: String,
    },

    #[error(
        "registry `{registry}` refused to {operation} `{repository}`: 401 Unauthorized{}\nhint: \
         check the credentials for `{registry}` in config.json (docker login {registry}) or the \
         credentials given to gantry",
        message_suffix(message)
    )]
    Unauthorized {
        registry: String,
        repository: String,
        operation: Operation,
        message: String,
    },

    #[error(
        "registry `{registry}` refused to {operation} `{repository}`: 403 Forbidden{}\nhint: the \
         credentials lack {permission} permission on the repository `{repository}`",
        message_suffix(message)
    )]
    Forbidden {
        registry: String,
        repository: String,
        operation: Operation,
        /// `pull` or `push`: what the call needed.
        permission: &'static str,
        message: String,
    },

    #[error(
        "registry `{registry}` has no {what} for `{repository}` (404 Not Found, {operation}){}\n\
         hint: check that the name and tag exist",
        message_suffix(message)
    )]
    NotFound {
        registry: String,
        repository: String,
        operation: Operation,
        what: String,
        message: String,
    },

    #[error(
        "registry `{registry}` answered {status} to {operation} `{repository}`{}",
        message_suffix(message)
    )]
    Status {
        registry: String,
        repository: String,
        operation: Operation,
        status: u16,
        message: String,
    },

    #[error("registry `{registry}` sent a bad answer to {operation} `{repository}`: {reason}")]
    InvalidResponse {
        registry: String,
        repository: String,
        operation: Operation,
        reason: String,
    },

    #[error(
        "`{reference}` has no image for platform `{wanted}`; available: {}\nhint: choose one of \
         the available platforms with --custom-platform",
        if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    NoMatchingPlatform {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },

    #[error(
        "{what} from `{registry}/{repository}` has digest `{actual}`, expected `{expected}`\n\
         hint: the registry or a proxy altered the content; retry, or check the mirror"
    )]
    DigestMismatch {
        registry: String,
        repository: String,
        what: String,
        expected: String,
        actual: String,
    },

    #[error(
        "blob `{digest}` from `{registry}/{repository}` is {actual} bytes, expected {expected}"
    )]
    SizeMismatch {
        registry: String,
        repository: String,
        digest: String,
        expected: u64,
        actual: u64,
    },

    #[error("cannot authenticate to `{registry}` with token service `{realm}`: {reason}")]
    TokenService {
        registry: String,
        realm: String,
        reason: String,
    },

    #[error("{action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "cannot use docker config `{}`: {reason}\nhint: fix or remove the file, or point \
         DOCKER_CONFIG at a valid one",
        path.display()
    )]
    DockerConfig { path: PathBuf, reason: String },

    #[error(
        "credential helper `docker-credential-{helper}` failed for `{server}`: {reason}\nhint: \
         check that `docker-credential-{helper}` is on PATH and works: echo {server} | \
         docker-credential-{helper} get"
    )]
    CredentialHelper {
        helper: String,
        server: String,
        reason: String,
    },

    #[error(
        "cannot use TLS material `{}` for `{registry}`: {reason}\nhint: give a PEM file \
         (--registry-certificate host=ca.pem, --registry-client-cert host=cert.pem,key.pem)",
        path.display()
    )]
    Tls {
        registry: String,
        path: PathBuf,
        reason: String,
    },

    #[error(
        "GANTRY_REGISTRY_IDLE_TIMEOUT is `{value}`, not a whole number of seconds above zero\n\
         hint: set e.g. GANTRY_REGISTRY_IDLE_TIMEOUT=120, or unset it for the default of 60 s"
    )]
    BadIdleTimeout { value: String },

    #[error("cannot set up the HTTP client for `{registry}`: {detail}")]
    HttpClient { registry: String, detail: String },
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// The error and its sources on one line, for errors from the HTTP stack whose `Display` alone
/// ("error sending request") says too little.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

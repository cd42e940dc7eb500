//! Command-line definitions. The help text of every flag lives here.
//!
//! `gantry build` keeps kaniko's executor flag names and meanings so that scripts written for
//! `/kaniko/executor` run unchanged. Boolean flags take kaniko's forms: `--flag` alone, or
//! `--flag=VALUE` with any value Go's `strconv.ParseBool` accepts (kaniko parses its flags and
//! `KANIKO_NO_PUSH` with it), and nothing else.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::env;

/// The values Go's `strconv.ParseBool` accepts, which is what kaniko (pflag) parses
/// `--flag=VALUE` and its boolean environment variables with.
pub const GO_BOOL_TRUE: &[&str] = &["1", "t", "T", "TRUE", "true", "True"];
/// See [`GO_BOOL_TRUE`].
pub const GO_BOOL_FALSE: &[&str] = &["0", "f", "F", "FALSE", "false", "False"];

/// Parses a boolean exactly as Go's `strconv.ParseBool`: `1 t T TRUE true True` and
/// `0 f F FALSE false False`; anything else (`yes`, `on`, `tRuE`, ` true`) is an error.
pub fn go_bool(raw: &str) -> Result<bool, String> {
    if GO_BOOL_TRUE.contains(&raw) {
        Ok(true)
    } else if GO_BOOL_FALSE.contains(&raw) {
        Ok(false)
    } else {
        Err(format!(
            "`{raw}` is not a boolean\nhint: use one of {} (true) or {} (false)",
            GO_BOOL_TRUE.join(", "),
            GO_BOOL_FALSE.join(", ")
        ))
    }
}

/// [`go_bool`] for `--no-push`, whose value may come from `KANIKO_NO_PUSH`: the message names
/// both, since clap's names only the flag.
fn no_push_bool(raw: &str) -> Result<bool, String> {
    go_bool(raw).map_err(|e| {
        e.replacen(
            " is not a boolean",
            &format!(
                " is not a boolean (the value of --no-push or {})",
                env::KANIKO_NO_PUSH
            ),
            1,
        )
    })
}

#[derive(Debug, Parser)]
#[command(
    name = "gantry",
    version,
    about = "Build container images in CI without a Docker daemon",
    long_about = "Build container images in CI without a Docker daemon.\n\n\
        `gantry build` takes kaniko's executor flags; called through a link named `executor`, \
        the binary behaves as `gantry build`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a Dockerfile and push the image to every --destination (kaniko's executor).
    Build(Box<BuildArgs>),
    /// Print image tags and OCI labels derived from the CI pipeline (docker/metadata-action's rules).
    #[command(after_help = TAGS_AFTER_HELP)]
    Tags(Box<TagsArgs>),
    /// Commands that take everything from the CI pipeline.
    #[command(subcommand)]
    Ci(CiCommand),
    /// Push a multi-architecture index (manifest-tool's `push from-args|from-spec`) or show one.
    Manifest(Box<ManifestArgs>),
    /// Download base-image layers into a --cache-dir ahead of builds (kaniko's warmer).
    Warm(Box<WarmArgs>),
    /// Internal: runs one RUN command in the sandbox (gantry re-executes itself with this).
    #[command(name = "sandbox-helper", hide = true)]
    SandboxHelper,
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Color,
    Json,
}

/// kaniko's log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Verbosity {
    Panic,
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Build")]
pub struct BuildArgs {
    /// Build context: a directory (`dir://path` or a bare path), `tar://path.tar.gz`, `tar://stdin`,
    /// `git://host/repo.git[#ref[#commit]]`, `s3://bucket/key.tar.gz`, `gs://bucket/key.tar.gz` or
    /// `https://account.blob.core.windows.net/container/key.tar.gz`.
    #[arg(short = 'c', long, default_value = ".", value_name = "CONTEXT")]
    pub context: String,

    /// Options of a git context: `branch=NAME,single-branch=BOOL,recurse-submodules=BOOL,insecure-skip-tls=BOOL`.
    #[arg(long, action = ArgAction::Append, value_name = "OPTIONS")]
    pub git: Vec<String>,

    /// Sub-directory of the context to use as the build context.
    #[arg(long, value_name = "PATH")]
    pub context_sub_path: Option<String>,

    /// Path to the Dockerfile (relative to the working directory, or else to the context).
    #[arg(short = 'f', long, default_value = "Dockerfile", value_name = "PATH")]
    pub dockerfile: String,

    /// Registry and tag to push the image to (repeatable).
    #[arg(short = 'd', long, action = ArgAction::Append, value_name = "IMAGE")]
    pub destination: Vec<String>,

    /// Build argument KEY=VALUE, or KEY to take the value from the environment (repeatable).
    #[arg(long, action = ArgAction::Append, value_name = "KEY[=VALUE]")]
    pub build_arg: Vec<String>,

    /// Label KEY=VALUE added to the final image (repeatable).
    #[arg(long, action = ArgAction::Append, value_name = "KEY=VALUE")]
    pub label: Vec<String>,

    /// Build this stage (by name) and stop; it becomes the image.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Build only the stages the target needs.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub skip_unused_stages: bool,

    /// Platform to build for, os/arch[/variant] (default: the host's).
    #[arg(long, value_name = "PLATFORM")]
    pub custom_platform: Option<String>,

    /// Set every timestamp to the epoch (or SOURCE_DATE_EPOCH) so equal inputs give equal digests.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub reproducible: bool,

    #[command(flatten)]
    pub run: RunFlags,

    #[command(flatten)]
    pub cache: CacheFlags,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

/// How RUN steps are isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    /// chroot when namespaces work, else in-place inside gantry's own image.
    Auto,
    /// New mount, PID, UTS and IPC namespaces, chrooted into the image's root filesystem.
    Chroot,
    /// kaniko's way: unpack over `/` and run there (only inside gantry's image, or with --force).
    InPlace,
}

/// kaniko's `--snapshot-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SnapshotModeArg {
    Full,
    Redo,
    Time,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "RUN")]
pub struct RunFlags {
    /// How RUN commands are isolated.
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE")]
    pub isolation: IsolationArg,

    /// Allow in-place isolation outside gantry's own image (it overwrites the root filesystem).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub force: bool,

    /// Extra attempts when unpacking a layer fails.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub image_fs_extract_retry: u32,

    /// How a RUN's changes are found where overlayfs is not available: `full` (any metadata
    /// change, including ctime and inode), `redo` (size, mode, owners, mtime) or `time` (mtime).
    #[arg(long, value_enum, default_value = "full", value_name = "MODE")]
    pub snapshot_mode: SnapshotModeArg,

    /// Path never snapshotted (nor unpacked over in place), repeatable.
    #[arg(long, action = ArgAction::Append, value_name = "PATH")]
    pub ignore_path: Vec<PathBuf>,

    /// Keep /var/run out of in-place snapshots (kaniko's default).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub ignore_var_run: bool,

    /// Empty the root filesystem RUN used once the build is done. With in-place isolation that
    /// is `/` (gantry's own files, /workspace, mounts and --ignore-path kept), so the container
    /// can run another build; with chroot it is in the work directory, which is always removed.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub cleanup: bool,

    /// Merge every layer the final stage adds on top of its base into one.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub single_snapshot: bool,

    /// kaniko's switch for detecting RUN changes without a full filesystem snapshot. gantry always
    /// does this (the overlay upper directory is the diff), so the flag is accepted and changes
    /// nothing.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub use_new_run: bool,
}

/// `gantry warm`.
#[derive(Debug, Args)]
pub struct WarmArgs {
    /// Directory to fill with base-image layers (`blobs/sha256/<hex>`), shared with builds'
    /// --cache-dir.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: PathBuf,

    /// Image to warm (repeatable).
    #[arg(short = 'i', long, action = ArgAction::Append, value_name = "IMAGE")]
    pub image: Vec<String>,

    /// Also warm every image this Dockerfile's stages start FROM.
    #[arg(short = 'f', long, value_name = "PATH")]
    pub dockerfile: Option<PathBuf>,

    /// Build argument KEY=VALUE for the Dockerfile's global ARGs (repeatable).
    #[arg(long, action = ArgAction::Append, value_name = "KEY=VALUE")]
    pub build_arg: Vec<String>,

    /// Platform whose images to warm, os/arch[/variant] (default: the host's).
    #[arg(long, value_name = "PLATFORM")]
    pub custom_platform: Option<String>,

    /// Download layers again even when the directory has them.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub force: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Layer cache")]
pub struct CacheFlags {
    /// Directory of base-image layers (filled by `gantry warm`, and by builds with what they
    /// download): base layers found there are not pulled from the network.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Reuse the layers of RUN (and, with --cache-copy-layers, COPY/ADD) steps from a registry
    /// repository, and store new ones there. Each step logs a cache hit, miss or skip, and why.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub cache: bool,

    /// Repository of the layer cache (default: `<first destination's repository>/cache`). It holds
    /// one tag, `gantry-cache-v1`, whatever the number of builds.
    #[arg(long, value_name = "REPO")]
    pub cache_repo: Option<String>,

    /// How long a cache entry stays usable (Go duration: `336h`, `24h30m`, `90s`).
    #[arg(long, default_value = "336h", value_name = "DURATION")]
    pub cache_ttl: String,

    /// Cache RUN layers (kaniko's default), and those of WORKDIR (which kaniko does not cache).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub cache_run_layers: bool,

    /// Cache COPY and ADD layers too, keyed on the content and metadata of the files they copy
    /// (after .dockerignore): a hit reads the sources to hash them but writes and uploads no
    /// layer.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub cache_copy_layers: bool,

    /// Compress the layers of cached steps (the default). `false` stores them uncompressed
    /// (`…layer.v1.tar`), in the cache repository and the image alike: no compression time,
    /// larger blobs. (kaniko's `false` only stops keeping compressed layers in memory; gantry
    /// never holds a layer in memory.)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub compressed_caching: bool,

    /// Read the layer cache but do not write new entries to it.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub no_push_cache: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Build the image but push nothing.
    #[arg(long, env = env::KANIKO_NO_PUSH, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = no_push_bool, value_name = "BOOL")]
    pub no_push: bool,

    /// Write the image as a docker-archive tarball (`podman load`, `docker load`).
    #[arg(long, value_name = "PATH")]
    pub tar_path: Option<PathBuf>,

    /// Write the image into an OCI image layout directory.
    #[arg(long, value_name = "DIR")]
    pub oci_layout_path: Option<PathBuf>,

    /// Write the image digest to this file.
    #[arg(long, value_name = "PATH")]
    pub digest_file: Option<PathBuf>,

    /// Write `<destination repository>@<digest>` for every destination to this file.
    #[arg(long, value_name = "PATH")]
    pub image_name_with_digest_file: Option<PathBuf>,

    /// Write `<destination>@<digest>` (with tag) for every destination to this file.
    #[arg(long, value_name = "PATH")]
    pub image_name_tag_with_digest_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Registries")]
pub struct RegistryArgs {
    /// Push to insecure registries over plain HTTP.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub insecure: bool,

    /// Pull from insecure registries over plain HTTP.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub insecure_pull: bool,

    /// Registry (host[:port]) to reach over plain HTTP, for pulls and pushes (repeatable).
    #[arg(long, action = ArgAction::Append, value_name = "REGISTRY")]
    pub insecure_registry: Vec<String>,

    /// Push without verifying the registry's TLS certificate.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub skip_tls_verify: bool,

    /// Pull without verifying the registry's TLS certificate.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub skip_tls_verify_pull: bool,

    /// Registry whose TLS certificate is not verified, for pulls and pushes (repeatable).
    #[arg(long, action = ArgAction::Append, value_name = "REGISTRY")]
    pub skip_tls_verify_registry: Vec<String>,

    /// CA certificate for a registry, REGISTRY=PATH (repeatable).
    #[arg(long, action = ArgAction::Append, value_name = "REGISTRY=PATH")]
    pub registry_certificate: Vec<String>,

    /// Client certificate for a registry, REGISTRY=CERT,KEY (repeatable).
    #[arg(long, action = ArgAction::Append, value_name = "REGISTRY=CERT,KEY")]
    pub registry_client_cert: Vec<String>,

    /// Mirror to pull docker.io images from (repeatable; tried in order).
    #[arg(long, env = env::KANIKO_REGISTRY_MIRROR, value_delimiter = ';', action = ArgAction::Append, value_name = "MIRROR")]
    pub registry_mirror: Vec<String>,

    /// Pull images of one registry from another, FROM=TO (repeatable; `;` separates entries).
    #[arg(long, env = env::KANIKO_REGISTRY_MAP, value_delimiter = ';', action = ArgAction::Append, value_name = "FROM=TO")]
    pub registry_map: Vec<String>,

    /// Fail instead of falling back to the original registry when every mirror fails.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub skip_default_registry_fallback: bool,

    /// Extra attempts for a failed push operation.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub push_retry: u32,

    /// Extra attempts for a failed image download.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub image_download_retry: u32,

    /// Treat a rejected push of an existing immutable tag as success.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub push_ignore_immutable_tag_errors: bool,

    /// Do not check push permission on every destination before building.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub skip_push_permission_check: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log level.
    #[arg(
        short = 'v',
        long,
        value_enum,
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub verbosity: Verbosity,

    /// Log format.
    #[arg(long, value_enum, default_value = "color", value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// Prefix log lines with a timestamp.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub log_timestamp: bool,
}

/// kaniko executor flags that gantry does not implement yet. Passing one is an error that says
/// so, rather than a flag that is accepted and ignored.
pub const UNSUPPORTED_KANIKO_FLAGS: &[&str] = &[
    "compression",
    "compression-level",
    "kaniko-dir",
    "materialize",
    "preserve-context",
];

/// Finds the first kaniko flag in `args` that gantry does not support yet.
pub fn unsupported_kaniko_flag(args: &[String]) -> Option<&'static str> {
    for arg in args {
        if arg == "--" {
            break;
        }
        let Some(name) = arg.strip_prefix("--") else {
            continue;
        };
        let name = name.split('=').next().unwrap_or(name);
        if let Some(flag) = UNSUPPORTED_KANIKO_FLAGS.iter().find(|f| **f == name) {
            return Some(flag);
        }
    }
    None
}

/// `gantry manifest`: manifest-tool's interface. Its global flags are accepted anywhere after
/// `manifest`, before or after the subcommand.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[command(flatten)]
    pub global: ManifestGlobalArgs,

    #[command(subcommand)]
    pub command: ManifestCommand,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Registry access")]
pub struct ManifestGlobalArgs {
    /// Registry user name for the target's registry (with --password).
    #[arg(long, global = true, value_name = "USER")]
    pub username: Option<String>,

    /// Registry password or token for the target's registry (with --username).
    #[arg(long, global = true, value_name = "PASSWORD")]
    pub password: Option<String>,

    /// Docker config: a directory holding config.json, or the file itself.
    #[arg(long, global = true, value_name = "PATH")]
    pub docker_cfg: Option<PathBuf>,

    /// Do not verify registries' TLS certificates.
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub insecure: bool,

    /// Talk plain HTTP to the registries involved (target and sources).
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub plain_http: bool,

    /// Debug logging.
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub debug: bool,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Push a manifest list / OCI index built from per-platform images.
    Push(ManifestPushArgs),
    /// Show a manifest or index: readable, or the exact bytes with --raw.
    Inspect(ManifestInspectArgs),
}

/// `--type`: which kind of index to push.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ManifestType {
    /// A Docker v2.2 manifest list.
    Docker,
    /// An OCI v1 image index.
    Oci,
}

#[derive(Debug, Args)]
pub struct ManifestPushArgs {
    /// Index type: docker (v2.2 manifest list) or oci (v1 index).
    #[arg(
        long = "type",
        global = true,
        value_enum,
        default_value = "docker",
        value_name = "TYPE"
    )]
    pub kind: ManifestType,

    #[command(subcommand)]
    pub command: ManifestPushCommand,
}

#[derive(Debug, Subcommand)]
pub enum ManifestPushCommand {
    /// Name the per-platform images with a template and a list of platforms.
    FromArgs(ManifestFromArgs),
    /// Read the target, tags and per-platform images from a manifest-tool YAML spec.
    FromSpec(ManifestFromSpec),
}

#[derive(Debug, Args)]
pub struct ManifestFromArgs {
    /// Platforms os/arch[/variant], comma-separated or repeated.
    #[arg(long, required = true, action = ArgAction::Append, value_name = "PLATFORMS")]
    pub platforms: Vec<String>,

    /// Source image pattern; the first ARCH, OS and VARIANT are replaced per platform.
    #[arg(long, required = true, value_name = "TEMPLATE")]
    pub template: String,

    /// The index to push (repository:tag).
    #[arg(long, required = true, value_name = "IMAGE")]
    pub target: String,

    /// Extra tags for the index in the target's repository, comma-separated or repeated.
    #[arg(long, action = ArgAction::Append, value_name = "TAGS")]
    pub tags: Vec<String>,

    /// Index annotation key=value (OCI indexes only; repeatable).
    #[arg(long, action = ArgAction::Append, value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,

    /// Warn and skip a source image that does not exist.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub ignore_missing: bool,
}

#[derive(Debug, Args)]
pub struct ManifestFromSpec {
    /// The YAML spec file.
    #[arg(value_name = "FILE.yaml")]
    pub file: PathBuf,

    /// Warn and skip a source image that does not exist.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub ignore_missing: bool,
}

#[derive(Debug, Args)]
pub struct ManifestInspectArgs {
    /// The image, manifest or index to show.
    #[arg(value_name = "REF")]
    pub reference: String,

    /// Print the exact bytes the registry serves.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub raw: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> BuildArgs {
        let mut full = vec!["gantry", "build"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Build(b) => *b,
            other => panic!("not a build: {other:?}"),
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn kaniko_boolean_forms() {
        assert!(parse(&["--no-push"]).output.no_push);
        assert!(parse(&["--no-push=true"]).output.no_push);
        assert!(!parse(&["--no-push=false"]).output.no_push);
        assert!(!parse(&[]).output.no_push);
        // A bare boolean does not swallow the next argument.
        let b = parse(&["--reproducible", "-d", "r/x:1"]);
        assert!(b.reproducible);
        assert_eq!(b.destination, vec!["r/x:1"]);
    }

    #[test]
    fn boolean_values_are_exactly_go_parse_bool() {
        for v in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(go_bool(v), Ok(true), "{v}");
            assert!(parse(&[&format!("--no-push={v}")]).output.no_push, "{v}");
            assert!(parse(&[&format!("--reproducible={v}")]).reproducible, "{v}");
        }
        for v in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(go_bool(v), Ok(false), "{v}");
            assert!(
                !parse(&[&format!("--cache-run-layers={v}")])
                    .cache
                    .cache_run_layers
            );
        }
        for v in [
            "", "yes", "no", "on", "off", "tRUE", "fALSE", "2", " true", "true ",
        ] {
            let err = go_bool(v).unwrap_err();
            assert!(err.starts_with(&format!("`{v}` is not a boolean")), "{err}");
            assert!(
                err.contains("\nhint: use one of 1, t, T, TRUE, true, True"),
                "{err}"
            );
            let mut full = vec!["gantry", "build"];
            let flag = format!("--insecure={v}");
            full.push(&flag);
            let err = Cli::try_parse_from(full).unwrap_err().to_string();
            assert!(err.contains(&format!("`{v}` is not a boolean")), "{err}");
        }
    }

    #[test]
    fn every_boolean_flag_takes_go_booleans() {
        // Walk the whole command tree: a BOOL flag added later without `go_bool` fails here.
        fn walk(cmd: &clap::Command, path: &str, seen: &mut usize) {
            for arg in cmd.get_arguments() {
                let is_bool = arg
                    .get_value_names()
                    .is_some_and(|names| names.iter().any(|n| n == "BOOL"));
                if !is_bool {
                    continue;
                }
                *seen += 1;
                let long = arg.get_long().expect("boolean flags are long flags");
                let alone = clap::Command::new("t").arg(arg.clone().global(false));
                let parsed = alone
                    .clone()
                    .try_get_matches_from(["t", &format!("--{long}=T")])
                    .unwrap_or_else(|e| panic!("{path} --{long}=T: {e}"));
                assert_eq!(parsed.get_one::<bool>(arg.get_id().as_str()), Some(&true));
                let refused = alone.try_get_matches_from(["t", &format!("--{long}=yes")]);
                assert!(refused.is_err(), "{path} --{long} accepts `yes`");
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), seen);
            }
        }
        let mut seen = 0;
        walk(&Cli::command(), "gantry", &mut seen);
        assert!(seen >= 30, "only {seen} boolean flags found");
    }

    #[test]
    fn repeatable_flags_and_short_names() {
        let b = parse(&[
            "-d",
            "a:1",
            "--destination=b:2",
            "-f",
            "x/Dockerfile",
            "-c",
            "dir://ctx",
        ]);
        assert_eq!(b.destination, vec!["a:1", "b:2"]);
        assert_eq!(b.dockerfile, "x/Dockerfile");
        assert_eq!(b.context, "dir://ctx");
    }

    #[test]
    fn unsupported_flags_are_found() {
        let args: Vec<String> = ["--materialize=true", "-d", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(unsupported_kaniko_flag(&args), Some("materialize"));
        let args: Vec<String> = ["--compression", "zstd"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(unsupported_kaniko_flag(&args), Some("compression"));
        let args: Vec<String> = ["--no-push"].iter().map(|s| s.to_string()).collect();
        assert_eq!(unsupported_kaniko_flag(&args), None);
    }

    #[test]
    fn manifest_global_flags_are_accepted_anywhere_after_manifest() {
        let forms: [&[&str]; 3] = [
            &[
                "gantry",
                "manifest",
                "--plain-http",
                "--username",
                "u",
                "push",
                "--type",
                "oci",
                "from-args",
            ],
            &[
                "gantry",
                "manifest",
                "push",
                "--plain-http",
                "from-args",
                "--type=oci",
                "--username=u",
            ],
            &[
                "gantry",
                "manifest",
                "push",
                "from-args",
                "--type",
                "oci",
                "--username",
                "u",
                "--plain-http",
            ],
        ];
        for form in forms {
            let mut args = form.to_vec();
            args.extend([
                "--platforms",
                "linux/amd64",
                "--template",
                "r/a:ARCH",
                "--target",
                "r/a:1",
            ]);
            let Command::Manifest(m) = Cli::try_parse_from(&args).unwrap().command else {
                panic!("not a manifest command: {args:?}");
            };
            assert!(m.global.plain_http, "{args:?}");
            assert_eq!(m.global.username.as_deref(), Some("u"), "{args:?}");
            let ManifestCommand::Push(p) = m.command else {
                panic!("not a push: {args:?}");
            };
            assert_eq!(p.kind, ManifestType::Oci, "{args:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `gantry tags` and `gantry ci build` (src/ci/).
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Build and push with the image name, tags, labels and credentials taken from the pipeline;
    /// every `gantry build` flag passes through.
    Build(Box<CiBuildArgs>),
    /// Stitch the per-architecture images `ci build --per-arch` pushed into one index under
    /// every derived tag (manifest-tool's job).
    Manifest(Box<CiManifestArgs>),
}

/// Built-in rule sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TagPreset {
    /// `latest` on the default branch, the git tag in tag pipelines, the full commit SHA otherwise.
    LatestTagSha,
}

/// How `gantry tags` prints its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TagsFormat {
    /// One full tag reference per line.
    Lines,
    /// `{"tags", "tag-names", "labels", "annotations", "version"}`.
    Json,
    /// A GitLab dotenv report (`GANTRY_VERSION`, `GANTRY_TAGS`, `GANTRY_TAG`).
    Dotenv,
    /// Append metadata-action's outputs to `GITHUB_OUTPUT`.
    Github,
}

/// The tag rules shared by `gantry tags` and `gantry ci build`. Every repeatable flag also
/// accepts a newline-separated list (blank lines and `#` comments are skipped).
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Tags")]
pub struct TagRuleArgs {
    /// Image name, or `name=IMAGE,enable=EXPR` (repeatable).
    #[arg(long = "image", action = ArgAction::Append, value_name = "IMAGE")]
    pub images: Vec<String>,

    /// Tag rule, e.g. `type=semver,pattern={{version}}` (repeatable; default: schedule, branch, tag and pr refs).
    #[arg(long = "tag", action = ArgAction::Append, value_name = "RULE")]
    pub tags: Vec<String>,

    /// Flavor entry: `latest=auto|true|false`, `prefix=P[,onlatest=true]`, `suffix=S[,onlatest=true]` (repeatable).
    #[arg(long = "flavor", action = ArgAction::Append, value_name = "ENTRY")]
    pub flavor: Vec<String>,

    /// Characters of the commit SHA in short SHAs (default: 7 on GitHub, 8 on GitLab).
    #[arg(long, value_name = "N")]
    pub short_sha_length: Option<String>,

    /// Use a built-in rule set instead of --tag/--flavor.
    #[arg(long, value_enum, value_name = "PRESET", conflicts_with_all = ["tags", "flavor"])]
    pub preset: Option<TagPreset>,
}

/// Where `gantry tags` (and `ci build`, `ci manifest`) differ from metadata-action on purpose.
pub const TAGS_AFTER_HELP: &str = "\
Tags Docker would reject are fixed where metadata-action would emit them as they are: a tag may \
not start with `.` or `-` and may be at most 128 characters, so leading `.` and `-` characters \
are removed and a longer tag is cut to 128 characters (e.g. branch `-leading/` gives \
`leading-`, not `-leading-`). A tag left empty is dropped. Each fix is printed as a warning, as \
is every rule given with --tag that yields no tag on this pipeline.";

#[derive(Debug, Args)]
pub struct TagsArgs {
    #[command(flatten)]
    pub rules: TagRuleArgs,

    /// Label KEY=VALUE overriding the derived OCI labels (repeatable; expressions allowed).
    #[arg(long = "label", action = ArgAction::Append, value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "lines", value_name = "FORMAT")]
    pub format: TagsFormat,
}

#[derive(Debug, Args)]
pub struct CiBuildArgs {
    #[command(flatten)]
    pub rules: TagRuleArgs,

    /// Push one tag per architecture named by TEMPLATE instead of the final tags, for a later
    /// `gantry ci manifest` to stitch.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub per_arch: bool,

    /// Push the image to each image repository by digest only, with no tag (build-push-action's
    /// `push-by-digest`); allowed when no tag rule applies. The digest is in the outputs.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub push_by_digest: bool,

    /// Per-architecture tag template: `{{tag}}` (the main tag), `{{arch}}`, `{{variant}}` (empty
    /// for arm64/v8, the canonical arm64), `{{os}}`.
    #[arg(
        long,
        default_value = "{{tag}}-{{arch}}{{variant}}",
        value_name = "TEMPLATE"
    )]
    pub per_arch_template: String,

    /// Where to write the GitLab dotenv report (default on GitLab: `gantry.env`).
    #[arg(long, value_name = "PATH")]
    pub dotenv: Option<PathBuf>,

    /// Build every one of these platforms (os/arch[/variant], comma-separated or repeated) in
    /// this job, push each under its per-architecture tag, then stitch them into one index under
    /// the derived tags.
    #[arg(long, action = ArgAction::Append, value_name = "PLATFORMS", conflicts_with_all = ["per_arch", "custom_platform"])]
    pub platforms: Vec<String>,

    /// Index type for --platforms: docker (v2.2 manifest list) or oci (v1 index).
    #[arg(
        long = "type",
        value_enum,
        default_value = "docker",
        value_name = "TYPE"
    )]
    pub kind: ManifestType,

    #[command(flatten)]
    pub build: BuildArgs,
}

/// `gantry ci manifest`: the tag rules of `gantry ci build`, the platforms to expect, and the
/// registry flags of `gantry build`.
#[derive(Debug, Args)]
pub struct CiManifestArgs {
    #[command(flatten)]
    pub rules: TagRuleArgs,

    /// Platforms whose per-architecture images to stitch, os/arch[/variant] (comma-separated or
    /// repeated; default: linux/amd64,linux/arm64).
    #[arg(long, action = ArgAction::Append, value_name = "PLATFORMS")]
    pub platforms: Vec<String>,

    /// Warn and leave out a platform whose per-architecture image is missing.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub ignore_missing: bool,

    /// Per-architecture tag template, as given to `ci build --per-arch`: `{{tag}}` (the main
    /// tag), `{{arch}}`, `{{variant}}` (empty for arm64/v8, the canonical arm64), `{{os}}`.
    #[arg(
        long,
        default_value = "{{tag}}-{{arch}}{{variant}}",
        value_name = "TEMPLATE"
    )]
    pub per_arch_template: String,

    /// Index type: docker (v2.2 manifest list) or oci (v1 index).
    #[arg(
        long = "type",
        value_enum,
        default_value = "docker",
        value_name = "TYPE"
    )]
    pub kind: ManifestType,

    /// Where to write the GitLab dotenv report (default on GitLab: `gantry.env`).
    #[arg(long, value_name = "PATH")]
    pub dotenv: Option<PathBuf>,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

//! The one error type of the manifest module: every bad input and every failed registry step of
//! `gantry manifest`, with the offending value carried as data.
//!
//! Variants that wrap a [`RegistryError`] keep it as their `source`, so the registry's own hint
//! ends the printed chain; variants about the user's input end with their own `hint:` line.

use std::path::PathBuf;

use crate::registry::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the spec file `{}`: {reason}\nhint: pass the path of a manifest-tool YAML spec", path.display())]
    ReadSpec { path: PathBuf, reason: String },

    #[error(
        "the spec file `{}` is not a valid manifest-tool YAML spec: {reason}\nhint: the keys are \
         `image`, `tags`, `annotations` and `manifests` (each with `image` and `platform`: \
         `architecture`, `os`, `variant`, `osversion`, `osfeatures`)",
        path.display()
    )]
    ParseSpec { path: PathBuf, reason: String },

    #[error("the spec file `{}` has no `{field}`\nhint: add `{field}:` to the spec", path.display())]
    SpecMissing { path: PathBuf, field: &'static str },

    #[error(
        "platform `{value}` is not of the form os/arch or os/arch/variant\nhint: for example \
         --platforms linux/amd64,linux/arm64,linux/arm/v7"
    )]
    BadPlatform { value: String },

    #[error(
        "template `{template}` has no ARCH, OS or VARIANT placeholder, so every platform would \
         name the same image\nhint: write the placeholders where the per-platform images differ, \
         for example --template registry.example/app:v1-ARCHVARIANT"
    )]
    TemplateWithoutPlaceholder { template: String },

    #[error(
        "annotation `{value}` is not of the form key=value (exactly one `=`)\nhint: for example \
         --annotations org.opencontainers.image.title=app"
    )]
    BadAnnotation { value: String },

    #[error(
        "a Docker manifest list cannot carry annotations\nhint: use --type oci to push an OCI \
         index, or drop the annotations"
    )]
    DockerAnnotations,

    #[error("invalid {what} `{value}`")]
    BadReference {
        what: &'static str,
        value: String,
        #[source]
        source: Box<RegistryError>,
    },

    #[error(
        "the target `{target}` names a digest; an index is pushed under a tag\nhint: write the \
         target as repository:tag"
    )]
    TargetHasDigest { target: String },

    #[error("invalid tag `{tag}`: {reason}\nhint: tags are up to 128 characters of [A-Za-z0-9_.-], not starting with `.` or `-`")]
    BadTag { tag: String, reason: String },

    #[error(
        "--username and --password go together; only {given} was given\nhint: pass both, or \
         neither and use --docker-cfg"
    )]
    IncompleteCredentials { given: &'static str },

    #[error("cannot fetch source image `{image}`")]
    MissingSource {
        image: String,
        #[source]
        source: Box<RegistryError>,
    },

    #[error(
        "all entries were skipped because their source images are missing; there is no index to \
         push\nhint: check that the per-platform images were pushed, and their names"
    )]
    AllSkipped,

    #[error("the spec lists no manifests\nhint: list at least one source image under `manifests`")]
    NoManifests,

    #[error(
        "source image `{image}` has media type `{media_type}`, which cannot go into an index\n\
         hint: sources must be Docker schema 2 or OCI manifests, or indexes of them"
    )]
    UnknownMediaType { image: String, media_type: String },

    #[error("source image `{image}` is not a valid {what}: {reason}")]
    InvalidDocument {
        image: String,
        what: &'static str,
        reason: String,
    },

    #[error(
        "source image `{image}` is built for `{actual}`, but the spec says `{given}`\nhint: fix \
         the platform given for `{image}`, or point it at the image built for `{given}`"
    )]
    PlatformContradiction {
        image: String,
        given: String,
        actual: String,
    },

    #[error(
        "the manifest entry for `{image}` has the unsupported os/arch or os/arch/variant \
         combination `{platform}`\nhint: use Go's os/arch names (linux/amd64, linux/arm64, \
         linux/arm/v7, ...); variants are only allowed on linux/arm (v5, v6, v7) and linux/arm64 \
         (v8)"
    )]
    UnsupportedPlatform { image: String, platform: String },

    #[error(
        "cannot include two manifests with the same platform `{platform}`: `{first}` (from \
         `{first_image}`) and `{second}` (from `{second_image}`)\nhint: each platform may appear \
         once; remove one of the sources"
    )]
    DuplicatePlatform {
        platform: String,
        first: String,
        first_image: String,
        second: String,
        second_image: String,
    },

    #[error("cannot {action} `{reference}`")]
    Registry {
        action: &'static str,
        reference: String,
        #[source]
        source: Box<RegistryError>,
    },
}

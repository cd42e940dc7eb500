//! The one module that talks to registries: reference parsing and normalisation, credentials
//! (config.json, helpers, CI), the token dance, TLS and plain-HTTP choices per host, retries,
//! pulls (mirrors, `--registry-map`, platform resolution) and pushes (HEAD, mount, streamed
//! upload, exact manifest bytes).
//!
//! Callers see [`Client`] and plain data types; which request does what stays inside.

mod auth;
mod client;
mod credentials;
mod error;
mod idle;
mod pull;
mod reference;
mod retry;
mod transport;
mod upload;

pub use auth::{parse_challenge, Challenge};
pub use client::Client;
pub use credentials::{find_config, Credential, CredentialStore, DOCKER_CONFIG_ENV};
pub use error::{Operation, RegistryError};
pub use pull::{FetchedManifest, ResolvedImage};
pub use reference::{normalize_registry_host, Reference, DOCKER_HUB, DOCKER_HUB_API};
pub use retry::RetryPolicy;
pub use transport::{Direction, RegistryOptions};
pub use upload::{BlobSource, PushBlob, PushImage};

#[cfg(test)]
mod fake;
#[cfg(test)]
mod host_rules_tests;
#[cfg(test)]
mod protocol_tests;

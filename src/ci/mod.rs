//! CI knowledge in one place (DESIGN decision 7).
//!
//! GitHub Actions and GitLab CI variables (and, outside CI, the local git repository) are read once
//! into a neutral [`Pipeline`]. Tag rules ([`rules`]), the tag algorithm ([`tags`]), labels
//! ([`labels`]) and CI outputs ([`outputs`]) are computed from that description only, so every rule
//! can be tested from a table without touching the process environment.
//!
//! The rule language is docker/metadata-action's, with the same results on the same event. Where
//! gantry deliberately differs, the difference is documented at the line that makes it:
//! tags Docker would reject are fixed ([`tags::fix_for_docker`]), duplicate tags are emitted once,
//! unknown rule attributes and unknown `{{expressions}}` are errors rather than silently ignored.

pub mod ci_build;
pub mod ci_manifest;
pub mod command;
pub mod expr;
pub mod git;
pub mod labels;
pub mod moment;
pub mod outputs;
pub mod pipeline;
pub mod rules;
pub mod tags;
pub mod versions;

pub use pipeline::{Pipeline, Provider};
pub use rules::{Flavor, ImageRule, TagRule};
pub use tags::{Metadata, TagsError};

/// Reads the process environment; tests pass a map instead.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment (an empty value counts as unset).
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        crate::env::var(name)
    }
}

impl Env for std::collections::BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::BTreeMap::get(self, name)
            .filter(|v| !v.is_empty())
            .cloned()
    }
}

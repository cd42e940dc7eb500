//! Build arguments and variable scopes: which ARG and ENV values an instruction can see.

use std::collections::{BTreeMap, BTreeSet};

use crate::image::Platform;

/// The build arguments given on the command line, and which of them a Dockerfile consumed.
#[derive(Debug, Default)]
pub struct BuildArgValues {
    given: BTreeMap<String, String>,
    used: BTreeSet<String>,
}

impl BuildArgValues {
    pub fn new(args: &[(String, String)]) -> BuildArgValues {
        BuildArgValues {
            given: args.iter().cloned().collect(),
            used: BTreeSet::new(),
        }
    }

    /// The value given for `name`, marking it consumed.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let v = self.given.get(name).cloned();
        if v.is_some() {
            self.used.insert(name.to_string());
        }
        v
    }

    /// Arguments given on the command line that no ARG declared.
    pub fn unused(&self) -> Vec<&str> {
        self.given
            .keys()
            .filter(|k| !self.used.contains(*k) && !crate::env::PROXY_ARGS.contains(&k.as_str()))
            .map(String::as_str)
            .collect()
    }

    /// Proxy arguments, which Docker passes to RUN without an ARG declaration.
    pub fn proxies(&self) -> Vec<(String, String)> {
        crate::env::PROXY_ARGS
            .iter()
            .filter_map(|k| self.given.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect()
    }
}

/// The automatic platform arguments (TARGETPLATFORM, BUILDARCH, ...).
pub fn platform_args(target: &Platform, build: &Platform) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    m
}

/// The variables one stage can expand: its ENV (from the config) over its declared ARGs.
#[derive(Clone, Debug, Default)]
pub struct StageScope {
    /// Declared arguments; `None` is declared without a value.
    pub args: BTreeMap<String, Option<String>>,
}

impl StageScope {
    /// Looks `name` up: ENV wins over ARG, as Docker documents.
    pub fn lookup(&self, env: &[String], name: &str) -> Option<String> {
        env_lookup(env, name).or_else(|| self.args.get(name).cloned().flatten())
    }

    /// Arguments with values, for RUN's environment (never written into the config).
    pub fn arg_values(&self) -> Vec<(String, String)> {
        self.args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect()
    }
}

/// Looks a variable up in a `K=V` list (the last definition wins).
pub fn env_lookup(env: &[String], name: &str) -> Option<String> {
    env.iter().rev().find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
}

/// Sets `name=value` in a `K=V` list, replacing an earlier definition in place.
pub fn env_set(env: &mut Vec<String>, name: &str, value: &str) {
    let entry = format!("{name}={value}");
    match env
        .iter_mut()
        .find(|kv| kv.split_once('=').map(|(k, _)| k) == Some(name) || *kv == name)
    {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_wins_over_arg() {
        let mut scope = StageScope::default();
        scope.args.insert("V".into(), Some("arg".into()));
        scope.args.insert("ONLY".into(), Some("a".into()));
        scope.args.insert("EMPTY".into(), None);
        let env = vec!["V=env".to_string()];
        assert_eq!(scope.lookup(&env, "V").as_deref(), Some("env"));
        assert_eq!(scope.lookup(&env, "ONLY").as_deref(), Some("a"));
        assert_eq!(scope.lookup(&env, "EMPTY"), None);
    }

    #[test]
    fn env_set_replaces_in_place() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        env_set(&mut env, "PATH", "/usr/bin:/bin");
        env_set(&mut env, "B", "x=y");
        assert_eq!(env, vec!["PATH=/usr/bin:/bin", "A=1", "B=x=y"]);
        assert_eq!(env_lookup(&env, "B").as_deref(), Some("x=y"));
    }

    #[test]
    fn platform_arguments() {
        let t = Platform::parse("linux/arm/v7").unwrap();
        let b = Platform::parse("linux/amd64").unwrap();
        let m = platform_args(&t, &b);
        assert_eq!(m["TARGETPLATFORM"], "linux/arm/v7");
        assert_eq!(m["TARGETVARIANT"], "v7");
        assert_eq!(m["BUILDARCH"], "amd64");
        assert_eq!(m["BUILDVARIANT"], "");
    }

    #[test]
    fn unused_build_args_are_reported() {
        let mut v = BuildArgValues::new(&[
            ("A".into(), "1".into()),
            ("B".into(), "2".into()),
            ("HTTP_PROXY".into(), "p".into()),
        ]);
        assert_eq!(v.take("A").as_deref(), Some("1"));
        assert_eq!(v.unused(), vec!["B"]);
        assert_eq!(
            v.proxies(),
            vec![("HTTP_PROXY".to_string(), "p".to_string())]
        );
    }
}

//! Metadata instructions: how ENV, LABEL, CMD and the rest change an image config, as Docker does.

use std::collections::BTreeMap;

use crate::build::scope::env_set;
use crate::dockerfile::{self, CommandForm, Healthcheck, InstructionKind};
use crate::image::{Empty, HealthConfig, ImageConfig};

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{0}")]
    Expand(String),
    #[error("invalid port `{0}`\nhint: use PORT, PORT/PROTO or START-END[/PROTO], e.g. 8080/tcp")]
    BadPort(String),
}

fn expand(word: &str, escape: char, lookup: Lookup) -> Result<String, MetadataError> {
    dockerfile::expand_word(word, escape, lookup).map_err(|e| MetadataError::Expand(e.to_string()))
}

fn expand_words(text: &str, escape: char, lookup: Lookup) -> Result<Vec<String>, MetadataError> {
    dockerfile::expand_words(text, escape, lookup).map_err(|e| MetadataError::Expand(e.to_string()))
}

/// The default shell of RUN, CMD and ENTRYPOINT in shell form.
pub const DEFAULT_SHELL: &[&str] = &["/bin/sh", "-c"];

/// Applies one metadata instruction to `config`. COPY, ADD, RUN, ARG and WORKDIR are handled by
/// the executor; passing them here changes nothing.
pub fn apply_metadata(
    config: &mut ImageConfig,
    kind: &InstructionKind,
    escape: char,
    lookup: Lookup,
) -> Result<(), MetadataError> {
    let c = &mut config.config;
    match kind {
        InstructionKind::Env(pairs) => {
            let mut env = c.env.take().unwrap_or_default();
            for (k, v) in pairs {
                // Each pair sees the values set before it on the same line, as Docker does.
                let key = expand(k, escape, lookup)?;
                let value = {
                    let env_now = env.clone();
                    let inner = |name: &str| {
                        crate::build::scope::env_lookup(&env_now, name).or_else(|| lookup(name))
                    };
                    expand(v, escape, &inner)?
                };
                env_set(&mut env, &key, &value);
            }
            c.env = Some(env);
        }
        InstructionKind::Label(pairs) => {
            let labels = c.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in pairs {
                labels.insert(expand(k, escape, lookup)?, expand(v, escape, lookup)?);
            }
        }
        InstructionKind::Maintainer(who) => config.author = Some(who.clone()),
        InstructionKind::User(u) => c.user = Some(expand(u, escape, lookup)?),
        InstructionKind::Expose(ports) => {
            let exposed = c.exposed_ports.get_or_insert_with(BTreeMap::new);
            for raw in ports {
                for word in expand_words(raw, escape, lookup)? {
                    for port in expand_port(&word)? {
                        exposed.insert(port, Empty {});
                    }
                }
            }
        }
        InstructionKind::Volume(vols) => {
            let volumes = c.volumes.get_or_insert_with(BTreeMap::new);
            for raw in vols {
                for v in expand_words(raw, escape, lookup)? {
                    if !v.is_empty() {
                        volumes.insert(v, Empty {});
                    }
                }
            }
        }
        InstructionKind::Cmd(form) => {
            c.cmd = Some(command_vec(form, c.shell.as_deref()));
        }
        InstructionKind::Entrypoint(form) => {
            c.entrypoint = Some(command_vec(form, c.shell.as_deref()));
            // Docker: an ENTRYPOINT resets a CMD inherited from the base image. A CMD set earlier
            // in this stage is cleared too; Docker documents setting CMD after ENTRYPOINT.
            c.cmd = None;
        }
        InstructionKind::Shell(shell) => c.shell = Some(shell.clone()),
        InstructionKind::StopSignal(sig) => c.stop_signal = Some(expand(sig, escape, lookup)?),
        InstructionKind::Healthcheck(hc) => {
            c.healthcheck = Some(match hc {
                Healthcheck::None => HealthConfig {
                    test: vec!["NONE".into()],
                    ..Default::default()
                },
                Healthcheck::Check {
                    test,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } => HealthConfig {
                    test: match test {
                        CommandForm::Exec(args) => std::iter::once("CMD".to_string())
                            .chain(args.iter().cloned())
                            .collect(),
                        CommandForm::Shell(cmd) => vec!["CMD-SHELL".into(), cmd.clone()],
                    },
                    interval: interval.unwrap_or(0),
                    timeout: timeout.unwrap_or(0),
                    start_period: start_period.unwrap_or(0),
                    start_interval: start_interval.unwrap_or(0),
                    retries: retries.unwrap_or(0),
                },
            })
        }
        InstructionKind::Onbuild(trigger) => {
            c.on_build
                .get_or_insert_with(Vec::new)
                .push(trigger.clone());
        }
        InstructionKind::Arg(_)
        | InstructionKind::Workdir(_)
        | InstructionKind::Copy(_)
        | InstructionKind::Add(_)
        | InstructionKind::Run(_) => {}
    }
    Ok(())
}

/// The argv a CMD or ENTRYPOINT stores: exec form as written, shell form wrapped in the shell.
pub fn command_vec(form: &CommandForm, shell: Option<&[String]>) -> Vec<String> {
    match form {
        CommandForm::Exec(args) => args.clone(),
        CommandForm::Shell(cmd) => {
            let mut v: Vec<String> = match shell {
                Some(s) => s.to_vec(),
                None => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
            };
            v.push(cmd.clone());
            v
        }
    }
}

/// `80` → `80/tcp`; `8000-8002/udp` → three ports, as Docker expands EXPOSE ranges.
fn expand_port(word: &str) -> Result<Vec<String>, MetadataError> {
    let (ports, proto) = match word.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (word, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(MetadataError::BadPort(word.into()));
    }
    let parse = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| MetadataError::BadPort(word.into()))
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if end < start {
        return Err(MetadataError::BadPort(word.into()));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `--label` values go on the final image after everything the Dockerfile set.
pub fn apply_cli_labels(config: &mut ImageConfig, labels: &[(String, String)]) {
    if labels.is_empty() {
        return;
    }
    let map = config.config.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in labels {
        map.insert(k.clone(), v.clone());
    }
}

/// RFC 3339 UTC time for `created` fields: the fixed time of a reproducible build, else now.
pub fn timestamp(fixed: Option<i64>) -> String {
    use time::format_description::well_known::Rfc3339;
    let t = match fixed {
        Some(secs) => time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        None => time::OffsetDateTime::now_utc(),
    };
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn ports_expand_like_docker() {
        assert_eq!(expand_port("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(expand_port("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            expand_port("8000-8002").unwrap(),
            vec!["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(expand_port("http").is_err());
        assert!(expand_port("80/icmp").is_err());
    }

    #[test]
    fn entrypoint_resets_cmd_and_shell_form_uses_shell() {
        let mut cfg = ImageConfig::default();
        cfg.config.cmd = Some(vec!["sh".into()]);
        apply_metadata(
            &mut cfg,
            &InstructionKind::Shell(vec!["/bin/bash".into(), "-ec".into()]),
            '\\',
            &none,
        )
        .unwrap();
        apply_metadata(
            &mut cfg,
            &InstructionKind::Entrypoint(CommandForm::Shell("run.sh".into())),
            '\\',
            &none,
        )
        .unwrap();
        assert_eq!(
            cfg.config.entrypoint.as_deref().unwrap(),
            ["/bin/bash", "-ec", "run.sh"]
        );
        assert_eq!(cfg.config.cmd, None);
        apply_metadata(
            &mut cfg,
            &InstructionKind::Cmd(CommandForm::Exec(vec!["--help".into()])),
            '\\',
            &none,
        )
        .unwrap();
        assert_eq!(cfg.config.cmd.as_deref().unwrap(), ["--help"]);
    }

    #[test]
    fn reproducible_time_is_the_epoch() {
        assert_eq!(timestamp(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(Some(1_700_000_000)), "2023-11-14T22:13:20Z");
    }
}

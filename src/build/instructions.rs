//! Metadata instructions: how ENV, LABEL, CMD and the rest change an image config, as Docker does.

use std::collections::BTreeMap;

use crate::build::scope::env_set;
use crate::dockerfile::{self, CommandForm, Healthcheck, InstructionKind};
use crate::image::{Empty, HealthConfig, ImageConfig};

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{0}")]
    Expand(#[from] dockerfile::ExpandError),
    #[error("invalid port `{0}`\nhint: use PORT, PORT/PROTO or START-END[/PROTO], e.g. 8080/tcp")]
    BadPort(String),
}

/// The words of one instruction, expanded with the ARG and ENV values in effect or kept as
/// written: [`InstructionKind::expands_env`] decides, here for metadata instructions and in the
/// executor for ARG, WORKDIR, COPY and ADD, so that table is the only place the choice is made.
#[derive(Clone, Copy)]
pub struct Expander<'a> {
    expands: bool,
    escape: char,
    lookup: Lookup<'a>,
}

impl<'a> Expander<'a> {
    pub fn new(kind: &InstructionKind, escape: char, lookup: Lookup<'a>) -> Expander<'a> {
        Expander {
            expands: kind.expands_env(),
            escape,
            lookup,
        }
    }

    /// The same instruction's expander with another lookup (ENV pairs see earlier pairs).
    pub fn with_lookup<'b>(self, lookup: Lookup<'b>) -> Expander<'b> {
        Expander {
            expands: self.expands,
            escape: self.escape,
            lookup,
        }
    }

    /// One word: quotes removed and variables substituted, or the raw text.
    pub fn word(&self, raw: &str) -> Result<String, dockerfile::ExpandError> {
        if self.expands {
            dockerfile::expand_word(raw, self.escape, self.lookup)
        } else {
            Ok(raw.to_string())
        }
    }

    /// A list of words split after substitution (EXPOSE, VOLUME), or split on blanks as written.
    pub fn words(&self, raw: &str) -> Result<Vec<String>, dockerfile::ExpandError> {
        if self.expands {
            dockerfile::expand_words(raw, self.escape, self.lookup)
        } else {
            Ok(raw.split_whitespace().map(str::to_string).collect())
        }
    }

    fn form(&self, form: &CommandForm) -> Result<CommandForm, dockerfile::ExpandError> {
        Ok(match form {
            CommandForm::Exec(args) => CommandForm::Exec(
                args.iter()
                    .map(|a| self.word(a))
                    .collect::<Result<_, _>>()?,
            ),
            CommandForm::Shell(cmd) => CommandForm::Shell(self.word(cmd)?),
        })
    }
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
    let x = Expander::new(kind, escape, lookup);
    let c = &mut config.config;
    match kind {
        InstructionKind::Env(pairs) => {
            let mut env = c.env.take().unwrap_or_default();
            for (k, v) in pairs {
                // Each pair sees the values set before it on the same line, as Docker does.
                let key = x.word(k)?;
                let value = {
                    let env_now = env.clone();
                    let inner = |name: &str| {
                        crate::build::scope::env_lookup(&env_now, name).or_else(|| lookup(name))
                    };
                    x.with_lookup(&inner).word(v)?
                };
                env_set(&mut env, &key, &value);
            }
            c.env = Some(env);
        }
        InstructionKind::Label(pairs) => {
            let labels = c.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in pairs {
                labels.insert(x.word(k)?, x.word(v)?);
            }
        }
        InstructionKind::Maintainer(who) => config.author = Some(x.word(who)?),
        InstructionKind::User(u) => c.user = Some(x.word(u)?),
        InstructionKind::Expose(ports) => {
            let exposed = c.exposed_ports.get_or_insert_with(BTreeMap::new);
            for raw in ports {
                for word in x.words(raw)? {
                    for port in expand_port(&word)? {
                        exposed.insert(port, Empty {});
                    }
                }
            }
        }
        InstructionKind::Volume(vols) => {
            let volumes = c.volumes.get_or_insert_with(BTreeMap::new);
            for raw in vols {
                for v in x.words(raw)? {
                    if !v.is_empty() {
                        volumes.insert(v, Empty {});
                    }
                }
            }
        }
        InstructionKind::Cmd(form) => {
            c.cmd = Some(command_vec(&x.form(form)?, c.shell.as_deref()));
        }
        InstructionKind::Entrypoint(form) => {
            c.entrypoint = Some(command_vec(&x.form(form)?, c.shell.as_deref()));
            // Docker: an ENTRYPOINT resets a CMD inherited from the base image. A CMD set earlier
            // in this stage is cleared too; Docker documents setting CMD after ENTRYPOINT.
            c.cmd = None;
        }
        InstructionKind::Shell(shell) => {
            c.shell = Some(shell.iter().map(|w| x.word(w)).collect::<Result<_, _>>()?)
        }
        InstructionKind::StopSignal(sig) => c.stop_signal = Some(x.word(sig)?),
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
                    test: match x.form(test)? {
                        CommandForm::Exec(args) => {
                            std::iter::once("CMD".to_string()).chain(args).collect()
                        }
                        CommandForm::Shell(cmd) => vec!["CMD-SHELL".into(), cmd],
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
                .push(x.word(trigger)?);
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
    fn metadata_words_are_expanded_exactly_when_expands_env_says() {
        use crate::dockerfile::Healthcheck;
        let lookup = |n: &str| (n == "V").then(|| "8080".to_string());
        let kinds = vec![
            InstructionKind::Env(vec![("K".into(), "$V".into())]),
            InstructionKind::Label(vec![("k".into(), "${V}".into())]),
            InstructionKind::User("$V".into()),
            InstructionKind::Expose(vec!["$V".into()]),
            InstructionKind::Volume(vec!["/data/$V".into()]),
            InstructionKind::StopSignal("$V".into()),
            InstructionKind::Maintainer("$V".into()),
            InstructionKind::Cmd(CommandForm::Shell("echo $V".into())),
            InstructionKind::Entrypoint(CommandForm::Exec(vec!["echo".into(), "$V".into()])),
            InstructionKind::Shell(vec!["/bin/$V".into()]),
            InstructionKind::Healthcheck(Healthcheck::Check {
                test: CommandForm::Shell("probe $V".into()),
                interval: None,
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: None,
            }),
            InstructionKind::Onbuild("LABEL k=$V".into()),
        ];
        let mut expanding = 0;
        for kind in kinds {
            let mut cfg = ImageConfig::default();
            apply_metadata(&mut cfg, &kind, '\\', &lookup).unwrap();
            let json = String::from_utf8(crate::image::canonical_json(&cfg)).unwrap();
            let expands = kind.expands_env();
            expanding += usize::from(expands);
            assert_eq!(json.contains("8080"), expands, "{}: {json}", kind.keyword());
            assert_eq!(
                json.contains("$V") || json.contains("${V}"),
                !expands,
                "{}: {json}",
                kind.keyword()
            );
        }
        // ENV, LABEL, USER, EXPOSE, VOLUME and STOPSIGNAL expand; the rest keep `$V` for the shell.
        assert_eq!(expanding, 6);
    }

    #[test]
    fn reproducible_time_is_the_epoch() {
        assert_eq!(timestamp(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(Some(1_700_000_000)), "2023-11-14T22:13:20Z");
    }
}

//! `gantry manifest ...`: manifest-tool's flags turned into settings (registry options, the spec,
//! the index type), then resolve, push and print `Digest: <digest> <size>` as manifest-tool does.

use std::io::Write as _;

use anyhow::{Context as _, Result};

use super::push;
use super::{IndexKind, IndexSpec, ManifestError};
use crate::cli::{
    LogFormat, ManifestArgs, ManifestCommand, ManifestGlobalArgs, ManifestPushCommand,
    ManifestType, Verbosity,
};
use crate::registry::{Client, Credential, Reference, RegistryOptions};

pub fn run(args: ManifestArgs) -> Result<()> {
    let verbosity = if args.global.debug {
        Verbosity::Debug
    } else {
        Verbosity::Info
    };
    crate::report::init_logging(verbosity, LogFormat::Text, false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: ManifestArgs) -> Result<()> {
    match args.command {
        ManifestCommand::Push(p) => {
            let kind = match p.kind {
                ManifestType::Docker => IndexKind::Docker,
                ManifestType::Oci => IndexKind::Oci,
            };
            let (spec, ignore_missing) = match p.command {
                ManifestPushCommand::FromArgs(a) => (
                    IndexSpec::from_args(
                        &a.platforms,
                        &a.template,
                        &a.target,
                        &a.tags,
                        &a.annotations,
                    )?,
                    a.ignore_missing,
                ),
                ManifestPushCommand::FromSpec(s) => {
                    (IndexSpec::from_file(&s.file)?, s.ignore_missing)
                }
            };
            let opts = registry_options(&args.global, &spec.image, &push::hosts(&spec))?;
            let client = Client::new(opts)?;
            let (digest, size) = push_spec(&client, &spec, kind, ignore_missing).await?;
            crate::report::data(&format!("Digest: {digest} {size}"));
            Ok(())
        }
        ManifestCommand::Inspect(i) => {
            let reference =
                Reference::parse(&i.reference).map_err(|source| ManifestError::BadReference {
                    what: "image reference",
                    value: i.reference.clone(),
                    source: Box::new(source),
                })?;
            let opts = registry_options(&args.global, &i.reference, &[reference.api_host()])?;
            let client = Client::new(opts)?;
            let fetched = super::inspect::fetch(&client, &reference).await?;
            let mut out = std::io::stdout().lock();
            let written = if i.raw {
                out.write_all(&fetched.bytes)
            } else {
                out.write_all(super::inspect::render(&reference, &fetched).as_bytes())
            };
            written
                .and_then(|()| out.flush())
                .context("writing to stdout")?;
            Ok(())
        }
    }
}

/// Resolves and pushes; returns the index digest and size in bytes.
pub async fn push_spec(
    client: &Client,
    spec: &IndexSpec,
    kind: IndexKind,
    ignore_missing: bool,
) -> Result<(String, usize), ManifestError> {
    let resolved = push::resolve(client, spec, kind, ignore_missing).await?;
    push::push(client, &resolved).await?;
    Ok((resolved.digest.clone(), resolved.bytes.len()))
}

/// manifest-tool's global flags as registry options: credentials for the target's registry,
/// a docker config, no TLS verification (`--insecure`), plain HTTP to every host involved.
pub fn registry_options(
    global: &ManifestGlobalArgs,
    target: &str,
    hosts: &[String],
) -> Result<RegistryOptions, ManifestError> {
    let mut opts = RegistryOptions {
        docker_config: global.docker_cfg.clone(),
        ..Default::default()
    };
    match (&global.username, &global.password) {
        (Some(username), Some(password)) => {
            let target =
                Reference::parse(target).map_err(|source| ManifestError::BadReference {
                    what: "target image",
                    value: target.to_string(),
                    source: Box::new(source),
                })?;
            opts.extra_credentials.push((
                target.registry.clone(),
                Credential::Basic {
                    username: username.clone(),
                    password: password.clone(),
                },
            ));
        }
        (Some(_), None) => {
            return Err(ManifestError::IncompleteCredentials {
                given: "--username",
            })
        }
        (None, Some(_)) => {
            return Err(ManifestError::IncompleteCredentials {
                given: "--password",
            })
        }
        (None, None) => {}
    }
    if global.insecure {
        opts.skip_tls_verify_pull = true;
        opts.skip_tls_verify_push = true;
    }
    if global.plain_http {
        opts.insecure_registries = hosts.to_vec();
    }
    Ok(opts)
}

//! `gantry build`: resolve settings, build, write outputs, summarise.

use std::time::Instant;

use anyhow::{Context as _, Result};
use tracing::info;

use crate::build::executor::Builder;
use crate::cli::BuildArgs;
use crate::registry::Client;
use crate::settings::{self, BuildSettings};

pub fn run(args: BuildArgs) -> Result<()> {
    let (verbosity, format, timestamp) = settings::log_settings(&args.log);
    crate::report::init_logging(verbosity, format, timestamp);
    let settings = BuildSettings::resolve(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(async {
            crate::interrupt::install();
            build(settings).await
        })
        .map(|_digest| ())
}

/// Builds with resolved settings, writes every output, prints the image digest on stdout and
/// returns it.
pub async fn build(settings: BuildSettings) -> Result<String> {
    let digest = build_quiet(settings).await?;
    crate::report::data(&digest);
    Ok(digest)
}

/// [`build`] without the digest on stdout, for commands that print something else (`gantry ci
/// build --platforms` prints the index digest).
pub async fn build_quiet(settings: BuildSettings) -> Result<String> {
    let start = Instant::now();
    let client = Client::new(settings.registry.clone())?;
    if !settings.no_push && !settings.skip_push_permission_check {
        for dest in &settings.destinations {
            client
                .check_push_permission(dest)
                .await
                .with_context(|| format!("checking push permission for {dest}"))?;
        }
    }
    let mut builder = Builder::new(settings, client)?;
    let built = builder.build().await?;
    crate::build::output::write_outputs(&builder, &built).await?;
    if builder.settings.cleanup {
        builder.cleanup()?;
    }
    let size: u64 = built.image.layers.iter().map(|l| l.descriptor.size).sum();
    info!(
        "built {} ({} layers, {}) in {:.2?}",
        built.digest,
        built.image.layers.len(),
        crate::report::human_bytes(size),
        start.elapsed()
    );
    Ok(built.digest.to_string())
}

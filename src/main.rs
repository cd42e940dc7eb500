//! The `gantry` binary: parse the command line, run the command, map the error to an exit code.

#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;
use gantry::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    // Called as `executor` (kaniko's name, through a link), the binary is `gantry build`.
    let called_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if called_as == "executor" {
        match args.get(1).map(String::as_str) {
            // kaniko's `executor version`, and the usual flag.
            Some("version" | "--version" | "-V") => {
                args.truncate(1);
                args.push("--version".into());
            }
            _ => args.insert(1, "build".into()),
        }
    }
    if let Some(flag) = cli::unsupported_kaniko_flag(&args[1..]) {
        eprintln!(
            "error: kaniko's `--{flag}` is not supported by gantry yet\n\
             hint: remove `--{flag}` from the command line; gantry refuses flags it would otherwise ignore"
        );
        return ExitCode::from(2);
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Build(args) => gantry::build::command::run(*args),
        Command::Tags(args) => gantry::ci::command::run(*args),
        Command::Ci(cli::CiCommand::Build(args)) => gantry::ci::ci_build::run(*args),
        Command::Ci(cli::CiCommand::Manifest(args)) => gantry::ci::ci_manifest::run(*args),
        Command::Manifest(args) => gantry::manifest::command::run(*args),
        Command::Warm(args) => gantry::build::warm::run(*args),
        Command::SandboxHelper => std::process::exit(gantry::rootfs::sandbox::helper::main()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            gantry::report::print_error(&format!("{err:#}"));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

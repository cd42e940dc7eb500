//! The one integration-test binary: every test module is declared here and shares `harness`.

mod build_tests;
mod cache_tests;
mod ci_tests;
mod context_tests;
mod faithful_tests;
mod fault_tests;
mod harness;
mod hostile_tests;
mod manifest_tests;
mod memory_tests;
mod multiarch_tests;
mod registry_tests;
mod rootfs_tests;
mod run_tests;
mod sandbox_tests;
mod secret_tests;
mod ship_tests;

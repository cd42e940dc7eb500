//! Context archives (`tar://`, `tar://stdin` and bucket objects; gzip when the bytes start with
//! its magic, plain tar otherwise): extraction either works or fails with an error, never
//! panics, and never creates anything outside the context directory (see `common/outside.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

use gantry::context::source::tar::{extract_gzip, extract_tar};

#[path = "common/outside.rs"]
mod outside;

fuzz_target!(|data: &[u8]| {
    let sandbox = outside::Sandbox::new();
    std::fs::create_dir(&sandbox.target).unwrap();
    let result = if data.starts_with(&[0x1f, 0x8b]) {
        extract_gzip(data, &sandbox.target, "tar://fuzz.tar.gz")
    } else {
        extract_tar(data, &sandbox.target, "tar://fuzz.tar.gz")
    };
    if let Err(e) = &result {
        // Every failure is one message naming the source.
        let text = e.to_string();
        assert!(text.starts_with("context `tar://fuzz.tar.gz`: "), "{text}");
    }
    sandbox.check();
});

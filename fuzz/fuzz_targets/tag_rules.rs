//! metadata-action style tag, flavor and image rules from any lines of text.
#![no_main]

use libfuzzer_sys::fuzz_target;

use gantry::ci::rules;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries: Vec<String> = text.lines().take(32).map(str::to_string).collect();
    let _ = rules::split_list(&entries);
    for e in &entries {
        let _ = rules::split_fields(e);
        let _ = rules::parse_tag(e);
        let _ = rules::compile_match(e);
    }
    let _ = rules::parse_tags(&entries);
    let _ = rules::parse_flavor(&entries);
    let _ = rules::parse_images(&entries);
});

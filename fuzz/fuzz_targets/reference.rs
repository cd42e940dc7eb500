//! Image references: parsing any string never panics, and a parsed reference prints to a name
//! that parses back to the same reference.
#![no_main]

use libfuzzer_sys::fuzz_target;

use gantry::registry::Reference;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = gantry::registry::normalize_registry_host(text);
    let Ok(r) = Reference::parse(text) else {
        return;
    };
    let _ = r.api_host();
    let _ = r.api_reference();
    let name = r.name();
    let again = Reference::parse(&name)
        .unwrap_or_else(|e| panic!("`{text}` parsed, but its name `{name}` does not: {e}"));
    assert_eq!(again.name(), name, "{text:?}");
    let _ = r.with_tag("latest").name();
});

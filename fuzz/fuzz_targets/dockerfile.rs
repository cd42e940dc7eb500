//! The Dockerfile parser on any text: it returns a Dockerfile or a ParseError, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(df) = gantry::dockerfile::parse(text) {
        // Debug-format the whole tree so every parsed field is touched.
        let _ = format!("{df:?}");
    }
    for escape in ['\\', '`'] {
        for line in text.lines().take(8) {
            let _ = gantry::dockerfile::parse_instruction(line, escape);
        }
    }
});

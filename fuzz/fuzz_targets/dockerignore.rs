//! .dockerignore parsing and matching: patterns from the first half of the input, paths to match
//! from the second (split at the first NUL).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (patterns, paths) = text
        .split_once('\0')
        .unwrap_or((text, "a/b/c\nDockerfile\n.git/x"));
    let Ok(ignore) = gantry::context::DockerIgnore::parse(patterns) else {
        return;
    };
    let _ = ignore.has_exceptions();
    for path in paths.lines().take(16) {
        let _ = ignore.matches(path);
        let _ = ignore.may_include_below(path);
    }
    for line in patterns.lines().take(16) {
        if let Ok(glob) = gantry::context::Glob::new(line) {
            for path in paths.lines().take(4) {
                let _ = glob.matches(path);
            }
        }
    }
});

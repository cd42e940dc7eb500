//! Word expansion (`$VAR`, `${VAR:-default}`, `${VAR%suffix}`, quotes, escapes) on any word,
//! with variables whose values are themselves taken from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The part after the first NUL is the value of every variable.
    let (word, value) = text.split_once('\0').unwrap_or((text, "a b *"));
    let value = value.to_string();
    let lookup = move |name: &str| (!name.starts_with('U')).then(|| value.clone());
    for escape in ['\\', '`'] {
        let one = gantry::dockerfile::expand_word(word, escape, &lookup);
        let many = gantry::dockerfile::expand_words(word, escape, &lookup);
        // Both agree on whether the word is valid.
        assert_eq!(one.is_ok(), many.is_ok(), "{word:?}");
    }
});

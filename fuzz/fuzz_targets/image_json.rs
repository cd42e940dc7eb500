//! Manifest, index and config JSON from a registry: any bytes either fail to parse or parse into
//! a document that serialises canonically and parses back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

use gantry::image::{canonical_json, ImageConfig, Index, Manifest};

fn round_trip<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    if let Ok(doc) = serde_json::from_slice::<T>(data) {
        let bytes = canonical_json(&doc);
        let again: T = serde_json::from_slice(&bytes).expect("canonical JSON parses back");
        assert_eq!(canonical_json(&again), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Manifest>(data);
    round_trip::<Index>(data);
    round_trip::<ImageConfig>(data);
});

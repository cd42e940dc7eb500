//! Image documents: configs, manifests, indexes, descriptors and platforms, and the writers that
//! put a finished image on disk (OCI layout, docker tarball).
//!
//! Every document is serialised through [`canonical_json`], so the same image always has the same
//! bytes and therefore the same digest.

mod platform;
mod spec;

pub use platform::Platform;
pub use spec::*;

/// Serialises a document to the bytes gantry writes and pushes.
///
/// Maps are `BTreeMap`s or `serde_json::Map` (sorted without `preserve_order`), so key order is
/// fixed; there is no trailing newline and no indentation, as Docker and kaniko write them.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("image documents always serialise")
}

/// `sha256:<hex>` of a byte slice.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

pub mod layout;
pub mod tarball;

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    /// Found by the `image_json` fuzz target: an unknown config field holding a long float must
    /// serialise to the same bytes after a round trip (serde_json's `float_roundtrip`).
    #[test]
    fn a_long_float_in_an_unknown_config_field_round_trips() {
        let data = b"{\" \"\t:7777888888888888888888888888888888888888887777877777777}  \t ";
        let doc: ImageConfig = serde_json::from_slice(data).unwrap();
        let bytes = canonical_json(&doc);
        let again: ImageConfig = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(canonical_json(&again), bytes);
    }
}

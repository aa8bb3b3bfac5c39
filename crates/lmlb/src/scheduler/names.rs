//! A map keyed by model name, with a hash that is cheap for short names.
//!
//! The scheduler looks a model up on every request, twice. The standard library's keyed hash is
//! meant to resist keys chosen by an attacker. A client can only look names up here, while the
//! names stored come from the upstreams' model listings, so FNV-1a is enough.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// A map from model names to `V`.
pub(super) type ByName<V> = HashMap<Arc<str>, V, BuildHasherDefault<Fnv1a>>;

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// The 64-bit FNV-1a hash.
pub(super) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a(OFFSET_BASIS)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(bytes: &[u8]) -> u64 {
        let mut hasher = Fnv1a::default();
        hasher.write(bytes);
        hasher.finish()
    }

    #[test]
    fn fnv1a_matches_reference_values() {
        // Test vectors of the FNV reference implementation.
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn names_found_by_str() {
        let mut map = ByName::default();
        map.insert(Arc::from("qwen2.5-7b-instruct"), 1);
        map.insert(Arc::from("llama-3.2-1b"), 2);
        assert_eq!(map.get("qwen2.5-7b-instruct"), Some(&1));
        assert_eq!(map.get("llama-3.2-1b"), Some(&2));
        assert_eq!(map.get("qwen2.5-7b"), None);
    }
}

//! Per-task worker tokens: a worker authenticates its event stream with a random token that
//! the orchestrator hands it at launch. Only the SHA-256 of the token is stored.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A fresh random token, 256 bits, hex-encoded.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of two byte strings ([`subtle`]); strings of different lengths
/// are unequal (only the length, never the content, may show in the timing).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `token` is the one whose stored hash is `stored_hash`, compared in constant time.
pub fn matches(token: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash(token).as_bytes(), stored_hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        let t = generate();
        assert!(matches(&t, &hash(&t)));
        assert!(!matches("other", &hash(&t)));
    }
}

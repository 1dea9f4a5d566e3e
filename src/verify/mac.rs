//! The only place that computes a MAC or compares secret material. Every comparison here is
//! constant-time (`subtle`): decode to bytes first, then compare; never `==` on a MAC or token.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::{Choice, ConstantTimeEq};

use super::MacAlgorithm;

/// HMAC over the concatenation of `message` parts, keyed with the concatenation of `key` parts.
pub fn hmac(alg: MacAlgorithm, key: &[u8], message: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[&[u8]]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .expect("HMAC takes keys of any length");
        for part in message {
            m.update(part);
        }
        m.finalize().into_bytes().to_vec()
    }
    match alg {
        MacAlgorithm::Sha1 => run::<Hmac<Sha1>>(key, message),
        MacAlgorithm::Sha256 => run::<Hmac<Sha256>>(key, message),
        MacAlgorithm::Sha512 => run::<Hmac<Sha512>>(key, message),
    }
}

/// Output length of each algorithm, to reject candidates of the wrong length before comparing.
pub fn output_len(alg: MacAlgorithm) -> usize {
    match alg {
        MacAlgorithm::Sha1 => 20,
        MacAlgorithm::Sha256 => 32,
        MacAlgorithm::Sha512 => 64,
    }
}

/// Constant-time equality of two byte strings of the same length. Different lengths are unequal
/// (lengths are public: every MAC of one algorithm has the same length).
pub fn ct_eq(a: &[u8], b: &[u8]) -> Choice {
    if a.len() != b.len() {
        return Choice::from(0);
    }
    a.ct_eq(b)
}

/// Constant-time equality of two tokens whose lengths are secret: compares their SHA-256
/// digests, so neither the content nor the length of the configured token leaks.
pub fn ct_eq_token(presented: &[u8], expected: &[u8]) -> Choice {
    let a = Sha256::digest(presented);
    let b = Sha256::digest(expected);
    a.as_slice().ct_eq(b.as_slice())
}

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let out = hmac(
            MacAlgorithm::Sha256,
            b"Jefe",
            &[b"what do ya want ", b"for nothing?"],
        );
        assert_eq!(
            hex::encode(out),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn comparisons() {
        assert!(bool::from(ct_eq(b"abc", b"abc")));
        assert!(!bool::from(ct_eq(b"abc", b"abd")));
        assert!(!bool::from(ct_eq(b"abc", b"abcd")));
        assert!(bool::from(ct_eq_token(b"token", b"token")));
        assert!(!bool::from(ct_eq_token(b"token", b"tokens")));
    }
}

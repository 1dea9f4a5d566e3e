//! The keys replay de-duplication remembers (see [`crate::replay`]).

use super::mac;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; 16]);

impl ReplayKey {
    pub fn new(source_id: &str, kind: &[u8], value: &[u8]) -> Self {
        let d = mac::sha256(&[source_id.as_bytes(), b"\0", kind, b"\0", value]);
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        ReplayKey(k)
    }

    /// The key as a number (its 16 bytes, little-endian), as the local store keeps it.
    pub fn to_u128(&self) -> u128 {
        u128::from_le_bytes(self.0)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplayKey({})", self.hex())
    }
}

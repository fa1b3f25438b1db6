//! Digests: SHA-256 in hex, and the slow salted digest of secret values.

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The digest of a config value that holds a secret: Argon2id with the state's salt, slow on
/// purpose, so that a low-entropy secret cannot be guessed from a shared state by hashing
/// candidates.
pub fn secret_digest(salt: &str, canonical: &str) -> String {
    use argon2::{Algorithm, Argon2, Params, Version};
    // OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, Some(32)).expect("valid argon2 parameters");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut salt_bytes = format!("stepwise-secret-salt:{salt}").into_bytes();
    salt_bytes.resize(salt_bytes.len().max(16), 0);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(canonical.as_bytes(), &salt_bytes, &mut out)
        .expect("argon2 hashes");
    format!("argon2id:{}", hex::encode(out))
}

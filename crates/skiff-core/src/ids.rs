//! Identifiers: 64-hex-digit random ids (containers, execs) and content digests.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new random 256-bit id as 64 lowercase hex digits, like Docker's container ids.
pub fn random_id() -> String {
    let mut buf = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The 12-character short form Docker prints.
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

/// `sha256:<hex>` of the bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Whether `name` is a valid container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (Docker's rule),
/// optionally with one leading `/`.
pub fn valid_container_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    name.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_64_hex_and_distinct() {
        let a = random_id();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_id());
    }

    #[test]
    fn container_names_follow_docker_rule() {
        assert!(valid_container_name("web"));
        assert!(valid_container_name("/web-1.a_b"));
        assert!(!valid_container_name("a"));
        assert!(!valid_container_name("-web"));
        assert!(!valid_container_name("we b"));
        assert!(!valid_container_name("web/1"));
    }

    #[test]
    fn digest_of_empty_is_well_known() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

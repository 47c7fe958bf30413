//! Encryption at rest for Secrets: AES-256-GCM with a per-cluster key kept in
//! `<data_dir>/encryption.key` (32 random bytes, mode 0600, created on first use). Stored
//! values carry a versioned prefix named like Kubernetes' `EncryptionConfiguration`
//! providers, so a later key rotation can tell formats apart. This module only transforms
//! bytes; it does not decide which resources are encrypted.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};

use crate::error::ApiError;

/// Prefix of every value this encryptor writes.
pub const PREFIX: &[u8] = b"k8s:enc:aesgcm:v1:skiff:";
const KEY_FILE: &str = "encryption.key";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// Encrypts and decrypts stored values with the cluster's key.
pub struct Encryptor {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encryptor { .. }")
    }
}

impl Encryptor {
    /// Loads `<data_dir>/encryption.key`, creating it (mode 0600) when absent. Creation is
    /// atomic: the key is written to a private temporary file and linked into place, so two
    /// servers starting together agree on one key and no reader sees a partial file.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, ApiError> {
        let path = data_dir.join(KEY_FILE);
        let key = match read_private(&path) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(data_dir, &path)?,
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "reading {}: {e}",
                    path.display()
                )))
            }
        };
        if key.len() != KEY_LEN {
            return Err(ApiError::internal(format!(
                "{} holds {} bytes, want {KEY_LEN}",
                path.display(),
                key.len()
            )));
        }
        Ok(Encryptor {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        })
    }

    /// `PREFIX` + 12-byte random nonce + ciphertext with its 16-byte tag.
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext)
            .expect("AES-GCM encryption only fails for inputs beyond 64 GiB");
        let mut out = Vec::with_capacity(PREFIX.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a value written by [`Encryptor::encrypt`]; values without the prefix (written
    /// before encryption was enabled) pass through unchanged. Tampered or foreign-key
    /// ciphertexts are an internal error.
    pub fn decrypt(&self, stored: &[u8]) -> Result<Vec<u8>, ApiError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_vec());
        };
        if rest.len() < NONCE_LEN {
            return Err(ApiError::internal("encrypted value is truncated"));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| {
                ApiError::internal(
                    "encrypted value failed authentication (wrong key or tampered data)",
                )
            })
    }
}

/// The key file's bytes; refused when group or others may read or write it (like ssh with
/// its private keys): a key others can read protects nothing, and one others can write lets
/// them choose it.
fn read_private(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    let mut file = std::fs::File::open(path)?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("mode {mode:o} lets other users at the key; it must be 600"),
        ));
    }
    let mut key = Vec::new();
    file.read_to_end(&mut key)?;
    Ok(key)
}

/// Writes a fresh key and links it to `path`; if another process won the race, its key.
fn create_key(data_dir: &Path, path: &Path) -> Result<Vec<u8>, ApiError> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        ApiError::internal(format!("{what} {}: {e}", p.display()))
    };
    std::fs::create_dir_all(data_dir).map_err(|e| io("creating", data_dir, e))?;
    let key = Aes256Gcm::generate_key(OsRng).to_vec();
    let tmp = data_dir.join(format!(".{KEY_FILE}.{:016x}", rand::random::<u64>()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&key).and_then(|_| f.sync_all()))
        .map_err(|e| io("writing", &tmp, e));
    let linked = written.and_then(|_| match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_private(path).map_err(|e| io("reading", path, e))
        }
        Err(e) => Err(io("creating", path, e)),
    });
    let _ = std::fs::remove_file(&tmp);
    linked
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SECRET: &[u8] = br#"{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}"#;

    #[test]
    fn round_trip_without_plaintext_in_ciphertext() {
        let dir = tempfile::tempdir().unwrap();
        let enc = Encryptor::load_or_create(dir.path()).unwrap();
        let sealed = enc.encrypt(SECRET);
        assert!(sealed.starts_with(PREFIX));
        assert!(
            !sealed.windows(8).any(|w| SECRET.windows(8).any(|s| s == w)),
            "ciphertext leaks plaintext"
        );
        assert_ne!(enc.encrypt(SECRET), sealed, "nonces are random");
        assert_eq!(enc.decrypt(&sealed).unwrap(), SECRET);
    }

    #[test]
    fn key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = Encryptor::load_or_create(dir.path())
            .unwrap()
            .encrypt(SECRET);
        let meta = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        let again = Encryptor::load_or_create(dir.path()).unwrap();
        assert_eq!(again.decrypt(&sealed).unwrap(), SECRET);
    }

    #[test]
    fn concurrent_first_use_agrees_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested");
        let sealed: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| Encryptor::load_or_create(&path).unwrap().encrypt(SECRET)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let enc = Encryptor::load_or_create(&path).unwrap();
        for s in &sealed {
            assert_eq!(enc.decrypt(s).unwrap(), SECRET);
        }
        let leftovers = std::fs::read_dir(&path).unwrap().count();
        assert_eq!(leftovers, 1, "only the key file remains");
    }

    #[test]
    fn tampering_and_foreign_keys_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let enc = Encryptor::load_or_create(dir.path()).unwrap();
        let mut sealed = enc.encrypt(SECRET);
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(enc.decrypt(&sealed).unwrap_err().code, 500);
        assert!(enc.decrypt(PREFIX).is_err(), "truncated");
        let other = tempfile::tempdir().unwrap();
        let foreign = Encryptor::load_or_create(other.path())
            .unwrap()
            .encrypt(SECRET);
        assert!(enc.decrypt(&foreign).is_err());
    }

    #[test]
    fn legacy_plaintext_passes_through_and_bad_key_files_fail() {
        let dir = tempfile::tempdir().unwrap();
        let enc = Encryptor::load_or_create(dir.path()).unwrap();
        assert_eq!(enc.decrypt(SECRET).unwrap(), SECRET);
        let bad = tempfile::tempdir().unwrap();
        let key_file = bad.path().join(KEY_FILE);
        std::fs::write(&key_file, b"short").unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = Encryptor::load_or_create(bad.path()).unwrap_err();
        assert!(err.message.contains("holds 5 bytes"), "{}", err.message);
    }

    #[test]
    fn world_readable_key_file_was_accepted() {
        let dir = tempfile::tempdir().unwrap();
        Encryptor::load_or_create(dir.path()).unwrap();
        let key_file = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Encryptor::load_or_create(dir.path()).unwrap_err();
        assert_eq!(err.code, 500);
        assert!(err.message.contains("must be 600"), "{}", err.message);
    }
}

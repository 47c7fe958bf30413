//! The service-account signing key and the JWTs made with it: bound tokens (TokenRequest)
//! with upstream's claims, and the legacy Secret-based tokens of the token controller.
//!
//! The signing key is an ECDSA P-256 key (ES256) kept as PKCS#8 PEM in
//! `<data-dir>/tls/service-account.key`, created at first start and reused afterwards, or
//! the one given with `--service-account-signing-key-file`. Tokens verify against its public
//! key and every public key of the `--service-account-key-file`s (PEM public keys, private
//! keys or certificates, several per file: kube-apiserver's flags), so a key can be rotated
//! while the tokens signed by the one before keep working. It signs and verifies; it does not
//! look at the store (that is [`super::authn`]).

use std::path::{Path, PathBuf};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::pki::{self, PkiError};

/// `--service-account-issuer`'s default.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The issuer of legacy (Secret-based) tokens, as upstream writes it.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// The file of the signing key under the data directory.
const KEY_FILE: &str = "tls/service-account.key";

/// Errors loading or making the signing key, or signing.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("cannot read or write the service-account key")]
    Pki(#[from] PkiError),
    #[error("cannot generate or parse the service-account key")]
    Key(#[from] rcgen::Error),
    #[error("the service-account key {0} is not an ECDSA P-256 key")]
    WrongAlgorithm(PathBuf),
    #[error("{0} holds no PEM public key, private key or certificate")]
    NoKeys(PathBuf),
    #[error("cannot sign a token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

impl skiff_core::HasKind for SignerError {
    fn kind(&self) -> skiff_core::ErrorKind {
        skiff_core::ErrorKind::Internal
    }
}

/// A name and uid, as the `kubernetes.io` claim holds objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// The private `kubernetes.io` claim of a bound token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
}

/// The claims of a bound service-account token (upstream's `privateClaims` plus the
/// registered ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// The claims of a legacy Secret-based token (no expiry, no audience).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    pub iss: String,
    pub sub: String,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    pub namespace: String,
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    pub secret_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    pub service_account_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    pub service_account_uid: String,
}

/// What a token verified as (signature, issuer, audience and time checked; the objects it
/// names are not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Bound(Claims),
    Legacy(LegacyClaims),
}

/// The user name of service account `name` in `ns`.
pub fn username(ns: &str, name: &str) -> String {
    format!("system:serviceaccount:{ns}:{name}")
}

/// A key tokens are verified with, named by its key id.
struct VerifyingKey {
    kid: String,
    key: DecodingKey,
}

/// Signs and verifies service-account tokens.
pub struct TokenSigner {
    issuer: String,
    audiences: Vec<String>,
    encoding: EncodingKey,
    /// The signing key's own public key first, then those of `--service-account-key-file`.
    verifying: Vec<VerifyingKey>,
    kid: String,
    bound: Validation,
    /// `bound` without the audience check (TokenReview checks the audiences it is asked).
    bound_any_audience: Validation,
    legacy: Validation,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// The signer of the key in `data_dir` (created when missing), issuing as `issuer`
    /// for the API's `audiences` (empty: the issuer alone, as kube-apiserver defaults
    /// `--api-audiences`).
    pub fn load_or_create(
        data_dir: &Path,
        issuer: &str,
        audiences: Vec<String>,
    ) -> Result<TokenSigner, SignerError> {
        Self::load(data_dir, None, &[], issuer, audiences)
    }

    /// The signer of `signing_key_file` (None: the key in `data_dir`, created when missing)
    /// that also accepts tokens signed by the keys in `key_files`.
    pub fn load(
        data_dir: &Path,
        signing_key_file: Option<&Path>,
        key_files: &[PathBuf],
        issuer: &str,
        audiences: Vec<String>,
    ) -> Result<TokenSigner, SignerError> {
        let (path, key) = match signing_key_file {
            Some(path) => (
                path.to_path_buf(),
                rcgen::KeyPair::from_pem(&pki::read(path)?)?,
            ),
            None => {
                let path = data_dir.join(KEY_FILE);
                let key = match pki::read(&path) {
                    Ok(pem) => rcgen::KeyPair::from_pem(&pem)?,
                    Err(_) => {
                        if let Some(parent) = path.parent() {
                            pki::create_dir(parent)?;
                        }
                        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                        pki::write_private(&path, key.serialize_pem().as_bytes())?;
                        key
                    }
                };
                (path, key)
            }
        };
        if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(SignerError::WrongAlgorithm(path));
        }
        let mut signer = Self::from_key(&key, issuer, audiences);
        for file in key_files {
            for spki in public_keys(file)? {
                let key = verifying_key(&spki)
                    .ok_or_else(|| SignerError::WrongAlgorithm(file.clone()))?;
                if !signer.verifying.iter().any(|v| v.kid == key.kid) {
                    signer.verifying.push(key);
                }
            }
        }
        Ok(signer)
    }

    /// A signer with a key that lives only in memory (tests, API states without a data
    /// directory): its tokens die with it.
    pub fn ephemeral(issuer: &str) -> TokenSigner {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("ring generates P-256 keys");
        Self::from_key(&key, issuer, Vec::new())
    }

    fn from_key(key: &rcgen::KeyPair, issuer: &str, audiences: Vec<String>) -> TokenSigner {
        use rcgen::PublicKeyData;
        let audiences = if audiences.is_empty() {
            vec![issuer.to_string()]
        } else {
            audiences
        };
        let kid = key_id(&key.subject_public_key_info());
        let mut bound = Validation::new(Algorithm::ES256);
        bound.set_issuer(&[issuer]);
        bound.set_audience(&audiences);
        bound.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        bound.validate_nbf = true;
        let mut bound_any_audience = bound.clone();
        bound_any_audience.validate_aud = false;
        let mut legacy = Validation::new(Algorithm::ES256);
        legacy.set_issuer(&[LEGACY_ISSUER]);
        legacy.set_required_spec_claims(&["iss", "sub"]);
        legacy.validate_exp = false;
        legacy.validate_aud = false;
        TokenSigner {
            issuer: issuer.to_string(),
            audiences,
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            // ring verifies ECDSA against the uncompressed point.
            verifying: vec![VerifyingKey {
                kid: kid.clone(),
                key: DecodingKey::from_ec_der(key.public_key_raw()),
            }],
            kid,
            bound,
            bound_any_audience,
            legacy,
        }
    }

    /// `--service-account-issuer`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences the API accepts (and gives tokens that ask for none).
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    fn sign<T: Serialize>(&self, claims: &T) -> Result<String, SignerError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(SignerError::Sign)
    }

    /// A bound token with `claims` (their `iss` is set here).
    pub fn sign_bound(&self, mut claims: Claims) -> Result<String, SignerError> {
        claims.iss = self.issuer.clone();
        self.sign(&claims)
    }

    /// A legacy token for Secret `secret` of service account `name` (uid `uid`) in `ns`.
    pub fn sign_legacy(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        secret: &str,
    ) -> Result<String, SignerError> {
        self.sign(&LegacyClaims {
            iss: LEGACY_ISSUER.into(),
            sub: username(ns, name),
            namespace: ns.into(),
            secret_name: secret.into(),
            service_account_name: name.into(),
            service_account_uid: uid.into(),
        })
    }

    /// The claims of `token` when this key signed it, it is for this API and in its time;
    /// Err says why not (for the server's log, never for the client).
    pub fn verify(&self, token: &str) -> Result<Verified, String> {
        self.verify_against(token, &self.bound)
    }

    /// As [`Self::verify`], for any audience: the caller compares the bound token's `aud`
    /// with the audiences it wants.
    pub fn verify_any_audience(&self, token: &str) -> Result<Verified, String> {
        self.verify_against(token, &self.bound_any_audience)
    }

    fn verify_against(&self, token: &str, bound: &Validation) -> Result<Verified, String> {
        // The key named by the token's `kid` when there is one, else each in turn.
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|e| e.to_string())?
            .kid;
        let named: Vec<&VerifyingKey> = self
            .verifying
            .iter()
            .filter(|v| Some(&v.kid) == kid.as_ref())
            .collect();
        let keys = if named.is_empty() {
            self.verifying.iter().collect()
        } else {
            named
        };
        let mut last = String::from("no verification key");
        for v in keys {
            match self.verify_with(token, &v.key, bound) {
                Ok(verified) => return Ok(verified),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn verify_with(
        &self,
        token: &str,
        key: &DecodingKey,
        bound: &Validation,
    ) -> Result<Verified, String> {
        // The unverified issuer only picks the validator; both check the signature.
        if unverified_issuer(token).as_deref() == Some(LEGACY_ISSUER) {
            return jsonwebtoken::decode::<LegacyClaims>(token, key, &self.legacy)
                .map(|d| Verified::Legacy(d.claims))
                .map_err(|e| e.to_string());
        }
        jsonwebtoken::decode::<Claims>(token, key, bound)
            .map(|d| Verified::Bound(d.claims))
            .map_err(|e| e.to_string())
    }
}

/// Upstream's key id: the unpadded base64url SHA-256 of the public key's DER.
fn key_id(spki_der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(spki_der))
}

/// The public keys (SubjectPublicKeyInfo DER) of every PEM public key, PKCS#8 private key and
/// certificate in `path`.
fn public_keys(path: &Path) -> Result<Vec<Vec<u8>>, SignerError> {
    use rustls_pemfile::Item;
    let pem = pki::read(path)?;
    let mut out = Vec::new();
    for item in rustls_pemfile::read_all(&mut pem.as_bytes()) {
        match item {
            Ok(Item::SubjectPublicKeyInfo(spki)) => out.push(spki.as_ref().to_vec()),
            Ok(Item::Pkcs8Key(der)) => {
                use rcgen::PublicKeyData;
                let key = rcgen::KeyPair::try_from(der.secret_pkcs8_der())
                    .map_err(|_| SignerError::WrongAlgorithm(path.to_path_buf()))?;
                out.push(key.subject_public_key_info());
            }
            Ok(Item::X509Certificate(der)) => {
                let (_, cert) = x509_parser::parse_x509_certificate(&der)
                    .map_err(|_| SignerError::NoKeys(path.to_path_buf()))?;
                out.push(cert.public_key().raw.to_vec());
            }
            Ok(_) => return Err(SignerError::WrongAlgorithm(path.to_path_buf())),
            Err(_) => return Err(SignerError::NoKeys(path.to_path_buf())),
        }
    }
    if out.is_empty() {
        return Err(SignerError::NoKeys(path.to_path_buf()));
    }
    Ok(out)
}

/// A verification key for the P-256 public key `spki_der` (None: another kind of key).
fn verifying_key(spki_der: &[u8]) -> Option<VerifyingKey> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).ok()?;
    let PublicKey::EC(point) = spki.parsed().ok()? else {
        return None;
    };
    // id-ecPublicKey on prime256v1: an uncompressed point of 65 bytes.
    let p256 = x509_parser::oid_registry::OID_EC_P256;
    let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
    (curve == p256 && point.data().len() == 65).then(|| VerifyingKey {
        kid: key_id(spki_der),
        key: DecodingKey::from_ec_der(point.data()),
    })
}

/// The `iss` claim of a token, read without checking anything.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

/// Whether `token` looks like a JWT (three dot-separated parts), so other authenticators
/// can pass it on without a signature check.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64, aud: &str) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            iss: String::new(),
            sub: username("ns", "sa"),
            aud: vec![aud.into()],
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "j".into(),
            kubernetes: KubernetesClaim {
                namespace: "ns".into(),
                serviceaccount: ObjectRef {
                    name: "sa".into(),
                    uid: "u".into(),
                },
                ..Default::default()
            },
        }
    }

    #[test]
    fn satoken_key_is_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = TokenSigner::load_or_create(dir.path(), DEFAULT_ISSUER, vec![]).unwrap();
        let token = a.sign_bound(claims(600, DEFAULT_ISSUER)).unwrap();
        let b = TokenSigner::load_or_create(dir.path(), DEFAULT_ISSUER, vec![]).unwrap();
        assert_eq!(a.kid, b.kid);
        let Verified::Bound(c) = b.verify(&token).unwrap() else {
            panic!("not a bound token")
        };
        assert_eq!(c.iss, DEFAULT_ISSUER);
        assert_eq!(c.sub, "system:serviceaccount:ns:sa");
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
    }

    #[test]
    fn satoken_refuses_other_keys_audiences_expired_and_tampered_tokens() {
        let a = TokenSigner::ephemeral(DEFAULT_ISSUER);
        let other = TokenSigner::ephemeral(DEFAULT_ISSUER);
        let token = a.sign_bound(claims(600, DEFAULT_ISSUER)).unwrap();
        assert!(other.verify(&token).is_err(), "another key's token");
        assert!(a
            .verify(&a.sign_bound(claims(600, "vault")).unwrap())
            .is_err());
        assert!(a
            .verify(&a.sign_bound(claims(-120, DEFAULT_ISSUER)).unwrap())
            .is_err());
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[1])
            .unwrap();
        let at = payload.windows(2).position(|w| w == b"sa").unwrap();
        payload[at] = b'x';
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
        assert!(a.verify(&parts.join(".")).is_err(), "a changed payload");
        let other_issuer = TokenSigner::ephemeral("https://elsewhere");
        let foreign = other_issuer
            .sign_bound(claims(600, DEFAULT_ISSUER))
            .unwrap();
        assert!(a.verify(&foreign).is_err());
    }

    #[test]
    fn satoken_tokens_of_a_rotated_key_verify_through_the_key_files() {
        use rcgen::PublicKeyData;
        let dir = tempfile::tempdir().unwrap();
        let old = TokenSigner::load_or_create(dir.path(), DEFAULT_ISSUER, vec![]).unwrap();
        let old_token = old.sign_bound(claims(600, DEFAULT_ISSUER)).unwrap();
        let old_legacy = old.sign_legacy("ns", "sa", "u1", "sa-token").unwrap();

        // A new signing key; the old one stays as a public key (PEM "PUBLIC KEY").
        let new_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let new_path = dir.path().join("new.key");
        std::fs::write(&new_path, new_key.serialize_pem()).unwrap();
        let old_key =
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap())
                .unwrap();
        let old_pub = dir.path().join("old.pub");
        std::fs::write(&old_pub, old_key.public_key_pem()).unwrap();
        assert_eq!(key_id(&old_key.subject_public_key_info()), old.kid);

        let rotated = TokenSigner::load(
            dir.path(),
            Some(&new_path),
            std::slice::from_ref(&old_pub),
            DEFAULT_ISSUER,
            vec![],
        )
        .unwrap();
        assert_ne!(rotated.kid, old.kid, "signs with the new key");
        assert!(rotated.verify(&old_token).is_ok(), "old bound token");
        assert!(rotated.verify(&old_legacy).is_ok(), "old legacy token");
        let new_token = rotated.sign_bound(claims(600, DEFAULT_ISSUER)).unwrap();
        assert!(rotated.verify(&new_token).is_ok());
        assert!(
            old.verify(&new_token).is_err(),
            "the old key alone refuses it"
        );
        // A token whose kid names no key is still checked against every key.
        let header = jsonwebtoken::Header {
            kid: Some("unknown".into()),
            ..jsonwebtoken::Header::new(Algorithm::ES256)
        };
        let odd = jsonwebtoken::encode(
            &header,
            &Claims {
                iss: DEFAULT_ISSUER.into(),
                ..claims(600, DEFAULT_ISSUER)
            },
            &EncodingKey::from_ec_der(&old_key.serialize_der()),
        )
        .unwrap();
        assert!(rotated.verify(&odd).is_ok());

        // Once the old key is dropped, its tokens are refused.
        let without =
            TokenSigner::load(dir.path(), Some(&new_path), &[], DEFAULT_ISSUER, vec![]).unwrap();
        assert!(without.verify(&old_token).is_err());
        assert!(without.verify(&new_token).is_ok());

        // A private key file verifies too; garbage and other kinds of keys are refused.
        let by_private = TokenSigner::load(
            dir.path(),
            Some(&new_path),
            &[dir.path().join(KEY_FILE)],
            DEFAULT_ISSUER,
            vec![],
        )
        .unwrap();
        assert!(by_private.verify(&old_token).is_ok());
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a key").unwrap();
        assert!(matches!(
            TokenSigner::load(dir.path(), Some(&new_path), &[junk], DEFAULT_ISSUER, vec![]),
            Err(SignerError::NoKeys(_))
        ));
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let ed_pub = dir.path().join("ed.pub");
        std::fs::write(&ed_pub, ed.public_key_pem()).unwrap();
        assert!(matches!(
            TokenSigner::load(
                dir.path(),
                Some(&new_path),
                &[ed_pub],
                DEFAULT_ISSUER,
                vec![]
            ),
            Err(SignerError::WrongAlgorithm(_))
        ));
        // The data directory's key is not replaced by a given signing key.
        assert_eq!(
            key_id(
                &rcgen::KeyPair::from_pem(
                    &std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap()
                )
                .unwrap()
                .subject_public_key_info()
            ),
            old.kid
        );
    }

    #[test]
    fn satoken_legacy_tokens_verify_without_expiry() {
        let a = TokenSigner::ephemeral(DEFAULT_ISSUER);
        let t = a.sign_legacy("ns", "sa", "u1", "sa-token").unwrap();
        assert!(looks_like_jwt(&t));
        let Verified::Legacy(c) = a.verify(&t).unwrap() else {
            panic!("not legacy")
        };
        assert_eq!(
            (c.namespace.as_str(), c.secret_name.as_str()),
            ("ns", "sa-token")
        );
        assert_eq!(c.service_account_uid, "u1");
    }
}

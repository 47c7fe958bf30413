//! The node join token (k3s's `node-token`): `K10<hex sha256 of the cluster CA certificate,
//! DER>::node:<secret>`. The server writes it; an agent parses it, checks the CA the server
//! presents against the hash before sending anything, then presents the whole token as its
//! bootstrap bearer credential.

use sha2::{Digest, Sha256};

/// Prefix of the token format (k3s's "K10": the version of its secure token format).
const PREFIX: &str = "K10";
/// The bootstrap user the token's secret belongs to.
const USER: &str = "node";

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Hex SHA-256 of the cluster CA certificate (DER).
    pub ca_hash: String,
    /// The random secret.
    pub secret: String,
}

/// Why a string is not a join token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token does not have the form K10<CA hash>::node:<secret>")]
    Format,
    #[error("the token's CA hash is not 64 hex digits")]
    Hash,
    #[error("the token's secret is empty")]
    EmptySecret,
}

/// Hex SHA-256 of a certificate's DER bytes.
pub fn ca_hash(ca_der: &[u8]) -> String {
    hex::encode(Sha256::digest(ca_der))
}

impl JoinToken {
    /// A new token for the CA `ca_der` with a random 32-byte secret.
    pub fn generate(ca_der: &[u8]) -> JoinToken {
        let secret: [u8; 32] = rand::random();
        JoinToken {
            ca_hash: ca_hash(ca_der),
            secret: hex::encode(secret),
        }
    }

    /// Parses `K10<hash>::node:<secret>` (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Result<JoinToken, TokenError> {
        let rest = s.trim().strip_prefix(PREFIX).ok_or(TokenError::Format)?;
        let (hash, creds) = rest.split_once("::").ok_or(TokenError::Format)?;
        let (user, secret) = creds.split_once(':').ok_or(TokenError::Format)?;
        if user != USER {
            return Err(TokenError::Format);
        }
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Hash);
        }
        if secret.is_empty() {
            return Err(TokenError::EmptySecret);
        }
        Ok(JoinToken {
            ca_hash: hash.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }

    /// Whether `ca_der` is the CA this token was made for.
    pub fn trusts(&self, ca_der: &[u8]) -> bool {
        ca_hash(ca_der) == self.ca_hash
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}::{USER}:{}", self.ca_hash, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_back_and_trusts_only_its_ca() {
        let t = JoinToken::generate(b"ca one");
        let text = t.to_string();
        assert!(
            text.starts_with("K10") && text.contains("::node:"),
            "{text}"
        );
        let back = JoinToken::parse(&format!(" {text}\n")).unwrap();
        assert_eq!(back, t);
        assert!(back.trusts(b"ca one"));
        assert!(!back.trusts(b"ca two"));
    }

    #[test]
    fn rejects_malformed_tokens() {
        let hash = "a".repeat(64);
        assert_eq!(JoinToken::parse("secret"), Err(TokenError::Format));
        assert_eq!(
            JoinToken::parse(&format!("K10{hash}::admin:x")),
            Err(TokenError::Format)
        );
        assert_eq!(JoinToken::parse("K10abc::node:x"), Err(TokenError::Hash));
        assert_eq!(
            JoinToken::parse(&format!("K10{hash}::node:")),
            Err(TokenError::EmptySecret)
        );
    }
}

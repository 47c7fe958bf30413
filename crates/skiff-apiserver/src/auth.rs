//! Authentication (client certificates signed by the cluster CA, bearer tokens from a token
//! file in Kubernetes' format, the node join token) and what authorization is asked about.
//!
//! It decides who is calling and whether they may; it must not look at request bodies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::ApiError;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// The identity of a control-plane component running in the server's process (controllers,
/// scheduler, CSR signer, ClusterRole aggregation): its upstream user name, in
/// `system:masters`. Upstream binds each component to a `system:kube-*` ClusterRole of its
/// own; skiff's in-process components are the server itself and keep full access.
pub fn component(name: &str) -> UserInfo {
    UserInfo {
        name: name.to_string(),
        uid: String::new(),
        groups: vec![crate::rbac::MASTERS.into(), AUTHENTICATED.into()],
    }
}

/// The subject of a verified client certificate, attached to every request on that connection.
#[derive(Debug, Clone)]
pub struct PeerIdentity(pub Option<UserInfo>);

/// Errors loading the token file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read token file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token file {path} line {line}: expected at least 3 columns: token,user,uid[,\"group1,group2\"]")]
    Syntax { path: PathBuf, line: usize },
}

impl skiff_core::HasKind for AuthError {
    fn kind(&self) -> skiff_core::ErrorKind {
        skiff_core::ErrorKind::InvalidArgument
    }
}

/// Bearer tokens known to the server.
#[derive(Debug, Default, Clone)]
pub struct TokenAuthenticator {
    tokens: HashMap<String, UserInfo>,
}

impl TokenAuthenticator {
    /// Adds one token.
    pub fn insert(&mut self, token: &str, user: UserInfo) {
        self.tokens.insert(token.to_string(), user);
    }

    /// Loads a static token file in Kubernetes' `--token-auth-file` format: CSV records of
    /// `token,user,uid[,"group1,group2"]`, at least three columns, any of user, uid and groups
    /// may be empty (`admin-token,admin,,"system:masters"`). A record with an empty token is
    /// skipped, as Kubernetes skips it. Lines starting with `#` are comments (an extension).
    pub fn load_file(&mut self, path: &Path) -> Result<(), AuthError> {
        let syntax = |line: usize| AuthError::Syntax {
            path: path.to_path_buf(),
            line,
        };
        let file = std::fs::File::open(path).map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .comment(Some(b'#'))
            .from_reader(file);
        for record in reader.records() {
            let record = record.map_err(|e| match e.kind() {
                csv::ErrorKind::Io(_) => AuthError::Read {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                },
                _ => syntax(e.position().map_or(0, |p| p.line() as usize)),
            })?;
            let line = record.position().map_or(0, |p| p.line() as usize);
            if record.len() < 3 {
                return Err(syntax(line));
            }
            if record[0].is_empty() {
                tracing::warn!(path = %path.display(), line, "empty token in token file, skipped");
                continue;
            }
            let groups = record
                .get(3)
                .filter(|g| !g.is_empty())
                .map(|g| g.split(',').map(String::from).collect())
                .unwrap_or_default();
            self.insert(
                &record[0],
                UserInfo {
                    name: record[1].to_string(),
                    uid: record[2].to_string(),
                    groups,
                },
            );
        }
        Ok(())
    }

    pub fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.tokens.get(token).cloned()
    }
}

/// The user named by a client certificate: CN is the user, each O a group.
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some(UserInfo {
        uid: String::new(),
        name,
        groups,
    })
}

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";

/// Who the request comes from: the connection's client certificate, else a bearer token;
/// in [`AUTHENTICATED`] either way, as kube-apiserver's authenticators add it.
pub fn authenticate(
    peer: Option<&PeerIdentity>,
    authorization: Option<&str>,
    tokens: &TokenAuthenticator,
) -> Result<UserInfo, ApiError> {
    let user = match peer {
        Some(PeerIdentity(Some(user))) => Some(user.clone()),
        _ => authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|token| tokens.authenticate(token.trim())),
    };
    let Some(mut user) = user else {
        return Err(ApiError::new(401, "Unauthorized", "Unauthorized"));
    };
    if !user.groups.iter().any(|g| g == AUTHENTICATED) {
        user.groups.push(AUTHENTICATED.to_string());
    }
    Ok(user)
}

/// What a request wants to do, for [`crate::nodeauth::authorize`].
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_parse_like_kubernetes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(
            &path,
            "# comment\nabc,alice,1001,\"dev,ops\"\n\nxyz,bob,1002\n",
        )
        .unwrap();
        let mut t = TokenAuthenticator::default();
        t.load_file(&path).unwrap();
        let alice = t.authenticate("abc").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, vec!["dev", "ops"]);
        assert!(t.authenticate("xyz").unwrap().groups.is_empty());
        assert!(t.authenticate("nope").is_none());
    }

    /// Kubernetes' own documented example leaves the uid empty.
    #[test]
    fn accepts_empty_uid_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(
            &path,
            "admin-token,admin,,\"system:masters\"\n,nobody,1,\ncarol-token,carol,\"\",\n",
        )
        .unwrap();
        let mut t = TokenAuthenticator::default();
        t.load_file(&path).unwrap();
        let admin = t.authenticate("admin-token").unwrap();
        assert_eq!((admin.name.as_str(), admin.uid.as_str()), ("admin", ""));
        assert_eq!(admin.groups, vec!["system:masters"]);
        assert!(t.authenticate("").is_none(), "an empty token is skipped");
        assert!(t.authenticate("carol-token").unwrap().groups.is_empty());
    }

    #[test]
    fn rejects_token_file_line_with_fewer_than_three_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "ok,a,1\nabc,alice\n").unwrap();
        let err = TokenAuthenticator::default().load_file(&path).unwrap_err();
        assert!(matches!(err, AuthError::Syntax { line: 2, .. }), "{err:?}");
    }

    #[test]
    fn missing_credentials_are_unauthorized() {
        let t = TokenAuthenticator::default();
        assert_eq!(authenticate(None, None, &t).unwrap_err().code, 401);
        assert_eq!(
            authenticate(None, Some("Bearer wrong"), &t)
                .unwrap_err()
                .code,
            401
        );
    }
}

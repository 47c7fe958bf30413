//! The review resources: create-only kinds answered from the request and the caller,
//! never stored (kube-apiserver's "virtual" resources). `authentication.k8s.io/v1`
//! `SelfSubjectReview` (`kubectl auth whoami`) and `TokenReview`; `authorization.k8s.io/v1`
//! `SubjectAccessReview`, `SelfSubjectAccessReview` (`kubectl auth can-i`),
//! `SelfSubjectRulesReview` (`kubectl auth can-i --list`) and the namespaced
//! `LocalSubjectAccessReview`.
//!
//! This is the one list of them: routing ([`crate::router`]), discovery and the OpenAPI
//! documents read it, so a review is served, discoverable and described alike. The answers
//! are in [`crate::rbac::review`] and [`crate::serviceaccount::review`].

use serde_json::{json, Value};

use crate::error::ApiError;

/// One review resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    SelfSubject,
    Token,
    LocalSubjectAccess,
    SelfSubjectAccess,
    SelfSubjectRules,
    SubjectAccess,
}

/// Where and what a review is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
}

impl Info {
    /// `subjectaccessreview`, as discovery names the singular.
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }
}

const AUTHN: &str = "authentication.k8s.io";
const AUTHZ: &str = "authorization.k8s.io";

impl Review {
    /// Every review, in discovery order (by group, then by resource name).
    pub const ALL: [Review; 6] = [
        Review::SelfSubject,
        Review::Token,
        Review::LocalSubjectAccess,
        Review::SelfSubjectAccess,
        Review::SelfSubjectRules,
        Review::SubjectAccess,
    ];

    pub fn info(self) -> Info {
        let (group, plural, kind, namespaced) = match self {
            Review::SelfSubject => (AUTHN, "selfsubjectreviews", "SelfSubjectReview", false),
            Review::Token => (AUTHN, "tokenreviews", "TokenReview", false),
            Review::LocalSubjectAccess => (
                AUTHZ,
                "localsubjectaccessreviews",
                "LocalSubjectAccessReview",
                true,
            ),
            Review::SelfSubjectAccess => (
                AUTHZ,
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
                false,
            ),
            Review::SelfSubjectRules => (
                AUTHZ,
                "selfsubjectrulesreviews",
                "SelfSubjectRulesReview",
                false,
            ),
            Review::SubjectAccess => (AUTHZ, "subjectaccessreviews", "SubjectAccessReview", false),
        };
        Info {
            group,
            version: "v1",
            plural,
            kind,
            namespaced,
        }
    }

    /// The review served at `/apis/GROUP/VERSION/[namespaces/NS/]PLURAL`.
    pub fn find(group: &str, version: &str, plural: &str, namespaced: bool) -> Option<Review> {
        Review::ALL.into_iter().find(|r| {
            let i = r.info();
            (i.group, i.version, i.plural, i.namespaced) == (group, version, plural, namespaced)
        })
    }

    /// The reviews of one group version.
    pub fn in_version<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = Review> + 'a {
        Review::ALL.into_iter().filter(move |r| {
            let i = r.info();
            i.group == group && i.version == version
        })
    }
}

/// Checks that `body` is a `review` (an absent apiVersion or kind is taken as the review's)
/// and makes it the answer's skeleton: apiVersion, kind, metadata with a null
/// `creationTimestamp`, as upstream echoes a review.
pub fn echo(review: Review, body: &mut Value) -> Result<(), ApiError> {
    let info = review.info();
    let want = format!("{}/{}", info.group, info.version);
    let api_version = body["apiVersion"].as_str().unwrap_or(want.as_str());
    let kind = body["kind"].as_str().unwrap_or(info.kind);
    if api_version != want || kind != info.kind {
        return Err(ApiError::bad_request(format!(
            "the body must be an {want} {}, got {api_version} {kind}",
            info.kind
        )));
    }
    body["apiVersion"] = json!(want);
    body["kind"] = json!(info.kind);
    if body.get("metadata").is_none_or(|m| !m.is_object()) {
        body["metadata"] = json!({});
    }
    body["metadata"]["creationTimestamp"] = Value::Null;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_tells_the_namespaced_review_from_the_others() {
        assert_eq!(
            Review::find(AUTHZ, "v1", "localsubjectaccessreviews", true),
            Some(Review::LocalSubjectAccess)
        );
        assert_eq!(
            Review::find(AUTHZ, "v1", "localsubjectaccessreviews", false),
            None
        );
        assert_eq!(
            Review::find(AUTHZ, "v1", "subjectaccessreviews", true),
            None
        );
        assert_eq!(
            Review::find(AUTHN, "v1", "tokenreviews", false),
            Some(Review::Token)
        );
        assert_eq!(Review::in_version(AUTHN, "v1").count(), 2);
    }
}

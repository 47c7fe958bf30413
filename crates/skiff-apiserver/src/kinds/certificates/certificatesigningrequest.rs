//! certificates.k8s.io/v1 CertificateSigningRequests: the requester the server stamps into
//! the spec, the request (a PEM `CERTIFICATE REQUEST` whose signature must verify), usage and
//! signer rules, the `/approval` subresource that alone may set the Approved and Denied
//! conditions, `/status` for the signer's certificate, and the `kubectl get csr` columns.

use futures::future::BoxFuture;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_pb::api::certificates::v1 as pb;
use serde_json::{json, Value};
use x509_parser::prelude::FromDer;

use crate::error::ApiError;
use crate::object;
use crate::registry::{keep, typed, Admission, Obj, Strategy};
use crate::resources::{Entry, Sub};
use crate::router::ApiState;
use crate::table::{age, col, human_duration, name, Column, AGE, NAME};
use crate::validation::{names, quote, Errs, NameRule};

/// Key usages Kubernetes accepts, sorted as its error messages list them.
const USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];
const APPROVED: &str = "Approved";
const DENIED: &str = "Denied";
const FAILED: &str = "Failed";
/// The shortest certificate lifetime a request may ask for.
const MIN_EXPIRATION_SECONDS: i64 = 600;

pub struct CertificateSigningRequests;

impl Strategy for CertificateSigningRequests {
    type Object = CertificateSigningRequest;
    type Protobuf = pb::CertificateSigningRequest;
    const RESOURCE: Entry = Entry {
        short_names: &["csr"],
        subresources: &[Sub::Status, Sub::Approval],
        ..Entry::DEFAULT
    };
    const FIELD_SELECTORS: &'static [&'static str] = &["spec.signerName"];
    const NAME: NameRule = NameRule::PathSegment;
    const COLUMNS: &'static [Column] = &[
        NAME,
        AGE,
        col("SignerName"),
        col("Requestor"),
        col("RequestedDuration"),
        col("Condition"),
    ];

    /// A condition without a status is true.
    fn defaults(&self, obj: &mut Value) {
        let conditions = obj
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut);
        for c in conditions.into_iter().flatten() {
            if c.get("status").is_none_or(|s| s.is_null() || s == "") {
                c["status"] = json!("True");
            }
        }
    }

    /// The requester is the server's to say ([`Admission::Create`]); status starts empty.
    fn prepare_for_create(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            for f in ["username", "uid", "groups", "extra"] {
                spec.remove(f);
            }
        }
        obj["status"] = json!({});
    }

    /// The main resource changes metadata only.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        keep(new, old, "spec");
        keep(new, old, "status");
    }

    /// `/status` may not touch the approval conditions; `/approval` touches nothing else.
    fn prepare_for_subresource(&self, sub: Sub, new: Value, old: &Value) -> Value {
        let mut out = old.clone();
        let is_approval = |c: &&Value| c["type"] == APPROVED || c["type"] == DENIED;
        let conditions = |o: &Value| -> Vec<Value> {
            o.pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let merged: Vec<Value> = match sub {
            Sub::Status => {
                keep(&mut out, &new, "status");
                let mine = conditions(&new);
                let kept = conditions(old);
                mine.iter()
                    .filter(|c| !is_approval(c))
                    .chain(kept.iter().filter(is_approval))
                    .cloned()
                    .collect()
            }
            Sub::Approval => conditions(&new),
            _ => return out,
        };
        if !out.get("status").is_some_and(Value::is_object) {
            out["status"] = json!({});
        }
        if merged.is_empty() {
            if let Some(s) = out["status"].as_object_mut() {
                s.remove("conditions");
            }
        } else {
            out["status"]["conditions"] = json!(stamp_conditions(merged, &conditions(old)));
        }
        out
    }

    fn validate(
        &self,
        new: Obj<'_, CertificateSigningRequest>,
        old: Option<Obj<'_, CertificateSigningRequest>>,
        errs: &mut Errs,
    ) {
        let csr = new.json;
        let spec = new.typed.spec.clone();
        if let Some(why) = request_error(&spec.request.0) {
            errs.invalid("spec.request", go_bytes(csr, &spec.request.0), &why);
        }
        let usages = spec.usages.unwrap_or_default();
        if usages.is_empty() {
            errs.required("spec.usages", "usages must be provided");
        }
        let mut seen = Vec::new();
        for (i, u) in usages.iter().enumerate() {
            if !USAGES.contains(&u.as_str()) {
                errs.not_supported(&format!("spec.usages[{i}]"), u, USAGES);
            }
            if seen.contains(&u) {
                errs.duplicate(&format!("spec.usages[{i}]"), quote(u));
            }
            seen.push(u);
        }
        signer_name(&spec.signer_name, errs);
        if let Some(s) = spec
            .expiration_seconds
            .map(i64::from)
            .filter(|s| *s < MIN_EXPIRATION_SECONDS)
        {
            errs.invalid(
                "spec.expirationSeconds",
                s.to_string(),
                "may not specify a duration less than 600 seconds (10 minutes)",
            );
        }
        conditions(csr, errs);
        if let Some(old) = old {
            let count = |o: &Value, t: &str| {
                o.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .map_or(0, |cs| cs.iter().filter(|c| c["type"] == t).count())
            };
            for t in [APPROVED, DENIED, FAILED] {
                if count(csr, t) < count(old.json, t) {
                    errs.forbidden(
                        "status.conditions",
                        &format!("updates may not remove a condition of type {}", quote(t)),
                    );
                }
            }
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let csr: CertificateSigningRequest = typed(o);
        let signer = if csr.spec.signer_name.is_empty() {
            "<none>".to_string()
        } else {
            csr.spec.signer_name.clone()
        };
        let duration = csr
            .spec
            .expiration_seconds
            .map_or("<none>".to_string(), |s| human_duration(i64::from(s)));
        vec![
            name(o),
            age(o),
            json!(signer),
            json!(csr.spec.username.unwrap_or_default()),
            json!(duration),
            json!(condition(o)),
        ]
    }

    fn admit<'a>(
        &'a self,
        state: &'a ApiState,
        op: Admission<'a>,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        if let Admission::Update {
            new,
            sub: Some(Sub::Approval),
            user: Some(user),
            ..
        } = op
        {
            let signer = new["spec"]["signerName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let name = crate::object::name(new).to_string();
            return Box::pin(async move { may_approve(state, user, &name, &signer).await });
        }
        if let Admission::Create {
            obj,
            user: Some(user),
            ..
        } = op
        {
            let spec = &mut obj["spec"];
            spec["username"] = json!(user.name);
            if !user.uid.is_empty() {
                spec["uid"] = json!(user.uid);
            }
            if !user.groups.is_empty() {
                spec["groups"] = json!(user.groups);
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Ok when `user` may `approve` requests of `signer` (the signer's name or `DOMAIN/*` in a
/// rule's resourceNames of `certificates.k8s.io` `signers`), as upstream's
/// CertificateApproval admission decides; the server's own approver is in `system:masters`.
async fn may_approve(
    state: &ApiState,
    user: &crate::auth::UserInfo,
    name: &str,
    signer: &str,
) -> Result<(), ApiError> {
    if crate::rbac::is_master(user) {
        return Ok(());
    }
    let domain_wildcard = signer.split_once('/').map(|(d, _)| format!("{d}/*"));
    for resource_name in std::iter::once(signer.to_string()).chain(domain_wildcard) {
        let a = crate::auth::Attributes {
            verb: "approve",
            group: "certificates.k8s.io",
            resource: "signers",
            subresource: None,
            namespace: None,
            name: Some(&resource_name),
        };
        if crate::rbac::grant(state, user, crate::rbac::Request::Resource(&a))
            .await?
            .is_some()
        {
            return Ok(());
        }
    }
    Err(ApiError::forbidden(
        "certificates.k8s.io",
        "certificatesigningrequests",
        name,
        &format!("user not permitted to approve requests with signerName {signer:?}"),
    ))
}

/// Why `pem` is not a certificate request with a valid signature, as Go's x509 words it.
fn request_error(pem: &[u8]) -> Option<String> {
    let block = match x509_parser::pem::parse_x509_pem(pem) {
        Ok((_, block)) if block.label == "CERTIFICATE REQUEST" => block,
        _ => return Some("PEM block type must be CERTIFICATE REQUEST".into()),
    };
    let csr = match x509_parser::certification_request::X509CertificationRequest::from_der(
        &block.contents,
    ) {
        Ok((_, csr)) => csr,
        Err(e) => return Some(format!("x509: malformed certificate request: {e}")),
    };
    csr.verify_signature()
        .err()
        .map(|e| format!("x509: signature verification failed: {e}"))
}

/// A byte string as Go's `%#v` shows it in field errors.
fn go_bytes(csr: &Value, bytes: &[u8]) -> String {
    if csr.pointer("/spec/request").is_none() {
        return "[]byte(nil)".into();
    }
    let hex: Vec<String> = bytes.iter().map(|b| format!("0x{b:x}")).collect();
    format!("[]byte{{{}}}", hex.join(", "))
}

/// `domain/path`, the domain a fully qualified DNS subdomain.
fn signer_name(signer: &str, errs: &mut Errs) {
    const FIELD: &str = "spec.signerName";
    if signer.is_empty() {
        errs.required(FIELD, "");
        return;
    }
    let Some((domain, path)) = signer.split_once('/').filter(|(_, p)| !p.contains('/')) else {
        errs.invalid(
            FIELD,
            quote(signer),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        );
        return;
    };
    if !domain.contains('.') {
        errs.invalid(
            FIELD,
            quote(signer),
            "should be a domain with at least two segments separated by dots",
        );
    }
    for m in names::dns1123_subdomain(domain) {
        errs.invalid(FIELD, quote(signer), &format!("validating domain: {m}"));
    }
    if path.is_empty() {
        errs.invalid(FIELD, quote(signer), "validating path: must not be empty");
    }
}

/// Each condition has a type, one of each type, a valid status; Approved, Denied and
/// Failed are only ever true, and Approved and Denied exclude each other.
fn conditions(csr: &Value, errs: &mut Errs) {
    let list = csr
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (mut approved, mut denied) = (false, false);
    let mut seen: Vec<&str> = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let field = format!("status.conditions[{i}]");
        let ty = c["type"].as_str().unwrap_or("");
        let status = c["status"].as_str().unwrap_or("");
        if ty.is_empty() {
            errs.required(&format!("{field}.type"), "");
        }
        if !["True", "False", "Unknown"].contains(&status) {
            errs.not_supported(
                &format!("{field}.status"),
                status,
                &["True", "False", "Unknown"],
            );
        }
        let exclusive = match ty {
            APPROVED => {
                approved = true;
                denied
            }
            DENIED => {
                denied = true;
                approved
            }
            _ => false,
        };
        if exclusive {
            errs.invalid(
                &format!("{field}.type"),
                quote(ty),
                "Approved and Denied conditions are mutually exclusive",
            );
        }
        if [APPROVED, DENIED, FAILED].contains(&ty) && status != "True" {
            errs.not_supported(&format!("{field}.status"), status, &["True"]);
        }
        if seen.contains(&ty) {
            errs.duplicate(&format!("{field}.type"), quote(ty));
        }
        seen.push(ty);
    }
}

/// Sets `lastUpdateTime` (now) and `lastTransitionTime` (kept from an old condition of the
/// same type and status, else now) where a written condition leaves them out.
fn stamp_conditions(new: Vec<Value>, old: &[Value]) -> Vec<Value> {
    let now = object::now();
    new.into_iter()
        .map(|mut c| {
            if c.get("lastUpdateTime").is_none_or(Value::is_null) {
                c["lastUpdateTime"] = json!(now);
            }
            if c.get("lastTransitionTime").is_none_or(Value::is_null) {
                let kept = old
                    .iter()
                    .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
                    .and_then(|o| o.get("lastTransitionTime"))
                    .filter(|t| !t.is_null())
                    .cloned();
                c["lastTransitionTime"] = kept.unwrap_or_else(|| json!(now));
            }
            c
        })
        .collect()
}

/// `Denied`, `Approved` or `Pending`, then `,Failed` and `,Issued` (kubectl's Condition).
fn condition(o: &Value) -> String {
    let has = |t: &str| {
        o.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == t))
    };
    let mut s = if has(DENIED) {
        "Denied"
    } else if has(APPROVED) {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has(FAILED) {
        s.push_str(",Failed");
    }
    if o.pointer("/status/certificate")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
    {
        s.push_str(",Issued");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;
    use base64::Engine;

    /// A PEM certificate request signed by its own key.
    fn request() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["jane".to_string()]).unwrap();
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        base64::engine::general_purpose::STANDARD.encode(pem)
    }

    fn csr() -> Value {
        json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "jane"},
            "spec": {"request": request(), "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"]}})
    }

    #[test]
    fn a_request_needs_a_signer_usages_and_a_valid_csr() {
        assert!(Kind::validate(&CertificateSigningRequests, &csr(), None).is_ok());
        let bare = json!({"metadata": {"name": "jane"}, "spec": {"request": "aGk="}});
        let err = Kind::validate(&CertificateSigningRequests, &bare, None).unwrap_err();
        let causes: Vec<String> = err
            .causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            causes,
            [
                "spec.request: Invalid value: []byte{0x68, 0x69}: PEM block type must be CERTIFICATE REQUEST",
                "spec.usages: Required value: usages must be provided",
                "spec.signerName: Required value",
            ]
        );
    }

    #[test]
    fn approval_sets_conditions_and_status_cannot() {
        let mut created = csr();
        Kind::prepare_for_create(&CertificateSigningRequests, &mut created);
        let approve = json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]},
            "spec": {"signerName": "evil.example.com/x"}});
        let approved = Kind::prepare_for_subresource(
            &CertificateSigningRequests,
            Sub::Approval,
            approve,
            &created,
        );
        assert_eq!(approved["spec"], created["spec"]);
        assert_eq!(approved["status"]["conditions"][0]["type"], "Approved");
        assert!(approved["status"]["conditions"][0]["lastTransitionTime"].is_string());
        assert!(Kind::validate(&CertificateSigningRequests, &approved, Some(&created)).is_ok());
        assert_eq!(condition(&approved), "Approved");

        let self_approve =
            json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}});
        let via_status = Kind::prepare_for_subresource(
            &CertificateSigningRequests,
            Sub::Status,
            self_approve,
            &created,
        );
        assert!(via_status["status"].get("conditions").is_none());

        let mut denied = approved.clone();
        denied["status"]["conditions"] = json!([{"type": "Denied", "status": "True"}]);
        let err =
            Kind::validate(&CertificateSigningRequests, &denied, Some(&approved)).unwrap_err();
        assert_eq!(
            err.causes[0].message,
            "Forbidden: updates may not remove a condition of type \"Approved\""
        );
    }

    #[test]
    fn row_matches_kubectl_get_csr() {
        let mut c = csr();
        c["spec"]["username"] = json!("admin");
        c["spec"]["expirationSeconds"] = json!(86400);
        let cells = Kind::cells(&CertificateSigningRequests, &c);
        assert_eq!(
            &cells[2..],
            [
                json!("kubernetes.io/kube-apiserver-client"),
                json!("admin"),
                json!("24h"),
                json!("Pending")
            ]
        );
    }
}

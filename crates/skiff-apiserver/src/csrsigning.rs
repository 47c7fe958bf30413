//! The cluster's CSR approver and signer (what kube-controller-manager's `csrapproving` and
//! `csrsigning` controllers do). It approves exactly two kinds of request on its own:
//! a node client certificate (`kubernetes.io/kube-apiserver-client-kubelet`, CN
//! `system:node:<name>`, O `system:nodes`, client auth only) asked for by a join-token
//! caller or by that node itself, and a kubelet serving certificate
//! (`kubernetes.io/kubelet-serving`, the same subject, server auth, DNS and IP names only)
//! asked for by that node, naming only the Node's name and addresses. A bootstrap or node
//! caller's request of those signers that breaks the rules is denied with the reason.
//! Approved requests of the `kubernetes.io` client, kubelet-client and kubelet-serving
//! signers are signed with the cluster CA.
//!
//! It lives in the API server, not in skiff-controllers, because signing needs the CA's
//! private key, which never leaves the server's data directory; it is an API client like any
//! controller (an in-process kube client), so its writes go through the same validation.

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use rcgen::ExtendedKeyUsagePurpose;
use serde_json::json;
use x509_parser::prelude::{FromDer, GeneralName};

use crate::nodeauth::{BOOTSTRAPPERS, NODES, NODE_PREFIX};
use crate::pki::Pki;
use crate::router::ApiState;

pub const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
pub const APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// How long a signed certificate is valid unless the request asks for less
/// (kube-controller-manager's `--cluster-signing-duration`).
pub const DEFAULT_SECONDS: i64 = 365 * 24 * 3600;

/// What the approver decides about one request.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Approve(&'static str),
    Deny(String),
    /// Not ours to judge: left for an administrator.
    Pass,
}

/// Runs the approver and signer until `stop` completes; certificates it signs live at most
/// `max_seconds` (kube-controller-manager's `--cluster-signing-duration`, default
/// [`DEFAULT_SECONDS`]).
pub async fn run(state: Arc<ApiState>, pki: Pki, max_seconds: i64, stop: impl Future<Output = ()>) {
    let user = crate::auth::component("system:kube-controller-manager");
    let api: Api<CertificateSigningRequest> =
        Api::all(crate::router::in_process_client(state, user));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            r = follow(&api, &pki, max_seconds) => if let Err(e) = r {
                tracing::warn!(error = %e, "certificate signing requests: watch failed");
            },
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// Lists every request, handles each, then handles changes until the watch ends.
async fn follow(
    api: &Api<CertificateSigningRequest>,
    pki: &Pki,
    max_seconds: i64,
) -> Result<(), kube::Error> {
    let list = api.list(&ListParams::default()).await?;
    for csr in list.items {
        handle(api, pki, max_seconds, csr).await;
    }
    let rv = list.metadata.resource_version.unwrap_or_default();
    let mut events = api
        .watch(&WatchParams::default().timeout(290), &rv)
        .await?
        .boxed();
    while let Some(event) = events.try_next().await? {
        match event {
            WatchEvent::Added(csr) | WatchEvent::Modified(csr) => {
                handle(api, pki, max_seconds, csr).await
            }
            WatchEvent::Error(_) => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

fn has(csr: &CertificateSigningRequest, ty: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == ty && c.status == "True"))
}

async fn handle(
    api: &Api<CertificateSigningRequest>,
    pki: &Pki,
    max_seconds: i64,
    mut csr: CertificateSigningRequest,
) {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let issued = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if issued || has(&csr, "Denied") || has(&csr, "Failed") {
        return;
    }
    if !has(&csr, "Approved") {
        let node_names = match (
            csr.spec.signer_name.as_str(),
            csr.spec
                .username
                .as_deref()
                .and_then(|u| u.strip_prefix(NODE_PREFIX)),
        ) {
            (KUBELET_SERVING, Some(node)) => node_names(api, node).await,
            _ => None,
        };
        let (ty, reason, message) = match judge(&csr, node_names.as_deref()) {
            Verdict::Pass => return,
            Verdict::Approve(why) => ("Approved", "AutoApproved", why.to_string()),
            Verdict::Deny(why) => ("Denied", "AutoDenied", why),
        };
        let mut conditions = csr
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        conditions.push(CertificateSigningRequestCondition {
            type_: ty.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message),
            ..Default::default()
        });
        csr.status.get_or_insert_with(Default::default).conditions = Some(conditions);
        match api
            .replace_subresource("approval", &name, &PostParams::default(), &csr)
            .await
        {
            Ok(updated) => csr = updated,
            Err(e) => {
                tracing::debug!(csr = %name, error = %e, "cannot write the approval");
                return;
            }
        }
        tracing::info!(csr = %name, verdict = ty, "certificate signing request judged");
        if ty != "Approved" {
            return;
        }
    }
    let usage = match csr.spec.signer_name.as_str() {
        KUBELET_CLIENT | APISERVER_CLIENT => ExtendedKeyUsagePurpose::ClientAuth,
        KUBELET_SERVING => ExtendedKeyUsagePurpose::ServerAuth,
        _ => return,
    };
    let seconds = csr
        .spec
        .expiration_seconds
        .map_or(max_seconds, |s| i64::from(s).min(max_seconds));
    let request = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
    let status = match pki.sign(&request, usage, seconds) {
        Ok(pem) => json!({"status": {"certificate": base64_of(pem.as_bytes())}}),
        Err(e) => json!({"status": {"conditions": [{
            "type": "Failed", "status": "True", "reason": "SignerValidationFailure",
            "message": error_chain(&e),
        }]}}),
    };
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
        .await
    {
        tracing::debug!(csr = %name, error = %e, "cannot write the certificate");
    } else {
        tracing::info!(csr = %name, "certificate issued");
    }
}

/// An error and its causes, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// An IP address SAN as text.
fn ip_string(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).to_string()),
        _ => None,
    }
}

/// Node `name`'s name and addresses, if it is registered.
async fn node_names(api: &Api<CertificateSigningRequest>, name: &str) -> Option<Vec<String>> {
    let nodes: Api<Node> = Api::all(api.clone().into_client());
    let node = nodes.get_opt(name).await.ok()??;
    let mut out = vec![name.to_string()];
    out.extend(
        node.status
            .and_then(|s| s.addresses)
            .into_iter()
            .flatten()
            .map(|a| a.address),
    );
    Some(out)
}

fn base64_of(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The parts of a certificate request the approver looks at.
struct Request {
    cn: String,
    orgs: Vec<String>,
    /// DNS names and IP addresses among the subject alternative names.
    names: Vec<String>,
    other_names: usize,
}

fn parse(pem: &[u8]) -> Option<Request> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
            .ok()?;
    let subject = &req.certification_request_info.subject;
    let cn = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let orgs = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    let (mut names, mut other_names) = (Vec::new(), 0);
    for ext in req.requested_extensions().into_iter().flatten() {
        if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
            for n in &san.general_names {
                match n {
                    GeneralName::DNSName(d) => names.push(d.to_string()),
                    GeneralName::IPAddress(b) => match ip_string(b) {
                        Some(ip) => names.push(ip),
                        None => other_names += 1,
                    },
                    _ => other_names += 1,
                }
            }
        }
    }
    Some(Request {
        cn,
        orgs,
        names,
        other_names,
    })
}

/// kube-controller-manager's rules for node certificates, with the requester in the spec;
/// `node_names` are the requesting node's name and addresses, when it is a registered Node.
fn judge(csr: &CertificateSigningRequest, node_names: Option<&[String]>) -> Verdict {
    let spec = &csr.spec;
    let groups = spec.groups.clone().unwrap_or_default();
    let username = spec.username.clone().unwrap_or_default();
    let bootstrapper = groups.iter().any(|g| g == BOOTSTRAPPERS);
    let node_caller = username.starts_with(NODE_PREFIX) && groups.iter().any(|g| g == NODES);
    let usages = spec.usages.clone().unwrap_or_default();
    let only = |allowed: &[&str], needed: &str| {
        usages.iter().all(|u| allowed.contains(&u.as_str())) && usages.iter().any(|u| u == needed)
    };
    let req = parse(&spec.request.0);
    let node_subject = |r: &Request| {
        r.cn.strip_prefix(NODE_PREFIX)
            .is_some_and(|n| !n.is_empty())
            && r.orgs == [NODES.to_string()]
    };
    match spec.signer_name.as_str() {
        KUBELET_CLIENT if bootstrapper || node_caller => {
            let Some(r) = req else {
                return Verdict::Deny("the request cannot be parsed".into());
            };
            if !node_subject(&r) {
                return Verdict::Deny(
                    "a node client certificate names system:node:<name> in O=system:nodes".into(),
                );
            }
            if !r.names.is_empty() || r.other_names > 0 {
                return Verdict::Deny(
                    "a node client certificate has no subject alternative names".into(),
                );
            }
            if !only(
                &["digital signature", "key encipherment", "client auth"],
                "client auth",
            ) {
                return Verdict::Deny("a node client certificate is for client auth only".into());
            }
            if !bootstrapper && username != r.cn {
                return Verdict::Deny(format!("{username} cannot ask for {}'s certificate", r.cn));
            }
            Verdict::Approve("node client certificate for a joining or renewing node")
        }
        KUBELET_SERVING if node_caller => {
            let Some(r) = req else {
                return Verdict::Deny("the request cannot be parsed".into());
            };
            if !node_subject(&r) || r.cn != username {
                return Verdict::Deny(format!(
                    "{username} may only ask for a serving certificate of its own name"
                ));
            }
            if r.names.is_empty() || r.other_names > 0 {
                return Verdict::Deny(
                    "a kubelet serving certificate names at least one DNS name or IP address and nothing else".into(),
                );
            }
            let Some(known) = node_names else {
                return Verdict::Deny(format!("{username} is not a registered Node"));
            };
            if let Some(n) = r.names.iter().find(|n| !known.contains(n)) {
                return Verdict::Deny(format!(
                    "{n} is neither the node's name nor one of its addresses"
                ));
            }
            if !only(
                &["digital signature", "key encipherment", "server auth"],
                "server auth",
            ) {
                return Verdict::Deny(
                    "a kubelet serving certificate is for server auth only".into(),
                );
            }
            Verdict::Approve("kubelet serving certificate of the requesting node")
        }
        _ if bootstrapper => Verdict::Deny(format!(
            "a join token may only ask for {KUBELET_CLIENT} certificates"
        )),
        _ => Verdict::Pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn request(cn: &str, org: &str, sans: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org);
        params
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
            .into_bytes()
    }

    fn csr(
        signer: &str,
        user: &str,
        groups: &[&str],
        req: Vec<u8>,
        usages: &[&str],
    ) -> CertificateSigningRequest {
        let mut c = CertificateSigningRequest::default();
        c.spec.signer_name = signer.into();
        c.spec.username = Some(user.into());
        c.spec.groups = Some(groups.iter().map(|g| g.to_string()).collect());
        c.spec.request = ByteString(req);
        c.spec.usages = Some(usages.iter().map(|u| u.to_string()).collect());
        c
    }

    #[test]
    fn approves_a_joining_nodes_client_certificate() {
        let c = csr(
            KUBELET_CLIENT,
            "system:bootstrap:node",
            &[BOOTSTRAPPERS],
            request("system:node:a", NODES, &[]),
            &["digital signature", "client auth"],
        );
        assert!(matches!(judge(&c, None), Verdict::Approve(_)));
    }

    #[test]
    fn denies_a_join_token_asking_for_an_admin_certificate() {
        let c = csr(
            KUBELET_CLIENT,
            "system:bootstrap:node",
            &[BOOTSTRAPPERS],
            request("admin", "system:masters", &[]),
            &["client auth"],
        );
        assert!(matches!(judge(&c, None), Verdict::Deny(_)));
        let c = csr(
            APISERVER_CLIENT,
            "system:bootstrap:node",
            &[BOOTSTRAPPERS],
            request("system:node:a", NODES, &[]),
            &["client auth"],
        );
        assert!(matches!(judge(&c, None), Verdict::Deny(_)));
    }

    #[test]
    fn a_node_gets_a_serving_certificate_only_for_itself() {
        let mine = csr(
            KUBELET_SERVING,
            "system:node:a",
            &[NODES],
            request("system:node:a", NODES, &["a", "10.0.0.2"]),
            &["digital signature", "server auth"],
        );
        let known = ["a".to_string(), "10.0.0.2".to_string()];
        assert!(matches!(judge(&mine, Some(&known)), Verdict::Approve(_)));
        assert!(
            matches!(judge(&mine, None), Verdict::Deny(_)),
            "an unregistered node gets no serving certificate"
        );
        let foreign = csr(
            KUBELET_SERVING,
            "system:node:a",
            &[NODES],
            request("system:node:a", NODES, &["a", "10.0.0.9"]),
            &["server auth"],
        );
        assert!(
            matches!(judge(&foreign, Some(&known)), Verdict::Deny(m) if m.contains("10.0.0.9")),
            "an address the Node does not have"
        );
        let other = csr(
            KUBELET_SERVING,
            "system:node:a",
            &[NODES],
            request("system:node:b", NODES, &["b"]),
            &["server auth"],
        );
        assert!(matches!(judge(&other, Some(&known)), Verdict::Deny(_)));
    }

    #[test]
    fn leaves_other_users_requests_to_an_administrator() {
        let c = csr(
            APISERVER_CLIENT,
            "alice",
            &["dev"],
            request("alice", "dev", &[]),
            &["client auth"],
        );
        assert_eq!(judge(&c, None), Verdict::Pass);
    }
}

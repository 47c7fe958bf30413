//! RBAC for people with kubectl: a new user gets a client certificate through a
//! CertificateSigningRequest the admin approves, is refused in Kubernetes' words until the
//! admin binds `view` to it, then may read pods but not delete them; `kubectl auth can-i`
//! answers as on Kubernetes (for the user, and for the admin with `--as`), the reviews are
//! resources `kubectl create -f` answers, and the default ClusterRoles are listed.

use std::process::Output;
use std::time::Duration;

use base64::Engine;

use super::kube_common::{poll, Cluster};

/// kubectl as `jane` (her own kubeconfig: the cluster CA, her certificate and key).
fn jane(c: &Cluster, args: &[&str]) -> Output {
    let kubeconfig = c.dir.path().join("jane.yaml");
    let mut full = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
    full.extend_from_slice(args);
    c.kubectl(&full)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn openssl(c: &Cluster, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(c.dir.path())
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// Jane's key and CSR (CN jane, O dev), approved by the admin, and her kubeconfig.
fn certificate_for_jane(c: &Cluster) {
    openssl(
        c,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "jane.key",
            "-subj",
            "/CN=jane/O=dev",
            "-out",
            "jane.csr",
        ],
    );
    let csr = std::fs::read(c.dir.path().join("jane.csr")).unwrap();
    let request = base64::engine::general_purpose::STANDARD.encode(csr);
    let manifest = c.write_file(
        "jane-csr.yaml",
        &format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: jane\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n"
        ),
    );
    c.kubectl_says(
        &["apply", "-f", manifest.to_str().unwrap()],
        "certificatesigningrequest.certificates.k8s.io/jane created",
    );
    c.kubectl_says(
        &["certificate", "approve", "jane"],
        "certificatesigningrequest.certificates.k8s.io/jane approved",
    );
    let cert = poll(Duration::from_secs(30), || {
        let b64 = c.kubectl_ok(&["get", "csr", "jane", "-o", "jsonpath={.status.certificate}"]);
        (!b64.is_empty()).then_some(b64)
    })
    .expect("jane's certificate was not issued");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(cert.trim())
        .unwrap();
    std::fs::write(c.dir.path().join("jane.crt"), pem).unwrap();
    let ca = c.data_dir().join("tls").join("ca.crt");
    c.write_file(
        "jane.yaml",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: jane\n  user:\n    client-certificate: jane.crt\n    client-key: jane.key\ncontexts:\n- name: jane\n  context: {{cluster: skiff, user: jane, namespace: default}}\ncurrent-context: jane\n",
            c.url(),
            ca.display()
        ),
    );
}

pub fn people_get_rbac_through_certificates(c: &mut Cluster) {
    c.kubectl_ok(&["run", "web", "--image=busybox:1", "--restart=Never"]);
    certificate_for_jane(c);
    let (who, err) = text(&jane(
        c,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ],
    ));
    assert_eq!(who, "jane [\"dev\",\"system:authenticated\"]", "{err}");

    // No binding yet: Kubernetes' refusal, and can-i says no (exit 1).
    let refused = jane(c, &["get", "pods"]);
    assert!(!refused.status.success());
    assert_eq!(
        text(&refused).1,
        "Error from server (Forbidden): pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    let no = jane(c, &["auth", "can-i", "list", "pods"]);
    assert_eq!((text(&no).0.as_str(), no.status.code()), ("no", Some(1)));

    c.kubectl_says(
        &[
            "create",
            "rolebinding",
            "jane-view",
            "--clusterrole=view",
            "--user=jane",
        ],
        "rolebinding.rbac.authorization.k8s.io/jane-view created",
    );
    // `view` is filled by the aggregation controller; the binding answers at once after.
    let yes = poll(Duration::from_secs(30), || {
        let out = jane(c, &["auth", "can-i", "list", "pods"]);
        (out.status.success() && text(&out).0 == "yes").then_some(())
    });
    assert!(yes.is_some(), "jane cannot list pods after the binding");
    let (pods, err) = text(&jane(c, &["get", "pods", "-o", "name"]));
    assert_eq!(pods, "pod/web", "{err}");
    let delete = jane(c, &["delete", "pod", "web"]);
    assert!(!delete.status.success());
    assert_eq!(
        text(&delete).1,
        "Error from server (Forbidden): pods \"web\" is forbidden: User \"jane\" cannot delete resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    let no = jane(c, &["auth", "can-i", "delete", "pods"]);
    assert_eq!(text(&no).0, "no");
    let other_ns = jane(c, &["auth", "can-i", "list", "pods", "-n", "kube-system"]);
    assert_eq!(text(&other_ns).0, "no");
    let list = text(&jane(c, &["auth", "can-i", "--list"])).0;
    let pods_row = list
        .lines()
        .find(|l| l.starts_with("pods "))
        .unwrap_or_else(|| panic!("no pods row in {list}"));
    assert!(pods_row.contains("[get list watch]"), "{list}");
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );

    // The admin asks for her (impersonation) and for itself.
    assert_eq!(
        c.kubectl_ok(&["auth", "can-i", "get", "pods", "--as", "jane"])
            .trim(),
        "yes"
    );
    let as_jane = c.kubectl(&["auth", "can-i", "create", "deployments", "--as", "jane"]);
    assert_eq!(text(&as_jane).0, "no");
    let as_group = c.kubectl(&[
        "auth",
        "can-i",
        "get",
        "pods",
        "--as",
        "joe",
        "--as-group",
        "dev",
    ]);
    assert_eq!(text(&as_group).0, "no", "dev has no binding");
    assert_eq!(
        c.kubectl_ok(&["auth", "can-i", "delete", "nodes"]).trim(),
        "yes"
    );
    // jane may not impersonate the admin.
    let impersonate = jane(c, &["get", "pods", "--as", "admin"]);
    assert!(
        text(&impersonate).1.contains(
            "users \"admin\" is forbidden: User \"jane\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        ),
        "{impersonate:?}"
    );

    reviews_are_resources(c);

    let roles = c.kubectl_ok(&["get", "clusterroles", "-o", "name"]);
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:auth-delegator",
    ] {
        assert!(
            roles
                .lines()
                .any(|l| l == format!("clusterrole.rbac.authorization.k8s.io/{role}")),
            "{role} missing from {roles}"
        );
    }
}

/// The access and identity reviews are resources as on Kubernetes: listed (create only) by
/// `kubectl api-resources`, and a review written as YAML is answered by `kubectl create -f`.
fn reviews_are_resources(c: &Cluster) {
    for (group, want) in [
        (
            "authorization.k8s.io",
            "localsubjectaccessreviews.authorization.k8s.io selfsubjectaccessreviews.authorization.k8s.io selfsubjectrulesreviews.authorization.k8s.io subjectaccessreviews.authorization.k8s.io",
        ),
        (
            "authentication.k8s.io",
            "selfsubjectreviews.authentication.k8s.io tokenreviews.authentication.k8s.io",
        ),
    ] {
        let group_flag = format!("--api-group={group}");
        let names = c.kubectl_ok(&["api-resources", &group_flag, "-o", "name"]);
        let names: Vec<&str> = names.lines().collect();
        assert_eq!(names.join(" "), want);
        let wide = c.kubectl_ok(&["api-resources", &group_flag, "-o", "wide"]);
        // Create only: the VERBS column says `create` and nothing else.
        assert!(
            wide.lines().skip(1).all(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.contains(&"create") && !words.iter().any(|w| w.contains("get"))
            }),
            "{wide}"
        );
    }
    // kubectl validates a kind without a PATCH operation (every review) on its own, after
    // asking the server whether it is a CustomResourceDefinition.
    let create = |file: &str, yaml: &str, jsonpath: &str| {
        let f = c.write_file(file, yaml);
        let path = f.to_str().unwrap();
        let out = c.kubectl(&["create", "-f", path, "-o", jsonpath]);
        let (answer, err) = text(&out);
        assert!(out.status.success(), "{file}: {err}");
        answer
    };
    // Jane holds `view` in default: she may get pods there, not delete them.
    let sar = |verb: &str| {
        format!("apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: jane\n  resourceAttributes: {{namespace: default, verb: {verb}, resource: pods}}\n")
    };
    let allowed = "jsonpath={.status.allowed}";
    assert_eq!(create("sar-delete.yaml", &sar("delete"), allowed), "false");
    let reason = create(
        "sar-get.yaml",
        &sar("get"),
        "jsonpath={.status.allowed} {.status.reason}",
    );
    assert!(
        reason.starts_with("true RBAC: allowed by RoleBinding \"jane-view/default\""),
        "{reason}"
    );
    let local = create(
        "lsar.yaml",
        "apiVersion: authorization.k8s.io/v1\nkind: LocalSubjectAccessReview\nmetadata:\n  namespace: default\nspec:\n  user: jane\n  resourceAttributes: {verb: list, resource: pods}\n",
        "jsonpath={.metadata.namespace} {.spec.resourceAttributes.namespace} {.status.allowed}",
    );
    assert_eq!(local, "default default true");
    let ssar = create(
        "ssar.yaml",
        "apiVersion: authorization.k8s.io/v1\nkind: SelfSubjectAccessReview\nspec:\n  resourceAttributes: {verb: delete, resource: nodes}\n",
        "yaml",
    );
    assert!(ssar.contains("allowed: true"), "{ssar}");
    let rules = create(
        "ssrr.yaml",
        "apiVersion: authorization.k8s.io/v1\nkind: SelfSubjectRulesReview\nspec:\n  namespace: default\n",
        "jsonpath={.status.incomplete} {.status.resourceRules[*].verbs}",
    );
    assert!(
        rules.starts_with("false ") && rules.contains("[\"*\"]"),
        "the admin's cluster-admin rule: {rules}"
    );
    let whoami = create(
        "ssr.yaml",
        "apiVersion: authentication.k8s.io/v1\nkind: SelfSubjectReview\n",
        "jsonpath={.status.userInfo.groups}",
    );
    assert!(whoami.contains("system:masters"), "{whoami}");
    // A token the API gave: who it is, and for which audience.
    let token = c.kubectl_ok(&["create", "token", "default", "--audience=vault"]);
    let review = |audience: &str| {
        format!(
            "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {}\n  audiences: [{audience}]\n",
            token.trim()
        )
    };
    let who = create(
        "tokenreview.yaml",
        &review("vault"),
        "jsonpath={.status.authenticated} {.status.user.username} {.status.audiences}",
    );
    assert_eq!(
        who,
        "true system:serviceaccount:default:default [\"vault\"]"
    );
    let other = create(
        "tokenreview-other.yaml",
        &review("other"),
        "jsonpath={.status.authenticated}|{.status.error}",
    );
    assert!(
        other.starts_with("|token audiences [\"vault\"] is invalid"),
        "{other}"
    );
    // kubectl's own validation of a review catches a misspelt field, as against Kubernetes.
    let typo = c.write_file(
        "sar-typo.yaml",
        "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: jane\n  resourceAttributes: {verbb: get, resource: pods}\n",
    );
    let out = c.kubectl(&["create", "-f", typo.to_str().unwrap()]);
    let (_, err) = text(&out);
    assert!(
        !out.status.success() && err.contains("unknown field \"verbb\""),
        "{err}"
    );
}

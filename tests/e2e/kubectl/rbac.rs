//! RBAC for people with kubectl: a new user gets a client certificate through a
//! CertificateSigningRequest the admin approves, is refused in Kubernetes' words until the
//! admin binds `view` to it, then may read pods but not delete them; `kubectl auth can-i`
//! answers as on Kubernetes (for the user, and for the admin with `--as`), and the default
//! ClusterRoles are listed.

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

    let roles = c.kubectl_ok(&["get", "clusterroles", "-o", "name"]);
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
    ] {
        assert!(
            roles
                .lines()
                .any(|l| l == format!("clusterrole.rbac.authorization.k8s.io/{role}")),
            "{role} missing from {roles}"
        );
    }
}

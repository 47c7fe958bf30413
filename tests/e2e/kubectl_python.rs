//! The Python `kubernetes` client (pyenv's `python3`, `pip install kubernetes`) against
//! `skiff server`: create, read, list with a selector, patch and delete a ConfigMap.

mod kube_common;

use kube_common::{Cluster, Datastore};

const SCRIPT: &str = r#"
import sys
from kubernetes import client, config

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
names = [n.metadata.name for n in v1.list_namespace().items]
assert "default" in names, names
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"lang": "python"}), data={"k": "v"})
v1.create_namespaced_config_map("default", cm)
got = v1.read_namespaced_config_map("py", "default")
assert got.data == {"k": "v"}, got.data
listed = v1.list_namespaced_config_map("default", label_selector="lang=python")
assert [i.metadata.name for i in listed.items] == ["py"], listed.items
v1.patch_namespaced_config_map("py", "default", {"data": {"k": "w"}})
assert v1.read_namespaced_config_map("py", "default").data["k"] == "w"
v1.delete_namespaced_config_map("py", "default")
try:
    v1.read_namespaced_config_map("py", "default")
    raise SystemExit("still there")
except client.exceptions.ApiException as e:
    assert e.status == 404, e.status
print("ok")
"#;

/// Runs a Python client script against `c` (its kubeconfig is `sys.argv[1]`) and expects it to
/// print "ok".
fn run_script(c: &Cluster, script: &str) {
    let script = c.write_file("client.py", script);
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(c.kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed (is `pip install kubernetes` done?): {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn python_client_round_trip() {
    let c = Cluster::start(Datastore::Sqlite);
    run_script(&c, SCRIPT);
}

/// Error bodies are the bytes kube-apiserver sends (Go's member order, no empty
/// `details.group`), so code that compares `e.body` or `str(e)` sees the same text.
const STATUS_BODIES: &str = r#"
import sys
from kubernetes import client, config

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
try:
    v1.read_namespaced_config_map("nope", "default")
    raise SystemExit("found")
except client.exceptions.ApiException as e:
    want = '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \\"nope\\" not found","reason":"NotFound","details":{"name":"nope","kind":"configmaps"},"code":404}\n'
    assert e.body == want, repr(e.body)
    assert str(e).startswith("(404)\nReason: Not Found\n"), str(e)
    assert str(e).endswith("HTTP response body: " + want + "\n"), str(e)
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="twice"))
v1.create_namespaced_config_map("default", cm)
try:
    v1.create_namespaced_config_map("default", cm)
    raise SystemExit("created twice")
except client.exceptions.ApiException as e:
    want = '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \\"twice\\" already exists","reason":"AlreadyExists","details":{"name":"twice","kind":"configmaps"},"code":409}\n'
    assert e.body == want, repr(e.body)
print("ok")
"#;

#[test]
fn python_client_sees_kube_apiserver_status_bodies() {
    let c = Cluster::start(Datastore::Sqlite);
    run_script(&c, STATUS_BODIES);
}

/// 150 unknown fields gave 150 `Warning` headers and http.client refused the reply ("got more
/// than 100 headers"); warnings are capped and worded as Kubernetes words them.
const MANY_UNKNOWN_FIELDS: &str = r#"
import sys
from kubernetes import client, config

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "noisy"}}
for i in range(150):
    body["x%d" % i] = i
# The typed API refuses unknown fields client-side; send the body as the generic client does.
api = v1.api_client
params = api.param_serialize("POST", "/api/v1/namespaces/{namespace}/configmaps",
    path_params={"namespace": "default"}, query_params=[("fieldValidation", "Warn")],
    header_params={"Content-Type": "application/json", "Accept": "application/json"},
    body=body, auth_settings=["BearerToken"])
resp = api.call_api(*params)
assert resp.status == 201, resp.status
warnings = resp.response.headers.getlist("Warning")
assert len(warnings) <= 50, len(warnings)
assert warnings[0] == '299 - "unknown field \\"x0\\""', warnings[0]
assert warnings[-1].endswith('more warnings were omitted"'), warnings[-1]
print("ok")
"#;

#[test]
fn python_client_survives_many_unknown_fields() {
    let c = Cluster::start(Datastore::Sqlite);
    run_script(&c, MANY_UNKNOWN_FIELDS);
}

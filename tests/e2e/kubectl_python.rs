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

#[test]
fn python_client_round_trip() {
    let c = Cluster::start(Datastore::Sqlite);
    let script = c.write_file("client.py", SCRIPT);
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

//! The names and labels pod containers carry on the engine, as cri-dockerd gives them: so
//! `docker ps` on a node shows Kubernetes' labels, and an agent that restarts finds its pods'
//! containers again from the engine alone.

/// `io.kubernetes.pod.name`.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// `io.kubernetes.pod.namespace`.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// `io.kubernetes.pod.uid`: what the agent finds a pod's containers by.
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// `io.kubernetes.container.name`: the container's name in the pod spec.
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// `io.kubernetes.container.restartCount`: which attempt this engine container is (0 first).
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// `io.kubernetes.pod.terminationGracePeriod`: seconds, to stop containers whose pod is gone.
pub const GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
/// `io.kubernetes.container.terminationMessagePath`.
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
/// `io.kubernetes.docker.type`: `container` (cri-dockerd also has `podsandbox`; skiff's
/// sandboxes are namespaces, not containers).
pub const DOCKER_TYPE: &str = "io.kubernetes.docker.type";
/// Whether the container is one of the pod's init containers (`init` or `app`).
pub const CONTAINER_KIND: &str = "io.skiff.container.kind";

/// cri-dockerd's engine container name: `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.
pub fn container_name(
    container: &str,
    pod: &str,
    namespace: &str,
    uid: &str,
    attempt: u32,
) -> String {
    format!("k8s_{container}_{pod}_{namespace}_{uid}_{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_cri_dockerd() {
        assert_eq!(
            container_name("web", "nginx-1", "default", "0c1d", 2),
            "k8s_web_nginx-1_default_0c1d_2"
        );
    }
}

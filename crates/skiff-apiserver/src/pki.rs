//! The cluster's certificates and client credentials, kept in the server's data directory:
//! a CA, the serving certificate, an admin client certificate, an admin bearer token, an
//! admin kubeconfig and the API server's client certificate for kubelets
//! (`kube-apiserver-kubelet-client`). Created on first start, reused afterwards. It also
//! mints kubelet serving certificates for nodes whose key it may hold (the server's local node).
//!
//! It only writes files under the data directory; it must not decide who may do what
//! (that is [`crate::auth`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Errors creating or loading the certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot access {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate a certificate")]
    Generate(#[from] rcgen::Error),
    #[error("{0} holds no usable PEM data")]
    BadPem(PathBuf),
}

impl skiff_core::HasKind for PkiError {
    fn kind(&self) -> skiff_core::ErrorKind {
        skiff_core::ErrorKind::Internal
    }
}

/// The files of the cluster's PKI in a data directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
}

/// The common name of the API server's client certificate for kubelets (kube-apiserver's
/// conventional name); kubelets accept no other client.
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

/// What the server needs at run time: its certificate chain and key, and the CA that signs
/// client certificates.
pub struct ServingMaterial {
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub ca: CertificateDer<'static>,
}

impl Pki {
    pub fn new(data_dir: &Path) -> Self {
        Pki {
            dir: data_dir.join("tls"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The cluster CA certificate, PEM (what `kube-root-ca.crt` publishes).
    pub fn ca_pem(&self) -> Result<String, PkiError> {
        read(&self.path("ca.crt"))
    }

    /// Creates whatever is missing (CA, serving and admin certificates) and returns the
    /// serving material. `sans` are the extra names and addresses the serving certificate covers.
    pub fn ensure(&self, sans: &[String]) -> Result<ServingMaterial, PkiError> {
        create_dir(&self.dir)?;
        let (ca_pem, ca_key_pem) = match (read(&self.path("ca.crt")), read(&self.path("ca.key"))) {
            (Ok(c), Ok(k)) => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::default();
                params.distinguished_name = dn("skiff-ca", None);
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages = vec![
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::CrlSign,
                    KeyUsagePurpose::DigitalSignature,
                ];
                let (cert, key) = (params.self_signed(&key)?.pem(), key.serialize_pem());
                self.write_pair("ca", &cert, &key)?;
                (cert, key)
            }
        };
        let ca_key = KeyPair::from_pem(&ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;

        let missing = missing_names(&self.path("server.crt"), sans);
        if !self.has_pair("server") || !missing.is_empty() {
            if self.has_pair("server") {
                tracing::info!(?missing, "serving certificate reissued for names it lacks");
            }
            let mut params = CertificateParams::new(sans.to_vec())?;
            params.distinguished_name = dn("skiff-apiserver", None);
            let (cert, key) = issue_leaf(&issuer, params, ExtendedKeyUsagePurpose::ServerAuth)?;
            self.write_pair("server", &cert, &key)?;
        }
        if !self.has_pair("admin") {
            let mut params = CertificateParams::default();
            params.distinguished_name = dn("admin", Some("system:masters"));
            let (cert, key) = issue_leaf(&issuer, params, ExtendedKeyUsagePurpose::ClientAuth)?;
            self.write_pair("admin", &cert, &key)?;
        }

        if !self.has_pair("kubelet-client") {
            let mut params = CertificateParams::default();
            params.distinguished_name = dn(KUBELET_CLIENT_CN, Some("system:masters"));
            let (cert, key) = issue_leaf(&issuer, params, ExtendedKeyUsagePurpose::ClientAuth)?;
            self.write_pair("kubelet-client", &cert, &key)?;
        }

        let ca = first_cert(&self.path("ca.crt"))?;
        let mut cert_chain = certs(&self.path("server.crt"))?;
        cert_chain.push(ca.clone());
        let key = private_key(&self.path("server.key"))?;
        Ok(ServingMaterial {
            cert_chain,
            key,
            ca,
        })
    }

    /// The API server's client certificate for kubelets (chain, key) and the CA that signs
    /// kubelet serving certificates.
    pub fn kubelet_client(&self) -> Result<ServingMaterial, PkiError> {
        let ca = first_cert(&self.path("ca.crt"))?;
        let cert_chain = certs(&self.path("kubelet-client.crt"))?;
        let key = private_key(&self.path("kubelet-client.key"))?;
        Ok(ServingMaterial {
            cert_chain,
            key,
            ca,
        })
    }

    /// Replaces the API server's kubelet-client certificate and key with new ones valid from
    /// now for `seconds`, and returns them (the server then presents them to kubelets).
    pub fn renew_kubelet_client(&self, seconds: i64) -> Result<ServingMaterial, PkiError> {
        let issuer = self.issuer()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(KUBELET_CLIENT_CN, Some("system:masters"));
        set_lifetime(&mut params, seconds);
        let (cert, key) = issue_leaf(&issuer, params, ExtendedKeyUsagePurpose::ClientAuth)?;
        self.write_pair("kubelet-client", &cert, &key)?;
        self.kubelet_client()
    }

    /// The file of the API server's kubelet-client certificate.
    pub fn kubelet_client_cert(&self) -> PathBuf {
        self.path("kubelet-client.crt")
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let ca_key = KeyPair::from_pem(&read(&self.path("ca.key"))?)?;
        Ok(Issuer::from_ca_cert_pem(
            &read(&self.path("ca.crt"))?,
            ca_key,
        )?)
    }

    /// A new kubelet serving certificate for node `node` covering `addresses` (and the node
    /// name), signed by the cluster CA and valid from now for `seconds`: what the server gives
    /// its local node. Not written to disk; minted again at each start and before it expires.
    pub fn kubelet_serving(
        &self,
        node: &str,
        addresses: &[IpAddr],
        seconds: i64,
    ) -> Result<ServingMaterial, PkiError> {
        let issuer = self.issuer()?;
        let mut sans = vec![node.to_string()];
        sans.extend(addresses.iter().map(IpAddr::to_string));
        let mut params = CertificateParams::new(sans)?;
        set_lifetime(&mut params, seconds);
        params.distinguished_name = dn(&format!("system:node:{node}"), Some("system:nodes"));
        let (cert, key) = issue_leaf(&issuer, params, ExtendedKeyUsagePurpose::ServerAuth)?;
        let parse_err = || PkiError::BadPem(self.dir.join("kubelet-serving"));
        let mut cert_chain: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut cert.as_bytes())
                .filter_map(Result::ok)
                .collect();
        if cert_chain.is_empty() {
            return Err(parse_err());
        }
        let ca = first_cert(&self.path("ca.crt"))?;
        cert_chain.push(ca.clone());
        let key = rustls_pemfile::private_key(&mut key.as_bytes())
            .ok()
            .flatten()
            .ok_or_else(parse_err)?;
        Ok(ServingMaterial {
            cert_chain,
            key,
            ca,
        })
    }

    /// Whether both `<name>.crt` and `<name>.key` exist.
    fn has_pair(&self, name: &str) -> bool {
        ["crt", "key"]
            .iter()
            .all(|ext| self.path(&format!("{name}.{ext}")).exists())
    }

    /// Writes `<name>.crt` and `<name>.key` (the key readable by the owner only).
    fn write_pair(&self, name: &str, cert: &str, key: &str) -> Result<(), PkiError> {
        write_private(&self.path(&format!("{name}.key")), key.as_bytes())?;
        write(&self.path(&format!("{name}.crt")), cert.as_bytes())?;
        Ok(())
    }

    /// The admin bearer token, generated into `<data>/token` at first start.
    pub fn ensure_admin_token(&self, data_dir: &Path) -> Result<String, PkiError> {
        let path = data_dir.join("token");
        if let Ok(t) = read(&path) {
            let t = t.trim().to_string();
            if !t.is_empty() {
                return Ok(t);
            }
        }
        let bytes: [u8; 24] = rand::thread_rng().gen();
        let token = hex::encode(bytes);
        write_private(&path, format!("{token}\n").as_bytes())?;
        Ok(token)
    }

    /// The node join token in `<data>/node-token` (mode 0600), generated at first start and
    /// kept while it names the current CA.
    pub fn ensure_node_token(
        &self,
        data_dir: &Path,
    ) -> Result<skiff_core::jointoken::JoinToken, PkiError> {
        use skiff_core::jointoken::JoinToken;
        let ca = first_cert(&self.path("ca.crt"))?;
        let path = data_dir.join("node-token");
        if let Some(t) = read(&path).ok().and_then(|t| JoinToken::parse(&t).ok()) {
            if t.trusts(&ca) {
                return Ok(t);
            }
        }
        let token = JoinToken::generate(&ca);
        write_private(&path, format!("{token}\n").as_bytes())?;
        Ok(token)
    }

    /// Signs the PEM certificate request `csr` with the cluster CA: its subject and names as
    /// requested, `usage` as the only extended key usage, valid from now for `seconds`.
    pub fn sign(
        &self,
        csr: &str,
        usage: ExtendedKeyUsagePurpose,
        seconds: i64,
    ) -> Result<String, PkiError> {
        let ca_key = KeyPair::from_pem(&read(&self.path("ca.key"))?)?;
        let issuer = Issuer::from_ca_cert_pem(&read(&self.path("ca.crt"))?, ca_key)?;
        let mut req = rcgen::CertificateSigningRequestParams::from_pem(csr)?;
        let now = time::OffsetDateTime::now_utc();
        let params = &mut req.params;
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::seconds(seconds);
        params.is_ca = IsCa::NoCa;
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(
            &rand::thread_rng().gen::<[u8; 16]>(),
        ));
        Ok(req.signed_by(&issuer)?.pem())
    }

    /// Writes `<data>/kubeconfig.yaml` for the admin client certificate, pointing at `server`
    /// (e.g. `https://127.0.0.1:6443`). Rewritten on each start so the address stays current.
    pub fn write_kubeconfig(&self, data_dir: &Path, server: &str) -> Result<PathBuf, PkiError> {
        let b64 = |name: &str| -> Result<String, PkiError> {
            Ok(base64::engine::general_purpose::STANDARD.encode(read(&self.path(name))?))
        };
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    \
             user: admin\n    namespace: default\ncurrent-context: skiff\nusers:\n- name: admin\n  user:\n    \
             client-certificate-data: {crt}\n    client-key-data: {key}\n",
            ca = b64("ca.crt")?,
            crt = b64("admin.crt")?,
            key = b64("admin.key")?,
        );
        let path = data_dir.join("kubeconfig.yaml");
        write_private(&path, config.as_bytes())?;
        Ok(path)
    }
}

/// Valid from now (backdated five minutes for clocks a little behind, as the CSR signer
/// does) until `seconds` from now.
fn set_lifetime(params: &mut CertificateParams, seconds: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(seconds);
}

/// A leaf certificate and key (PEM) for `usage`, with the names in `params`, signed by the CA.
fn issue_leaf(
    issuer: &Issuer<'_, KeyPair>,
    mut params: CertificateParams,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String), PkiError> {
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn dn(cn: &str, org: Option<&str>) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

/// The names and addresses the serving certificate must cover: what clients on the host use
/// (`localhost`, the host name, `bind`), what pods use — the `kubernetes` Service's names and
/// its ClusterIP `service_ip` — and the `advertised` address of the `kubernetes` Endpoints.
pub fn serving_sans(
    bind: IpAddr,
    advertised: IpAddr,
    service_ip: IpAddr,
    cluster_domain: &str,
) -> Vec<String> {
    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        format!("kubernetes.default.svc.{cluster_domain}"),
        service_ip.to_string(),
    ];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() && !sans.iter().any(|s| s == h) {
            sans.push(h.to_string());
        }
    }
    for ip in [bind, advertised] {
        if !ip.is_unspecified() && !sans.contains(&ip.to_string()) {
            sans.push(ip.to_string());
        }
    }
    sans
}

/// Which of `sans` the certificate at `path` does not name (all of them when it cannot be
/// read): a serving certificate made before a name was added, or for another address, is
/// made again.
fn missing_names(path: &Path, sans: &[String]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(data) = std::fs::read(path) else {
        return sans.to_vec();
    };
    let Some(Ok(der)) = rustls_pemfile::certs(&mut data.as_slice()).next() else {
        return sans.to_vec();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return sans.to_vec();
    };
    let mut have: Vec<String> = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => have.push((*d).to_string()),
                GeneralName::IPAddress(raw) => {
                    let ip = match raw.len() {
                        4 => <[u8; 4]>::try_from(*raw).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*raw).ok().map(IpAddr::from),
                        _ => None,
                    };
                    have.extend(ip.map(|i| i.to_string()));
                }
                _ => {}
            }
        }
    }
    sans.iter().filter(|s| !have.contains(s)).cloned().collect()
}

pub(crate) fn create_dir(path: &Path) -> Result<(), PkiError> {
    std::fs::create_dir_all(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    std::fs::write(path, data).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file readable by its owner only.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(data).map_err(io)
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let data = std::fs::read(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(PkiError::BadPem(path.to_path_buf()));
    }
    Ok(certs)
}

fn first_cert(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    Ok(certs(path)?.remove(0))
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let data = std::fs::read(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| PkiError::BadPem(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_ensure_reuses_the_ca_and_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        let sans = |advertised: &str| {
            serving_sans(
                "127.0.0.1".parse().unwrap(),
                advertised.parse().unwrap(),
                "10.43.0.1".parse().unwrap(),
                "cluster.local",
            )
        };
        let first = pki.ensure(&sans("127.0.0.1")).unwrap();
        let second = pki.ensure(&sans("127.0.0.1")).unwrap();
        assert_eq!(first.ca, second.ca);
        assert_eq!(first.cert_chain, second.cert_chain);
        let token = pki.ensure_admin_token(dir.path()).unwrap();
        assert_eq!(token.len(), 48);
        assert_eq!(pki.ensure_admin_token(dir.path()).unwrap(), token);
        let kc = pki
            .write_kubeconfig(dir.path(), "https://127.0.0.1:1")
            .unwrap();
        let text = std::fs::read_to_string(kc).unwrap();
        assert!(text.contains("server: https://127.0.0.1:1"));
        assert!(text.contains("client-key-data: "));

        // Pods' names for the API are in it; a new advertised address makes it again.
        let crt = dir.path().join("tls/server.crt");
        assert!(missing_names(&crt, &sans("127.0.0.1")).is_empty());
        assert_eq!(
            missing_names(&crt, &sans("192.0.2.7")),
            vec!["192.0.2.7".to_string()]
        );
        let third = pki.ensure(&sans("192.0.2.7")).unwrap();
        assert_eq!(third.ca, first.ca);
        assert_ne!(third.cert_chain, first.cert_chain);
        assert!(missing_names(&crt, &sans("192.0.2.7")).is_empty());
    }
}

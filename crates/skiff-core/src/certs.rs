//! When a certificate is due for renewal (kubelet's certificate manager's rule): after
//! 70–90 % of its lifetime, counted from when it was issued — the later of its `notBefore`
//! and when it was stored, because signers backdate `notBefore` and short test lifetimes
//! would otherwise renew in a loop. Used by joined nodes for their certificates and by the
//! API server for its kubelet-client certificate.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// When a certificate issued at `issued` (its notBefore, or when the node stored it if
/// later: signers backdate notBefore) and valid until `not_after` is renewed: after
/// `fraction` (0.7–0.9) of that span.
pub fn renew_at(issued: SystemTime, not_after: SystemTime, fraction: f64) -> SystemTime {
    let span = not_after.duration_since(issued).unwrap_or(Duration::ZERO);
    issued + span.mul_f64(fraction.clamp(0.0, 1.0))
}

/// The validity of the PEM certificate at `path`: (issued, notAfter), issued being the later
/// of notBefore and the file's modification time.
pub fn validity(path: &Path) -> Option<(SystemTime, SystemTime)> {
    let pem = std::fs::read(path).ok()?;
    let der = rustls_pemfile::certs(&mut &pem[..]).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let at = |t: x509_parser::time::ASN1Time| {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).ok()?))
    };
    let not_before = at(cert.validity().not_before)?;
    let not_after = at(cert.validity().not_after)?;
    let stored = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Some((stored.map_or(not_before, |s| s.max(not_before)), not_after))
}

/// Whether the certificate at `path` is missing, unreadable or no longer valid.
pub fn expired(path: &Path) -> bool {
    validity(path).is_none_or(|(_, not_after)| not_after <= SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_between_70_and_90_percent_of_the_lifetime_since_issue() {
        let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let not_after = issued + Duration::from_secs(100);
        assert_eq!(
            renew_at(issued, not_after, 0.7),
            issued + Duration::from_secs(70)
        );
        assert_eq!(
            renew_at(issued, not_after, 0.9),
            issued + Duration::from_secs(90)
        );
        // Already past its end: renew now.
        assert_eq!(renew_at(not_after, issued, 0.8), not_after);
    }

    #[test]
    fn a_certificate_is_read_back_with_its_validity() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["n".to_string()]).unwrap();
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(600)).into();
        params.not_after = (now + Duration::from_secs(60)).into();
        let cert = params.self_signed(&key).unwrap();
        let path = dir.path().join("c.crt");
        std::fs::write(&path, cert.pem()).unwrap();
        let (issued, not_after) = validity(&path).unwrap();
        // Backdated ten minutes, stored now: issued is when it was stored.
        let age = SystemTime::now().duration_since(issued).unwrap();
        assert!(age < Duration::from_secs(30), "{age:?}");
        let left = not_after.duration_since(SystemTime::now()).unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(30));
        assert!(!expired(&path));
        assert!(expired(&dir.path().join("missing.crt")));
    }
}

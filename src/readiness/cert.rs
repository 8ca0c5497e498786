//! kubelet's client certificate: when it stops being valid.
//!
//! kubelet authenticates to the API server with the client certificate its
//! `--kubeconfig` names (`client-certificate`, a file — kubeadm's
//! `/var/lib/kubelet/pki/kubelet-client-current.pem` —, or inline
//! `client-certificate-data`). Past its notAfter, the API server refuses
//! kubelet: it cannot renew its Lease or post its status, the Node goes
//! NotReady, and with rotation off nothing renews it. A PEM file may hold
//! the key too (kubelet's does): the first CERTIFICATE block is the
//! client certificate, as Go's tls.X509KeyPair takes it.
//!
//! Pure: the bytes come in.

use serde::{Deserialize, Serialize};

/// What the check needs of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertValidity {
    pub not_before: jiff::Timestamp,
    pub not_after: jiff::Timestamp,
    /// The subject's common name (`system:node:NAME`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// The first CERTIFICATE block of `pem_text`, parsed.
pub fn first_certificate(pem_text: &[u8]) -> Result<CertValidity, String> {
    use x509_cert::der::Decode;
    let blocks = pem::parse_many(pem_text).map_err(|e| format!("not PEM: {e}"))?;
    let block = blocks
        .iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .ok_or("no CERTIFICATE block")?;
    let cert = x509_cert::Certificate::from_der(block.contents())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let v = cert.tbs_certificate().validity();
    let ts = |t: x509_cert::time::Time| {
        jiff::Timestamp::from_second(t.to_unix_duration().as_secs() as i64)
            .map_err(|e| e.to_string())
    };
    let subject = cert
        .tbs_certificate()
        .subject()
        .iter()
        .filter(|a| a.oid == x509_cert::der::oid::db::rfc4519::COMMON_NAME)
        .filter_map(|a| {
            x509_cert::ext::pkix::name::DirectoryString::try_from(&a.value)
                .ok()
                .map(|s| s.value().into_owned())
        })
        .last();
    Ok(CertValidity {
        not_before: ts(v.not_before)?,
        not_after: ts(v.not_after)?,
        subject,
    })
}

/// Every CERTIFICATE block of a CA bundle parses; at least one.
pub fn ca_bundle(pem_text: &[u8]) -> Result<usize, String> {
    use x509_cert::der::Decode;
    let blocks = pem::parse_many(pem_text).map_err(|e| format!("not PEM: {e}"))?;
    let mut n = 0;
    for b in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
        x509_cert::Certificate::from_der(b.contents())
            .map_err(|e| format!("certificate {} is not X.509: {e}", n + 1))?;
        n += 1;
    }
    if n == 0 {
        return Err("no CERTIFICATE block".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> (String, String) {
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:w1");
        p.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        let c = p.self_signed(&key).unwrap();
        (c.pem(), key.serialize_pem())
    }

    #[test]
    fn validity_of_the_first_certificate_with_its_key() {
        let (c, k) = cert((2024, 1, 1), (2025, 1, 1));
        // kubelet's file: the certificate then the key (or the other way).
        let v = first_certificate(format!("{k}{c}").as_bytes()).unwrap();
        assert_eq!(v.not_after.to_string(), "2025-01-01T00:00:00Z");
        assert_eq!(v.not_before.to_string(), "2024-01-01T00:00:00Z");
        assert_eq!(v.subject.as_deref(), Some("system:node:w1"));
        assert!(first_certificate(k.as_bytes()).is_err());
        assert!(first_certificate(b"junk").is_err());
        assert_eq!(ca_bundle(format!("{c}{c}").as_bytes()), Ok(2));
        assert!(ca_bundle(b"").is_err());
    }
}

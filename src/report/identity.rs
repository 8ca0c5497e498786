//! Which Node is ours and whose credentials to use. Pure resolution from the
//! flags, environment values (read once by the caller and passed in, so tests
//! never touch the real environment) and files under the host root.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::hostroot::HostRoot;

/// The kubelet's own kubeconfig, a node path (read under the host root).
pub const KUBELET_KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
const SA_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The environment values resolution looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `NODE_NAME` (a DaemonSet sets it from `spec.nodeName`).
    pub node_name: Option<String>,
    /// `KUBECONFIG`.
    pub kubeconfig: Option<String>,
    /// `KUBERNETES_SERVICE_HOST` is set and a service-account token exists.
    pub in_cluster: bool,
    /// This machine's hostname.
    pub hostname: Option<String>,
}

impl Env {
    pub fn from_process() -> Env {
        let var = |k| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Env {
            node_name: var("NODE_NAME"),
            kubeconfig: var("KUBECONFIG"),
            in_cluster: var("KUBERNETES_SERVICE_HOST").is_some() && Path::new(SA_TOKEN).exists(),
            hostname: gethostname::gethostname().into_string().ok(),
        }
    }
}

/// The Node's name and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeName {
    pub name: String,
    pub source: &'static str,
}

/// `--node-name`, else `NODE_NAME`, else the node identity's own name
/// (`system:node:NAME` from the kubelet's client certificate: with it,
/// NodeRestriction allows no other Node), else kubelet's
/// `--hostname-override`, else the hostname. The last two are trimmed and
/// lowercased, as kubelet does when it registers the Node.
pub fn node_name(
    flag: Option<&str>,
    env: &Env,
    identity: Option<&str>,
    hostname_override: Option<&str>,
) -> Option<NodeName> {
    let given = |v: Option<&str>, source| {
        let v = v?.trim();
        (!v.is_empty()).then(|| NodeName {
            name: v.to_string(),
            source,
        })
    };
    let derived = |v: Option<&str>, source| {
        given(v, source).map(|n| NodeName {
            name: n.name.to_lowercase(),
            ..n
        })
    };
    given(flag, "--node-name")
        .or_else(|| given(env.node_name.as_deref(), "NODE_NAME"))
        .or_else(|| {
            given(
                identity.and_then(|i| i.strip_prefix("system:node:")),
                "the node identity (system:node:NAME)",
            )
        })
        .or_else(|| derived(hostname_override, "kubelet --hostname-override"))
        .or_else(|| derived(env.hostname.as_deref(), "hostname"))
}

/// Where the client configuration comes from, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--kubeconfig PATH` (a path for this process).
    Flag(PathBuf),
    /// `KUBECONFIG` (a `:`-separated list, merged like kubectl does).
    Env(String),
    /// The pod's service account.
    InCluster,
    /// The kubelet's kubeconfig: a node path, read under the host root.
    Kubelet(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(p) | Source::Kubelet(p) => write!(f, "{}", p.display()),
            Source::Env(v) => write!(f, "$KUBECONFIG ({v})"),
            Source::InCluster => f.write_str("in-cluster service account"),
        }
    }
}

pub fn source(flag: Option<&Path>, env: &Env) -> Source {
    match (flag, &env.kubeconfig) {
        (Some(p), _) => Source::Flag(p.to_path_buf()),
        (None, Some(v)) => Source::Env(v.clone()),
        (None, None) if env.in_cluster => Source::InCluster,
        (None, None) => Source::Kubelet(KUBELET_KUBECONFIG.into()),
    }
}

/// Who the API server will take us for, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `system:node:worker-1` (client certificate CN), a service account
    /// (token `sub`), or `user NAME` from the kubeconfig when neither can be read.
    pub name: String,
    pub source: String,
}

/// Read a kubeconfig file source with every file it names turned into a
/// path for this process. `None` for [`Source::InCluster`].
pub fn load(source: &Source, host: &HostRoot) -> Result<Option<Kubeconfig>, String> {
    let read = |p: &Path| Kubeconfig::read_from(p).map_err(|e| format!("{}: {e}", p.display()));
    match source {
        Source::Flag(p) => read(p).map(Some),
        Source::Env(list) => std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| read(&p))
            .try_fold(None, |acc: Option<Kubeconfig>, kc| match acc {
                None => Ok(Some(kc?)),
                Some(a) => a.merge(kc?).map(Some).map_err(|e| e.to_string()),
            }),
        Source::InCluster => Ok(None),
        Source::Kubelet(node_path) => {
            let file = host
                .resolve(node_path)
                .unwrap_or_else(|_| host.path(node_path));
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let mut kc =
                Kubeconfig::from_yaml(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            let dir = node_path.parent().unwrap_or(Path::new("/"));
            map_paths(&mut kc, host, dir);
            Ok(Some(kc))
        }
    }
}

/// Files named in the kubelet's kubeconfig are node paths: relative ones are
/// relative to the kubeconfig's directory; all of them live under the host root.
fn map_paths(kc: &mut Kubeconfig, host: &HostRoot, dir: &Path) {
    let map = |p: &mut Option<String>| {
        if let Some(v) = p {
            // kubelet-client-current.pem is a symlink with an absolute
            // target: resolve it inside the host root.
            let node_path = dir.join(&*v);
            let p = host
                .resolve(&node_path)
                .unwrap_or_else(|_| host.path(&node_path));
            *v = p.to_string_lossy().into_owned();
        }
    };
    for c in kc.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        map(&mut c.certificate_authority);
    }
    for a in kc
        .auth_infos
        .iter_mut()
        .filter_map(|a| a.auth_info.as_mut())
    {
        map(&mut a.client_certificate);
        map(&mut a.client_key);
        map(&mut a.token_file);
    }
}

/// The identity the current context authenticates as: the CN of its client
/// certificate, else the `sub` of its token file, else its user name.
pub fn identity_of(kc: &Kubeconfig) -> Option<String> {
    let ctx = kc.current_context.as_deref()?;
    let user = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx)?
        .context
        .as_ref()?
        .user
        .clone()?;
    let auth = kc
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref());
    let cert = auth.and_then(
        |a| match (&a.client_certificate_data, &a.client_certificate) {
            (Some(data), _) => String::from_utf8(base64_standard(data)?).ok(),
            (None, Some(path)) => std::fs::read_to_string(path).ok(),
            (None, None) => None,
        },
    );
    let token = auth.and_then(|a| std::fs::read_to_string(a.token_file.as_ref()?).ok());
    Some(
        cert.as_deref()
            .and_then(cert_cn)
            .or_else(|| jwt_sub(token.as_deref()?))
            .unwrap_or(format!("user {user}")),
    )
}

/// Build the client configuration for `source`, with its identity.
pub async fn client_config(
    source: &Source,
    host: &HostRoot,
) -> Result<(kube::Config, Identity), String> {
    let shown = source.to_string();
    let Some(kc) = load(source, host)? else {
        let config = kube::Config::incluster().map_err(|e| format!("in-cluster config: {e}"))?;
        let token = config
            .auth_info
            .token_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok());
        let name = token
            .as_deref()
            .and_then(jwt_sub)
            .unwrap_or("service account".into());
        return Ok((
            config,
            Identity {
                name,
                source: shown,
            },
        ));
    };
    let name = identity_of(&kc).unwrap_or("unknown user".into());
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok((
        config,
        Identity {
            name,
            source: shown,
        },
    ))
}

/// Standard base64, as kube-client decodes `client-certificate-data`;
/// line breaks and missing padding tolerated.
pub(crate) fn base64_standard(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let s: String = s.split_ascii_whitespace().collect();
    base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
        .decode(s)
        .ok()
}

/// The `sub` claim of a JWT (not verified: only shown to the operator). Its
/// payload is base64url without padding (RFC 7515); padding is tolerated.
fn jwt_sub(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.trim().split('.').nth(1)?;
    let payload = base64::engine::general_purpose::URL_SAFE_PAD_INDIFFERENT
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    Some(v.get("sub")?.as_str()?.to_string())
}

/// The subject CN of the first certificate in a PEM bundle (other blocks,
/// such as the key kubelet keeps in the same file, skipped). Of several
/// CNs the last, in any string type Go decodes, as the API server's
/// crypto/x509 reads `Subject.CommonName`.
fn cert_cn(pem_text: &str) -> Option<String> {
    use x509_cert::der::asn1::Ia5StringRef;
    use x509_cert::der::oid::db::rfc4519::COMMON_NAME;
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::name::DirectoryString;
    let block = pem::parse_many(pem_text)
        .ok()?
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")?;
    let cert = x509_cert::Certificate::from_der(block.contents()).ok()?;
    cert.tbs_certificate()
        .subject()
        .iter()
        .filter(|atv| atv.oid == COMMON_NAME)
        .filter_map(|atv| match DirectoryString::try_from(&atv.value) {
            Ok(s) => Some(s.value().into_owned()),
            Err(_) => Some(atv.value.decode_as::<Ia5StringRef<'_>>().ok()?.to_string()),
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report")
    }

    /// kubeadm's kubelet-client-current.pem is a symlink with an absolute
    /// target; under a host root it must resolve inside that root.
    #[test]
    fn kubelet_cert_symlink_resolves_inside_the_host_root() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        let pki = t.path().join("var/lib/kubelet/pki");
        std::fs::create_dir_all(&pki).unwrap();
        std::fs::create_dir_all(t.path().join("etc/kubernetes")).unwrap();
        std::fs::write(pki.join("kubelet-client-2026-11-27.pem"), "pem").unwrap();
        std::os::unix::fs::symlink(
            "/var/lib/kubelet/pki/kubelet-client-2026-11-27.pem",
            pki.join("kubelet-client-current.pem"),
        )
        .unwrap();
        let kc = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers:\n- name: default-auth\n  user:\n    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n";
        std::fs::write(t.path().join("etc/kubernetes/kubelet.conf"), kc).unwrap();
        let kc = load(&Source::Kubelet(KUBELET_KUBECONFIG.into()), &host)
            .unwrap()
            .unwrap();
        let auth = kc.auth_infos[0].auth_info.as_ref().unwrap();
        let want = pki.join("kubelet-client-2026-11-27.pem");
        assert_eq!(
            auth.client_certificate.as_deref(),
            Some(want.to_str().unwrap())
        );
    }

    #[test]
    fn node_name_precedence() {
        let env = Env {
            node_name: Some("from-env".into()),
            hostname: Some("Host-1".into()),
            ..Env::default()
        };
        let n = |flag, env: &Env, ov| node_name(flag, env, None, ov).map(|n| (n.name, n.source));
        assert_eq!(
            n(Some("w1"), &env, Some("ov")),
            Some(("w1".into(), "--node-name"))
        );
        assert_eq!(
            n(Some(" "), &env, Some("ov")),
            Some(("from-env".into(), "NODE_NAME"))
        );
        let env = Env {
            node_name: None,
            ..env
        };
        assert_eq!(
            n(None, &env, Some("Node-7 ")),
            Some(("node-7".into(), "kubelet --hostname-override"))
        );
        assert_eq!(n(None, &env, None), Some(("host-1".into(), "hostname")));
        assert_eq!(n(None, &Env::default(), None), None);
        // The kubelet's own identity names the only Node it may write.
        assert_eq!(
            node_name(None, &env, Some("system:node:worker-1"), Some("ov")).map(|n| n.name),
            Some("worker-1".into())
        );
        assert_eq!(
            node_name(None, &env, Some("system:serviceaccount:x:y"), None).map(|n| n.name),
            Some("host-1".into())
        );
    }

    #[test]
    fn source_precedence() {
        let env = Env {
            kubeconfig: Some("/k".into()),
            in_cluster: true,
            ..Env::default()
        };
        assert_eq!(
            source(Some(Path::new("/f")), &env),
            Source::Flag("/f".into())
        );
        assert_eq!(source(None, &env), Source::Env("/k".into()));
        let env = Env {
            kubeconfig: None,
            ..env
        };
        assert_eq!(source(None, &env), Source::InCluster);
        assert_eq!(
            source(None, &Env::default()),
            Source::Kubelet("/etc/kubernetes/kubelet.conf".into())
        );
    }

    #[tokio::test]
    async fn kubelet_conf_paths_resolve_under_host_root() {
        let root = fixtures().join("host");
        let host = HostRoot::new(&root);
        let src = source(None, &Env::default());
        let kc = load(&src, &host).unwrap().unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        // Relative: to the kubeconfig's directory, under the host root.
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some(root.join("etc/kubernetes/pki/ca.crt").to_str().unwrap())
        );
        // Absolute node path: under the host root.
        let auth = kc.auth_infos[0].auth_info.as_ref().unwrap();
        let pem = root.join("var/lib/kubelet/pki/kubelet-client-current.pem");
        assert_eq!(
            auth.client_certificate.as_deref(),
            Some(pem.to_str().unwrap())
        );
        assert_eq!(auth.client_key.as_deref(), Some(pem.to_str().unwrap()));

        // The identity is the certificate's CN, not the kubeconfig user name.
        assert_eq!(identity_of(&kc).as_deref(), Some("system:node:worker-1"));

        // And the whole thing loads: CA, certificate and key are found.
        let (config, id) = client_config(&src, &host).await.unwrap();
        assert_eq!(id.source, "/etc/kubernetes/kubelet.conf");
        assert_eq!(id.name, "system:node:worker-1");
        assert_eq!(config.cluster_url.to_string(), "https://10.0.0.1:6443/");
        assert!(config.root_cert.is_some());
        kube::Client::try_from(config).expect("client from kubelet.conf");
    }

    #[test]
    fn kubelet_conf_missing_is_an_error() {
        let host = HostRoot::new(fixtures().join("no-such-host"));
        let err = load(&source(None, &Env::default()), &host).unwrap_err();
        assert!(err.contains("etc/kubernetes/kubelet.conf"), "{err}");
    }

    #[test]
    fn user_kubeconfig_from_env_is_read_as_is() {
        let path = fixtures().join("admin.conf");
        let env = Env {
            kubeconfig: Some(path.to_str().unwrap().into()),
            ..Env::default()
        };
        // The host root does not apply to a kubeconfig the user named.
        let host = HostRoot::new("/nonexistent");
        let kc = load(&source(None, &env), &host).unwrap().unwrap();
        assert_eq!(identity_of(&kc).as_deref(), Some("user admin"));
    }

    #[test]
    fn jwt_subject() {
        // {"alg":"none"} . {"sub":"system:serviceaccount:kube-system:taint-guard"}
        let tok = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06dGFpbnQtZ3VhcmQifQ.";
        assert_eq!(
            jwt_sub(tok).as_deref(),
            Some("system:serviceaccount:kube-system:taint-guard")
        );
        assert_eq!(jwt_sub("garbage"), None);
    }

    /// Tokens are base64url without padding (RFC 7515): `-` and `_` in the
    /// payload, and no `=`; padding, where a tool adds it, is tolerated.
    #[test]
    fn jwt_subject_url_safe_unpadded() {
        // {"sub":"system:serviceaccount:kube-system:taint-guard~","aud":["https://kubernetes.default.svc"]}
        let dash = "eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06dGFpbnQtZ3VhcmR-IiwiYXVkIjpbImh0dHBzOi8va3ViZXJuZXRlcy5kZWZhdWx0LnN2YyJdfQ";
        // {"sub":"system:serviceaccount:kube-system:taint-guard??>","aud":[…]}
        let underscore = "eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06dGFpbnQtZ3VhcmQ_Pz4iLCJhdWQiOlsiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjIl19";
        let tok = |payload: &str| format!("eyJhbGciOiJub25lIn0.{payload}.c2ln\n");
        let sa = "system:serviceaccount:kube-system:taint-guard";
        assert_eq!(jwt_sub(&tok(dash)), Some(format!("{sa}~")));
        assert_eq!(jwt_sub(&tok(&format!("{dash}=="))), Some(format!("{sa}~")));
        assert_eq!(jwt_sub(&tok(underscore)), Some(format!("{sa}??>")));
        // Not base64url, no payload, no `sub`, `sub` not a string.
        assert_eq!(jwt_sub("eyJhbGciOiJub25lIn0.e30*.x"), None);
        assert_eq!(jwt_sub("eyJhbGciOiJub25lIn0"), None);
        assert_eq!(jwt_sub("eyJhbGciOiJub25lIn0.e30.x"), None);
        assert_eq!(jwt_sub("eyJhbGciOiJub25lIn0.eyJzdWIiOjF9.x"), None);
    }

    /// A self-signed certificate whose subject is O=system:nodes plus, when
    /// given, a CN (of the given ASN.1 string type); and its key.
    fn cert(cn: Option<rcgen::DnValue>) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
        if let Some(cn) = cn {
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        let c = p.self_signed(&key).unwrap();
        (c.pem(), key.serialize_pem())
    }

    fn utf8(s: &str) -> Option<rcgen::DnValue> {
        Some(rcgen::DnValue::Utf8String(s.into()))
    }

    /// kubelet-client-current.pem holds the certificate and its key; a
    /// bundle may hold a chain: the CN is the first certificate's, whatever
    /// blocks come before it.
    #[test]
    fn cert_cn_of_a_pem_with_several_blocks() {
        let (leaf, key) = cert(utf8("system:node:worker-2"));
        let (ca, _) = cert(utf8("kubernetes"));
        assert_eq!(cert_cn(&leaf).as_deref(), Some("system:node:worker-2"));
        for bundle in [
            format!("{leaf}{key}"),
            format!("{key}{leaf}{ca}"),
            format!("# a comment\n{key}\n\n{leaf}\n{ca}"),
        ] {
            assert_eq!(
                cert_cn(&bundle).as_deref(),
                Some("system:node:worker-2"),
                "{bundle}"
            );
        }
        assert_eq!(
            cert_cn(&format!("{ca}{leaf}")).as_deref(),
            Some("kubernetes")
        );
        assert_eq!(cert_cn(&key), None);
        assert_eq!(cert_cn(""), None);
        assert_eq!(
            cert_cn("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            None
        );
    }

    /// The CN in any of the string types the API server's Go decodes
    /// (PrintableString, UTF8String, BMPString).
    #[test]
    fn cert_cn_string_types() {
        let printable = rcgen::DnValue::PrintableString("worker 3".try_into().unwrap());
        assert_eq!(
            cert_cn(&cert(Some(printable)).0).as_deref(),
            Some("worker 3")
        );
        let bmp = rcgen::DnValue::BmpString("system:node:wörker-4".try_into().unwrap());
        assert_eq!(
            cert_cn(&cert(Some(bmp)).0).as_deref(),
            Some("system:node:wörker-4")
        );
    }

    /// A subject with two CNs: the last, as Go's crypto/x509 fills
    /// `Subject.CommonName` (the name the API server authenticates).
    #[test]
    fn cert_cn_is_the_last_of_several() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:first");
        // The same OID (2.5.4.3) under another key: a second CN attribute.
        p.distinguished_name.push(
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 3]),
            "system:node:second",
        );
        let pem = p.self_signed(&key).unwrap().pem();
        assert_eq!(cert_cn(&pem).as_deref(), Some("system:node:second"));
    }

    /// A client certificate without a CN: the identity falls back to the
    /// token's `sub`, else the kubeconfig's user name.
    #[test]
    fn cert_without_cn_falls_back() {
        let (pem, _) = cert(None);
        assert_eq!(cert_cn(&pem), None);
        let data = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&pem)
        };
        let t = tempfile::tempdir().unwrap();
        let token = t.path().join("token");
        let kc = |token_line: &str| {
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: []\ncontexts:\n- name: c\n  context:\n    cluster: x\n    user: nocn\nusers:\n- name: nocn\n  user:\n    client-certificate-data: {data}\n{token_line}"
            )
        };
        let kc1 = Kubeconfig::from_yaml(&kc("")).unwrap();
        assert_eq!(identity_of(&kc1).as_deref(), Some("user nocn"));
        // {"sub":"system:serviceaccount:kube-system:taint-guard"}
        std::fs::write(&token, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06dGFpbnQtZ3VhcmQifQ.x").unwrap();
        let kc2 =
            Kubeconfig::from_yaml(&kc(&format!("    tokenFile: {}\n", token.display()))).unwrap();
        assert_eq!(
            identity_of(&kc2).as_deref(),
            Some("system:serviceaccount:kube-system:taint-guard")
        );
    }
}

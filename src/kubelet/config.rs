//! KubeletConfiguration files: `--config` and the `--config-dir` drop-ins.
//!
//! kubelet (cmd/kubelet/app/server.go): `--config FILE` is loaded with the
//! strict codec (an empty or missing file, a missing `kind`/`apiVersion`, or
//! a wrongly typed field stops kubelet); a missing `failSwapOn` takes the
//! v1beta1 default, true. `--config-dir DIR` (kubelet ≥ 1.28; 1.28–1.29 refuse
//! to start without KUBELET_CONFIG_DROPIN_DIR_ALPHA, older ones do not know the
//! flag, so whenever kubelet runs with it the drop-ins apply) is walked with
//! `filepath.WalkDir`: lexical order, recursing into subdirectories, every
//! non-directory whose name ends in `.conf`; each is JSON-merge-patched over
//! the result so far, so only the fields a drop-in sets change. Then the
//! command-line flags are parsed again over the result: flags win.

use serde::Deserialize;

/// The fields of a KubeletConfiguration that matter here.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigFacts {
    pub fail_swap_on: Option<bool>,
    pub swap_behavior: Option<String>,
    pub rotate_certificates: Option<bool>,
    /// `containerRuntimeEndpoint` (kubelet ≥ 1.27).
    pub container_runtime_endpoint: Option<String>,
    pub cgroup_driver: Option<String>,
    /// `resolvConf`.
    pub resolv_conf: Option<String>,
    /// What kubelet's own validation (`ValidateKubeletConfiguration`)
    /// refuses in this file, before flags override it.
    pub refusals: Vec<Refusal>,
}

/// A value kubelet's validation refuses: the message, and the flags that
/// override the fields it is about (a flag given on the command line wins
/// over the file, so the rule is then not this file's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub flags: Vec<&'static str>,
    pub message: String,
}

/// The rules of `ValidateKubeletConfiguration` that every kubelet from
/// 1.20 on applies the same way, with the v1beta1 defaults for what the
/// file does not set: counts and rates not negative, percentages and bits
/// in range, ports valid, the image GC thresholds ordered, systemCgroups
/// only with cgroupRoot. Feature-gate-dependent rules are left out (they
/// change between versions).
pub fn validate(v: &serde_norway::Value) -> Vec<Refusal> {
    let int = |k: &str| v.get(k).and_then(|x| x.as_i64());
    let num = |k: &str| v.get(k).and_then(|x| x.as_f64());
    let mut out = Vec::new();
    let mut refuse = |flags: Vec<&'static str>, message: String| {
        out.push(Refusal {
            flags,
            message: format!("invalid configuration: {message}"),
        })
    };
    for (k, flag) in [
        ("eventBurst", "event-burst"),
        ("eventRecordQPS", "event-qps"),
        ("kubeAPIBurst", "kube-api-burst"),
        ("kubeAPIQPS", "kube-api-qps"),
        ("maxOpenFiles", "max-open-files"),
        ("maxPods", "max-pods"),
        ("podsPerCore", "pods-per-core"),
        ("registryBurst", "registry-burst"),
        ("registryPullQPS", "registry-qps"),
    ] {
        if let Some(n) = num(k).filter(|n| *n < 0.0) {
            refuse(
                vec![flag],
                format!("{k} (--{flag}) {n} must not be a negative number"),
            );
        }
    }
    for (k, flag, lo, hi) in [
        (
            "imageGCHighThresholdPercent",
            "image-gc-high-threshold",
            0,
            100,
        ),
        (
            "imageGCLowThresholdPercent",
            "image-gc-low-threshold",
            0,
            100,
        ),
        ("iptablesDropBit", "iptables-drop-bit", 0, 31),
        ("iptablesMasqueradeBit", "iptables-masquerade-bit", 0, 31),
        ("oomScoreAdj", "oom-score-adj", -1000, 1000),
    ] {
        if let Some(n) = int(k).filter(|n| *n < lo || *n > hi) {
            refuse(
                vec![flag],
                format!("{k} (--{flag}) {n} must be between {lo} and {hi}, inclusive"),
            );
        }
    }
    let high = int("imageGCHighThresholdPercent").unwrap_or(85);
    let low = int("imageGCLowThresholdPercent").unwrap_or(80);
    if low >= high {
        refuse(
            vec!["image-gc-high-threshold", "image-gc-low-threshold"],
            format!("imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {high}"),
        );
    }
    if let Some(n) = int("nodeStatusMaxImages").filter(|n| *n < -1) {
        refuse(
            vec!["node-status-max-images"],
            format!("nodeStatusMaxImages (--node-status-max-images) {n} must be -1 or greater"),
        );
    }
    // port: unset or 0 takes the default (10250); healthzPort and
    // readOnlyPort: 0 turns them off.
    if let Some(n) = int("port").filter(|n| *n != 0 && !(1..=65535).contains(n)) {
        refuse(
            vec!["port"],
            format!("port (--port) {n} must be between 1 and 65535, inclusive"),
        );
    }
    if let Some(n) = int("healthzPort").filter(|n| *n != 0 && !(1..=65535).contains(n)) {
        refuse(
            vec!["healthz-port"],
            format!("healthzPort (--healthz-port) {n} must be between 1 and 65535, inclusive"),
        );
    }
    if let Some(n) = int("readOnlyPort").filter(|n| *n != 0 && !(1..=65535).contains(n)) {
        refuse(
            vec!["read-only-port"],
            format!("readOnlyPort (--read-only-port) {n} must be between 0 and 65535, inclusive"),
        );
    }
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    if !s("systemCgroups").is_empty() && s("cgroupRoot").is_empty() {
        refuse(
            vec!["system-cgroups", "cgroup-root"],
            "systemCgroups (--system-cgroups) was specified and cgroupRoot (--cgroup-root) was not specified".into(),
        );
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Typed {
    fail_swap_on: Option<bool>,
    memory_swap: Option<TypedMemorySwap>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypedMemorySwap {
    swap_behavior: Option<String>,
}

/// Why a config file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    /// kubelet is certain to refuse the file too (empty, not YAML, not a
    /// v1beta1 KubeletConfiguration); otherwise only taint-guard cannot
    /// reproduce how kubelet reads it.
    pub kubelet_refuses: bool,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for ParseError {
    fn from(message: String) -> Self {
        ParseError {
            message,
            kubelet_refuses: false,
        }
    }
}

fn refused(message: String) -> ParseError {
    ParseError {
        message,
        kubelet_refuses: true,
    }
}

fn located(path: &str, e: &serde_norway::Error) -> String {
    match e.location() {
        Some(l) => format!("{path}:{}:{}: {e}", l.line(), l.column()),
        None => format!("{path}: {e}"),
    }
}

/// Parse one KubeletConfiguration (`dropin`: from `--config-dir`). Errors
/// name the file, and line:column where the YAML parser gives one.
pub fn parse(bytes: &[u8], path: &str, dropin: bool) -> Result<ConfigFacts, ParseError> {
    if bytes.is_empty() {
        return Err(refused(format!(
            "{path} is empty (kubelet refuses an empty config file)"
        )));
    }
    // Not YAML at all: kubelet's YAML reader (a libyaml port, as this one)
    // refuses it too. It reads the first document only, and a duplicate key
    // is a strict-decoding error after which v1beta1 falls back to lenient
    // decoding: neither is a refusal. So the syntax is checked on the first
    // document without building it (no duplicate-key check), and anything
    // past that is only "not reproduced". A field of the wrong type is
    // "not reproduced" too: kubelet's YAML 1.1 reads `yes` as a bool where
    // YAML 1.2 reads a string.
    use serde::de::{Deserialize as _, IgnoredAny};
    let mut docs = serde_norway::Deserializer::from_slice(bytes);
    match docs.next() {
        Some(doc) => {
            IgnoredAny::deserialize(doc).map_err(|e| refused(located(path, &e)))?;
        }
        None => return Err(refused(format!("{path} holds no YAML document"))),
    }
    let value = serde_norway::Deserializer::from_slice(bytes)
        .next()
        .map(serde_norway::Value::deserialize)
        .transpose()
        .map_err(|e| ParseError::from(located(path, &e)))?
        .unwrap_or(serde_norway::Value::Null);
    let kind = value.get("kind").and_then(|v| v.as_str());
    let api_version = value.get("apiVersion").and_then(|v| v.as_str());
    if kind != Some("KubeletConfiguration") || api_version != Some("kubelet.config.k8s.io/v1beta1")
    {
        return Err(refused(format!(
            "{path}: not a kubelet.config.k8s.io/v1beta1 KubeletConfiguration (kind {:?}, apiVersion {:?}); kubelet refuses it",
            kind.unwrap_or_default(),
            api_version.unwrap_or_default()
        )));
    }
    let typed: Typed = serde_norway::from_slice(bytes).map_err(|e| located(path, &e))?;
    // null values: for --config they mean "unset" (the default applies); in
    // a drop-in, a JSON merge patch null deletes a key, and how that plays
    // with kubelet's internal field names is not reproduced here.
    let null_at = |k: &str| value.get(k).is_some_and(|v| v.is_null());
    let swap_null = value
        .get("memorySwap")
        .is_some_and(|m| m.is_null() || m.get("swapBehavior").is_some_and(|v| v.is_null()));
    // A drop-in key in another case (`FailSwapOn`, `failswapon`) may win or
    // lose against the base config depending on how encoding/json orders
    // them: not reproduced.
    if dropin {
        if let Some(m) = value.as_mapping() {
            for k in m.keys().filter_map(|k| k.as_str()) {
                let lower = k.to_ascii_lowercase();
                if (lower == "failswapon" && k != "failSwapOn")
                    || (lower == "memoryswap" && k != "memorySwap")
                {
                    return Err(format!(
                        "{path}: key {k:?} differs from failSwapOn/memorySwap only in case; how kubelet merges it is not reproduced"
                    )
                    .into());
                }
            }
        }
    }
    if dropin && (null_at("failSwapOn") || swap_null) {
        return Err(format!(
            "{path}: a null failSwapOn/memorySwap in a --config-dir drop-in (merge-patch deletion) is not reproduced"
        )
        .into());
    }
    Ok(ConfigFacts {
        // Read apart from the typed fields: a value of another shape here
        // must not make the swap policy unknown (rotation is then taken
        // as not set).
        rotate_certificates: value.get("rotateCertificates").and_then(|v| v.as_bool()),
        cgroup_driver: value
            .get("cgroupDriver")
            .and_then(|v| v.as_str())
            .map(String::from),
        container_runtime_endpoint: value
            .get("containerRuntimeEndpoint")
            .and_then(|v| v.as_str())
            .map(String::from),
        refusals: validate(&value),
        resolv_conf: value
            .get("resolvConf")
            .and_then(|v| v.as_str())
            .map(String::from),
        fail_swap_on: typed.fail_swap_on,
        swap_behavior: typed.memory_swap.and_then(|m| m.swap_behavior),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";

    #[test]
    fn fields_defaults_and_errors() {
        let c = parse(
            format!("{HEAD}failSwapOn: false\nmemorySwap:\n  swapBehavior: LimitedSwap\n")
                .as_bytes(),
            "/c",
            false,
        )
        .unwrap();
        assert_eq!(c.fail_swap_on, Some(false));
        assert_eq!(c.swap_behavior.as_deref(), Some("LimitedSwap"));
        let c = parse(format!("{HEAD}memorySwap: {{}}\n").as_bytes(), "/c", false).unwrap();
        assert_eq!(c, ConfigFacts::default());
        let e = parse(
            format!("{HEAD}failSwapOn: maybe\n").as_bytes(),
            "/c.yaml",
            false,
        )
        .unwrap_err();
        assert!(e.message.starts_with("/c.yaml:3:"), "{e}");
        // A wrongly typed field: not reproduced (YAML 1.1 vs 1.2), not a
        // certain refusal.
        assert!(!e.kubelet_refuses);
        let e = parse(b"", "/c", false).unwrap_err();
        assert!(e.message.contains("empty") && e.kubelet_refuses);
        let e = parse(b"failSwapOn: false\n", "/c", true).unwrap_err();
        assert!(e.message.contains("not a kubelet") && e.kubelet_refuses);
        let e = parse(b"a: [\n", "/c", false).unwrap_err();
        assert!(e.message.starts_with("/c:") && e.kubelet_refuses, "{e}");
        // A duplicate key, a second document: kubelet takes them (lenient
        // decoding; the first document only): not refusals.
        let e = parse(
            format!("{HEAD}failSwapOn: false\nfailSwapOn: true\n").as_bytes(),
            "/c",
            false,
        )
        .unwrap_err();
        assert!(!e.kubelet_refuses, "{e}");
        let e = parse(format!("{HEAD}---\nkind: Other\n").as_bytes(), "/c", false).unwrap_err();
        assert!(!e.kubelet_refuses, "{e}");
        assert!(parse(format!("{HEAD}failSwapOn: null\n").as_bytes(), "/c", true).is_err());
        assert!(
            parse(format!("{HEAD}failswapon: false\n").as_bytes(), "/c", true)
                .unwrap_err()
                .message
                .contains("only in case")
        );
        // In --config a wrong-case key is an unknown field: ignored.
        assert_eq!(
            parse(format!("{HEAD}FailSwapOn: false\n").as_bytes(), "/c", false)
                .unwrap()
                .fail_swap_on,
            None
        );
        // YAML 1.1 booleans (kubelet reads `yes` as true): not reproduced, unknown.
        assert!(parse(format!("{HEAD}failSwapOn: yes\n").as_bytes(), "/c", false).is_err());
        assert_eq!(
            parse(format!("{HEAD}failSwapOn: null\n").as_bytes(), "/c", false)
                .unwrap()
                .fail_swap_on,
            None
        );
    }
}

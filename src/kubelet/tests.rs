use super::testfs::MemFiles;
use super::*;

const HEAD: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";

fn kubeadm_spec() -> ServiceSpec {
    ServiceSpec {
        exec_path: "/usr/bin/kubelet".into(),
        exec_start: ["/usr/bin/kubelet", "$KUBELET_KUBECONFIG_ARGS", "$KUBELET_CONFIG_ARGS", "$KUBELET_KUBEADM_ARGS", "$KUBELET_EXTRA_ARGS"]
            .map(String::from)
            .to_vec(),
        exec_count: 1,
        environment: vec![
            "KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf".into(),
            "KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml".into(),
        ],
        environment_files: vec![
            ("/var/lib/kubelet/kubeadm-flags.env".into(), true),
            ("/etc/default/kubelet".into(), true),
        ],
        manager_environment: Some(vec!["PATH=/usr/bin".into()]),
        ..Default::default()
    }
}

fn known(p: KubeletPolicy) -> SwapPolicy {
    match p {
        KubeletPolicy::Known(p) => p,
        KubeletPolicy::Unknown(u) => panic!("unknown: {} {:?}", u.reason, u.sources),
    }
}

fn unknown(p: KubeletPolicy) -> UnknownPolicy {
    match p {
        KubeletPolicy::Known(p) => panic!("known: {p:?}"),
        KubeletPolicy::Unknown(u) => u,
    }
}

fn default_config() -> String {
    include_str!("../../tests/fixtures/kubelet/config-default.yaml").to_string()
}

#[test]
fn kubeadm_default_refuses_swap() {
    let fs = MemFiles::new(&[
        ("/var/lib/kubelet/config.yaml", &default_config()),
        ("/var/lib/kubelet/kubeadm-flags.env", "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9\"\n"),
    ]);
    let p = known(swap_policy(&kubeadm_spec(), &fs));
    assert!(p.fail_swap_on);
    assert_eq!(p.fail_swap_on_from, "default");
    assert_eq!(p.flavour, Flavour::Kubelet);
    assert_eq!(
        p.config_file.as_deref(),
        Some("/var/lib/kubelet/config.yaml")
    );
    assert_eq!(p.argv.len(), 6, "{:?}", p.argv);
    let states: Vec<_> = p
        .sources
        .iter()
        .map(|s| (s.path.as_str(), s.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("/var/lib/kubelet/kubeadm-flags.env", SourceState::Read),
            ("/etc/default/kubelet", SourceState::Ignored),
            ("/var/lib/kubelet/config.yaml", SourceState::Read),
        ]
    );
}

#[test]
fn config_file_allows_swap_and_flags_win() {
    let fs = MemFiles::new(&[(
        "/var/lib/kubelet/config.yaml",
        include_str!("../../tests/fixtures/kubelet/config-swap.yaml"),
    )]);
    let p = known(swap_policy(&kubeadm_spec(), &fs));
    assert!(!p.fail_swap_on);
    assert_eq!(
        p.fail_swap_on_from,
        "failSwapOn: false in /var/lib/kubelet/config.yaml"
    );
    assert_eq!(p.swap_behavior.as_deref(), Some("LimitedSwap"));
    assert_eq!(
        p.swap_behavior_from.as_deref(),
        Some("memorySwap.swapBehavior in /var/lib/kubelet/config.yaml")
    );

    let fs = MemFiles::new(&[
        (
            "/var/lib/kubelet/config.yaml",
            &format!("{HEAD}failSwapOn: true\n"),
        ),
        (
            "/etc/default/kubelet",
            "# extra\nKUBELET_EXTRA_ARGS='--fail_swap_on=false --hostname-override=Node-7'\n",
        ),
    ]);
    let p = known(swap_policy(&kubeadm_spec(), &fs));
    assert!(!p.fail_swap_on);
    assert_eq!(p.fail_swap_on_from, "flag --fail_swap_on=false");
    assert_eq!(p.hostname_override.as_deref(), Some("Node-7"));
}

#[test]
fn export_line_is_ignored_as_by_systemd_252() {
    let fs = MemFiles::new(&[
        ("/var/lib/kubelet/config.yaml", &default_config()),
        (
            "/etc/default/kubelet",
            "export KUBELET_EXTRA_ARGS=--fail-swap-on=false\n",
        ),
    ]);
    let p = known(swap_policy(&kubeadm_spec(), &fs));
    assert!(p.fail_swap_on);
    assert_eq!(p.argv.len(), 4, "{:?}", p.argv);
}

#[test]
fn env_files_override_environment_and_later_files_win() {
    let mut spec = kubeadm_spec();
    spec.environment
        .push("KUBELET_EXTRA_ARGS=--fail-swap-on=true".into());
    spec.environment_files
        .push(("/etc/sysconfig/kubelet*".into(), true));
    let fs = MemFiles::new(&[
        ("/var/lib/kubelet/config.yaml", &default_config()),
        (
            "/etc/default/kubelet",
            "KUBELET_EXTRA_ARGS=--fail-swap-on=true\n",
        ),
        (
            "/etc/sysconfig/kubelet-a",
            "KUBELET_EXTRA_ARGS=--fail-swap-on=true\n",
        ),
        (
            "/etc/sysconfig/kubelet-b",
            "KUBELET_EXTRA_ARGS=--fail-swap-on=false\n",
        ),
    ]);
    let p = known(swap_policy(&spec, &fs));
    assert!(!p.fail_swap_on, "{:?}", p.argv);
    // UnsetEnvironment= removes it again.
    spec.unset_environment.push("KUBELET_EXTRA_ARGS".into());
    assert!(known(swap_policy(&spec, &fs)).fail_swap_on);
}

#[test]
fn what_systemd_refuses_or_we_cannot_know_is_unknown() {
    let fs = MemFiles::new(&[("/var/lib/kubelet/config.yaml", &default_config())]);
    // A required EnvironmentFile that is missing.
    let mut spec = kubeadm_spec();
    spec.environment_files
        .push(("/etc/sysconfig/kubelet".into(), false));
    let u = unknown(swap_policy(&spec, &fs));
    assert!(
        u.reason
            .contains("EnvironmentFile=/etc/sysconfig/kubelet (without \"-\") does not exist"),
        "{}",
        u.reason
    );
    // An unreadable one, even with `-` (systemd, as root, may read it).
    let mut fs2 = MemFiles::new(&[("/var/lib/kubelet/config.yaml", &default_config())]);
    fs2.unreadable.push("/etc/default/kubelet".into());
    let u = unknown(swap_policy(&kubeadm_spec(), &fs2));
    assert!(
        u.reason
            .contains("cannot read EnvironmentFile /etc/default/kubelet"),
        "{}",
        u.reason
    );
    assert_eq!(u.sources.last().unwrap().state, SourceState::Unreadable);
    // A variable the manager's environment would have to supply, unread.
    let mut spec = kubeadm_spec();
    spec.manager_environment = None;
    assert!(unknown(swap_policy(&spec, &fs))
        .reason
        .contains("$KUBELET_KUBEADM_ARGS"));
    // A variable systemd sets at start.
    let mut spec = kubeadm_spec();
    spec.exec_start.push("--x=${INVOCATION_ID}".into());
    assert!(unknown(swap_policy(&spec, &fs))
        .reason
        .contains("set by systemd"));
}

#[test]
fn wrapper_exec_start_is_unknown() {
    let spec = ServiceSpec {
        exec_path: "/usr/local/bin/kubelet-wrapper.sh".into(),
        exec_start: vec![
            "/usr/local/bin/kubelet-wrapper.sh".into(),
            "--fail-swap-on=false".into(),
        ],
        exec_count: 1,
        manager_environment: Some(vec![]),
        ..Default::default()
    };
    let u = unknown(swap_policy(&spec, &MemFiles::default()));
    assert_eq!(
        u.reason,
        "ExecStart runs /usr/local/bin/kubelet-wrapper.sh, not a kubelet binary nor k3s, rke2 or microk8s"
    );
    for prog in ["/usr/bin/env", "/bin/sh"] {
        let mut s = spec.clone();
        s.exec_path = prog.into();
        assert!(unknown(swap_policy(&s, &MemFiles::default()))
            .reason
            .contains(prog));
    }
}

#[test]
fn config_problems_are_unknown_and_named() {
    let u = unknown(swap_policy(&kubeadm_spec(), &MemFiles::default()));
    assert!(
        u.reason.contains(
            "--config /var/lib/kubelet/config.yaml does not exist: kubelet fails to start"
        ),
        "{}",
        u.reason
    );
    let fs = MemFiles::new(&[(
        "/var/lib/kubelet/config.yaml",
        &format!("{HEAD}failSwapOn: maybe\n"),
    )]);
    let u = unknown(swap_policy(&kubeadm_spec(), &fs));
    assert!(
        u.reason.starts_with("/var/lib/kubelet/config.yaml:3:"),
        "{}",
        u.reason
    );
    assert_eq!(u.sources.last().unwrap().state, SourceState::Invalid);
    let mut fs = MemFiles::new(&[]);
    fs.unreadable.push("/var/lib/kubelet/config.yaml".into());
    assert!(unknown(swap_policy(&kubeadm_spec(), &fs))
        .reason
        .contains("cannot read --config"));
}

/// kubelet's own validation refuses a value (here after the flags are
/// parsed over the file): the next start fails, and that is certain, not
/// unknown. A flag that sets the field takes the rule from the file; the
/// default config and the kubeadm fixture pass.
#[test]
fn values_kubelet_validation_refuses() {
    let with = |extra: &str, flags: &str| {
        let fs = MemFiles::new(&[
            (
                "/var/lib/kubelet/config.yaml",
                &format!("{}{extra}", default_config()),
            ),
            (
                "/var/lib/kubelet/kubeadm-flags.env",
                &format!("KUBELET_KUBEADM_ARGS=\"{flags}\"\n"),
            ),
        ]);
        swap_policy(&kubeadm_spec(), &fs)
    };
    known(with("", ""));
    let u = unknown(with("imageGCHighThresholdPercent: 101\n", ""));
    let why = u.kubelet_refuses.expect("a certain refusal");
    assert!(
        why.contains(
            "imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100"
        ),
        "{why}"
    );
    // The thresholds' order, with the other one's default (85).
    let u = unknown(with("imageGCLowThresholdPercent: 90\n", ""));
    assert!(u.kubelet_refuses.unwrap().contains("must be less than"));
    // The flag wins over the file: not this file's refusal.
    known(with(
        "imageGCHighThresholdPercent: 101\n",
        "--image-gc-high-threshold=90",
    ));
    for bad in [
        "maxPods: -1\n",
        "port: 70000\n",
        "oomScoreAdj: -1001\n",
        "systemCgroups: /system\n",
    ] {
        assert!(unknown(with(bad, "")).kubelet_refuses.is_some(), "{bad}");
    }
    // Turned off, in range: fine.
    known(with("healthzPort: 0\nreadOnlyPort: 0\nmaxPods: 0\n", ""));
}

/// A node image before `kubeadm join`: no config.yaml and no credentials.
/// Once a kubeconfig is there, a missing config.yaml is a real refusal.
#[test]
fn pre_join_image_is_not_joined_not_broken() {
    let u = unknown(swap_policy(&kubeadm_spec(), &MemFiles::default()));
    assert!(u.not_joined && u.kubelet_refuses.is_some(), "{u:?}");
    let fs = MemFiles::new(&[("/etc/kubernetes/kubelet.conf", "apiVersion: v1\n")]);
    let u = unknown(swap_policy(&kubeadm_spec(), &fs));
    assert!(!u.not_joined && u.kubelet_refuses.is_some(), "{u:?}");
    let fs = MemFiles::new(&[("/etc/kubernetes/bootstrap-kubelet.conf", "apiVersion: v1\n")]);
    assert!(!unknown(swap_policy(&kubeadm_spec(), &fs)).not_joined);
}

#[test]
fn config_dir_dropins_in_lexical_order_then_flags() {
    let mut spec = kubeadm_spec();
    spec.environment
        .push("KUBELET_EXTRA_ARGS=--config-dir=/etc/kubernetes/kubelet.conf.d".into());
    let mut files = vec![
        (
            "/var/lib/kubelet/config.yaml".to_string(),
            format!("{HEAD}failSwapOn: false\n"),
        ),
        (
            "/etc/kubernetes/kubelet.conf.d/20-swap.conf".to_string(),
            format!("{HEAD}failSwapOn: true\n"),
        ),
        (
            "/etc/kubernetes/kubelet.conf.d/10-other.conf".to_string(),
            format!("{HEAD}failSwapOn: false\nmemorySwap:\n  swapBehavior: LimitedSwap\n"),
        ),
        (
            "/etc/kubernetes/kubelet.conf.d/99-notes.txt".to_string(),
            format!("{HEAD}failSwapOn: false\n"),
        ),
        (
            "/etc/kubernetes/kubelet.conf.d/sub/30-x.yaml".to_string(),
            "not read".to_string(),
        ),
    ];
    let fs_of = |files: &[(String, String)]| {
        MemFiles::new(
            &files
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect::<Vec<_>>(),
        )
    };
    let p = known(swap_policy(&spec, &fs_of(&files)));
    assert!(p.fail_swap_on);
    assert_eq!(
        p.fail_swap_on_from,
        "failSwapOn: true in /etc/kubernetes/kubelet.conf.d/20-swap.conf"
    );
    assert_eq!(p.swap_behavior.as_deref(), Some("LimitedSwap"));
    // A subdirectory's .conf is walked in lexical place.
    files.push((
        "/etc/kubernetes/kubelet.conf.d/sub/x.conf".to_string(),
        format!("{HEAD}failSwapOn: false\n"),
    ));
    let p = known(swap_policy(&spec, &fs_of(&files)));
    assert_eq!(
        p.fail_swap_on_from,
        "failSwapOn: false in /etc/kubernetes/kubelet.conf.d/sub/x.conf"
    );
    // Flags beat drop-ins.
    spec.environment.pop();
    spec.environment.push(
        "KUBELET_EXTRA_ARGS=--config-dir /etc/kubernetes/kubelet.conf.d --fail-swap-on".into(),
    );
    assert_eq!(
        known(swap_policy(&spec, &fs_of(&files))).fail_swap_on_from,
        "flag --fail-swap-on"
    );
    // A missing drop-in dir stops kubelet.
    let u = unknown(swap_policy(
        &spec,
        &MemFiles::new(&[("/var/lib/kubelet/config.yaml", &default_config())]),
    ));
    assert!(
        u.reason
            .contains("--config-dir /etc/kubernetes/kubelet.conf.d does not exist"),
        "{}",
        u.reason
    );
}

#[test]
fn no_env_expand_and_several_exec_start() {
    let mut spec = kubeadm_spec();
    spec.exec_flags = vec!["no-env-expand".into()];
    // `:` prefix: the words reach kubelet literally, and it refuses them.
    let u = unknown(swap_policy(&spec, &MemFiles::default()));
    assert!(
        u.reason
            .contains("non-flag argument \"$KUBELET_KUBECONFIG_ARGS\""),
        "{}",
        u.reason
    );
    let mut spec = kubeadm_spec();
    spec.exec_count = 2;
    assert!(unknown(swap_policy(&spec, &MemFiles::default()))
        .reason
        .contains("2 ExecStart="));
}

fn k3s_spec(program: &str, args: &[&str]) -> ServiceSpec {
    let path = format!("/usr/local/bin/{program}");
    let mut argv = vec![path.clone()];
    argv.extend(args.iter().map(|s| s.to_string()));
    ServiceSpec {
        exec_path: path,
        exec_start: argv,
        exec_count: 1,
        manager_environment: Some(vec![]),
        ..Default::default()
    }
}

#[test]
fn k3s_defaults_and_kubelet_arg_sources() {
    // K1: nothing configured: k3s tolerates swap.
    let p = known(swap_policy(
        &k3s_spec("k3s", &["server"]),
        &MemFiles::default(),
    ));
    assert!(!p.fail_swap_on);
    assert_eq!(p.flavour, Flavour::K3s);
    assert_eq!(
        p.fail_swap_on_from,
        "k3s built-in default (00-k3s-defaults.conf: failSwapOn: false)"
    );
    // K2: config.yaml turns it on.
    let fs = MemFiles::new(&[(
        "/etc/rancher/k3s/config.yaml",
        "kubelet-arg:\n  - fail-swap-on=true\n",
    )]);
    let p = known(swap_policy(&k3s_spec("k3s", &["server"]), &fs));
    assert!(p.fail_swap_on);
    assert_eq!(
        p.fail_swap_on_from,
        "kubelet-arg fail-swap-on=true in /etc/rancher/k3s/config.yaml or its .d drop-ins"
    );
    // K4/K5: a drop-in replaces the list, or appends with `+`.
    let fs = MemFiles::new(&[
        (
            "/etc/rancher/k3s/config.yaml",
            "kubelet-arg: [fail-swap-on=true]\n",
        ),
        (
            "/etc/rancher/k3s/config.yaml.d/10.yaml",
            "kubelet-arg: [max-pods=200]\n",
        ),
    ]);
    assert!(!known(swap_policy(&k3s_spec("k3s", &["server"]), &fs)).fail_swap_on);
    let fs = MemFiles::new(&[
        (
            "/etc/rancher/k3s/config.yaml",
            "kubelet-arg: [fail-swap-on=true]\n",
        ),
        (
            "/etc/rancher/k3s/config.yaml.d/10.yaml",
            "kubelet-arg+: [max-pods=200]\n",
        ),
    ]);
    assert!(known(swap_policy(&k3s_spec("k3s", &["server"]), &fs)).fail_swap_on);
    // K8: lexical order, .txt ignored, case-insensitive suffix.
    let fs = MemFiles::new(&[
        (
            "/etc/rancher/k3s/config.yaml.d/a.yml",
            "kubelet-arg: [fail-swap-on=false]\n",
        ),
        (
            "/etc/rancher/k3s/config.yaml.d/b.YAML",
            "kubelet-arg: [fail-swap-on=true]\n",
        ),
        (
            "/etc/rancher/k3s/config.yaml.d/c.txt",
            "kubelet-arg: [fail-swap-on=false]\n",
        ),
    ]);
    assert!(known(swap_policy(&k3s_spec("k3s", &["server"]), &fs)).fail_swap_on);
    // K6 and K15: the command line is last.
    let fs = MemFiles::new(&[(
        "/etc/rancher/k3s/config.yaml",
        "kubelet-arg: [fail-swap-on=true]\n",
    )]);
    let p = known(swap_policy(
        &k3s_spec("k3s", &["agent", "--kubelet-arg=fail-swap-on=false"]),
        &fs,
    ));
    assert!(!p.fail_swap_on);
    assert_eq!(
        p.fail_swap_on_from,
        "--kubelet-arg=fail-swap-on=false (argv)"
    );
    // K10: -c moves the config file and its drop-in dir.
    let fs = MemFiles::new(&[
        (
            "/etc/rancher/k3s/config.yaml",
            "kubelet-arg: [fail-swap-on=true]\n",
        ),
        (
            "/srv/k3s.yaml.d/50-x.yaml",
            "kubelet-arg: [fail-swap-on=true]\n",
        ),
    ]);
    let p = known(swap_policy(
        &k3s_spec("k3s", &["server", "-c", "/srv/k3s.yaml"]),
        &fs,
    ));
    assert!(p.fail_swap_on);
    // rke2 paths.
    let fs = MemFiles::new(&[(
        "/etc/rancher/rke2/config.yaml",
        "kubelet-arg: [fail-swap-on=true]\n",
    )]);
    let p = known(swap_policy(&k3s_spec("rke2", &["agent"]), &fs));
    assert!(p.fail_swap_on);
    assert_eq!(p.flavour, Flavour::Rke2);
}

#[test]
fn k3s_version_or_doc_dependent_results_are_unknown() {
    // K7: config sets it, the command line adds other kubelet-args.
    let fs = MemFiles::new(&[(
        "/etc/rancher/k3s/config.yaml",
        "kubelet-arg: [fail-swap-on=true]\n",
    )]);
    let u = unknown(swap_policy(
        &k3s_spec("k3s", &["server", "--kubelet-arg=max-pods=50"]),
        &fs,
    ));
    assert!(u.reason.contains("depends on its version"), "{}", u.reason);
    // K12: a kubelet.conf.d drop-in only newer k3s reads.
    let fs = MemFiles::new(&[(
        "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/99-swap.conf",
        &format!("{HEAD}failSwapOn: true\n"),
    )]);
    assert!(unknown(swap_policy(&k3s_spec("k3s", &["server"]), &fs))
        .reason
        .contains("depends on its version"));
    // K13: ...unless a flag settles it.
    let p = known(swap_policy(
        &k3s_spec("k3s", &["server", "--kubelet-arg", "fail-swap-on=false"]),
        &fs,
    ));
    assert!(!p.fail_swap_on);
    // Bad YAML names file:line:column.
    let fs = MemFiles::new(&[(
        "/etc/rancher/k3s/config.yaml.d/50-x.yaml",
        "kubelet-arg: [a\n",
    )]);
    let u = unknown(swap_policy(&k3s_spec("k3s", &["server"]), &fs));
    assert!(
        u.reason
            .starts_with("/etc/rancher/k3s/config.yaml.d/50-x.yaml:"),
        "{}",
        u.reason
    );
    // Not server/agent.
    assert!(unknown(swap_policy(
        &k3s_spec("k3s", &["kubectl"]),
        &MemFiles::default()
    ))
    .reason
    .contains("not server or agent"));
}

fn microk8s_spec() -> ServiceSpec {
    ServiceSpec {
        exec_path: "/usr/bin/snap".into(),
        exec_start: ["/usr/bin/snap", "run", "microk8s.daemon-kubelite"]
            .map(String::from)
            .to_vec(),
        exec_count: 1,
        manager_environment: Some(vec![]),
        ..Default::default()
    }
}

const MK8S_ARGS: &str = "--resolv-conf=/run/systemd/resolve/resolv.conf\n--kubeconfig=${SNAP_DATA}/credentials/kubelet.config\n--root-dir=${SNAP_COMMON}/var/lib/kubelet\n--fail-swap-on=false\n";

#[test]
fn microk8s_args_file() {
    let fs = MemFiles::new(&[("/var/snap/microk8s/current/args/kubelet", MK8S_ARGS)]);
    let p = known(swap_policy(&microk8s_spec(), &fs));
    assert!(!p.fail_swap_on);
    assert_eq!(p.flavour, Flavour::Microk8s);
    assert_eq!(
        p.fail_swap_on_from,
        "--fail-swap-on=false in /var/snap/microk8s/current/args/kubelet"
    );
    // M2, M3, M4, M10.
    let without = MK8S_ARGS.replace("--fail-swap-on=false\n", "");
    let fs = MemFiles::new(&[("/var/snap/microk8s/current/args/kubelet", &without)]);
    assert!(known(swap_policy(&microk8s_spec(), &fs)).fail_swap_on);
    let more = format!("{MK8S_ARGS}#--fail-swap-on=true\n--max-pods=50 --fail-swap-on=true\n");
    let fs = MemFiles::new(&[("/var/snap/microk8s/current/args/kubelet", &more)]);
    assert!(known(swap_policy(&microk8s_spec(), &fs)).fail_swap_on);
    // M5 (quotes), M6 (unknown variable), M7 (positional): unknown.
    for bad in [
        "--fail-swap-on=\"true\"\n",
        "--fail-swap-on=${SWAP}\n",
        "--fail-swap-on true\n",
    ] {
        let fs = MemFiles::new(&[(
            "/var/snap/microk8s/current/args/kubelet",
            &format!("{MK8S_ARGS}{bad}"),
        )]);
        unknown(swap_policy(&microk8s_spec(), &fs));
    }
    // kubelite's --kubelet-args-file moves it.
    let fs = MemFiles::new(&[
        (
            "/var/snap/microk8s/current/args/kubelite",
            "--kubelet-args-file=$SNAP_DATA/args/kubelet-custom\n",
        ),
        (
            "/var/snap/microk8s/current/args/kubelet-custom",
            "--fail-swap-on=true\n",
        ),
    ]);
    assert!(known(swap_policy(&microk8s_spec(), &fs)).fail_swap_on);
    // Another snap: unknown.
    let mut s = microk8s_spec();
    s.exec_start[2] = "lxd.daemon".into();
    unknown(swap_policy(&s, &MemFiles::default()));
}

#[test]
fn json_shape() {
    let p = KubeletPolicy::Known(SwapPolicy::builtin(true));
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["known"]["fail_swap_on"], true);
    assert_eq!(v["known"]["flavour"], "kubelet");
    let v = serde_json::to_value(KubeletPolicy::unknown("x")).unwrap();
    assert_eq!(v["unknown"]["reason"], "x");
    assert!(v["unknown"]["sources"].is_array());
}

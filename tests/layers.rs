//! The layering the README promises, checked on the source: no import
//! cycle among `src/` modules, and the judgement modules (evaluate, plan,
//! the daemon's reconciler) touch no bus, no API server, no file system
//! and no runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The top-level module a file belongs to (`src/run/reconcile.rs` → `run`).
fn module_of(p: &Path) -> String {
    let rel = p.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Source without tests: `#[cfg(test)]` modules and the files they are in.
fn code(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    if p.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Every `crate::NAME` a module's code names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in rust_files(&src()) {
        let m = module_of(&f);
        let text = code(&f);
        let deps = g.entry(m.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != m {
                deps.insert(name);
            }
        }
    }
    g
}

#[test]
fn no_import_cycle_among_modules() {
    let g = graph();
    // Depth-first search for a back edge; report the cycle found.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(n, &g, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", c.join(" → "));
        }
    }
}

#[test]
fn judgement_is_pure() {
    let pure = [
        src().join("evaluate.rs"),
        src().join("evaluate/readiness.rs"),
        src().join("readiness/mod.rs"),
        src().join("readiness/modules.rs"),
        src().join("readiness/sysctl.rs"),
        src().join("readiness/cert.rs"),
        src().join("readiness/cgroup_driver.rs"),
        src().join("plan.rs"),
        src().join("finding.rs"),
        src().join("run/reconcile.rs"),
        src().join("run/schedule.rs"),
    ];
    let effects = [
        "zbus",
        "kube::",
        "std::fs",
        "tokio",
        "std::process",
        "std::net",
    ];
    let effectful_modules = [
        "crate::apply",
        "crate::observe",
        "crate::systemd",
        "crate::files",
        "crate::report::",
    ];
    for f in pure {
        let text = code(&f);
        for e in effects.iter().chain(&effectful_modules) {
            // report::node holds pure constants (the taint's key);
            // systemd::types the parsed D-Bus values.
            let hits = text
                .match_indices(e)
                .filter(|(i, _)| {
                    !text[*i..].starts_with("crate::report::node")
                        && !text[*i..].starts_with("crate::systemd::types")
                })
                .count();
            assert_eq!(hits, 0, "{} names `{e}`", f.display());
        }
    }
}

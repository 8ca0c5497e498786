//! What systemd will start at the next boot, read from the unit files that
//! survive a reboot — not from `UnitFileState`, which says only whether
//! `[Install]` links exist.
//!
//! A unit comes up at boot when it is in the closure of the default target
//! over `Wants=`, `Requires=`, `BindsTo=`, `Upholds=` and the `.wants/`,
//! `.requires/`, `.upholds/` folders, with drop-ins, as systemd 252 loads
//! them; or when a unit in that closure starts it: a socket, path or timer
//! unit that triggers it, or a boot hook whose command starts it
//! (`systemctl start kubelet`, EKS's `nodeadm init`).
//!
//! The search path is systemd's for the system manager, less what does not
//! survive a reboot: `/run/systemd/system`, `…/transient`, `…/system.control`
//! and `…/system.attached` under /run. Generator output under /run is kept:
//! generators write it again at every boot (that is what `generated`
//! means). The default target is `default.target` as the files resolve it,
//! or `systemd.unit=` (and a SysV runlevel word) on the kernel command line
//! of this boot; `systemd.wants=` adds to it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

use crate::hostroot::HostRoot;

pub use super::types::AtBoot;

/// The system manager's unit search path (systemd 252
/// `lookup_paths_init`), in priority order, each with whether it survives
/// a reboot.
const SEARCH_PATH: [(&str, bool); 13] = [
    ("/etc/systemd/system.control", true),
    ("/run/systemd/system.control", false),
    ("/run/systemd/transient", false),
    ("/run/systemd/generator.early", true),
    ("/etc/systemd/system", true),
    ("/etc/systemd/system.attached", true),
    ("/run/systemd/system", false),
    ("/run/systemd/system.attached", false),
    ("/run/systemd/generator", true),
    ("/usr/local/lib/systemd/system", true),
    ("/usr/lib/systemd/system", true),
    ("/lib/systemd/system", true),
    ("/run/systemd/generator.late", true),
];

/// One folder of the search path: its node path and its entries.
struct Dir {
    node: String,
    /// name → what the entry is.
    entries: HashMap<String, Entry>,
}

#[derive(Debug, Clone)]
enum Entry {
    /// A regular file (or a link to a file of the same name): its node path.
    File(String),
    /// A link to /dev/null (or an empty file): masked.
    Masked,
    /// A link to another name: an alias.
    Alias(String),
    /// A folder (`X.wants`, `X.d`).
    Folder,
}

/// A unit as loaded: canonical name and what it pulls in or starts.
#[derive(Debug, Default, Clone)]
struct Loaded {
    masked: bool,
    found: bool,
    /// Wants/Requires/BindsTo/Upholds, with the folders' links.
    pulls: Vec<String>,
    /// What a socket/path/timer unit triggers.
    triggers: Vec<String>,
    /// Units its commands start, with how.
    starts: Vec<(String, String)>,
    /// Its drop-in files, as systemd would load them now.
    dropins: Vec<String>,
}

/// The unit files of one node, loaded on demand.
pub struct BootGraph {
    host: HostRoot,
    dirs: Vec<Dir>,
    loaded: HashMap<String, Loaded>,
    /// Sources that could not be read, or words that could not be resolved.
    doubts: BTreeSet<String>,
    default: Option<String>,
    extra: Vec<String>,
    /// unit → parent, in the closure (BFS order).
    parent: BTreeMap<String, Option<String>>,
}

/// What the kernel command line of this boot says about the first
/// transaction: `systemd.unit=` (or a SysV runlevel word) and
/// `systemd.wants=`.
pub fn cmdline_units(words: &[Vec<u8>]) -> (Option<String>, Vec<String>) {
    let mut unit = None;
    let mut wants = Vec::new();
    // What follows `--` the kernel hands to init as arguments.
    for w in words.iter().take_while(|w| w.as_slice() != b"--") {
        let w = String::from_utf8_lossy(w);
        if let Some(v) = w.strip_prefix("systemd.unit=") {
            unit = Some(v.to_string());
        } else if let Some(v) = w.strip_prefix("systemd.wants=") {
            wants.push(v.to_string());
        } else {
            let t = match &*w {
                "emergency" | "-b" => "emergency.target",
                "rescue" | "single" | "s" | "S" | "1" => "rescue.target",
                "2" | "3" | "4" => "multi-user.target",
                "5" => "graphical.target",
                _ => continue,
            };
            unit = Some(t.into());
        }
    }
    (unit, wants)
}

impl BootGraph {
    /// Load the search path under `host`; `persistent`: without what is
    /// only under /run. `cmdline`: (systemd.unit=, systemd.wants=) of this
    /// boot, when they apply (not in a container).
    pub fn load(host: &HostRoot, persistent: bool, cmdline: (Option<String>, Vec<String>)) -> Self {
        let mut g = BootGraph {
            host: host.clone(),
            dirs: Vec::new(),
            loaded: HashMap::new(),
            doubts: BTreeSet::new(),
            default: None,
            extra: cmdline.1,
            parent: BTreeMap::new(),
        };
        let mut seen = BTreeSet::new();
        for (dir, survives) in SEARCH_PATH {
            if persistent && !survives {
                continue;
            }
            // /lib is /usr/lib on merged-/usr systems: read once.
            let real = host.resolve(dir).unwrap_or_else(|_| host.path(dir));
            let real = std::fs::canonicalize(&real).unwrap_or(real);
            if !seen.insert(real.clone()) {
                continue;
            }
            match g.read_dir(dir) {
                Ok(Some(d)) => g.dirs.push(d),
                Ok(None) => {}
                Err(e) => {
                    g.doubts.insert(e);
                }
            }
        }
        let default = match cmdline.0 {
            Some(u) => Some(u),
            None => g.canonical("default.target"),
        };
        match default {
            Some(d) => g.default = Some(d),
            None => {
                g.doubts
                    .insert("no default.target in the unit search path".into());
            }
        }
        g.walk();
        g
    }

    fn read_dir(&self, node: &str) -> Result<Option<Dir>, String> {
        let path = self
            .host
            .resolve(node)
            .unwrap_or_else(|_| self.host.path(node));
        let rd = match std::fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
            Err(e) => return Err(denied(node, &e)),
        };
        let mut entries = HashMap::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ft = match e.file_type() {
                Ok(t) => t,
                Err(_) => continue,
            };
            let node_path = format!("{}/{name}", node.trim_end_matches('/'));
            let entry = if ft.is_symlink() {
                match std::fs::read_link(e.path()) {
                    Ok(t) if t == Path::new("/dev/null") => Entry::Masked,
                    Ok(t) => {
                        let base = t
                            .file_name()
                            .map(|b| b.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let target = if t.is_absolute() {
                            t.to_string_lossy().into_owned()
                        } else {
                            format!("{}/{}", node.trim_end_matches('/'), t.to_string_lossy())
                        };
                        match self.host.resolve(&target) {
                            Ok(p) if p.is_dir() => Entry::Folder,
                            _ if base == name || base.is_empty() => Entry::File(target),
                            _ => Entry::Alias(base),
                        }
                    }
                    Err(_) => continue,
                }
            } else if ft.is_dir() {
                Entry::Folder
            } else if e.metadata().map(|m| m.len() == 0).unwrap_or(false) {
                // systemd takes an empty unit file as masked.
                Entry::Masked
            } else {
                Entry::File(node_path)
            };
            entries.insert(name, entry);
        }
        Ok(Some(Dir {
            node: node.to_string(),
            entries,
        }))
    }

    /// The first entry for `name` along the search path.
    fn entry(&self, name: &str) -> Option<&Entry> {
        self.dirs
            .iter()
            .find_map(|d| d.entries.get(name).filter(|e| !matches!(e, Entry::Folder)))
    }

    /// The unit's own name after aliases (`default.target` →
    /// `graphical.target`); a template instance keeps its instance.
    fn canonical(&self, name: &str) -> Option<String> {
        let mut cur = name.to_string();
        for _ in 0..16 {
            match self.entry(&cur) {
                Some(Entry::Alias(t)) => {
                    // An alias of a template for an instance: keep the
                    // instance (`foo@a.service` → `bar@.service` gives
                    // `bar@a.service`).
                    cur = match (instance(&cur), t.contains("@.")) {
                        (Some(i), true) => with_instance(t, i),
                        _ => t.clone(),
                    };
                }
                Some(_) => return Some(cur),
                None => match template(&cur) {
                    Some(tpl) if self.entry(&tpl).is_some() => match self.canonical(&tpl) {
                        Some(c) if c != tpl => {
                            return Some(with_instance(&c, instance(&cur).unwrap_or("")))
                        }
                        _ => return Some(cur),
                    },
                    _ => return None,
                },
            }
        }
        None
    }

    /// Names under which drop-ins and dependency folders apply to `unit`:
    /// the name, its template, its dash prefixes and its type (`service.d`).
    fn names(unit: &str) -> Vec<String> {
        let mut v = vec![unit.to_string()];
        if let Some(t) = template(unit) {
            v.push(t);
        }
        if let Some((stem, ty)) = unit.rsplit_once('.') {
            let stem = stem.split('@').next().unwrap_or(stem);
            let parts: Vec<&str> = stem.split('-').collect();
            for i in (1..parts.len()).rev() {
                v.push(format!("{}-.{ty}", parts[..i].join("-")));
            }
            v.push(ty.to_string());
        }
        v
    }

    fn load_unit(&mut self, name: &str) -> Loaded {
        if let Some(l) = self.loaded.get(name) {
            return l.clone();
        }
        let mut l = Loaded::default();
        let fragment = match self.entry(name).cloned() {
            Some(Entry::File(p)) => Some(p),
            Some(Entry::Masked) => {
                l.masked = true;
                None
            }
            _ => match template(name).and_then(|t| self.entry(&t).cloned()) {
                Some(Entry::File(p)) => Some(p),
                Some(Entry::Masked) => {
                    l.masked = true;
                    None
                }
                _ => None,
            },
        };
        l.found = fragment.is_some();
        if l.masked {
            self.loaded.insert(name.to_string(), l.clone());
            return l;
        }
        let mut texts = Vec::new();
        if let Some(f) = &fragment {
            match self.read(f) {
                Ok(t) => texts.push(t),
                Err(e) => {
                    self.doubts.insert(e);
                }
            }
        }
        // systemd reads the folders and drop-ins of every name of a unit:
        // its aliases too (`default.target.wants/` is graphical.target's).
        let mut names = Self::names(name);
        let aliases: BTreeSet<String> = self
            .dirs
            .iter()
            .flat_map(|d| d.entries.iter())
            .filter(|(_, e)| matches!(e, Entry::Alias(t) if t == name))
            .map(|(n, _)| n.clone())
            .collect();
        names.extend(aliases);
        // Drop-ins: X.d/*.conf over the path, a file name's first hit
        // wins, applied in file-name order; the type's and prefixes' first.
        let mut dropins: BTreeMap<String, String> = BTreeMap::new();
        for n in names.iter().rev() {
            let mut mine: BTreeMap<String, String> = BTreeMap::new();
            let dir = format!("{n}.d");
            for d in &self.dirs {
                if d.entries.contains_key(&dir) {
                    for f in list(&self.host, &format!("{}/{dir}", d.node)) {
                        if f.ends_with(".conf") {
                            mine.entry(f.clone())
                                .or_insert_with(|| format!("{}/{dir}/{f}", d.node));
                        }
                    }
                }
            }
            dropins.extend(mine.into_iter().map(|(k, v)| (format!("{k}\0{n}"), v)));
        }
        let mut ordered: Vec<(String, String)> = dropins
            .into_iter()
            .map(|(k, v)| (k.split('\0').next().unwrap_or_default().to_string(), v))
            .collect();
        ordered.sort_by(|a, b| a.0.cmp(&b.0));
        l.dropins = ordered.iter().map(|(_, p)| p.clone()).collect();
        for (_, p) in ordered {
            match self.read(&p) {
                Ok(t) => texts.push(t),
                Err(e) => {
                    self.doubts.insert(e);
                }
            }
        }
        let ty = name.rsplit_once('.').map(|(_, t)| t).unwrap_or("");
        let mut trigger_key: Option<String> = None;
        for text in &texts {
            for (section, key, value) in parse(text) {
                match (section.as_str(), key.as_str()) {
                    ("Unit", "Wants" | "Requires" | "BindsTo" | "Upholds") => {
                        for w in value.split_whitespace() {
                            match expand(w, name) {
                                Some(u) => l.pulls.push(u),
                                None => {
                                    self.doubts.insert(format!(
                                        "{name}: {key}={w} has a specifier taint-guard does not expand"
                                    ));
                                }
                            }
                        }
                    }
                    ("Socket", "Service") | ("Path", "Unit") | ("Timer", "Unit") => {
                        trigger_key = expand(value.trim(), name);
                    }
                    ("Service", k) if k.starts_with("ExecStart") || k == "ExecStartPost" => {
                        l.starts.extend(command_starts(&value));
                    }
                    _ => {}
                }
            }
        }
        if matches!(ty, "socket" | "path" | "timer") && l.found {
            let stem = name.rsplit_once('.').map(|(s, _)| s).unwrap_or(name);
            l.triggers
                .push(trigger_key.unwrap_or_else(|| format!("{stem}.service")));
        }
        // The folders: X.wants/, X.requires/, X.upholds/.
        for n in &names {
            for suffix in ["wants", "requires", "upholds"] {
                let dir = format!("{n}.{suffix}");
                let mut links = BTreeSet::new();
                for d in &self.dirs {
                    if d.entries.contains_key(&dir) {
                        for f in list(&self.host, &format!("{}/{dir}", d.node)) {
                            links.insert(f);
                        }
                    }
                }
                for f in links {
                    // A template's folder names `foo@.service`: the
                    // instance is the unit's own.
                    let f = match (f.contains("@."), instance(name)) {
                        (true, Some(i)) => with_instance(&f, i),
                        _ => f,
                    };
                    l.pulls.push(f);
                }
            }
        }
        self.loaded.insert(name.to_string(), l.clone());
        l
    }

    fn read(&self, node: &str) -> Result<String, String> {
        let p = self
            .host
            .resolve(node)
            .unwrap_or_else(|_| self.host.path(node));
        std::fs::read(&p)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| denied(node, &e))
    }

    /// The unit's drop-in files on disk now (node paths).
    pub fn dropin_paths(&mut self, unit: &str) -> Vec<String> {
        let c = self.canonical(unit).unwrap_or_else(|| unit.to_string());
        self.load_unit(&c).dropins
    }

    /// Breadth first from the default target (and `systemd.wants=`).
    fn walk(&mut self) {
        let mut todo = VecDeque::new();
        let starts: Vec<String> = self.default.iter().chain(&self.extra).cloned().collect();
        for s in starts {
            let c = self.canonical(&s).unwrap_or(s);
            if !self.parent.contains_key(&c) {
                self.parent.insert(c.clone(), None);
                todo.push_back(c);
            }
        }
        while let Some(u) = todo.pop_front() {
            let l = self.load_unit(&u);
            for p in l.pulls {
                let c = match self.canonical(&p) {
                    Some(c) => c,
                    // Not installed: systemd skips a missing Wants=.
                    None => continue,
                };
                if !self.parent.contains_key(&c) {
                    self.parent.insert(c.clone(), Some(u.clone()));
                    todo.push_back(c);
                }
            }
        }
    }

    fn chain(&self, unit: &str) -> Vec<String> {
        let mut v = vec![unit.to_string()];
        let mut cur = unit.to_string();
        while let Some(Some(p)) = self.parent.get(&cur) {
            v.push(p.clone());
            cur = p.clone();
            if v.len() > 64 {
                break;
            }
        }
        v.reverse();
        v
    }

    /// Whether and how `unit` starts at the next boot (without the
    /// runtime-only answer: see [`at_boot`]).
    fn judge(&mut self, unit: &str) -> AtBoot {
        let c = self.canonical(unit).unwrap_or_else(|| unit.to_string());
        if self.parent.contains_key(&c) {
            return AtBoot::Pulled {
                chain: self.chain(&c),
            };
        }
        let members: Vec<String> = self.parent.keys().cloned().collect();
        let short = c.strip_suffix(".service").unwrap_or(&c).to_string();
        for m in &members {
            let l = self.load_unit(m);
            for t in &l.triggers {
                if self.canonical(t).as_deref() == Some(c.as_str()) {
                    let ty = m.rsplit_once('.').map(|(_, t)| t).unwrap_or("");
                    return AtBoot::StartedBy {
                        by: m.clone(),
                        how: format!("starts it on demand ({ty} unit)"),
                        chain: self.chain(m),
                    };
                }
            }
            for (u, how) in &l.starts {
                if *u == c || *u == short {
                    return AtBoot::StartedBy {
                        by: m.clone(),
                        how: how.clone(),
                        chain: self.chain(m),
                    };
                }
            }
        }
        match self.doubts.iter().next() {
            Some(d) => AtBoot::Unknown {
                reason: format!("cannot tell whether {unit} starts at boot: {d}"),
            },
            None => AtBoot::NotStarted { until_reboot: None },
        }
    }
}

/// Whether and how `unit` starts at the next boot on the node under `host`.
pub fn at_boot(
    persistent: &mut BootGraph,
    runtime: impl FnOnce() -> BootGraph,
    unit: &str,
) -> AtBoot {
    match persistent.judge(unit) {
        AtBoot::NotStarted { .. } => {
            let mut r = runtime();
            let until_reboot = match r.judge(unit) {
                AtBoot::Pulled { chain } | AtBoot::StartedBy { chain, .. } => Some(chain),
                _ => None,
            };
            AtBoot::NotStarted { until_reboot }
        }
        other => other,
    }
}

fn denied(node: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        format!(
            "{node}: {e}; taint-guard runs as uid {} and may not read it (root can)",
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() }
        )
    } else {
        format!("{node}: {e}")
    }
}

fn list(host: &HostRoot, node: &str) -> Vec<String> {
    let p = host.resolve(node).unwrap_or_else(|_| host.path(node));
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `foo@bar.service` → `foo@.service`.
fn template(name: &str) -> Option<String> {
    let (pre, rest) = name.split_once('@')?;
    let (inst, ty) = rest.rsplit_once('.')?;
    (!inst.is_empty()).then(|| format!("{pre}@.{ty}"))
}

fn instance(name: &str) -> Option<&str> {
    let (_, rest) = name.split_once('@')?;
    let (inst, _) = rest.rsplit_once('.')?;
    (!inst.is_empty()).then_some(inst)
}

fn with_instance(template: &str, inst: &str) -> String {
    match template.split_once("@.") {
        Some((pre, ty)) => format!("{pre}@{inst}.{ty}"),
        None => template.to_string(),
    }
}

/// Unit-name specifiers in a dependency (`%i`, `%n`…); `None` for one
/// that needs more than the name.
fn expand(word: &str, unit: &str) -> Option<String> {
    if !word.contains('%') {
        return Some(word.to_string());
    }
    let (stem, _) = unit.rsplit_once('.')?;
    let prefix = stem.split('@').next().unwrap_or(stem);
    let inst = instance(unit).unwrap_or("");
    let mut out = String::new();
    let mut it = word.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next()? {
            '%' => out.push('%'),
            'n' => out.push_str(unit),
            'N' => out.push_str(stem),
            'p' => out.push_str(prefix),
            'i' => out.push_str(inst),
            _ => return None,
        }
    }
    Some(out)
}

/// Parse a unit file as systemd's config parser does: sections, `#`/`;`
/// comments, a trailing `\` joins the next line (comment lines inside are
/// skipped), `KEY=VALUE` trimmed.
pub fn parse(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut cont: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim_end();
        if let Some(acc) = cont.as_mut() {
            let t = line.trim_start();
            if t.starts_with('#') || t.starts_with(';') {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(l) => {
                    acc.push_str(l);
                    acc.push(' ');
                    continue;
                }
                None => {
                    acc.push_str(line);
                    let full = cont.take().unwrap_or_default();
                    take_line(&full, &mut section, &mut out);
                    continue;
                }
            }
        }
        let t = line.trim_start();
        if t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(l) = line.strip_suffix('\\') {
            cont = Some(format!("{l} "));
            continue;
        }
        take_line(line, &mut section, &mut out);
    }
    if let Some(full) = cont {
        take_line(&full, &mut section, &mut out);
    }
    out
}

fn take_line(line: &str, section: &mut String, out: &mut Vec<(String, String, String)>) {
    let t = line.trim();
    if t.is_empty() {
        return;
    }
    if let Some(s) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        *section = s.to_string();
        return;
    }
    if let Some((k, v)) = t.split_once('=') {
        out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
    }
}

/// Units a service's command starts: `systemctl start|restart|enable --now
/// U…` anywhere in it (also inside `sh -c "…"`), and EKS's `nodeadm init`,
/// whose run phase starts containerd and kubelet unless `--skip run`.
fn command_starts(cmd: &str) -> Vec<(String, String)> {
    // The command's prefixes (`-`, `@`, `:`, `+`, `!`) are on its first
    // word only.
    let words: Vec<String> = cmd
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            let w = if i == 0 {
                w.trim_start_matches(['-', '@', ':', '+', '!'])
            } else {
                w
            };
            w.trim_matches(|c| c == '"' || c == '\'' || c == ';')
                .to_string()
        })
        .collect();
    let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        match base(w).as_str() {
            "systemctl" => {
                let rest: Vec<&String> = words[i + 1..]
                    .iter()
                    .take_while(|w| !matches!(w.as_str(), "&&" | "||" | "|"))
                    .collect();
                let now = rest.iter().any(|w| *w == "--now");
                let verb = rest.iter().find(|w| !w.starts_with('-'));
                let starts = match verb.map(|v| v.as_str()) {
                    Some("start" | "restart" | "reload-or-restart") => true,
                    Some("enable") => now,
                    _ => false,
                };
                if starts {
                    let verb = verb.map(|v| v.as_str()).unwrap_or_default();
                    for u in rest
                        .iter()
                        .skip_while(|w| w.as_str() != verb)
                        .skip(1)
                        .filter(|w| !w.starts_with('-'))
                    {
                        let unit = if u.contains('.') {
                            u.to_string()
                        } else {
                            format!("{u}.service")
                        };
                        out.push((
                            unit,
                            format!(
                                "runs `systemctl {verb}{} {u}`",
                                if now { " --now" } else { "" }
                            ),
                        ));
                    }
                }
            }
            "nodeadm" => {
                let init = words[i + 1..].iter().any(|w| w == "init");
                let skip_run = words[i + 1..]
                    .windows(2)
                    .any(|p| p[0] == "--skip" && p[1].split(',').any(|s| s == "run"))
                    || words[i + 1..].iter().any(|w| {
                        w.strip_prefix("--skip=")
                            .is_some_and(|v| v.split(',').any(|s| s == "run"))
                    });
                if init && !skip_run {
                    for u in ["containerd.service", "kubelet.service"] {
                        out.push((
                            u.to_string(),
                            "runs `nodeadm init` (EKS), whose run phase starts containerd and kubelet".into(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Node(tempfile::TempDir);

    impl Node {
        fn new() -> Self {
            let n = Node(tempfile::tempdir().unwrap());
            n.file(
                "/usr/lib/systemd/system/multi-user.target",
                "[Unit]\nRequires=basic.target\n",
            );
            n.file(
                "/usr/lib/systemd/system/basic.target",
                "[Unit]\nRequires=sysinit.target\n",
            );
            n.file("/usr/lib/systemd/system/sysinit.target", "[Unit]\n");
            n.file(
                "/usr/lib/systemd/system/graphical.target",
                "[Unit]\nRequires=multi-user.target\nWants=display-manager.service\n",
            );
            n.link("/usr/lib/systemd/system/default.target", "graphical.target");
            n.file(
                "/usr/lib/systemd/system/kubelet.service",
                "[Service]\nExecStart=/usr/bin/kubelet\n[Install]\nWantedBy=multi-user.target\n",
            );
            n
        }
        fn p(&self, node: &str) -> std::path::PathBuf {
            self.0.path().join(node.trim_start_matches('/'))
        }
        fn file(&self, node: &str, text: &str) {
            let p = self.p(node);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        fn link(&self, node: &str, target: &str) {
            let p = self.p(node);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(target, p).unwrap();
        }
        fn enable(&self, base: &str, unit: &str) {
            self.link(
                &format!("{base}/multi-user.target.wants/{unit}"),
                &format!("/usr/lib/systemd/system/{unit}"),
            );
        }
        fn judge(&self, unit: &str) -> AtBoot {
            let host = HostRoot::new(self.0.path());
            let mut g = BootGraph::load(&host, true, (None, vec![]));
            at_boot(
                &mut g,
                || BootGraph::load(&host, false, (None, vec![])),
                unit,
            )
        }
    }

    #[test]
    fn enabled_in_etc_is_pulled_in_through_the_default_target() {
        let n = Node::new();
        assert_eq!(
            n.judge("kubelet.service"),
            AtBoot::NotStarted { until_reboot: None }
        );
        n.enable("/etc/systemd/system", "kubelet.service");
        assert_eq!(
            n.judge("kubelet.service"),
            AtBoot::Pulled {
                chain: vec![
                    "graphical.target".into(),
                    "multi-user.target".into(),
                    "kubelet.service".into()
                ]
            }
        );
    }

    /// `WantedBy=default.target` links under `default.target.wants/`,
    /// the folder of an alias of the default target: systemd reads it.
    #[test]
    fn wants_of_an_alias_count() {
        let n = Node::new();
        n.link(
            "/etc/systemd/system/default.target.wants/kubelet.service",
            "/usr/lib/systemd/system/kubelet.service",
        );
        assert_eq!(
            n.judge("kubelet.service"),
            AtBoot::Pulled {
                chain: vec!["graphical.target".into(), "kubelet.service".into()]
            }
        );
    }

    #[test]
    fn runtime_enable_is_gone_at_the_next_boot() {
        let n = Node::new();
        n.enable("/run/systemd/system", "kubelet.service");
        match n.judge("kubelet.service") {
            AtBoot::NotStarted {
                until_reboot: Some(c),
            } => assert_eq!(c.last().unwrap(), "kubelet.service"),
            o => panic!("{o:?}"),
        }
        // A drop-in under /run pulling it in: the same.
        let n = Node::new();
        n.file(
            "/run/systemd/system/multi-user.target.d/k.conf",
            "[Unit]\nWants=kubelet.service\n",
        );
        assert!(matches!(
            n.judge("kubelet.service"),
            AtBoot::NotStarted {
                until_reboot: Some(_)
            }
        ));
    }

    #[test]
    fn a_drop_in_wants_and_a_static_unit_pulled_in_are_started() {
        let n = Node::new();
        n.file(
            "/etc/systemd/system/multi-user.target.d/10-kubelet.conf",
            "[Unit]\n# pulled in by hand\nWants=containerd.service \\\n  kubelet.service\n",
        );
        n.file(
            "/usr/lib/systemd/system/containerd.service",
            "[Service]\nExecStart=/x\n",
        );
        for u in ["kubelet.service", "containerd.service"] {
            assert!(matches!(n.judge(u), AtBoot::Pulled { .. }), "{u}");
        }
    }

    #[test]
    fn a_default_target_in_etc_and_a_masked_target_on_the_way() {
        let n = Node::new();
        n.enable("/etc/systemd/system", "kubelet.service");
        // default.target set to a target that does not pull multi-user in.
        n.file(
            "/etc/systemd/system/rescue.target",
            "[Unit]\nRequires=sysinit.target\n",
        );
        n.link("/etc/systemd/system/default.target", "rescue.target");
        assert_eq!(
            n.judge("kubelet.service"),
            AtBoot::NotStarted { until_reboot: None }
        );
        // The kernel command line of this boot names the target.
        let host = HostRoot::new(n.0.path());
        let mut g = BootGraph::load(&host, true, (Some("multi-user.target".into()), vec![]));
        assert!(matches!(g.judge("kubelet.service"), AtBoot::Pulled { .. }));
        // multi-user.target masked: nothing it pulls in starts.
        let n = Node::new();
        n.enable("/etc/systemd/system", "kubelet.service");
        n.link("/etc/systemd/system/multi-user.target", "/dev/null");
        assert_eq!(
            n.judge("kubelet.service"),
            AtBoot::NotStarted { until_reboot: None }
        );
    }

    #[test]
    fn nodeadm_starts_kubelet_and_containerd_on_eks_al2023() {
        let n = Node::new();
        n.file(
            "/etc/systemd/system/nodeadm-run.service",
            "[Unit]\nAfter=nodeadm-config.service cloud-final.service\nRequires=nodeadm-config.service\n\n[Service]\nType=oneshot\nExecStart=/usr/bin/nodeadm --console init --skip config --config-source imds://user-data --config-source file:///etc/eks/nodeadm.d/ --config-cache /run/eks/nodeadm/config.json\n\n[Install]\nWantedBy=multi-user.target\n",
        );
        n.file(
            "/etc/systemd/system/nodeadm-config.service",
            "[Service]\nType=oneshot\nExecStart=/usr/bin/nodeadm init --skip run\n",
        );
        n.link(
            "/etc/systemd/system/multi-user.target.wants/nodeadm-run.service",
            "/etc/systemd/system/nodeadm-run.service",
        );
        match n.judge("kubelet.service") {
            AtBoot::StartedBy { by, how, .. } => {
                assert_eq!(by, "nodeadm-run.service");
                assert!(how.contains("nodeadm init"), "{how}");
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            n.judge("containerd.service"),
            AtBoot::StartedBy { .. }
        ));
    }

    #[test]
    fn a_hook_with_systemctl_start_and_a_socket_unit() {
        let n = Node::new();
        n.file(
            "/etc/systemd/system/boot-hook.service",
            "[Service]\nExecStart=/bin/sh -c \"sleep 1; systemctl start --no-block kubelet\"\n",
        );
        n.enable("/etc/systemd/system", "boot-hook.service");
        match n.judge("kubelet.service") {
            AtBoot::StartedBy { by, .. } => assert_eq!(by, "boot-hook.service"),
            o => panic!("{o:?}"),
        }
        let n = Node::new();
        n.file("/usr/lib/systemd/system/sockets.target", "[Unit]\n");
        n.file(
            "/usr/lib/systemd/system/basic.target",
            "[Unit]\nRequires=sysinit.target\nWants=sockets.target\n",
        );
        n.file(
            "/usr/lib/systemd/system/kubelet.socket",
            "[Socket]\nListenStream=/run/k.sock\n",
        );
        n.link(
            "/etc/systemd/system/sockets.target.wants/kubelet.socket",
            "/usr/lib/systemd/system/kubelet.socket",
        );
        match n.judge("kubelet.service") {
            AtBoot::StartedBy { by, how, .. } => {
                assert_eq!(by, "kubelet.socket");
                assert!(how.contains("socket"), "{how}");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn aliases_templates_and_specifiers() {
        let n = Node::new();
        // An alias enabled under its alias name.
        n.link(
            "/etc/systemd/system/k8s-node.service",
            "/usr/lib/systemd/system/kubelet.service",
        );
        n.link(
            "/etc/systemd/system/multi-user.target.wants/k8s-node.service",
            "/usr/lib/systemd/system/kubelet.service",
        );
        assert!(matches!(n.judge("kubelet.service"), AtBoot::Pulled { .. }));
        // A template instance whose template pulls in a unit by %i.
        let n = Node::new();
        n.file(
            "/usr/lib/systemd/system/agent@.service",
            "[Unit]\nWants=%i.service\n[Service]\nExecStart=/x\n",
        );
        n.link(
            "/etc/systemd/system/multi-user.target.wants/agent@kubelet.service",
            "/usr/lib/systemd/system/agent@.service",
        );
        match n.judge("kubelet.service") {
            AtBoot::Pulled { chain } => assert_eq!(chain[chain.len() - 2], "agent@kubelet.service"),
            o => panic!("{o:?}"),
        }
        // A specifier taint-guard does not expand: unknown, not "disabled".
        let n = Node::new();
        n.file(
            "/etc/systemd/system/multi-user.target.d/x.conf",
            "[Unit]\nWants=%H.service\n",
        );
        assert!(matches!(n.judge("kubelet.service"), AtBoot::Unknown { .. }));
    }

    #[test]
    fn cmdline_words_pick_the_target() {
        let w = |s: &str| {
            s.split(' ')
                .map(|x| x.as_bytes().to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cmdline_units(&w("ro quiet 3 systemd.wants=a.service -- 5")),
            (Some("multi-user.target".into()), vec!["a.service".into()])
        );
        assert_eq!(
            cmdline_units(&w("systemd.unit=rescue.target")).0.as_deref(),
            Some("rescue.target")
        );
    }
}

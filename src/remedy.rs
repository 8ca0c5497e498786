//! Remedies: command lines a person can paste. Each is built from argv
//! vectors and rendered with every argument quoted for POSIX sh (`shlex`),
//! so a unit named `dev-disk-by\x2duuid-….swap` or a path with spaces, `$`,
//! `;` or quotes does exactly what it says when pasted. Commands are joined
//! with `&&`: each runs only when the one before succeeded.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One or more commands, run in order while they succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remedy {
    commands: Vec<Vec<String>>,
}

impl Remedy {
    /// A single command.
    pub fn cmd<S: AsRef<str>>(argv: &[S]) -> Remedy {
        Remedy {
            commands: vec![argv.iter().map(|a| a.as_ref().to_string()).collect()],
        }
    }

    /// This command, then `argv` if it succeeded.
    pub fn then<S: AsRef<str>>(mut self, argv: &[S]) -> Remedy {
        self.commands
            .push(argv.iter().map(|a| a.as_ref().to_string()).collect());
        self
    }

    /// The argv of each command.
    pub fn commands(&self) -> &[Vec<String>] {
        &self.commands
    }

    /// `systemctl VERB [--now] UNIT`-style helpers used by evaluate.
    pub fn systemctl(args: &[&str]) -> Remedy {
        let mut v = vec!["systemctl"];
        v.extend_from_slice(args);
        Remedy::cmd(&v)
    }
}

/// Quote one word for POSIX sh: unchanged when it needs no quoting.
pub fn quote(word: &str) -> String {
    // try_quote fails only on NUL, which no argv can carry.
    shlex::try_quote(word)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| format!("'{}'", word.replace('\0', "").replace('\'', r"'\''")))
}

/// A command line from an argv.
pub fn render(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

impl fmt::Display for Remedy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self
            .commands
            .iter()
            .map(|c| render(c))
            .collect::<Vec<_>>()
            .join(" && ");
        f.write_str(&line)
    }
}

impl Serialize for Remedy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Remedy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let line = String::deserialize(d)?;
        let words = shlex::split(&line)
            .ok_or_else(|| serde::de::Error::custom(format!("not a shell command line: {line}")))?;
        let mut commands = vec![Vec::new()];
        for w in words {
            if w == "&&" {
                commands.push(Vec::new());
            } else {
                commands.last_mut().expect("non-empty").push(w);
            }
        }
        Ok(Remedy { commands })
    }
}

/// Test support: what `sh -c` really makes of a rendered command line. Each
/// command named in `names` is replaced, through PATH, by a script that
/// records its argv; the line itself runs unchanged.
#[cfg(test)]
pub fn sh_argv(line: &str, names: &[&str]) -> Vec<Vec<String>> {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("log");
    for n in names {
        let p = bin.path().join(n);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\n{{ printf '%s\\0' \"${{0##*/}}\"; for a in \"$@\"; do printf '%s\\0' \"$a\"; done; printf '\\036'; }} >> '{}'\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let st = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(line)
        .env("PATH", bin.path())
        .status()
        .expect("running sh");
    assert!(st.success(), "sh -c {line:?} failed");
    let out = std::fs::read(&log).unwrap_or_default();
    out.split(|b| *b == 0x1e)
        .filter(|r| !r.is_empty())
        .map(|r| {
            let r = r.strip_suffix(&[0]).unwrap_or(r);
            r.split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_round_trip_through_sh() {
        let names = [
            "kubelet.service",
            r"dev-disk-by\x2duuid-0a3407de\x2d014b.swap",
            "/var/lib/swap file",
            "a$b;c'd\"e`f`",
            "-rf",
            "*",
            "~root",
            "x && y",
        ];
        for n in names {
            let r = Remedy::systemctl(&["enable", "--now", n]).then(&["swapoff", n]);
            let line = r.to_string();
            assert_eq!(
                sh_argv(&line, &["systemctl", "swapoff"]),
                r.commands(),
                "{line}"
            );
            // And back from JSON.
            let json = serde_json::to_string(&r).unwrap();
            let back: Remedy = serde_json::from_str(&json).unwrap();
            assert_eq!(back, r);
        }
        assert_eq!(
            Remedy::systemctl(&["enable", "--now", "kubelet.service"]).to_string(),
            "systemctl enable --now kubelet.service"
        );
    }
}

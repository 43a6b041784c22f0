//! Who this master's host-run etcd is: its name, data dir and URLs, as the etcd unit runs
//! it.
//!
//! Distribution units (Debian's `etcd.service`, most RPMs') configure etcd through an
//! `EnvironmentFile` of `ETCD_*` variables (`/etc/default/etcd`, `/etc/etcd/etcd.conf`)
//! over defaults in the unit's own `Environment=`, plus flags in `$DAEMON_ARGS`. A restore
//! or a join must repeat that identity exactly, so it is read from the same file the unit
//! reads rather than asked of the operator a second time.
//!
//! The parser is written here: systemd's EnvironmentFile syntax (`KEY=VALUE`, `#`/`;`
//! comments, single or double quotes, backslash continuations, no variable expansion)
//! is not dotenv's, whose crates expand `$VAR` and accept `export`.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the restore and join repeat of the member's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub data_dir: PathBuf,
    /// The first of `--initial-advertise-peer-urls`: the URL the cluster knows it by.
    pub peer_url: String,
    pub client_urls: Vec<String>,
    /// `--initial-cluster` as configured: every member's name and peer URL.
    pub initial_cluster: Vec<(String, String)>,
    pub token: Option<String>,
}

/// Parses an EnvironmentFile's text; `Err` names the first line that is not `KEY=VALUE`.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    let mut first_line = 0;
    for (i, raw) in text.lines().enumerate() {
        if logical.is_empty() {
            first_line = i + 1;
        }
        if let Some(cont) = raw.strip_suffix('\\') {
            logical.push_str(cont);
            continue;
        }
        logical.push_str(raw);
        let line = std::mem::take(&mut logical);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {first_line}: not KEY=VALUE"));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("line {first_line}: {key:?} is not a variable name"));
        }
        out.insert(key.to_string(), unquote(value.trim()));
    }
    Ok(out)
}

/// The environment a unit's processes get: its `Environment=` entries (`KEY=VALUE`),
/// then each EnvironmentFile in order, a later one overriding (a file marked optional,
/// systemd's `-` prefix, may be missing). `Err` names the file that cannot be used.
pub fn unit_env(
    environment: &[String],
    files: &[(std::path::PathBuf, bool)],
) -> Result<BTreeMap<String, String>, String> {
    let mut env: BTreeMap<String, String> = environment
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (path, optional) in files {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                env.extend(parse_env_file(&text).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            Err(e) if *optional && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(env)
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    v.to_string()
}

/// The `--flag=value` / `--flag value` pairs of `$DAEMON_ARGS`, as `ETCD_FLAG` keys
/// (etcd's own mapping of a flag to its variable).
fn daemon_args(args: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let words: Vec<&str> = args.split_whitespace().collect();
    let mut i = 0;
    while let Some(w) = words.get(i) {
        i += 1;
        let Some(flag) = w.strip_prefix("--").or_else(|| w.strip_prefix('-')) else {
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, v.to_string()),
            None => match words.get(i).filter(|v| !v.starts_with('-')) {
                Some(v) => {
                    i += 1;
                    (flag, v.to_string())
                }
                None => (flag, "true".to_string()),
            },
        };
        out.insert(
            format!("ETCD_{}", name.replace('-', "_").to_ascii_uppercase()),
            unquote(&value),
        );
    }
    out
}

fn urls(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl Member {
    /// The member configured by `env` (the unit's defaults overlaid by its
    /// EnvironmentFile), with `$DAEMON_ARGS` flags over both, as etcd resolves them.
    /// etcd's own defaults fill the rest; `Err` says what cannot be resolved.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Member, String> {
        let mut env = env.clone();
        if let Some(args) = env.get("DAEMON_ARGS").cloned() {
            env.extend(daemon_args(&args));
        }
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let name = get("ETCD_NAME").unwrap_or("default").to_string();
        let data_dir = get("ETCD_DATA_DIR")
            .map(String::from)
            .unwrap_or_else(|| format!("{name}.etcd"));
        if !data_dir.starts_with('/') {
            return Err(format!(
                "etcd's data dir {data_dir:?} is relative to the unit's working directory; set ETCD_DATA_DIR to an absolute path"
            ));
        }
        let peer_url =
            urls(get("ETCD_INITIAL_ADVERTISE_PEER_URLS").unwrap_or("http://localhost:2380"))
                .into_iter()
                .next()
                .ok_or("ETCD_INITIAL_ADVERTISE_PEER_URLS names no URL")?;
        let client_urls =
            urls(get("ETCD_ADVERTISE_CLIENT_URLS").unwrap_or("http://localhost:2379"));
        let mut initial_cluster = Vec::new();
        for entry in urls(get("ETCD_INITIAL_CLUSTER").unwrap_or("")) {
            let (n, u) = entry
                .split_once('=')
                .ok_or_else(|| format!("ETCD_INITIAL_CLUSTER entry {entry:?} is not NAME=URL"))?;
            initial_cluster.push((n.to_string(), u.to_string()));
        }
        if initial_cluster.is_empty() {
            initial_cluster.push((name.clone(), peer_url.clone()));
        }
        Ok(Member {
            name,
            data_dir: PathBuf::from(data_dir),
            peer_url,
            client_urls,
            initial_cluster,
            token: get("ETCD_INITIAL_CLUSTER_TOKEN").map(String::from),
        })
    }

    /// The other members' peer URLs, from `--initial-cluster`.
    pub fn peers(&self) -> impl Iterator<Item = &(String, String)> {
        self.initial_cluster.iter().filter(|(n, _)| *n != self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's unit: `Environment=ETCD_NAME=%H`, `ETCD_DATA_DIR=/var/lib/etcd/default`,
    /// then `EnvironmentFile=-/etc/default/etcd`.
    fn debian(file: &str) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([
            ("ETCD_NAME".to_string(), "master-1".to_string()),
            (
                "ETCD_DATA_DIR".to_string(),
                "/var/lib/etcd/default".to_string(),
            ),
            ("DAEMON_ARGS".to_string(), String::new()),
        ]);
        env.extend(parse_env_file(file).unwrap());
        env
    }

    #[test]
    fn a_debian_env_file_gives_the_member() {
        let m = Member::from_env(&debian(
            "# etcd\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://10.0.0.1:2380\"\n\
             ETCD_ADVERTISE_CLIENT_URLS='http://10.0.0.1:2379'\n\
             ETCD_INITIAL_CLUSTER=master-1=http://10.0.0.1:2380,\\\nmaster-2=http://10.0.0.2:2380\n\
             ; a comment\nETCD_INITIAL_CLUSTER_TOKEN=k1\n",
        ))
        .unwrap();
        assert_eq!(m.name, "master-1");
        assert_eq!(m.data_dir, PathBuf::from("/var/lib/etcd/default"));
        assert_eq!(m.peer_url, "http://10.0.0.1:2380");
        assert_eq!(m.client_urls, vec!["http://10.0.0.1:2379"]);
        assert_eq!(m.initial_cluster.len(), 2);
        assert_eq!(
            m.peers().collect::<Vec<_>>(),
            vec![&("master-2".to_string(), "http://10.0.0.2:2380".to_string())]
        );
        assert_eq!(m.token.as_deref(), Some("k1"));
    }

    #[test]
    fn daemon_args_override_the_variables() {
        let m = Member::from_env(&debian(
            "ETCD_NAME=ignored\nDAEMON_ARGS=\"--name m9 --data-dir=/srv/etcd --initial-advertise-peer-urls https://10.0.0.9:2380\"\n",
        ))
        .unwrap();
        assert_eq!(m.name, "m9");
        assert_eq!(m.data_dir, PathBuf::from("/srv/etcd"));
        assert_eq!(m.peer_url, "https://10.0.0.9:2380");
        assert_eq!(
            m.initial_cluster,
            vec![("m9".into(), "https://10.0.0.9:2380".into())]
        );
    }

    #[test]
    fn bad_lines_and_relative_dirs_are_named() {
        assert_eq!(
            parse_env_file("A=1\nnonsense\n").unwrap_err(),
            "line 2: not KEY=VALUE"
        );
        let env = BTreeMap::from([("ETCD_NAME".to_string(), "x".to_string())]);
        assert!(
            Member::from_env(&env)
                .unwrap_err()
                .contains("\"x.etcd\" is relative")
        );
        let env = debian("ETCD_INITIAL_CLUSTER=oops\n");
        assert!(
            Member::from_env(&env)
                .unwrap_err()
                .contains("\"oops\" is not NAME=URL")
        );
    }
}

//! Contexts: which lab the CLI talks to, kept in one file as kubectl, argocd and vault keep theirs.
//!
//! `~/.config/homestation/config.toml` (`$XDG_CONFIG_HOME/homestation/config.toml`, or the file
//! `HOMESTATION_CONFIG` names) holds named contexts and the current one:
//!
//! ```toml
//! current = "lab"
//!
//! [contexts.lab]                     # behind Traefik: each service at https://<route>.<domain>
//! domain = "homestation.example.org"
//! token_file = "/home/me/.config/homestation/lab.token"
//!
//! [contexts.dev.servers]             # or a URL per service (make dev's ports)
//! inventory = "http://127.0.0.1:8080"
//! ```
//!
//! A service's URL comes from its flag or variable (`--server`, `HOMESTATION_SERVER`, …) first, then the
//! context (`--context`/`HOMESTATION_CONTEXT`, else `current`), then make dev's port on this machine. The
//! file holds no secret: a context names a token file, never a token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::CliError;

pub const CONFIG_VAR: &str = "HOMESTATION_CONFIG";

/// The services the CLI talks to: each one's route under a context's domain and its port under make dev.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Inventory,
    EdgeRegistry,
    Backup,
    SecretsRotator,
    Deployer,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Self::Inventory,
        Self::EdgeRegistry,
        Self::Backup,
        Self::SecretsRotator,
        Self::Deployer,
    ];

    /// Its name (a context's `servers` table uses it), its route's host under the lab's domain (lab.yaml:
    /// `<route>.<domain>`), and the port `make dev` serves it on.
    fn facts(self) -> (&'static str, &'static str, u16) {
        match self {
            Self::Inventory => ("inventory", "inventory", 8080),
            Self::EdgeRegistry => ("edge-registry", "edge", 8082),
            Self::Backup => ("backup", "backup", 8083),
            Self::SecretsRotator => ("secrets-rotator", "secrets", 8085), // pragma: allowlist secret
            Self::Deployer => ("deployer", "deploy", 8086),
        }
    }

    pub fn name(self) -> &'static str {
        self.facts().0
    }

    fn route(self) -> &'static str {
        self.facts().1
    }

    /// Where `make dev` serves it.
    fn dev_url(self) -> String {
        format!("http://127.0.0.1:{}", self.facts().2)
    }

    fn parse(name: &str) -> Result<Self, CliError> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "no service {name:?}: one of {}",
                    Self::ALL.map(Self::name).join(", ")
                ))
            })
    }
}

/// One lab as the CLI reaches it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// The lab's domain: every service at `https://<route>.<domain>`, behind Traefik.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// A URL per service (by its name), before the domain's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, String>,
    /// The file holding this lab's token (the token itself never goes in the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

impl Context {
    fn url(&self, service: Service) -> Option<String> {
        self.servers.get(service.name()).cloned().or_else(|| {
            self.domain
                .as_ref()
                .map(|d| format!("https://{}.{d}", service.route()))
        })
    }
}

/// The config file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// Where the config file is: `HOMESTATION_CONFIG`, else the XDG config folder, else `~/.config`.
pub fn config_path() -> PathBuf {
    if let Some(path) = std::env::var_os(CONFIG_VAR) {
        return PathBuf::from(path);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("homestation").join("config.toml")
}

impl Config {
    /// The file at `path`; an absent file is an empty config (no context: make dev's ports).
    pub fn load(path: &Path) -> Result<Self, CliError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| CliError::Usage(format!("{}: {}", path.display(), e.message()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(CliError::Usage(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Writes the file whole (a temporary file renamed over it: a crash leaves the old or the new one).
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let failed =
            |e: std::io::Error| CliError::Usage(format!("cannot write {}: {e}", path.display()));
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(failed)?;
        }
        let text = toml::to_string(self).expect("the config serialises");
        let temporary = path.with_extension("toml.tmp");
        std::fs::write(&temporary, text).map_err(failed)?;
        std::fs::rename(&temporary, path).map_err(failed)
    }

    /// The context `chosen` names (`--context`), else the current one; none at all is fine.
    pub fn context(&self, chosen: Option<&str>) -> Result<Option<(&str, &Context)>, CliError> {
        let Some(name) = chosen.or(self.current.as_deref()) else {
            return Ok(None);
        };
        self.contexts
            .get_key_value(name)
            .map(|(n, c)| Some((n.as_str(), c)))
            .ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> CliError {
        let known: Vec<&str> = self.contexts.keys().map(String::as_str).collect();
        CliError::Usage(if known.is_empty() {
            format!(
                "no context {name:?}: there is none yet (homestation context set {name} --domain …)"
            )
        } else {
            format!("no context {name:?}: known are {}", known.join(", "))
        })
    }
}

/// Where each service is and which token file to use, after flags, variables and the context.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub context: Option<String>,
    urls: BTreeMap<&'static str, String>,
    pub token_file: Option<PathBuf>,
}

impl Resolved {
    /// `explicit` holds the URLs given by flag or variable, by service name.
    pub fn new(
        config: &Config,
        chosen: Option<&str>,
        explicit: &BTreeMap<&'static str, String>,
    ) -> Result<Self, CliError> {
        let context = config.context(chosen)?;
        let urls = Service::ALL
            .into_iter()
            .map(|s| {
                let url = explicit
                    .get(s.name())
                    .cloned()
                    .or_else(|| context.and_then(|(_, c)| c.url(s)))
                    .unwrap_or_else(|| s.dev_url());
                (s.name(), url)
            })
            .collect();
        Ok(Self {
            context: context.map(|(n, _)| n.to_owned()),
            urls,
            token_file: context.and_then(|(_, c)| c.token_file.clone()),
        })
    }

    pub fn url(&self, service: Service) -> &str {
        &self.urls[service.name()]
    }
}

#[derive(clap::Subcommand)]
pub enum ContextCommand {
    /// The contexts of the config file; `*` marks the current one.
    List,
    /// Make NAME the current context.
    Use { name: String },
    /// Create or change a context.
    Set {
        name: String,
        /// The lab's domain: every service at https://<route>.<domain> (inventory, edge, backup, secrets, deploy).
        #[arg(long)]
        domain: Option<String>,
        /// One service's URL, before the domain's: SERVICE=URL (inventory, edge-registry, backup,
        /// secrets-rotator, deployer). Repeatable.
        #[arg(long = "url", value_parser = service_url)]
        urls: Vec<(String, String)>,
        /// The file holding this lab's token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Also make it the current context.
        #[arg(long)]
        current: bool,
    },
    /// Forget a context.
    Delete { name: String },
    /// Where each service is with the flags, variables and context in effect now.
    Show,
}

fn service_url(raw: &str) -> Result<(String, String), String> {
    let (service, url) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?} is not SERVICE=URL"))?;
    Service::parse(service).map_err(|e| e.to_string())?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} must start with http:// or https://"));
    }
    Ok((service.to_owned(), url.trim_end_matches('/').to_owned()))
}

/// Runs a context command on `config`, the file at `path`; `resolved` is what is in effect now.
pub fn run(
    command: ContextCommand,
    path: &Path,
    mut config: Config,
    resolved: &Resolved,
) -> Result<String, CliError> {
    match command {
        ContextCommand::List => {
            if config.contexts.is_empty() {
                return Ok(format!(
                    "no contexts in {} (homestation context set NAME --domain …)\n",
                    path.display()
                ));
            }
            let mut out = String::new();
            for (name, context) in &config.contexts {
                let mark = if config.current.as_deref() == Some(name) {
                    "*"
                } else {
                    " "
                };
                let reach = match (&context.domain, context.servers.len()) {
                    (Some(d), 0) => format!("https://<route>.{d}"),
                    (Some(d), n) => format!("https://<route>.{d}, {n} URL(s) of its own"),
                    (None, n) => format!("{n} URL(s)"),
                };
                out.push_str(&format!("{mark} {name:<16} {reach}\n"));
            }
            Ok(out)
        }
        ContextCommand::Use { name } => {
            if !config.contexts.contains_key(&name) {
                return Err(config.unknown(&name));
            }
            config.current = Some(name.clone());
            config.save(path)?;
            Ok(format!("current context: {name}\n"))
        }
        ContextCommand::Set {
            name,
            domain,
            urls,
            token_file,
            current,
        } => {
            let context = config.contexts.entry(name.clone()).or_default();
            if let Some(domain) = domain {
                context.domain = Some(domain.trim_matches('.').to_owned());
            }
            context.servers.extend(urls);
            if let Some(file) = token_file {
                // Kept absolute: the CLI runs from any folder.
                context.token_file = Some(std::path::absolute(&file).unwrap_or(file));
            }
            if current || config.current.is_none() {
                config.current = Some(name.clone());
            }
            config.save(path)?;
            Ok(format!("context {name} saved in {}\n", path.display()))
        }
        ContextCommand::Delete { name } => {
            if config.contexts.remove(&name).is_none() {
                return Err(config.unknown(&name));
            }
            if config.current.as_deref() == Some(&name) {
                config.current = None;
            }
            config.save(path)?;
            Ok(format!("context {name} deleted\n"))
        }
        ContextCommand::Show => {
            let mut out = format!(
                "context: {}\n",
                resolved
                    .context
                    .as_deref()
                    .unwrap_or("none (make dev's ports)")
            );
            for service in Service::ALL {
                out.push_str(&format!(
                    "{:<16} {}\n",
                    service.name(),
                    resolved.url(service)
                ));
            }
            if let Some(file) = &resolved.token_file {
                out.push_str(&format!("token file       {}\n", file.display()));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn flags_before_the_context_before_make_dev() {
        let config = config(
            "current = \"lab\"\n[contexts.lab]\ndomain = \"homestation.example.org\"\n\
             [contexts.lab.servers]\nbackup = \"http://10.0.0.5:8083\"\n",
        );
        let explicit = BTreeMap::from([("deployer", "http://127.0.0.1:9999".to_owned())]);
        let resolved = Resolved::new(&config, None, &explicit).unwrap();
        assert_eq!(resolved.context.as_deref(), Some("lab"));
        assert_eq!(
            resolved.url(Service::Inventory),
            "https://inventory.homestation.example.org"
        );
        assert_eq!(
            resolved.url(Service::EdgeRegistry),
            "https://edge.homestation.example.org"
        );
        assert_eq!(resolved.url(Service::Backup), "http://10.0.0.5:8083");
        assert_eq!(resolved.url(Service::Deployer), "http://127.0.0.1:9999");
        let none = Resolved::new(&Config::default(), None, &BTreeMap::new()).unwrap();
        assert_eq!(none.url(Service::SecretsRotator), "http://127.0.0.1:8085");
    }

    #[test]
    fn an_unknown_context_names_the_known_ones() {
        let config = config("[contexts.lab]\n[contexts.garage]\n");
        let e = Resolved::new(&config, Some("lba"), &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("known are garage, lab"), "{e}");
        let bad = toml::from_str::<Config>("[contexts.lab]\ntoken = \"x\"\n").unwrap_err();
        assert!(bad.message().contains("unknown field"), "{bad}");
    }
}

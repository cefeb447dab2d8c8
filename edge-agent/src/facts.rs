//! Parsers for what a Jetson says about itself: L4T release, JetPack, CUDA, model, memory, Tailscale, tegrastats.
//! Each takes the text a real device prints; the tests feed recorded outputs.

use serde::Deserialize;

/// `# R36 (release), REVISION: 3.0, ...` from /etc/nv_tegra_release → `36.3.0`.
pub fn l4t_from_tegra_release(text: &str) -> Option<String> {
    let first = text.lines().next()?;
    let major = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix('R'))?
        .parse::<u32>()
        .ok()?;
    let revision = first.split("REVISION:").nth(1)?.split(',').next()?.trim();
    let mut parts = revision.split('.');
    let minor = parts.next()?.parse::<u32>().ok()?;
    let patch = parts.next().unwrap_or("0").parse::<u32>().ok()?;
    Some(format!("{major}.{minor}.{patch}"))
}

/// `dpkg-query -W -f='${Version}' nvidia-jetpack` prints `6.0+b106` → `6.0`.
pub fn jetpack_from_package(text: &str) -> Option<String> {
    let version = text.trim().split(['+', '-']).next()?;
    let valid = !version.is_empty()
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    valid.then(|| version.to_owned())
}

/// NVIDIA's table of L4T releases and the JetPack that ships each, for hosts without the meta-package.
pub fn jetpack_from_l4t(l4t: &str) -> Option<String> {
    const TABLE: [(&str, &str); 14] = [
        ("36.4.3", "6.2"),
        ("36.4", "6.1"),
        ("36.3", "6.0"),
        ("35.6", "5.1.4"),
        ("35.5", "5.1.3"),
        ("35.4.1", "5.1.2"),
        ("35.3.1", "5.1.1"),
        ("35.2.1", "5.1"),
        ("35.1", "5.0.2"),
        ("32.7.4", "4.6.4"),
        ("32.7.3", "4.6.3"),
        ("32.7.2", "4.6.2"),
        ("32.7.1", "4.6.1"),
        ("32.6.1", "4.6"),
    ];
    TABLE
        .iter()
        .find(|(prefix, _)| l4t == *prefix || l4t.starts_with(&format!("{prefix}.")))
        .map(|(_, jetpack)| (*jetpack).to_owned())
}

/// `/usr/local/cuda/version.json` → `12.2` (major.minor).
pub fn cuda_from_version_json(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Versions {
        cuda: Component,
    }
    #[derive(Deserialize)]
    struct Component {
        version: String,
    }
    let v: Versions = serde_json::from_str(text).ok()?;
    let mut parts = v.cuda.version.split('.');
    Some(format!("{}.{}", parts.next()?, parts.next()?))
}

/// `/proc/device-tree/model` ends with a NUL.
pub fn model(text: &str) -> Option<String> {
    let m = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!m.is_empty()).then(|| m.to_owned())
}

/// `MemTotal:       64335836 kB` → bytes.
pub fn memory_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The GPU's name: from nvidia-smi where it exists, else the integrated GPU of the Jetson family.
pub fn gpu_name(nvidia_smi: Option<&str>, model: &str) -> Option<String> {
    let reported = nvidia_smi
        .and_then(|t| t.lines().next())
        .and_then(|l| l.split(',').next())
        .map(str::trim)
        .filter(|name| !name.is_empty());
    if let Some(name) = reported {
        return Some(name.to_owned());
    }
    ["Orin", "Xavier", "Nano", "TX2"]
        .into_iter()
        .find(|family| model.contains(family))
        .map(|family| format!("{family} (nvgpu)"))
}

/// The node's identity on the tailnet, from `tailscale status --json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tailnet {
    pub ip: String,
    pub dns_name: String,
    pub host_name: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TailscaleError {
    #[error("`tailscale status --json` did not parse: {0}")]
    Unreadable(String),
    #[error("tailscale is {0}, not Running: run `tailscale up` first")]
    NotRunning(String),
    #[error("tailscale reports no IPv4 tailnet address")]
    NoAddress,
}

pub fn tailnet(status_json: &str) -> Result<Tailnet, TailscaleError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Status {
        backend_state: String,
        #[serde(rename = "Self")]
        me: Option<Peer>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Peer {
        host_name: String,
        #[serde(rename = "DNSName")]
        dns_name: String,
        #[serde(default, rename = "TailscaleIPs")]
        tailscale_ips: Vec<String>,
    }
    let status: Status =
        serde_json::from_str(status_json).map_err(|e| TailscaleError::Unreadable(e.to_string()))?;
    if status.backend_state != "Running" {
        return Err(TailscaleError::NotRunning(status.backend_state));
    }
    let me = status.me.ok_or(TailscaleError::NoAddress)?;
    let ip = me
        .tailscale_ips
        .iter()
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .ok_or(TailscaleError::NoAddress)?
        .clone();
    Ok(Tailnet {
        ip,
        dns_name: me.dns_name.trim_end_matches('.').to_owned(),
        host_name: me.host_name,
    })
}

/// GPU load (`GR3D_FREQ 37%`) and the hottest sensor (`tj@47.5C`) from one tegrastats line.
pub fn tegrastats(line: &str) -> (Option<f32>, Option<f32>) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let gpu = words
        .windows(2)
        .find(|w| w[0] == "GR3D_FREQ")
        .and_then(|w| w[1].split('%').next())
        .and_then(number);
    let hottest = words
        .iter()
        .filter_map(|w| w.split_once('@'))
        .filter_map(|(_, t)| t.strip_suffix('C'))
        .filter_map(number)
        .fold(None, |max: Option<f32>, t| {
            Some(max.map_or(t, |m| m.max(t)))
        });
    (gpu, hottest)
}

/// `0.52 0.58 0.59 1/1234 5678` → 0.52.
pub fn load1(loadavg: &str) -> Option<f32> {
    number(loadavg.split_whitespace().next()?)
}

/// A finite reading: Rust reads `nan` and `inf` as numbers, JSON has neither, and a heartbeat carrying one
/// would be refused by every consumer.
fn number(text: &str) -> Option<f32> {
    text.parse::<f32>().ok().filter(|v| v.is_finite())
}

/// `df -B1 --output=avail /` → bytes free.
pub fn disk_free(df: &str) -> Option<u64> {
    df.lines().nth(1)?.trim().parse().ok()
}

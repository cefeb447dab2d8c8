//! Where facts come from: files under a root and commands on the host, or recorded outputs in tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Everything the agent reads about its machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    TegraRelease,
    DeviceModel,
    MemInfo,
    CudaVersion,
    JetpackPackage,
    TailscaleStatus,
    Tegrastats,
    NvidiaSmi,
    LoadAvg,
    DiskFree,
}

impl Source {
    /// The file name of this source's recorded output.
    pub fn recording(self) -> &'static str {
        match self {
            Source::TegraRelease => "tegra-release.txt",
            Source::DeviceModel => "device-model.txt",
            Source::MemInfo => "meminfo.txt",
            Source::CudaVersion => "cuda-version.txt",
            Source::JetpackPackage => "jetpack-package.txt",
            Source::TailscaleStatus => "tailscale-status.txt",
            Source::Tegrastats => "tegrastats.txt",
            Source::NvidiaSmi => "nvidia-smi.txt",
            Source::LoadAvg => "loadavg.txt",
            Source::DiskFree => "disk-free.txt",
        }
    }
}

/// Reads one source; None when the machine does not have it (not a Jetson, no CUDA, …).
pub trait Probe: Send + Sync {
    fn read(&self, source: Source) -> Option<String>;
}

/// The real machine: files under `root` (normally `/`) and commands on the PATH.
pub struct HostProbe {
    pub root: PathBuf,
}

impl HostProbe {
    fn file(&self, path: &str) -> Option<String> {
        std::fs::read(self.root.join(path))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    fn command(program: &str, args: &[&str]) -> Option<String> {
        let output = std::process::Command::new(program)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// tegrastats prints a line a second forever: take the first, then stop it.
    fn first_line(program: &str, args: &[&str], wait: Duration) -> Option<String> {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdout = child.stdout.take()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(wait).ok();
        let _ = child.kill();
        let _ = child.wait();
        line.filter(|l| !l.trim().is_empty())
    }
}

impl Probe for HostProbe {
    fn read(&self, source: Source) -> Option<String> {
        let root = self.root.to_string_lossy();
        match source {
            Source::TegraRelease => self.file("etc/nv_tegra_release"),
            Source::DeviceModel => self.file("proc/device-tree/model"),
            Source::MemInfo => self.file("proc/meminfo"),
            Source::CudaVersion => self.file("usr/local/cuda/version.json"),
            Source::LoadAvg => self.file("proc/loadavg"),
            Source::JetpackPackage => {
                Self::command("dpkg-query", &["-W", "-f=${Version}", "nvidia-jetpack"])
            }
            Source::TailscaleStatus => Self::command("tailscale", &["status", "--json"]),
            Source::NvidiaSmi => Self::command(
                "nvidia-smi",
                &[
                    "--query-gpu=name,utilization.gpu,temperature.gpu",
                    "--format=csv,noheader,nounits",
                ],
            ),
            Source::Tegrastats => {
                Self::first_line("tegrastats", &["--interval", "500"], Duration::from_secs(2))
            }
            Source::DiskFree => Self::command("df", &["-B1", "--output=avail", &root]),
        }
    }
}

/// Outputs recorded on a real device, one file per source (see tests/fixtures).
pub struct RecordedProbe {
    pub dir: PathBuf,
}

impl RecordedProbe {
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            dir: dir.as_ref().to_owned(),
        }
    }
}

impl Probe for RecordedProbe {
    fn read(&self, source: Source) -> Option<String> {
        std::fs::read_to_string(self.dir.join(source.recording())).ok()
    }
}

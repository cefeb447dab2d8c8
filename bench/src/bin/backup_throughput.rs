//! A generated database dump (1 GiB by default) backed up to one S3 server three ways, side by side:
//! HomeStation's pipeline (zstd + AES-256-GCM, streamed multipart), `restic backup --stdin` (Debian's restic),
//! and a plain unencrypted multipart upload. Each runs as its own process under GNU time, so each gets its own
//! peak memory. Prints rates, ratios and peaks, and appends the table to bench/results/.
//! Goals (issue 4): faster than restic, at least 80% of the plain upload's rate, peak memory under 64 MiB.
//!
//! `make bench-backup`; BACKUP_MIB sets the size.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use backup::format::{KeyWrap, LocalKey};
use backup::s3::{Destination, MIN_PART_SIZE, S3Settings};
use secrecy::SecretString;

/// Rows like pg_dump's COPY output: text that compresses, with enough variety not to compress to nothing.
struct Dump {
    left: u64,
    row: u64,
    pending: Vec<u8>,
    at: usize,
}

impl Dump {
    fn new(bytes: u64) -> Self {
        Self {
            left: bytes,
            row: 0,
            pending: Vec::new(),
            at: 0,
        }
    }
}

impl Read for Dump {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        if self.at == self.pending.len() {
            self.pending.clear();
            self.at = 0;
            for _ in 0..512 {
                let r = self.row;
                let x = r.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                writeln!(
                    self.pending,
                    "{r}\tjetson-{:04}\t{}\t{:x}\t2026-11-{:02} {:02}:{:02}:{:02}\thealthy\t{}",
                    r % 9973,
                    x % 100_000,
                    x,
                    r % 28 + 1,
                    r % 24,
                    r % 60,
                    x % 60,
                    x >> 40
                )
                .unwrap();
                self.row += 1;
            }
        }
        let n = buf
            .len()
            .min(self.pending.len() - self.at)
            .min(self.left as usize);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        self.left -= n as u64;
        Ok(n)
    }
}

fn settings(endpoint: &str) -> S3Settings {
    S3Settings {
        endpoint: Some(endpoint.to_owned()),
        access_key_id: "bench-made-up".into(),
        secret_access_key: SecretString::from("bench-made-up-too".to_owned()),
        ..Default::default()
    }
}

/// One participant, in this (child) process: prints the seconds it took.
async fn participant(kind: &str, endpoint: &str, bucket: &str, bytes: u64) {
    let client = settings(endpoint).client();
    let started = Instant::now();
    match kind {
        "homestation" => {
            let key: Arc<dyn KeyWrap> = Arc::new(LocalKey::new("bench", &[3; 32]));
            let d = Destination {
                client: &client,
                bucket,
                key: "homestation/dump.hsbk",
                part_size: 8 << 20,
            };
            backup::s3::upload(&d, Dump::new(bytes), key, 1 << 20, 3)
                .await
                .expect("upload");
        }
        "plain" => {
            let key = "plain/dump.sql";
            let created = client
                .create_multipart_upload()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            let id = created.upload_id().unwrap().to_owned();
            let mut source = Dump::new(bytes);
            let mut parts = Vec::new();
            for number in 1.. {
                let mut part = vec![0u8; 8 << 20];
                let mut filled = 0;
                while filled < part.len() {
                    let n = source.read(&mut part[filled..]).unwrap();
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                part.truncate(filled);
                let out = client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&id)
                    .part_number(number)
                    .body(ByteStream::from(part))
                    .send()
                    .await
                    .unwrap();
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .build(),
                );
                if filled < MIN_PART_SIZE.max(8 << 20) {
                    break;
                }
            }
            client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        other => panic!("unknown participant {other}"),
    }
    println!("{}", started.elapsed().as_secs_f64());
}

/// Runs `command` under GNU time; returns its stdout and its peak RSS in KiB.
fn timed(command: &mut Command, stdin: Option<u64>) -> (String, u64) {
    let peak = std::env::temp_dir().join(format!("hs-bench-peak-{}", std::process::id()));
    let mut child = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&peak)
        .arg(command.get_program())
        .args(command.get_args())
        .envs(command.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("GNU time runs (Debian package `time`)");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        io::copy(&mut Dump::new(bytes), &mut pipe).expect("feed stdin");
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{:?} failed",
        command.get_program()
    );
    let kib = std::fs::read_to_string(&peak)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (String::from_utf8_lossy(&output.stdout).into_owned(), kib)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 6 && args[1] == "participant" {
        participant(&args[2], &args[3], &args[4], args[5].parse().unwrap()).await;
        return;
    }
    let mib: u64 = std::env::var("BACKUP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let bytes = mib << 20;
    let s3 = testkit::s3().await;
    let client = settings(&s3.endpoint).client();
    for bucket in ["homestation", "plain", "restic"] {
        client.create_bucket().bucket(bucket).send().await.unwrap();
    }
    println!(
        "backup-throughput: {mib} MiB generated dump to SeaweedFS on this machine, each participant in its own process"
    );
    let me = std::env::current_exe().unwrap();
    let mut rows = Vec::new();
    for kind in ["homestation", "plain"] {
        let (out, kib) = timed(
            Command::new(&me).args(["participant", kind, &s3.endpoint, kind, &bytes.to_string()]),
            None,
        );
        let secs: f64 = out.trim().parse().unwrap();
        println!("  {kind}: {secs:.1} s, peak {} MiB", kib / 1024);
        rows.push((kind, secs, kib));
    }
    // restic: a repository in the same S3 server, with a password made here.
    let password = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let restic = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.args(args)
            .env("RESTIC_REPOSITORY", format!("s3:{}/restic", s3.endpoint))
            .env("RESTIC_PASSWORD", &password)
            .env("AWS_ACCESS_KEY_ID", "bench-made-up")
            .env("AWS_SECRET_ACCESS_KEY", "bench-made-up-too")
            .env(
                "RESTIC_CACHE_DIR",
                std::env::temp_dir().join("hs-bench-restic-cache"),
            );
        c
    };
    let init = restic(&["init", "--quiet"])
        .output()
        .expect("restic runs (Debian package `restic`)");
    assert!(
        init.status.success(),
        "restic init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let started = Instant::now();
    let (_, kib) = timed(
        &mut restic(&[
            "backup",
            "--quiet",
            "--stdin",
            "--stdin-filename",
            "dump.sql",
        ]),
        Some(bytes),
    );
    let secs = started.elapsed().as_secs_f64();
    println!("  restic: {secs:.1} s, peak {} MiB", kib / 1024);
    rows.push(("restic", secs, kib));

    let rate = |secs: f64| mib as f64 / secs;
    let find = |name: &str| rows.iter().find(|r| r.0 == name).copied().unwrap();
    let (h, p, r) = (find("homestation"), find("plain"), find("restic"));
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let mut table = format!(
        "## backup-throughput, {date}\n\n{mib} MiB generated dump (pg_dump-like rows) to one SeaweedFS S3 server on this 2-core machine; each participant in its own process.\n\n| participant | time | rate | its rate ÷ HomeStation's | peak RSS |\n|---|---|---|---|---|\n"
    );
    for (name, secs, kib) in [h, r, p] {
        table.push_str(&format!(
            "| {name} | {secs:.1} s | {:.0} MiB/s | {:.2} | {} MiB |\n",
            rate(secs),
            h.1 / secs,
            kib / 1024
        ));
    }
    table.push_str(&format!(
        "\nGoals: faster than restic ({}: {:.2}× its rate); at least 80% of the plain upload's rate ({}: {:.0}%); peak memory under 64 MiB ({}: {} MiB).\n",
        if h.1 < r.1 { "met" } else { "NOT met" }, r.1 / h.1,
        if p.1 / h.1 >= 0.8 { "met" } else { "NOT met" }, 100.0 * p.1 / h.1,
        if h.2 < 64 * 1024 { "met" } else { "NOT met" }, h.2 / 1024,
    ));
    println!("\n{table}");
    homestation_bench::append_result("backup-throughput", &table);
}

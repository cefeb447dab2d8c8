//! Helpers shared by the benchmarks: quantiles from Prometheus histograms and from samples.

/// The `q` quantile (0..1) of a Prometheus histogram named `name` in `text`, interpolated within its bucket.
pub fn histogram_quantile(text: &str, name: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((bound, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower);
            }
            let share = if count > below {
                (rank - below) / (count - below)
            } else {
                1.0
            };
            return Some(lower + (bound - lower) * share);
        }
        (lower, below) = (bound, count);
    }
    None
}

/// The `q` quantile of samples (sorted here).
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples.get(i).copied().unwrap_or(f64::NAN)
}

/// A release binary of the workspace, beside the running benchmark (`cargo build --release --workspace --bins`).
pub fn release_binary(name: &str) -> std::path::PathBuf {
    let path = std::env::current_exe()
        .expect("own path")
        .with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo build --release --workspace --bins` (make bench does it)",
        path.display()
    );
    path
}

/// A listener on `127.0.0.1:$PORT`, for the baseline servers the benchmarks start.
pub async fn listener() -> tokio::net::TcpListener {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("PORT is a port number");
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the port is free")
}

/// A size from the environment variable `name`, or `default` when unset or not a number.
pub fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A counter's value in a Prometheus text exposition.
pub fn counter(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Appends a run's table to `bench/results/<name>-<date>.md`, so a day's runs stay side by side.
pub fn append_result(name: &str, table: &str) {
    use std::io::Write;
    let path = format!(
        "{}/results/{name}-{}.md",
        env!("CARGO_MANIFEST_DIR"),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open the results");
    writeln!(file, "{table}").expect("write the result");
    println!("written to {path}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let text = "x_bucket{le=\"0.001\"} 50\nx_bucket{le=\"0.01\"} 90\nx_bucket{le=\"0.1\"} 100\nx_bucket{le=\"+Inf\"} 100\n";
        assert_eq!(histogram_quantile(text, "x", 0.5), Some(0.001));
        let p95 = histogram_quantile(text, "x", 0.95).unwrap();
        assert!((p95 - 0.055).abs() < 1e-9, "{p95}");
        assert_eq!(quantile(&mut [3.0, 1.0, 2.0], 0.5), 2.0);
    }
}

//! Tables of `homestation backup`: policies, the catalog, runs, restores and drills.

use serde_json::Value;

use super::{list, table, text};

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn size(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".into(), bytes)
}

pub fn policies(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v)
        .iter()
        .map(|p| {
            let last = &p["last_run"];
            let state = if p["running"].is_null() {
                text(&last["status"])
            } else {
                format!("running ({})", size(&p["running"]["bytes"]))
            };
            vec![
                text(&p["name"]),
                text(&p["source"]),
                text(&p["schedule"]),
                text(&p["next_run"]),
                state,
                text(&p["last_success"]),
                format!(
                    "{}d min, last {}",
                    text(&p["retention"]["min_age_days"]),
                    text(&p["retention"]["keep_last"])
                ),
                text(&p["last_drill"]["status"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no backup policies: add them under `policies` in the backup service's config\n"
            .into();
    }
    table(
        &[
            "POLICY",
            "SOURCE",
            "SCHEDULE",
            "NEXT RUN",
            "LAST RUN",
            "LAST SUCCESS",
            "RETENTION",
            "DRILL",
        ],
        &rows,
    )
}

pub fn backups(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v)
        .iter()
        .map(|b| {
            let status = match (b["status"].as_str(), b["verified_at"].is_null()) {
                (Some("succeeded"), false) => "verified".to_owned(),
                _ => text(&b["status"]),
            };
            vec![
                text(&b["id"]),
                text(&b["policy"]),
                status,
                text(&b["started_at"]),
                size(&b["plaintext_bytes"]),
                size(&b["stored_bytes"]),
                text(&b["reason"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no backups yet; start one with `homestation backup run POLICY`\n".into();
    }
    table(
        &[
            "ID", "POLICY", "STATUS", "STARTED", "SIZE", "STORED", "REASON",
        ],
        &rows,
    )
}

pub fn backup_result(b: &Value) -> String {
    match b["status"].as_str() {
        Some("succeeded") => format!(
            "backup {} of {} succeeded: {} read, {} stored, {}\n",
            text(&b["id"]),
            text(&b["policy"]),
            size(&b["plaintext_bytes"]),
            size(&b["stored_bytes"]),
            if b["verified_at"].is_null() {
                "not verified"
            } else {
                "verified"
            }
        ),
        _ => format!(
            "backup {} of {} {} (try {}): {}\n",
            text(&b["id"]),
            text(&b["policy"]),
            text(&b["status"]),
            text(&b["attempt"]),
            text(&b["reason"])
        ),
    }
}

pub fn drill(d: &Value) -> String {
    let mut out = format!(
        "drill of {} (backup {}) {} in {} ms{}\n",
        text(&d["policy"]),
        text(&d["backup_id"]),
        text(&d["status"]),
        text(&d["duration_ms"]),
        d["reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    for c in list(&d["checks"]) {
        out.push_str(&format!(
            "  {} {}: found {}\n",
            if c["passed"] == true { "ok  " } else { "FAIL" },
            text(&c["check"]["kind"]),
            text(&c["found"])
        ));
    }
    out
}

pub fn drills(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v)
        .iter()
        .map(|d| {
            vec![
                text(&d["started_at"]),
                text(&d["policy"]),
                text(&d["status"]),
                text(&d["duration_ms"]),
                text(&d["backup_id"]),
                text(&d["reason"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no drills yet; run one with `homestation backup drills --run POLICY`\n".into();
    }
    table(
        &["STARTED", "POLICY", "STATUS", "MS", "BACKUP", "REASON"],
        &rows,
    )
}

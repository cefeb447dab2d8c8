//! Tables of `homestation secrets`: rotation policies, rotations and their history.

use serde_json::Value;

use super::{list, table, text};

pub fn rotation_policies(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v)
        .iter()
        .map(|p| {
            let join = |a: &Value| {
                let items: Vec<String> = list(a).iter().map(text).collect();
                if items.is_empty() {
                    "-".to_owned()
                } else {
                    items.join(",")
                }
            };
            vec![
                text(&p["path"]),
                text(&p["kind"]),
                text(&p["schedule"]),
                join(&p["consumers"]),
                join(&p["deployments"]),
                text(&p["last_rotation"]["phase"]),
                text(&p["last_rotation"]["finished_at"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no rotation policies: add them under `policies` in secrets-rotator's config\n"
            .into();
    }
    table(
        &[
            "PATH",
            "KIND",
            "SCHEDULE",
            "CONSUMERS",
            "DEPLOYMENTS",
            "LAST",
            "AT",
        ],
        &rows,
    )
}

pub fn rotation(r: &Value) -> String {
    let mut out = format!(
        "{} {}: {} (version {} → {}",
        text(&r["path"]),
        text(&r["phase"]),
        text(&r["actor"]),
        text(&r["from_version"]),
        text(&r["to_version"])
    );
    if !r["restored_version"].is_null() {
        out.push_str(&format!(
            ", previous value restored as {}",
            text(&r["restored_version"])
        ));
    }
    out.push(')');
    if let Some(user) = r["db_user"].as_str() {
        out.push_str(&format!(", current user {user}"));
    }
    if let Some(reason) = r["reason"].as_str() {
        out.push_str(&format!("\n  reason: {reason}"));
    }
    let missing: Vec<String> = list(&r["unacknowledged"]).iter().map(text).collect();
    if !missing.is_empty() {
        out.push_str(&format!(
            "\n  not acknowledged in time: {}",
            missing.join(", ")
        ));
    }
    out.push('\n');
    out
}

pub fn rotations(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v)
        .iter()
        .map(|r| {
            vec![
                text(&r["started_at"]),
                text(&r["path"]),
                text(&r["actor"]),
                text(&r["phase"]),
                format!("{}→{}", text(&r["from_version"]), text(&r["to_version"])),
                text(&r["reason"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no rotations yet\n".into();
    }
    table(
        &["STARTED", "PATH", "BY", "RESULT", "VERSIONS", "REASON"],
        &rows,
    )
}

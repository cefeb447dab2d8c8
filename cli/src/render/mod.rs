//! Tables for people; `--output json` prints the server's documents as they are.

use serde_json::Value;

mod backup;
mod secrets;
pub use backup::*;
pub use secrets::*;

/// Left-aligned columns, two spaces apart, with a header row.
/// Columns as kubectl prints them (comfy-table, no borders): a header row, two spaces between columns,
/// no trailing blanks, and no wrapping, so a pipe to grep or cut gets whole rows.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(headers.iter().copied());
    for row in rows {
        table.add_row(row.iter().map(String::as_str));
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn counts(v: &Value) -> String {
    let total = v["total"].as_i64().unwrap_or(0);
    let parts: Vec<String> = v["by_health"]
        .as_object()
        .map(|m| m.iter().map(|(k, n)| format!("{n} {k}")).collect())
        .unwrap_or_default();
    if parts.is_empty() {
        format!("{total}")
    } else {
        format!("{total} ({})", parts.join(", "))
    }
}

pub fn status(s: &Value) -> String {
    let kinds: Vec<String> = s["nodes_by_kind"]
        .as_object()
        .map(|m| m.iter().map(|(k, n)| format!("{n} {k}")).collect())
        .unwrap_or_default();
    let mut out = format!("HomeStation lab at {}\n", text(&s["generated_at"]));
    out.push_str(&format!(
        "Nodes:     {}{}\n",
        counts(&s["nodes"]),
        if kinds.is_empty() {
            String::new()
        } else {
            format!("; {}", kinds.join(", "))
        }
    ));
    out.push_str(&format!("Services:  {}\n", counts(&s["services"])));
    let edge = list(&s["edge"]);
    if !edge.is_empty() {
        out.push_str("\nEdge fleet\n");
        let rows: Vec<Vec<String>> = edge
            .iter()
            .map(|e| {
                ["name", "health", "model", "jetpack", "cuda", "last_seen"]
                    .iter()
                    .map(|k| text(&e[*k]))
                    .collect()
            })
            .collect();
        out.push_str(&table(
            &["NAME", "HEALTH", "MODEL", "JETPACK", "CUDA", "LAST SEEN"],
            &rows,
        ));
    }
    for (title, key) in [
        ("Deployments", "deployments"),
        ("Backups", "backups"),
        ("Restore drills", "drills"),
        ("Secrets", "secrets"),
    ] {
        let items = list(&s[key]);
        if items.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}\n"));
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|a| vec![text(&a["key"]), text(&a["status"]), text(&a["at"])])
            .collect();
        out.push_str(&table(&["NAME", "STATUS", "AT"], &rows));
    }
    out
}

pub fn nodes(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v)
        .iter()
        .map(|n| {
            let addresses = list(&n["addresses"])
                .iter()
                .map(text)
                .collect::<Vec<_>>()
                .join(",");
            vec![
                text(&n["name"]),
                text(&n["kind"]),
                text(&n["health"]),
                if addresses.is_empty() {
                    "-".into()
                } else {
                    addresses
                },
                text(&n["last_seen"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no nodes yet; add one with `homestation nodes add NAME --kind control`\n".into();
    }
    table(&["NAME", "KIND", "HEALTH", "ADDRESSES", "LAST SEEN"], &rows)
}

pub fn node(n: &Value) -> String {
    let mut out = String::new();
    for key in [
        "name",
        "id",
        "kind",
        "health",
        "health_reason",
        "last_seen",
        "source",
        "created_at",
    ] {
        out.push_str(&format!("{:<15}{}\n", format!("{key}:"), text(&n[key])));
    }
    let addresses = list(&n["addresses"])
        .iter()
        .map(text)
        .collect::<Vec<_>>()
        .join(", ");
    out.push_str(&format!(
        "{:<14}{}\n",
        "addresses:",
        if addresses.is_empty() {
            "-".into()
        } else {
            addresses
        }
    ));
    if let Some(labels) = n["labels"].as_object().filter(|l| !l.is_empty()) {
        out.push_str("labels:\n");
        for (k, v) in labels {
            out.push_str(&format!("  {k}={}\n", text(v)));
        }
    }
    if n["gpu"].is_object() {
        let g = &n["gpu"];
        out.push_str(&format!(
            "gpu:           {} (JetPack {}, L4T {}, CUDA {})\n",
            text(&g["model"]),
            text(&g["jetpack"]),
            text(&g["l4t"]),
            text(&g["cuda"])
        ));
    }
    let history = list(&n["history"]);
    if !history.is_empty() {
        out.push_str("\nHealth history\n");
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|h| {
                vec![
                    text(&h["observed_at"]),
                    text(&h["health"]),
                    text(&h["reason"]),
                ]
            })
            .collect();
        out.push_str(&table(&["AT", "HEALTH", "REASON"], &rows));
    }
    out
}

pub fn services(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v)
        .iter()
        .map(|s| {
            let endpoints = list(&s["endpoints"])
                .iter()
                .map(text)
                .collect::<Vec<_>>()
                .join(",");
            vec![
                text(&s["namespace"]),
                text(&s["name"]),
                text(&s["health"]),
                text(&s["revision"]),
                if endpoints.is_empty() {
                    "-".into()
                } else {
                    endpoints
                },
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no services yet\n".into();
    }
    table(
        &["NAMESPACE", "NAME", "HEALTH", "REVISION", "ENDPOINTS"],
        &rows,
    )
}

pub fn created_token(t: &Value) -> String {
    format!(
        "join token {} (valid until {}):\n\n  {}\n\nIt is shown this once. On the Jetson, after `tailscale up`:\n  HOMESTATION_JOIN_TOKEN=<token> homestation-edge-agent --registry <edge-registry URL>\n",
        text(&t["id"]),
        text(&t["expires_at"]),
        text(&t["token"])
    )
}

pub fn tokens(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v)
        .iter()
        .map(|t| {
            vec![
                text(&t["id"]),
                text(&t["status"]),
                text(&t["expires_at"]),
                text(&t["created_by"]),
                text(&t["description"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no join tokens; create one with `homestation edge token create --ttl 1h`\n".into();
    }
    table(
        &["ID", "STATUS", "EXPIRES", "CREATED BY", "DESCRIPTION"],
        &rows,
    )
}

pub fn edge_nodes(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v)
        .iter()
        .map(|n| {
            let f = &n["facts"];
            vec![
                text(&n["name"]),
                text(&n["state"]),
                text(&n["tailnet_ip"]),
                text(&f["jetpack"]),
                text(&f["cuda"]),
                text(&f["gpu_name"]),
                text(&n["last_heartbeat_at"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no edge nodes enrolled yet\n".into();
    }
    table(
        &[
            "NAME",
            "STATE",
            "TAILNET IP",
            "JETPACK",
            "CUDA",
            "GPU",
            "LAST HEARTBEAT",
        ],
        &rows,
    )
}

pub fn edge_node(n: &Value) -> String {
    let mut out = String::new();
    for key in [
        "name",
        "id",
        "state",
        "tailnet_ip",
        "dns_name",
        "enrolled_at",
        "last_heartbeat_at",
    ] {
        out.push_str(&format!("{:<19}{}\n", format!("{key}:"), text(&n[key])));
    }
    let f = &n["facts"];
    out.push_str(&format!(
        "{:<19}{} (JetPack {}, L4T {}, CUDA {}, {} bytes)\n",
        "hardware:",
        text(&f["model"]),
        text(&f["jetpack"]),
        text(&f["l4t"]),
        text(&f["cuda"]),
        text(&f["memory_bytes"])
    ));
    if let Some(labels) = n["labels"].as_object() {
        out.push_str("labels:\n");
        for (k, v) in labels {
            out.push_str(&format!("  {k}={}\n", text(v)));
        }
    }
    for taint in list(&n["taints"]) {
        out.push_str(&format!("taint:             {}\n", text(&taint)));
    }
    if n["last_heartbeat"].is_object() {
        let h = &n["last_heartbeat"];
        out.push_str(&format!(
            "{:<19}load {} · GPU {}% · {}°C · {} bytes free\n",
            "last heartbeat:",
            text(&h["load1"]),
            text(&h["gpu_utilization_pct"]),
            text(&h["temperature_c"]),
            text(&h["disk_free_bytes"])
        ));
    }
    out
}

pub fn deployments(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v)
        .iter()
        .map(|d| {
            let commit = text(&d["commit"]);
            vec![
                format!("{}/{}", text(&d["namespace"]), text(&d["app"])),
                commit.chars().take(12).collect(),
                text(&d["status"]),
                text(&d["webhook_at"]),
                text(&d["synced_at"]),
                text(&d["healthy_at"]),
                text(&d["reason"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no deployments recorded yet\n".into();
    }
    table(
        &[
            "APP", "COMMIT", "STATUS", "WEBHOOK", "SYNCED", "HEALTHY", "REASON",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let out = table(&["A", "LONGER"], &[vec!["wide-cell".into(), "x".into()]]);
        assert_eq!(out, "A          LONGER\nwide-cell  x\n");
    }
}

//! `gemba query`: a thin HTTP client of a running server that prints tables or CSV.

use gemba_core::time::format_rfc3339;
use serde_json::Value;

use crate::cli::{QueryArgs, QueryCmd};
use gemba_lab::client::{agent, get};

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let agent = agent();
    let base = args.server.trim_end_matches('/');
    let fmt = || {
        if args.csv {
            vec![("format", "csv".to_owned())]
        } else {
            vec![]
        }
    };
    let text = match &args.what {
        QueryCmd::Assets => {
            let body = get(&agent, &format!("{base}/api/v1/assets"), &[])?;
            let tree: Value = serde_json::from_str(&body)?;
            let mut out = String::new();
            print_tree(&tree, 0, &mut out);
            out
        }
        QueryCmd::Latest { prefix } => {
            let mut p = fmt();
            if !prefix.is_empty() {
                p.push(("prefix", prefix.clone()));
            }
            let body = get(&agent, &format!("{base}/api/v1/latest"), &p)?;
            if args.csv {
                body
            } else {
                let rows: Vec<Value> = serde_json::from_str(&body)?;
                table(
                    &["signal", "value", "unit", "time"],
                    rows.iter()
                        .map(|r| {
                            vec![
                                r["signal"].as_str().unwrap_or("").to_owned(),
                                r["state"]
                                    .as_str()
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| r["value"].to_string()),
                                r["unit"].as_str().unwrap_or("").to_owned(),
                                format_rfc3339(r["ts"].as_i64().unwrap_or(0)),
                            ]
                        })
                        .collect(),
                )
            }
        }
        QueryCmd::Series {
            signal,
            from,
            to,
            step,
            agg,
        } => {
            let mut p = fmt();
            p.push(("signal", signal.clone()));
            for (k, v) in [("from", from), ("to", to), ("step", step), ("agg", agg)] {
                if let Some(v) = v {
                    p.push((k, v.clone()));
                }
            }
            let body = get(&agent, &format!("{base}/api/v1/series"), &p)?;
            if args.csv {
                body
            } else {
                let v: Value = serde_json::from_str(&body)?;
                let empty = Vec::new();
                let pts = v["points"].as_array().unwrap_or(&empty);
                table(
                    &["time", "value"],
                    pts.iter()
                        .map(|p| vec![format_rfc3339(p[0].as_i64().unwrap_or(0)), p[1].to_string()])
                        .collect(),
                )
            }
        }
        QueryCmd::Events {
            from,
            to,
            kind,
            asset,
            pseudonymise,
        } => {
            let mut p = fmt();
            for (k, v) in [("from", from), ("to", to), ("type", kind), ("asset", asset)] {
                if let Some(v) = v {
                    p.push((k, v.clone()));
                }
            }
            if *pseudonymise {
                p.push(("pseudonymise", "true".into()));
            }
            let body = get(&agent, &format!("{base}/api/v1/events"), &p)?;
            if args.csv {
                body
            } else {
                let rows: Vec<Value> = serde_json::from_str(&body)?;
                table(
                    &["time", "asset", "type", "details"],
                    rows.iter()
                        .map(|r| {
                            let mut details = r.clone();
                            if let Some(o) = details.as_object_mut() {
                                for k in ["id", "ts", "asset", "type"] {
                                    o.remove(k);
                                }
                            }
                            vec![
                                format_rfc3339(r["ts"].as_i64().unwrap_or(0)),
                                r["asset"].as_str().unwrap_or("").to_owned(),
                                r["type"].as_str().unwrap_or("").to_owned(),
                                details.to_string(),
                            ]
                        })
                        .collect(),
                )
            }
        }
        QueryCmd::Stats => {
            let body = get(&agent, &format!("{base}/api/v1/stats"), &[])?;
            let v: Value = serde_json::from_str(&body)?;
            serde_json::to_string_pretty(&v)? + "\n"
        }
    };
    print!("{text}");
    Ok(())
}

fn print_tree(node: &Value, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    let name = node["name"].as_str().unwrap_or("");
    let level = node["level"].as_str().unwrap_or("");
    let kind = node["kind"]
        .as_str()
        .map(|k| format!(" ({k})"))
        .unwrap_or_default();
    out.push_str(&format!("{indent}{name} [{level}]{kind}\n"));
    if let Some(sigs) = node["signals"].as_array() {
        for s in sigs {
            let path = s["path"].as_str().unwrap_or("");
            let short = path.rsplit('/').next().unwrap_or(path);
            let unit = s["unit"]
                .as_str()
                .map(|u| format!(" [{u}]"))
                .unwrap_or_default();
            out.push_str(&format!("{indent}  · {short}{unit}\n"));
        }
    }
    if let Some(children) = node["children"].as_array() {
        for c in children {
            print_tree(c, depth + 1, out);
        }
    }
}

/// A plain aligned text table.
pub(crate) fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
            + "\n"
    };
    let mut out = line(headers.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

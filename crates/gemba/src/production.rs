//! `gemba oee` and `gemba work-orders`: thin HTTP clients of a running server.

use anyhow::Context;
use clap::{Args, Subcommand};
use gemba_core::time::format_rfc3339;
use serde_json::{Value, json};

use gemba_lab::client::{agent, get, post_json};

#[derive(Debug, Args)]
pub struct OeeArgs {
    /// Machine, line, area or site path.
    pub asset: String,
    /// Start (ms or RFC 3339); default: 24 h before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// End; default: now.
    #[arg(long)]
    pub to: Option<String>,
    /// total, hour, shift or day.
    #[arg(long, default_value = "total")]
    pub by: String,
    /// Print the whole JSON answer.
    #[arg(long)]
    pub json: bool,
    /// Server to ask.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "GEMBA_SERVER")]
    pub server: String,
}

#[derive(Debug, Args)]
pub struct WorkOrdersArgs {
    #[command(subcommand)]
    pub what: WorkOrdersCmd,
    /// Server to ask.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "GEMBA_SERVER"
    )]
    pub server: String,
}

#[derive(Debug, Subcommand)]
pub enum WorkOrdersCmd {
    /// List work orders (open ones unless --state says otherwise).
    List {
        /// open, all, or a comma list of open, assigned, in_progress, done.
        #[arg(long, default_value = "open")]
        state: String,
        #[arg(long)]
        asset: Option<String>,
        /// Replace assignees and who did what by stable pseudonyms
        /// (docs/SECURITY.md#privacy-and-retention).
        #[arg(long)]
        pseudonymise: bool,
    },
    /// Create a work order for a machine, or from an alarm.
    Create {
        #[arg(long)]
        machine: Option<String>,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        alarm: Option<u64>,
        #[arg(long)]
        by: String,
    },
    /// assign, start, done, note or parts.
    Act {
        id: u64,
        action: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long)]
        text: Option<String>,
        /// A part used, NAME=QUANTITY (repeatable).
        #[arg(long = "part")]
        parts: Vec<String>,
    },
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{:.1} %", x * 100.0))
}

pub fn oee(a: OeeArgs) -> anyhow::Result<()> {
    let agent = agent();
    let mut params = vec![("asset", a.asset.clone()), ("by", a.by.clone())];
    if let Some(f) = a.from {
        params.push(("from", f));
    }
    if let Some(t) = a.to {
        params.push(("to", t));
    }
    let url = format!("{}/api/v1/oee", a.server.trim_end_matches('/'));
    let body = get(&agent, &url, &params)?;
    if a.json {
        println!("{body}");
        return Ok(());
    }
    let v: Value = serde_json::from_str(&body).context("the server's answer is not JSON")?;
    if let Some(tz) = v["timezone"].as_str() {
        println!("times in {tz}");
    }
    println!(
        "{:<25} {:<20} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6}",
        "from", "shift", "A", "P", "Q", "OEE", "good", "scrap"
    );
    for r in v["rows"].as_array().into_iter().flatten() {
        // The local time with its offset; an older server sends only milliseconds.
        let from = r["from_local"].as_str().map_or_else(
            || format_rfc3339(r["from"].as_i64().unwrap_or(0)),
            str::to_owned,
        );
        println!(
            "{:<25} {:<20} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6}",
            from,
            r["shift"].as_str().unwrap_or(""),
            pct(&r["availability"]),
            pct(&r["performance"]),
            pct(&r["quality"]),
            pct(&r["oee"]),
            r["good"],
            r["scrap"]
        );
    }
    let l = &v["total"]["losses"];
    println!(
        "\ntotal OEE {}; losses (min): breakdowns {:.1}, setup {:.1}, small stops {:.1}, reduced speed {:.1}, startup rejects {:.1}, production rejects {:.1}, other stops {:.1}",
        pct(&v["total"]["oee"]),
        l["breakdowns_s"].as_f64().unwrap_or(0.0) / 60.0,
        l["setup_s"].as_f64().unwrap_or(0.0) / 60.0,
        l["small_stops_s"].as_f64().unwrap_or(0.0) / 60.0,
        l["reduced_speed_s"].as_f64().unwrap_or(0.0) / 60.0,
        l["startup_rejects_s"].as_f64().unwrap_or(0.0) / 60.0,
        l["production_rejects_s"].as_f64().unwrap_or(0.0) / 60.0,
        l["other_stops_s"].as_f64().unwrap_or(0.0) / 60.0,
    );
    for c in v["causes"].as_array().into_iter().flatten().take(10) {
        println!("  {}", c["text"].as_str().unwrap_or(""));
    }
    Ok(())
}

pub fn work_orders(a: WorkOrdersArgs) -> anyhow::Result<()> {
    let agent = agent();
    let base = format!("{}/api/v1/work-orders", a.server.trim_end_matches('/'));
    let out = match a.what {
        WorkOrdersCmd::List {
            state,
            asset,
            pseudonymise,
        } => {
            let mut params = vec![("state", state)];
            if let Some(x) = asset {
                params.push(("asset", x));
            }
            if pseudonymise {
                params.push(("pseudonymise", "true".into()));
            }
            let v: Value = serde_json::from_str(&get(&agent, &base, &params)?)
                .context("the server's answer is not JSON")?;
            for w in v["work_orders"].as_array().into_iter().flatten() {
                println!(
                    "{:>5}  {:<12} {:<40} {:<16} {}",
                    w["id"],
                    w["state"].as_str().unwrap_or(""),
                    w["machine"].as_str().unwrap_or(""),
                    w["assignee"].as_str().unwrap_or("-"),
                    w["title"].as_str().unwrap_or("")
                );
            }
            return Ok(());
        }
        WorkOrdersCmd::Create {
            machine,
            title,
            alarm,
            by,
        } => {
            let body = json!({"machine": machine, "title": title, "alarm": alarm, "by": by});
            post_json(&agent, &base, body.to_string().as_bytes())?
        }
        WorkOrdersCmd::Act {
            id,
            action,
            by,
            assignee,
            text,
            parts,
        } => {
            let parts = parts
                .iter()
                .map(|p| {
                    let (n, q) = p
                        .split_once('=')
                        .with_context(|| format!("--part {p:?}: write NAME=QUANTITY"))?;
                    let q: f64 = q
                        .parse()
                        .with_context(|| format!("--part {p:?}: {q:?} is not a number"))?;
                    Ok(json!({"name": n, "quantity": q}))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let body = json!({"by": by, "assignee": assignee, "text": text, "parts": parts});
            post_json(
                &agent,
                &format!("{base}/{id}/{action}"),
                body.to_string().as_bytes(),
            )?
        }
    };
    println!("{out}");
    Ok(())
}

//! `gemba lots`, `gemba inventory`, `gemba genealogy` and `gemba energy`: thin HTTP clients of the
//! logistics, genealogy and energy routes of a running server (docs/LOGISTICS.md).

use clap::{Args, Subcommand};
use gemba_core::time::format_rfc3339;
use serde_json::Value;

use crate::query::table;
use gemba_lab::client::{agent, get};

/// Where the server is and how to print.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server to ask.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "GEMBA_SERVER"
    )]
    pub server: String,
    /// Print CSV instead of a table (where the server offers it).
    #[arg(long, global = true)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct LotsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Show one lot: where it is, its stays and moves.
    pub lot: Option<String>,
    /// Only lots of this product.
    #[arg(long)]
    pub product: Option<String>,
    /// At most this many lots.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// As of this time (ms or RFC 3339); default: now.
    #[arg(long)]
    pub at: Option<String>,
    #[arg(long)]
    pub location: Option<String>,
    #[arg(long)]
    pub product: Option<String>,
    /// Only WIP (at machines and lines) or only stores.
    #[arg(long, value_parser = ["wip", "store"])]
    pub kind: Option<String>,
}

#[derive(Debug, Args)]
pub struct GenealogyArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The lot.
    pub lot: String,
    /// What was made from the lot and where it went (default: what it was made from).
    #[arg(long, conflicts_with = "backward")]
    pub forward: bool,
    /// What the lot was made from (the default).
    #[arg(long)]
    pub backward: bool,
    /// Also print the process data (events and signal statistics while the lots were at machines).
    #[arg(long)]
    pub process: bool,
    /// Replace operator ids in the process data by stable pseudonyms
    /// (docs/SECURITY.md#privacy-and-retention).
    #[arg(long)]
    pub pseudonymise: bool,
}

#[derive(Debug, Subcommand)]
pub enum EnergyCmd {
    /// kWh, idle kWh, good parts, kWh per good part and CO2e per machine, line and site.
    Report {
        #[command(flatten)]
        client: ClientArgs,
        /// shift, day, month or total.
        #[arg(long, default_value = "day")]
        by: String,
        /// Only this asset and below.
        #[arg(long)]
        asset: Option<String>,
        /// Start; default 24 h before --to.
        #[arg(long)]
        from: Option<String>,
        /// End; default now.
        #[arg(long)]
        to: Option<String>,
    },
    /// kWh and CO2e per lot and per product (lots created in the range).
    Lots {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        product: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
    },
}

fn opt(p: &mut Vec<(&'static str, String)>, k: &'static str, v: &Option<String>) {
    if let Some(v) = v {
        p.push((k, v.clone()));
    }
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| num(v), str::to_owned)
}

fn ts(v: &Value) -> String {
    v.as_i64().map_or_else(|| "-".into(), format_rfc3339)
}

/// GETs `path` of the server with `params`: with `--csv` it asks for CSV and prints it as it comes
/// (`None`); otherwise it returns the JSON answer.
fn fetch(
    client: &ClientArgs,
    path: &str,
    mut params: Vec<(&'static str, String)>,
) -> anyhow::Result<Option<Value>> {
    if client.csv {
        params.push(("format", "csv".into()));
    }
    let base = client.server.trim_end_matches('/');
    let body = get(&agent(), &format!("{base}{path}"), &params)?;
    if client.csv {
        print!("{body}");
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(&body)?))
}

fn rows(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

pub fn lots(args: LotsArgs) -> anyhow::Result<()> {
    let base = args.client.server.trim_end_matches('/');
    let a = agent();
    if let Some(lot) = &args.lot {
        let v: Value = serde_json::from_str(&get(
            &a,
            &format!("{base}/api/v1/logistics/lots/{lot}"),
            &[],
        )?)?;
        let l = &v["lot"];
        println!(
            "{}: {} {} {} (created {} at {})",
            text(&l["lot"]),
            num(&l["quantity"]),
            text(&l["unit"]),
            text(&l["product"]),
            ts(&l["created"]),
            text(&l["location"])
        );
        for (k, label) in [("inputs", "made from"), ("outputs", "used in")] {
            let names: Vec<String> = rows(&l[k]).iter().map(text).collect();
            if !names.is_empty() {
                println!("{label}: {}", names.join(", "));
            }
        }
        let stays = rows(&v["stays"])
            .iter()
            .map(|s| vec![text(&s["location"]), ts(&s["start"]), ts(&s["end"])])
            .collect();
        print!("{}", table(&["location", "arrived", "left"], stays));
        return Ok(());
    }
    let mut p = vec![("limit", args.limit.to_string())];
    opt(&mut p, "product", &args.product);
    let v: Value = serde_json::from_str(&get(&a, &format!("{base}/api/v1/logistics/lots"), &p)?)?;
    let out = rows(&v)
        .iter()
        .map(|l| {
            let at: Vec<String> = rows(&l["positions"])
                .iter()
                .map(|p| format!("{} {}", text(&p["location"]), num(&p["quantity"])))
                .collect();
            vec![
                text(&l["lot"]),
                text(&l["product"]),
                num(&l["quantity"]),
                text(&l["unit"]),
                ts(&l["created"]),
                if l["consumed_by"].is_string() {
                    format!("consumed by {}", text(&l["consumed_by"]))
                } else {
                    at.join(", ")
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["lot", "product", "quantity", "unit", "created", "where"],
            out
        )
    );
    Ok(())
}

pub fn inventory(args: InventoryArgs) -> anyhow::Result<()> {
    let mut p = Vec::new();
    opt(&mut p, "at", &args.at);
    opt(&mut p, "location", &args.location);
    opt(&mut p, "product", &args.product);
    opt(&mut p, "kind", &args.kind);
    let Some(v) = fetch(&args.client, "/api/v1/logistics/inventory", p)? else {
        return Ok(());
    };
    let out = rows(&v["rows"])
        .iter()
        .map(|r| {
            vec![
                text(&r["location"]),
                text(&r["kind"]),
                text(&r["product"]),
                num(&r["quantity"]),
                r["lots"]
                    .as_u64()
                    .map_or_else(String::new, |n| n.to_string()),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["location", "kind", "product", "quantity", "lots"], out)
    );
    Ok(())
}

pub fn genealogy(args: GenealogyArgs) -> anyhow::Result<()> {
    let direction = if args.forward { "forward" } else { "backward" };
    let mut p = vec![("direction", direction.to_owned())];
    if !args.client.csv && !args.process {
        p.push(("process", "false".into()));
    }
    if args.pseudonymise {
        p.push(("pseudonymise", "true".into()));
    }
    let Some(v) = fetch(&args.client, &format!("/api/v1/genealogy/{}", args.lot), p)? else {
        return Ok(());
    };
    for n in rows(&v["lots"]) {
        let depth = n["depth"].as_u64().unwrap_or(0) as usize;
        let path: Vec<String> = rows(&n["stays"])
            .iter()
            .map(|s| text(&s["location"]))
            .collect();
        println!(
            "{}{} {} {} {}  [{}]",
            "  ".repeat(depth),
            text(&n["lot"]),
            num(&n["quantity"]),
            text(&n["unit"]),
            text(&n["product"]),
            path.join(" → ")
        );
    }
    for w in rows(&v["process"]) {
        println!(
            "\n{} at {}: {} – {}",
            text(&w["lot"]),
            text(&w["asset"]),
            ts(&w["start"]),
            ts(&w["end"])
        );
        let events: Vec<Vec<String>> = rows(&w["events"])
            .iter()
            .map(|e| vec![ts(&e["ts"]), text(&e["asset"]), text(&e["type"])])
            .collect();
        if !events.is_empty() {
            print!("{}", table(&["ts", "asset", "event"], events));
        }
        let sig = rows(&w["signals"])
            .iter()
            .map(|s| {
                vec![
                    text(&s["signal"]),
                    num(&s["count"]),
                    num(&s["min"]),
                    num(&s["mean"]),
                    num(&s["max"]),
                ]
            })
            .collect();
        print!("{}", table(&["signal", "n", "min", "mean", "max"], sig));
    }
    Ok(())
}

pub fn energy(cmd: EnergyCmd) -> anyhow::Result<()> {
    match cmd {
        EnergyCmd::Report {
            client,
            by,
            asset,
            from,
            to,
        } => {
            let mut p = vec![("by", by)];
            opt(&mut p, "asset", &asset);
            opt(&mut p, "from", &from);
            opt(&mut p, "to", &to);
            let Some(v) = fetch(&client, "/api/v1/energy/report", p)? else {
                return Ok(());
            };
            let out = rows(&v["rows"])
                .iter()
                .map(|r| {
                    vec![
                        text(&r["period"]),
                        text(&r["asset"]),
                        num(&r["kwh"]),
                        num(&r["idle_kwh"]),
                        num(&r["good"]),
                        num(&r["kwh_per_good"]),
                        num(&r["co2e_kg"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "period", "asset", "kWh", "idle kWh", "good", "kWh/good", "kg CO2e"
                    ],
                    out
                )
            );
        }
        EnergyCmd::Lots {
            client,
            product,
            from,
            to,
        } => {
            let mut p = Vec::new();
            opt(&mut p, "product", &product);
            opt(&mut p, "from", &from);
            opt(&mut p, "to", &to);
            let Some(v) = fetch(&client, "/api/v1/energy/lots", p)? else {
                return Ok(());
            };
            let out = rows(&v["lots"])
                .iter()
                .map(|l| {
                    vec![
                        text(&l["lot"]),
                        text(&l["product"]),
                        num(&l["quantity"]),
                        num(&l["kwh"]),
                        num(&l["kwh_per_unit"]),
                        num(&l["co2e_kg"]),
                        num(&l["co2e_kg_per_unit"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "lot",
                        "product",
                        "qty",
                        "kWh",
                        "kWh/unit",
                        "kg CO2e",
                        "kg CO2e/unit"
                    ],
                    out
                )
            );
        }
    }
    Ok(())
}

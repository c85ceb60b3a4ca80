//! Route handlers. Query parameters are parsed by hand so that every problem names the parameter,
//! its value and the reason; unknown parameters are rejected.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gemba_core::time::{format_rfc3339, parse_duration_ms, parse_timestamp};
use gemba_core::{AssetNode, LotDef, SignalDef, Timestamp};
use gemba_engine::{BatchMode, Engine, IngestOutcome, Source};
use gemba_ingest::DecodedBatch;
use gemba_store::{AggSource, Bucket, EventQuery};
use serde::Serialize;
use serde_json::json;

use crate::error::ApiError;

pub(crate) type AppState = State<Arc<Engine>>;
pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;

/// Bodies larger than this are decoded on the blocking pool.
const INLINE_DECODE_BYTES: usize = 64 * 1024;

/// Parsed query parameters with strict checking.
pub(crate) struct Params {
    map: HashMap<String, String>,
}

impl Params {
    pub(crate) fn parse(raw: Option<String>, allowed: &[&str]) -> ApiResult<Params> {
        let raw = raw.unwrap_or_default();
        let mut map = HashMap::new();
        for (k, v) in form_pairs(&raw)? {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {k:?}; allowed: {}",
                    allowed.join(", ")
                )));
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(ApiError::bad_request(format!(
                    "query parameter {k:?} is given twice"
                )));
            }
        }
        Ok(Params { map })
    }
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(String::as_str)
    }
    pub(crate) fn required(&self, k: &str) -> ApiResult<&str> {
        self.get(k)
            .ok_or_else(|| ApiError::bad_request(format!("query parameter {k:?} is required")))
    }
    pub(crate) fn ts(&self, k: &str) -> ApiResult<Option<Timestamp>> {
        self.get(k)
            .map(|v| parse_timestamp(v).map_err(|e| ApiError::param(k, v, e)))
            .transpose()
    }
    pub(crate) fn usize(&self, k: &str, default: usize, max: usize) -> ApiResult<usize> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => {
                let n: usize = v
                    .parse()
                    .map_err(|_| ApiError::param(k, v, "not a whole number"))?;
                if n == 0 || n > max {
                    return Err(ApiError::param(
                        k,
                        v,
                        format!("must be between 1 and {max}"),
                    ));
                }
                Ok(n)
            }
        }
    }
    /// `pseudonymise=true|false` (default false): personal data in the export is replaced by
    /// stable keyed pseudonyms (docs/SECURITY.md#privacy-and-retention).
    pub(crate) fn pseudonymise(&self) -> ApiResult<bool> {
        match self.get("pseudonymise") {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(v) => Err(ApiError::param("pseudonymise", v, "must be true or false")),
        }
    }
    pub(crate) fn format(&self) -> ApiResult<Format> {
        match self.get("format") {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some(v) => Err(ApiError::param("format", v, "must be json or csv")),
        }
    }
}

fn form_pairs(raw: &str) -> ApiResult<Vec<(String, String)>> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode_component(k)?, decode_component(v)?))
        })
        .collect()
}

fn decode_component(s: &str) -> ApiResult<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("bad percent-encoding in query {s:?}"))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request(format!("query {s:?} is not UTF-8")))
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Format {
    Json,
    Csv,
}

/// `value` as a JSON response, with personal data pseudonymised when `pseudonymise` is set.
pub(crate) fn export_json<T: Serialize>(
    engine: &Engine,
    value: &T,
    pseudonymise: bool,
) -> ApiResult {
    if !pseudonymise {
        return Ok(Json(value).into_response());
    }
    let mut doc = serde_json::to_value(value).map_err(|e| ApiError::internal(e.to_string()))?;
    engine.pseudonymiser()?.pseudonymise(&mut doc);
    Ok(Json(doc).into_response())
}

pub(crate) fn csv_response(filename: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

pub(crate) fn body_or_error(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rej| {
        let status = rej.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "payload_too_large",
                "request body is larger than server.max_body_bytes; split the batch",
            )
        } else {
            ApiError::new(status, "bad_body", rej.body_text())
        }
    })
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /api/v1/openapi.json")
}

/// Liveness: 200 while the write path makes progress, 503 `stalled` when ingest requests or
/// queued commits have waited longer than `server.stall_after_s` with none finishing. Reads
/// atomics only, so it answers even while the write path hangs.
pub async fn healthz(State(engine): AppState) -> Response {
    let health = engine.write_path_health();
    let (code, status) = if health.ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "stalled")
    };
    (
        code,
        Json(json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "write_path": health,
        })),
    )
        .into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI).into_response()
}

pub async fn metrics(State(engine): AppState) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        engine.metrics().render(),
    )
        .into_response()
}

/// A principal limited to an asset (`scope`) may only send data of that asset; the whole batch
/// is refused otherwise, naming the first item outside it.
fn check_scope(p: &gemba_engine::auth::Principal, b: &DecodedBatch) -> ApiResult<()> {
    let Some(scope) = &p.scope else {
        return Ok(());
    };
    let outside = b
        .points
        .iter()
        .map(|x| (x.location.clone(), x.signal.as_str()))
        .chain(
            b.series
                .iter()
                .map(|x| (x.location.clone(), x.signal.as_str())),
        )
        .chain(
            b.events
                .iter()
                .enumerate()
                .map(|(i, e)| (format!("events[{i}].asset"), e.asset.as_str())),
        )
        .find(|(_, path)| !p.may_touch(path));
    match outside {
        None => Ok(()),
        Some((loc, path)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "outside_scope",
            format!(
                "{loc}: {path:?} is outside {}'s scope {scope:?}; nothing of this batch was stored",
                p.name
            ),
        )),
    }
}

#[derive(Serialize)]
struct IngestReply<'a> {
    accepted_points: usize,
    accepted_events: usize,
    rejected: usize,
    #[serde(skip_serializing_if = "<[gemba_ingest::ItemError]>::is_empty")]
    errors: &'a [gemba_ingest::ItemError],
}

/// `POST /api/v1/ingest`: JSON batch (application/json) or line protocol (text/plain).
pub async fn ingest(
    State(engine): AppState,
    principal: Option<axum::Extension<gemba_engine::auth::Principal>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let params = Params::parse(q, &["mode"])?;
    let mode = match params.get("mode") {
        None => engine.config().ingest.batch_mode,
        Some("partial") => BatchMode::Partial,
        Some("strict") => BatchMode::Strict,
        Some(v) => return Err(ApiError::param("mode", v, "must be partial or strict")),
    };
    let body = body_or_error(body)?;
    // text/plain is the line protocol, application/json the JSON batch; nothing else (a JSON body
    // under a form type is how a cross-site page would post one without a CORS preflight).
    let ctype = crate::security::media_type(&headers).unwrap_or("");
    let line_protocol = if ctype.eq_ignore_ascii_case("text/plain") {
        true
    } else if ctype.eq_ignore_ascii_case("application/json") {
        false
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content-type {} is not accepted; send application/json (curl: -H 'content-type: application/json') or text/plain (line protocol)",
                gemba_core::quote_clipped(ctype, 100)
            ),
        ));
    };
    let decode = move |b: Bytes| -> Result<DecodedBatch, gemba_ingest::DecodeError> {
        if line_protocol {
            gemba_ingest::wire::decode_line_protocol(&b)
        } else {
            gemba_ingest::wire::decode_json(&b)
        }
    };
    let decoded = if body.len() > INLINE_DECODE_BYTES {
        tokio::task::spawn_blocking(move || decode(body))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })??
    } else {
        decode(body)?
    };
    let items = decoded.sample_count() + decoded.events.len();
    let max_items = engine.config().ingest.max_batch_items;
    if items > max_items {
        engine.metrics().payload_too_large.inc();
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "the batch holds {items} samples and events, more than ingest.max_batch_items ({max_items}); split it (nothing was stored)"
            ),
        ));
    }
    if let Some(axum::Extension(p)) = &principal {
        check_scope(p, &decoded)?;
    }
    let outcome: IngestOutcome = engine.ingest(decoded, Source::Http, mode).await?;
    let errors = crate::error::clip_items(&outcome.errors);
    let reply = IngestReply {
        accepted_points: outcome.accepted_points,
        accepted_events: outcome.accepted_events,
        rejected: outcome.rejected,
        errors: &errors,
    };
    let status = if outcome.rejected == 0 {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(reply)).into_response())
}

pub async fn assets(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    Params::parse(q, &[])?;
    Ok(Json(engine.registry().tree()).into_response())
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            "malformed"
        } else {
            "invalid"
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, format!("{what}: {e}"))
    })
}

/// `POST /api/v1/assets`: a site, area, line or machine node.
pub async fn define_node(
    State(engine): AppState,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_or_error(body)?;
    let node: AssetNode = parse_json("asset", &body)?;
    // Before the registry stores it: an unknown time zone or one on a non-site is a 4xx.
    node.validate().map_err(gemba_engine::EngineError::from)?;
    engine.registry().define_node(node.clone())?;
    Ok((StatusCode::CREATED, Json(node)).into_response())
}

pub async fn signals(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["prefix"])?;
    let prefix = p.get("prefix").unwrap_or("");
    let defs: Vec<SignalDef> = engine
        .registry()
        .signals_under(prefix)
        .into_iter()
        .map(|r| (*r.def).clone())
        .collect();
    Ok(Json(defs).into_response())
}

/// `POST /api/v1/signals`: one definition or an array of them.
pub async fn define_signal(
    State(engine): AppState,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_or_error(body)?;
    let defs: Vec<SignalDef> = if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        parse_json("signals", &body)?
    } else {
        vec![parse_json("signal", &body)?]
    };
    for d in &defs {
        engine.define_signal(d.clone())?;
    }
    Ok((StatusCode::CREATED, Json(json!({"defined": defs.len()}))).into_response())
}

pub async fn lots(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    Params::parse(q, &[])?;
    Ok(Json(engine.registry().lots()).into_response())
}

pub async fn define_lot(State(engine): AppState, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = body_or_error(body)?;
    let lot: LotDef = parse_json("lot", &body)?;
    engine.registry().define_lot(lot.clone())?;
    Ok((StatusCode::CREATED, Json(lot)).into_response())
}

/// `GET /api/v1/operators[?pseudonymise=true]`
pub async fn operators(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["pseudonymise"])?;
    let mut ops = engine.registry().operators();
    if p.pseudonymise()? {
        let pseudo = engine.pseudonymiser()?;
        for op in &mut ops {
            pseudo.pseudonymise_operator(op);
        }
    }
    Ok(Json(ops).into_response())
}

pub async fn define_operator(
    State(engine): AppState,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_or_error(body)?;
    let op: gemba_core::OperatorDef = parse_json("operator", &body)?;
    engine.registry().define_operator(op.clone())?;
    Ok((StatusCode::CREATED, Json(op)).into_response())
}

pub async fn define_shift(
    State(engine): AppState,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_or_error(body)?;
    let shift: gemba_core::ShiftDef = parse_json("shift", &body)?;
    engine.registry().define_shift(shift.clone())?;
    Ok((StatusCode::CREATED, Json(shift)).into_response())
}

pub async fn shifts(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    Params::parse(q, &[])?;
    Ok(Json(engine.registry().shifts()).into_response())
}

pub async fn stats(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    Params::parse(q, &[])?;
    let store = engine.store().clone();
    let stats = tokio::task::spawn_blocking(move || store.stats())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(gemba_engine::EngineError::from)?;
    Ok(Json(stats).into_response())
}

/// `GET /api/v1/latest?prefix=site/area`
pub async fn latest(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["prefix", "format"])?;
    let values = engine.latest(p.get("prefix").unwrap_or(""));
    if p.format()? == Format::Csv {
        let mut out = String::from("signal,ts,time,value,unit,state\n");
        for v in &values {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{}",
                v.signal,
                v.ts,
                format_rfc3339(v.ts),
                v.value,
                csv_field(v.unit.as_deref().unwrap_or("")),
                csv_field(v.state.as_deref().unwrap_or(""))
            );
        }
        return Ok(csv_response("latest", out));
    }
    Ok(Json(values).into_response())
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Which bucket statistic to return.
#[derive(Clone, Copy, PartialEq)]
enum Agg {
    Mean,
    Min,
    Max,
    Sum,
    Count,
    Last,
    All,
}

impl Agg {
    fn parse(v: &str) -> ApiResult<Agg> {
        Ok(match v {
            "mean" | "avg" => Agg::Mean,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "sum" => Agg::Sum,
            "count" => Agg::Count,
            "last" => Agg::Last,
            "all" => Agg::All,
            _ => {
                return Err(ApiError::param(
                    "agg",
                    v,
                    "must be mean, min, max, sum, count, last or all",
                ));
            }
        })
    }
    fn pick(self, b: &Bucket) -> f64 {
        match self {
            Agg::Mean | Agg::All => b.mean(),
            Agg::Min => b.min,
            Agg::Max => b.max,
            Agg::Sum => b.sum,
            Agg::Count => b.count as f64,
            Agg::Last => b.last,
        }
    }
}

/// Steps that `step=auto` chooses from.
const NICE_STEPS_MS: &[i64] = &[
    1_000,
    5_000,
    10_000,
    30_000,
    60_000,
    300_000,
    900_000,
    1_800_000,
    3_600_000,
    21_600_000,
    43_200_000,
    86_400_000,
    604_800_000,
];

/// The smallest nice step that gives at most `max_buckets` buckets over `span_ms`.
pub(crate) fn auto_step(span_ms: i64, max_buckets: i64) -> i64 {
    let want = (span_ms + max_buckets - 1) / max_buckets;
    NICE_STEPS_MS
        .iter()
        .copied()
        .find(|s| *s >= want)
        .unwrap_or_else(|| (want + 86_399_999) / 86_400_000 * 86_400_000)
}

#[derive(Serialize)]
struct RawSeriesReply<'a> {
    signal: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    from: Timestamp,
    to: Timestamp,
    /// `[ts, value]` pairs.
    points: Vec<(Timestamp, f64)>,
    truncated: bool,
}

#[derive(Serialize)]
struct AggSeriesReply<'a> {
    signal: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    from: Timestamp,
    to: Timestamp,
    step_ms: i64,
    agg: &'a str,
    source: AggSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<Vec<(Timestamp, f64)>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    buckets: Option<Vec<BucketOut>>,
}

#[derive(Serialize)]
struct BucketOut {
    ts: Timestamp,
    count: u64,
    min: f64,
    max: f64,
    mean: f64,
    sum: f64,
    last: f64,
}

/// `GET /api/v1/series?signal=…&from=…&to=…[&step=1m|auto&agg=mean][&limit=…][&format=csv]`
pub async fn series(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(
        q,
        &["signal", "from", "to", "step", "agg", "limit", "format"],
    )?;
    let signal = p.required("signal")?;
    let def = engine.registry().get(signal).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_signal",
            format!("unknown signal {signal:?}; GET /api/v1/signals lists them"),
        )
    })?;
    let to = p.ts("to")?.unwrap_or_else(|| engine.now() + 1);
    let from = p.ts("from")?.unwrap_or(to - 3_600_000);
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "from ({}) must be before to ({})",
            format_rfc3339(from),
            format_rfc3339(to)
        )));
    }
    let format = p.format()?;
    let unit = def.def.unit.as_deref();
    let step = match p.get("step") {
        None => None,
        Some("auto") => Some(auto_step(to - from, 1_000)),
        Some(v) => Some(match v.parse::<i64>() {
            Ok(ms) if ms > 0 => ms,
            _ => parse_duration_ms(v).map_err(|e| ApiError::param("step", v, e))?,
        }),
    };
    let Some(step) = step else {
        if p.get("agg").is_some() {
            return Err(ApiError::bad_request(
                "agg needs step (e.g. step=1m or step=auto)",
            ));
        }
        let limit = p.usize("limit", 100_000, 1_000_000)?;
        let samples = engine.range(signal, from, to, limit + 1).await?;
        let truncated = samples.len() > limit;
        let points: Vec<(Timestamp, f64)> = samples
            .iter()
            .take(limit)
            .map(|s| (s.ts, s.value))
            .collect();
        if format == Format::Csv {
            let mut out = String::from("ts,time,value\n");
            for (ts, v) in &points {
                let _ = writeln!(out, "{ts},{},{v}", format_rfc3339(*ts));
            }
            return Ok(csv_response("series", out));
        }
        return Ok(Json(RawSeriesReply {
            signal,
            unit,
            from,
            to,
            points,
            truncated,
        })
        .into_response());
    };
    if p.get("limit").is_some() {
        return Err(ApiError::bad_request(
            "limit applies to raw samples only, not with step",
        ));
    }
    let agg_name = p.get("agg").unwrap_or("mean");
    let agg = Agg::parse(agg_name)?;
    let result = engine.aggregate(signal, from, to, step).await?;
    if format == Format::Csv {
        let mut out = String::from("ts,time,count,min,max,mean,sum,last\n");
        for b in &result.buckets {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                b.ts,
                format_rfc3339(b.ts),
                b.count,
                b.min,
                b.max,
                b.mean(),
                b.sum,
                b.last
            );
        }
        return Ok(csv_response("series", out));
    }
    let (points, buckets) = if agg == Agg::All {
        let b = result
            .buckets
            .iter()
            .map(|b| BucketOut {
                ts: b.ts,
                count: b.count,
                min: b.min,
                max: b.max,
                mean: b.mean(),
                sum: b.sum,
                last: b.last,
            })
            .collect();
        (None, Some(b))
    } else {
        (
            Some(result.buckets.iter().map(|b| (b.ts, agg.pick(b))).collect()),
            None,
        )
    };
    Ok(Json(AggSeriesReply {
        signal,
        unit,
        from,
        to,
        step_ms: step,
        agg: agg_name,
        source: result.source,
        points,
        buckets,
    })
    .into_response())
}

/// `GET /api/v1/events?from=…&to=…[&type=state][&asset=site/area][&limit=…][&format=csv][&pseudonymise=true]`
pub async fn events(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(
        q,
        &[
            "from",
            "to",
            "type",
            "asset",
            "limit",
            "format",
            "pseudonymise",
        ],
    )?;
    let pseudonymise = p.pseudonymise()?;
    let to = p.ts("to")?.unwrap_or_else(|| engine.now() + 1);
    let from = p.ts("from")?.unwrap_or(to - 86_400_000);
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    let limit = p.usize("limit", 10_000, 1_000_000)?;
    let events = engine
        .events(EventQuery {
            from,
            to,
            asset_prefix: p.get("asset").map(str::to_owned),
            kind: p.get("type").map(str::to_owned),
            limit,
        })
        .await?;
    if p.format()? == Format::Csv {
        let pseudo = if pseudonymise {
            Some(engine.pseudonymiser()?)
        } else {
            None
        };
        let mut out = String::from("id,ts,time,asset,type,body\n");
        for e in &events {
            let body = match &pseudo {
                Some(p) => {
                    let mut doc = serde_json::to_value(&e.event).unwrap_or_default();
                    p.pseudonymise(&mut doc);
                    doc.to_string()
                }
                None => serde_json::to_string(&e.event).unwrap_or_default(),
            };
            let _ = writeln!(
                out,
                "{},{},{},{},{},{}",
                e.id,
                e.event.ts,
                format_rfc3339(e.event.ts),
                csv_field(&e.event.asset),
                csv_field(&e.event.body.type_name()),
                csv_field(&body)
            );
        }
        return Ok(csv_response("events", out));
    }
    export_json(&engine, &events, pseudonymise)
}

/// `GET /api/v1/stream/latest?prefix=…`: server-sent events. Every second with news an `update`
/// event with `{ts, full, latest: [...], events: [...]}`: the first carries every latest value
/// under the prefix (`full: true`), later ones only the values that changed and the events stored
/// since; one producer serves every connection (`live.rs`).
pub async fn stream_latest(
    axum::Extension(hub): axum::Extension<Arc<crate::live::LiveHub>>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q, &["prefix"])?;
    let prefix = p
        .get("prefix")
        .unwrap_or("")
        .trim_end_matches('/')
        .to_owned();
    Ok(crate::live::stream(hub, prefix).await)
}

/// Runs `f` on the blocking pool (store calls, training, scoring), so that no async worker
/// waits; its error becomes the HTTP answer, a panicked task a 500.
pub(crate) async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> ApiResult<T>
where
    T: Send + 'static,
    E: Send + 'static,
    ApiError: From<E>,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("blocking task failed: {e}")))?
        .map_err(ApiError::from)
}

/// `GET /api/v1/models`: every registered version and which one is active for which asset.
pub async fn models(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    Params::parse(q, &[])?;
    let (versions, active) = blocking(move || {
        Ok::<_, gemba_engine::EngineError>((engine.models()?, engine.active_models()?))
    })
    .await?;
    Ok(Json(json!({ "versions": versions, "active": active })).into_response())
}

/// `POST /api/v1/models?name=…[&asset=…][&activate=true]` with a model artefact as the body.
pub async fn register_model(
    State(engine): AppState,
    RawQuery(q): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let p = Params::parse(q, &["name", "asset", "activate"])?;
    let name = p.required("name")?.to_owned();
    let asset = p.get("asset").map(str::to_owned);
    let activate = match p.get("activate") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "query parameter \"activate\": {other:?} is not true or false"
            )));
        }
    };
    if activate && asset.is_none() {
        return Err(ApiError::bad_request(
            "activate=true needs the asset the model serves (asset=…)",
        ));
    }
    let body = body_or_error(body)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the artefact is not UTF-8"))?
        .to_owned();
    let version = blocking(move || {
        let v = engine.register_model(&name, asset.as_deref(), &text)?;
        if activate && let Some(a) = &asset {
            engine.activate_model(&v.name, v.version, a)?;
        }
        Ok::<_, gemba_engine::EngineError>(v)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(version)).into_response())
}

fn model_version(v: &str) -> ApiResult<u32> {
    v.parse()
        .map_err(|_| ApiError::bad_request(format!("version {v:?} is not a whole number")))
}

/// `GET /api/v1/models/{name}/{version}`: the artefact.
pub async fn model_artifact(
    State(engine): AppState,
    axum::extract::Path((name, version)): axum::extract::Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    Params::parse(q, &[])?;
    let version = model_version(&version)?;
    let (n, v) = (name.clone(), version);
    let art = blocking(move || engine.model_artifact(&n, v))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no model {name} version {version}"),
            )
        })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], art).into_response())
}

/// `POST /api/v1/models/{name}/{version}/activate?asset=…`
pub async fn activate_model(
    State(engine): AppState,
    axum::extract::Path((name, version)): axum::extract::Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q, &["asset"])?;
    let asset = p.required("asset")?.to_owned();
    let version = model_version(&version)?;
    let active = blocking(move || engine.activate_model(&name, version, &asset)).await?;
    Ok(Json(active).into_response())
}

/// `GET /api/v1/spc?signal=…[&chart=imr|xbar_r|xbar_s|ewma|cusum][&from&to]
/// [&baseline_from&baseline_to][&rules=all|we|1,2,5][&subgroup=5][&lambda=0.2&l=3][&k=0.5&h=5]`
pub async fn spc(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    use gemba_analytics::spc::{Rule, RuleSet};
    use gemba_engine::spc::{ChartKind, SpcRequest};
    let p = Params::parse(
        q,
        &[
            "signal",
            "chart",
            "from",
            "to",
            "baseline_from",
            "baseline_to",
            "rules",
            "subgroup",
            "lambda",
            "l",
            "k",
            "h",
        ],
    )?;
    let signal = p.required("signal")?.to_owned();
    let chart: ChartKind = match p.get("chart") {
        None => ChartKind::Imr,
        Some(c) => c.parse().map_err(|e| ApiError::param("chart", c, e))?,
    };
    let to = p.ts("to")?.unwrap_or_else(|| engine.now() + 1);
    let from = p.ts("from")?.unwrap_or(to - 8 * 3_600_000);
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    let baseline = match (p.ts("baseline_from")?, p.ts("baseline_to")?) {
        (None, None) => None,
        (bfrom, bto) => {
            let (bfrom, bto) = (bfrom.unwrap_or(from), bto.unwrap_or(to));
            if bfrom >= bto {
                return Err(ApiError::bad_request(
                    "baseline_from must be before baseline_to",
                ));
            }
            Some((bfrom, bto))
        }
    };
    let rules = match p.get("rules") {
        None | Some("all") => RuleSet::default(),
        Some("we") => RuleSet::western_electric(),
        Some("none") => RuleSet { enabled: vec![] },
        Some(list) => {
            let mut enabled = Vec::new();
            for n in list.split(',') {
                let rule = n
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .and_then(|n| Rule::ALL.into_iter().find(|r| r.number() == n))
                    .ok_or_else(|| {
                        ApiError::param(
                            "rules",
                            list,
                            "give all, we, none or rule numbers 1–8 separated by commas",
                        )
                    })?;
                enabled.push(rule);
            }
            RuleSet { enabled }
        }
    };
    let num = |k: &str, default: f64| -> ApiResult<f64> {
        match p.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| ApiError::param(k, v, "not a finite number")),
        }
    };
    let req = SpcRequest {
        signal,
        chart,
        baseline,
        range: (from, to),
        subgroup: p.usize("subgroup", 5, 25)?,
        rules,
        lambda: num("lambda", 0.2)?,
        l: num("l", 3.0)?,
        k: num("k", 0.5)?,
        h: num("h", 5.0)?,
    };
    Ok(Json(engine.spc_chart(req).await?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_step_picks_nice_steps() {
        assert_eq!(auto_step(3_600_000, 1_000), 5_000);
        assert_eq!(auto_step(86_400_000, 1_000), 300_000);
        assert_eq!(auto_step(1_000_000_000, 1_000), 1_800_000);
        assert_eq!(auto_step(1_000, 1_000), 1_000);
    }

    #[test]
    fn query_decoding() {
        let p = form_pairs("signal=a%2Fb&from=2026-01-01T00%3A00%3A00Z&x=1+2").expect("valid");
        assert_eq!(p[0], ("signal".into(), "a/b".into()));
        assert_eq!(p[1].1, "2026-01-01T00:00:00Z");
        assert_eq!(p[2].1, "1 2");
        assert!(form_pairs("a=%zz").is_err());
    }
}

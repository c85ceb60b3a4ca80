//! HTTP ingest bodies: the JSON batch (row `points`, columnar `series`, `events`) and the line
//! protocol. The same JSON decoder serves MQTT machine batches, where signal names are relative to
//! the machine of the topic.
//!
//! Whole-body problems (not JSON, not an object, unknown top-level keys, a key of the wrong type)
//! are a [`DecodeError`]; a problem with one item is an [`ItemError`] with its location, and the other
//! items are still decoded.

use gemba_core::time::parse_timestamp;
use gemba_core::{Event, check_segment, quote_clipped};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue as JsonRaw;

use crate::{DecodeError, DecodedBatch, ItemError, RawPoint, RawSeries, RawValue};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body<'a> {
    #[serde(borrow, default)]
    points: Vec<&'a JsonRaw>,
    #[serde(borrow, default)]
    series: Vec<&'a JsonRaw>,
    #[serde(borrow, default)]
    events: Vec<&'a JsonRaw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesIn {
    signal: String,
    #[serde(default)]
    ts: Option<Vec<i64>>,
    #[serde(default)]
    t0: Option<i64>,
    #[serde(default)]
    dt: Option<i64>,
    values: Vec<f64>,
}

/// Largest number of samples one columnar series may expand to (t0/dt form).
const MAX_SERIES_LEN: usize = 10_000_000;

/// Where signal names point: absolute paths (HTTP) or names relative to a machine (MQTT batch).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Names<'a> {
    Absolute,
    RelativeTo(&'a str),
}

impl Names<'_> {
    fn resolve(&self, name: &str) -> Result<String, String> {
        match self {
            Names::Absolute => Ok(name.to_owned()),
            Names::RelativeTo(machine) => {
                check_segment(name).map_err(|r| {
                    format!(
                        "signal name {} {r} (names in a machine batch are relative to the machine)",
                        quote_clipped(name, 64)
                    )
                })?;
                Ok(format!("{machine}/{name}"))
            }
        }
    }
}

pub(crate) fn syntax_error(e: &serde_json::Error) -> DecodeError {
    if e.is_syntax() || e.is_eof() {
        DecodeError::Syntax {
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        }
    } else {
        DecodeError::Shape {
            path: "body".into(),
            message: strip_position(&e.to_string()),
        }
    }
}

/// A serde error message for an answer or a log: without its position, and at most
/// [`SERDE_MESSAGE_BYTES`] long. serde quotes the offending input (`unknown variant "…"`, `invalid
/// value: string "…"`) whole, and that input comes from outside.
fn strip_position(msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if msg.len() <= SERDE_MESSAGE_BYTES {
        return msg.to_owned();
    }
    let kept = &msg[..msg.floor_char_boundary(SERDE_MESSAGE_BYTES)];
    format!("{kept}… ({} bytes)", msg.len())
}

/// Longest serde error message kept ([`strip_position`]).
const SERDE_MESSAGE_BYTES: usize = 300;

fn utf8(body: &[u8]) -> Result<&str, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::NotUtf8)?;
    if text.trim().is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(text)
}

/// Decodes an HTTP JSON batch.
pub fn decode_json(body: &[u8]) -> Result<DecodedBatch, DecodeError> {
    decode_json_with(body, Names::Absolute, None)
}

pub(crate) fn decode_json_with(
    body: &[u8],
    names: Names<'_>,
    default_asset: Option<&str>,
) -> Result<DecodedBatch, DecodeError> {
    let text = utf8(body)?;
    // serde also fills a struct from a JSON array (`[]` would be an empty batch): the body must be
    // an object.
    if !text.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(text).map_err(|e| syntax_error(&e))?;
        let got = match v {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Null => "null",
            Value::Object(_) => "an object",
        };
        return Err(DecodeError::Shape {
            path: "body".into(),
            message: format!(
                "expected a JSON object with \"points\", \"series\" and/or \"events\", got {got}"
            ),
        });
    }
    let parsed: Body<'_> = serde_json::from_str(text).map_err(|e| syntax_error(&e))?;
    let mut out = DecodedBatch::default();
    out.points.reserve(parsed.points.len());
    for (i, raw) in parsed.points.iter().enumerate() {
        let loc = format!("points[{i}]");
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(v) => point_from_value(&v, &loc, names, &mut out),
            Err(e) => out.errors.push(ItemError {
                location: loc,
                message: strip_position(&e.to_string()),
            }),
        }
    }
    for (i, raw) in parsed.series.iter().enumerate() {
        let loc = format!("series[{i}]");
        match series_item(raw.get(), names) {
            Ok(s) => out.series.push(RawSeries { location: loc, ..s }),
            Err(message) => out.errors.push(ItemError {
                location: loc,
                message,
            }),
        }
    }
    for (i, raw) in parsed.events.iter().enumerate() {
        let loc = format!("events[{i}]");
        match event_item(raw.get(), default_asset) {
            Ok(e) => out.events.push(e),
            Err(message) => out.errors.push(ItemError {
                location: loc,
                message,
            }),
        }
    }
    Ok(out)
}

/// Converts a JSON value to a sample value.
pub(crate) fn value_of(v: &Value) -> Result<RawValue, String> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(RawValue::Number(f)),
            _ => Err(format!("{n} is not a finite number")),
        },
        Value::Bool(b) => Ok(RawValue::Bool(*b)),
        Value::String(s) => Ok(RawValue::Text(s.clone())),
        Value::Null => Err("expected a number, boolean or state name, got null".into()),
        Value::Array(_) => Err("expected a number, boolean or state name, got an array".into()),
        Value::Object(_) => Err("expected a number, boolean or state name, got an object".into()),
    }
}

pub(crate) fn ts_of(v: &Value) -> Result<Option<i64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{n} is not a whole number of milliseconds")),
        Value::String(s) => parse_timestamp(s).map(Some).map_err(|e| e.to_string()),
        other => Err(format!(
            "expected milliseconds or an RFC 3339 string, got {}",
            kind_of(other)
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn point_from_value(v: &Value, loc: &str, names: Names<'_>, out: &mut DecodedBatch) {
    let err = |field: &str, message: String| ItemError {
        location: if field.is_empty() {
            loc.to_owned()
        } else {
            format!("{loc}.{field}")
        },
        message,
    };
    let Some(obj) = v.as_object() else {
        out.errors
            .push(err("", format!("expected an object, got {}", kind_of(v))));
        return;
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "signal" | "ts" | "value"))
    {
        out.errors.push(err(
            k,
            "unknown field; a point has signal, ts and value".into(),
        ));
        return;
    }
    let signal = match obj.get("signal") {
        Some(Value::String(s)) => match names.resolve(s) {
            Ok(s) => s,
            Err(m) => return out.errors.push(err("signal", m)),
        },
        Some(other) => {
            return out.errors.push(err(
                "signal",
                format!("expected a string, got {}", kind_of(other)),
            ));
        }
        None => return out.errors.push(err("signal", "missing".into())),
    };
    let ts = match ts_of(obj.get("ts").unwrap_or(&Value::Null)) {
        Ok(t) => t,
        Err(m) => return out.errors.push(err("ts", m)),
    };
    let value = match obj.get("value") {
        Some(v) => match value_of(v) {
            Ok(v) => v,
            Err(m) => return out.errors.push(err("value", m)),
        },
        None => return out.errors.push(err("value", "missing".into())),
    };
    out.points.push(RawPoint {
        signal,
        ts,
        value,
        location: loc.to_owned(),
    });
}

fn series_item(raw: &str, names: Names<'_>) -> Result<RawSeries, String> {
    let s: SeriesIn = serde_json::from_str(raw).map_err(|e| strip_position(&e.to_string()))?;
    let signal = names.resolve(&s.signal)?;
    let ts = match (s.ts, s.t0, s.dt) {
        (Some(ts), None, None) => {
            if ts.len() != s.values.len() {
                return Err(format!(
                    "ts has {} entries but values has {}",
                    ts.len(),
                    s.values.len()
                ));
            }
            ts
        }
        (None, Some(t0), Some(dt)) => {
            if dt <= 0 {
                return Err(format!("dt {dt} must be a positive number of milliseconds"));
            }
            if s.values.len() > MAX_SERIES_LEN {
                return Err(format!("more than {MAX_SERIES_LEN} values in one series"));
            }
            let last = (s.values.len() as i64)
                .checked_mul(dt)
                .and_then(|span| t0.checked_add(span));
            if last.is_none() {
                return Err("t0 + dt × len(values) overflows".into());
            }
            (0..s.values.len() as i64).map(|i| t0 + i * dt).collect()
        }
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err("give either ts or t0+dt, not both".into());
        }
        (None, None, _) | (None, _, None) => {
            return Err("needs ts (one per value) or t0 and dt".into());
        }
    };
    Ok(RawSeries {
        signal,
        ts,
        values: s.values,
        location: String::new(),
    })
}

fn event_item(raw: &str, default_asset: Option<&str>) -> Result<Event, String> {
    let mut v: Value = serde_json::from_str(raw).map_err(|e| strip_position(&e.to_string()))?;
    if let (Some(asset), Some(obj)) = (default_asset, v.as_object_mut()) {
        obj.entry("asset")
            .or_insert_with(|| Value::String(asset.to_owned()));
    }
    if let Some(Value::String(s)) = v.get("ts") {
        let ms = parse_timestamp(s).map_err(|e| format!("ts: {e}"))?;
        v["ts"] = Value::from(ms);
    }
    serde_json::from_value::<Event>(v).map_err(|e| strip_position(&e.to_string()))
}

/// Decodes the line protocol: `<signal> <value> [<ts>]` per line, `#` comments, blank lines.
pub fn decode_line_protocol(body: &[u8]) -> Result<DecodedBatch, DecodeError> {
    let text = utf8(body)?;
    let mut out = DecodedBatch::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let loc = format!("line {}", i + 1);
        let mut parts = line.split_whitespace();
        let (Some(signal), Some(value)) = (parts.next(), parts.next()) else {
            out.errors.push(ItemError {
                location: loc,
                message: format!(
                    "{}: expected `<signal> <value> [<ts>]`",
                    quote_clipped(line, 64)
                ),
            });
            continue;
        };
        let ts = match parts.next().map(parse_timestamp).transpose() {
            Ok(t) => t,
            Err(e) => {
                out.errors.push(ItemError {
                    location: loc,
                    message: e.to_string(),
                });
                continue;
            }
        };
        if let Some(extra) = parts.next() {
            out.errors.push(ItemError {
                location: loc,
                message: format!(
                    "unexpected {} after the timestamp",
                    quote_clipped(extra, 64)
                ),
            });
            continue;
        }
        out.push_point(signal.to_owned(), ts, scalar(value), loc);
    }
    Ok(out)
}

/// A bare value: number, `true`/`false` or a state name.
pub(crate) fn scalar(s: &str) -> Result<RawValue, String> {
    match s {
        "true" => return Ok(RawValue::Bool(true)),
        "false" => return Ok(RawValue::Bool(false)),
        _ => {}
    }
    let first = s.as_bytes().first().copied().unwrap_or(b' ');
    if first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.') {
        return match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(RawValue::Number(v)),
            Ok(v) => Err(format!(
                "{} = {v} is not a finite number",
                quote_clipped(s, 64)
            )),
            Err(_) => Err(format!("{} is not a number", quote_clipped(s, 64))),
        };
    }
    if s.eq_ignore_ascii_case("nan")
        || s.eq_ignore_ascii_case("inf")
        || s.eq_ignore_ascii_case("infinity")
    {
        return Err(format!("{s:?} is not a finite number"));
    }
    check_segment(s).map_err(|r| {
        format!(
            "{} is neither a number nor a state name: a state name {r}",
            quote_clipped(s, 64)
        )
    })?;
    Ok(RawValue::Text(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(b: &DecodedBatch) -> Vec<(String, String)> {
        b.errors
            .iter()
            .map(|e| (e.location.clone(), e.message.clone()))
            .collect()
    }

    #[test]
    fn a_body_that_is_not_an_object_is_a_shape_error() {
        for (body, got) in [
            ("[]", "an array"),
            (" [[{\"signal\":\"a/b\",\"value\":1}]]", "an array"),
            ("\"x\"", "a string"),
            ("5", "a number"),
            ("null", "null"),
        ] {
            match decode_json(body.as_bytes()) {
                Err(DecodeError::Shape { path, message }) => {
                    assert_eq!(path, "body");
                    assert!(message.ends_with(got), "{body}: {message}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(matches!(
            decode_json(b"[1,"),
            Err(DecodeError::Syntax { .. })
        ));
        assert!(decode_json(b" {}").is_ok());
    }

    #[test]
    fn decodes_every_form() {
        let b = decode_json(
            br#"{"points":[{"signal":"s/a/l/m/x","ts":1700000000000,"value":1.5},
                          {"signal":"s/a/l/m/st","ts":"2023-11-14T22:13:20Z","value":"running"},
                          {"signal":"s/a/l/m/d","value":true}],
                "series":[{"signal":"s/a/l/m/y","ts":[1,2],"values":[3,4.5]},
                          {"signal":"s/a/l/m/z","t0":100,"dt":10,"values":[1,2,3]}],
                "events":[{"ts":5,"asset":"s/a/l/m","type":"production","good":3}]}"#,
        )
        .expect("valid");
        assert!(b.errors.is_empty(), "{:?}", b.errors);
        assert_eq!(b.points.len(), 3);
        assert_eq!(b.points[1].ts, Some(1_700_000_000_000));
        assert_eq!(b.points[1].value, RawValue::Text("running".into()));
        assert_eq!(b.points[2].ts, None);
        assert_eq!(b.series[1].ts, vec![100, 110, 120]);
        assert_eq!(b.series[0].values, vec![3.0, 4.5]);
        assert_eq!(b.events[0].asset, "s/a/l/m");
        assert_eq!(b.sample_count(), 8);
    }

    #[test]
    fn item_errors_name_location_and_reason() {
        let b = decode_json(
            br#"{"points":[{"signal":"x","value":null},{"signal":5,"value":1},{"value":1},
                          {"signal":"x","value":1,"extra":2},{"signal":"x","ts":1.5,"value":1},
                          {"signal":"x","ts":"soon","value":1}, 7, {"signal":"x","value":[1]},
                          {"signal":"ok","value":2}],
                "series":[{"signal":"y","ts":[1,2,3],"values":[1,2]},{"signal":"y","ts":[1],"t0":1,"dt":1,"values":[1]},
                          {"signal":"y","values":["NaN"],"ts":[1]},{"signal":"y","t0":1,"dt":0,"values":[1]},
                          {"signal":"y","values":[1]},{"signal":"y","ts":[1],"values":[1e999]}],
                "events":[{"ts":1,"asset":"a","type":"explode"},{"ts":1,"asset":"a","type":"state"}]}"#,
        )
        .expect("decodes");
        let e = errs(&b);
        let has = |loc: &str, phrase: &str| {
            assert!(
                e.iter().any(|(l, m)| l == loc && m.contains(phrase)),
                "no {loc} error containing {phrase:?} in {e:#?}"
            )
        };
        has("points[0].value", "got null");
        has("points[1].signal", "expected a string");
        has("points[2].signal", "missing");
        has("points[3].extra", "unknown field");
        has("points[4].ts", "whole number");
        has("points[5].ts", "cannot parse timestamp");
        has("points[6]", "expected an object");
        has("points[7].value", "array");
        has("series[0]", "ts has 3 entries but values has 2");
        has("series[1]", "either ts or t0+dt");
        has("series[2]", "invalid type: string \"NaN\"");
        has("series[3]", "dt 0");
        has("series[4]", "needs ts");
        has("events[0]", "explode");
        has("events[1]", "state");
        assert_eq!(b.points.len(), 1);
        assert_eq!(b.points[0].signal, "ok");
        // 1e999 overflows f64 in serde_json: an error, never infinity
        assert!(e.iter().any(|(l, _)| l == "series[5]"), "{e:#?}");
    }

    #[test]
    fn whole_body_errors() {
        assert!(matches!(decode_json(b""), Err(DecodeError::Empty)));
        assert!(matches!(
            decode_json(b"\xff\xfe"),
            Err(DecodeError::NotUtf8)
        ));
        match decode_json(b"{\"points\": [\n{") {
            Err(DecodeError::Syntax { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
        let e = decode_json(br#"{"pointz":[]}"#).expect_err("unknown key");
        assert!(e.to_string().contains("pointz"), "{e}");
        assert!(decode_json(br#"{"points":5}"#).is_err());
        assert!(decode_json(b"[1,2]").is_err());
        let deep = "[".repeat(100_000);
        assert!(decode_json(deep.as_bytes()).is_err());
    }

    #[test]
    fn line_protocol() {
        let b = decode_line_protocol(b"# c\ns/a/l/m/x 1.5 1700000000000\n\ns/a/l/m/st running\nbad\ns/a/l/m/x NaN\ns/a/l/m/x 1 2 3\ns/a/l/m/x 2 yesterday\n")
            .expect("decodes");
        assert_eq!(b.points.len(), 2);
        assert_eq!(b.points[0].ts, Some(1_700_000_000_000));
        let e = errs(&b);
        assert_eq!(
            e.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            vec!["line 5", "line 6", "line 7", "line 8"]
        );
        assert!(e[1].1.contains("finite"));
    }

    #[test]
    fn relative_names_for_machine_batches() {
        let b = decode_json_with(
            br#"{"points":[{"signal":"temp","value":1},{"signal":"a/b","value":1}],"events":[{"ts":1,"type":"state","state":"idle"}]}"#,
            Names::RelativeTo("s/a/l/m"),
            Some("s/a/l/m"),
        )
        .expect("decodes");
        assert_eq!(b.points[0].signal, "s/a/l/m/temp");
        assert_eq!(b.errors.len(), 1);
        assert_eq!(b.events[0].asset, "s/a/l/m");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode_json(&bytes);
            let _ = decode_line_protocol(&bytes);
        }
    }

    /// The fuzzer's mqtt_payload crash: an event type of 2,000 characters was quoted whole in
    /// serde's "unknown variant" message.
    #[test]
    fn serde_messages_quote_outside_input_clipped() {
        let ty = "x".repeat(5_000);
        let body = format!(r#"{{"events":[{{"ts":1,"type":"{ty}","asset":"s/a/l/m"}}]}}"#);
        let b = decode_json(body.as_bytes()).expect("a batch with an item error");
        assert_eq!(b.errors.len(), 1);
        let m = &b.errors[0].message;
        assert!(m.len() < 400, "{} bytes: {m}", m.len());
        assert!(m.contains("unknown variant"), "{m}");
    }
}

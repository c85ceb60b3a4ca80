//! Gemba's MQTT topic scheme and payload decoding.
//!
//! | topic | payload |
//! |---|---|
//! | `<prefix>/<site>/<area>/<line>/<machine>/<signal>` | one sample: `21.5`, `true`, a state name, or `{"value": 21.5, "ts": 1700000000000}` |
//! | `<prefix>/<site>/<area>/<line>/<machine>` | machine batch: `{"ts": …, "values": {"name": value, …}}`, an array of those, or the HTTP JSON body with signal names relative to the machine (events default to the machine) |
//!
//! The prefix is `gemba/v1` by default. A sample without `ts` is stamped with the time of receipt.

use gemba_core::check_segment;
use serde_json::Value;

use crate::wire::{Names, decode_json_with, scalar, syntax_error, ts_of, value_of};
use crate::{DecodeError, DecodedBatch, ItemError, RawPoint};

/// Whether an MQTT topic or subscription filter lies under the asset path `scope` in the topic
/// scheme `<prefix>/<asset path>/…`. Wildcards are allowed only below the scope: `+` or `#` in
/// place of one of the scope's own levels reaches outside it.
pub fn topic_in_scope(prefix: &str, scope: &str, topic: &str) -> bool {
    topic
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| gemba_core::is_under(rest, scope))
}

/// Decodes one MQTT message received at `received_at` (ms).
pub fn decode_mqtt(
    prefix: &str,
    topic: &str,
    payload: &[u8],
    received_at: i64,
) -> Result<DecodedBatch, DecodeError> {
    decode_mqtt_within(prefix, topic, payload, received_at, None)
}

/// [`decode_mqtt`] for a publisher confined to `scope` (an asset path, from its token): a machine
/// batch's events must lie under it as well as on the topic's machine path, so that a
/// machine-scoped device cannot write its line's events (HTTP refuses them the same way).
pub fn decode_mqtt_within(
    prefix: &str,
    topic: &str,
    payload: &[u8],
    received_at: i64,
    scope: Option<&str>,
) -> Result<DecodedBatch, DecodeError> {
    let bad_topic = |reason: String| DecodeError::Topic {
        topic: gemba_core::quote_clipped(topic, 200),
        reason,
    };
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| bad_topic(format!("does not start with {prefix}/")))?;
    let segs: Vec<&str> = rest.split('/').collect();
    for s in &segs {
        check_segment(s)
            .map_err(|r| bad_topic(format!("segment {} {r}", gemba_core::quote_clipped(s, 64))))?;
    }
    let text = std::str::from_utf8(payload).map_err(|_| DecodeError::NotUtf8)?;
    let text = text.trim();
    if text.is_empty() {
        return Err(DecodeError::Empty);
    }
    match segs.len() {
        5 => single(rest, text, received_at),
        4 => machine_batch(rest, text, received_at, scope),
        n => Err(bad_topic(format!(
            "has {n} levels after {prefix}/; expected site/area/line/machine (batch) or site/area/line/machine/signal"
        ))),
    }
}

fn single(signal: &str, text: &str, received_at: i64) -> Result<DecodedBatch, DecodeError> {
    let mut out = DecodedBatch::default();
    let loc = "payload".to_owned();
    if text.starts_with('{') {
        let v: Value = serde_json::from_str(text).map_err(|e| syntax_error(&e))?;
        let Some(obj) = v.as_object() else {
            return Err(DecodeError::Shape {
                path: "payload".into(),
                message: "expected an object".into(),
            });
        };
        if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "ts" | "value")) {
            out.errors.push(ItemError {
                location: format!("payload.{k}"),
                message: "unknown field; a single-sample payload has value and ts".into(),
            });
            return Ok(out);
        }
        let ts = match ts_of(obj.get("ts").unwrap_or(&Value::Null)) {
            Ok(t) => t.unwrap_or(received_at),
            Err(message) => {
                out.errors.push(ItemError {
                    location: "payload.ts".into(),
                    message,
                });
                return Ok(out);
            }
        };
        match obj.get("value").map(value_of) {
            Some(Ok(value)) => out.points.push(RawPoint {
                signal: signal.to_owned(),
                ts: Some(ts),
                value,
                location: loc,
            }),
            Some(Err(message)) => out.errors.push(ItemError {
                location: "payload.value".into(),
                message,
            }),
            None => out.errors.push(ItemError {
                location: "payload.value".into(),
                message: "missing".into(),
            }),
        }
        return Ok(out);
    }
    let text = text.trim_matches('"');
    out.push_point(signal.to_owned(), Some(received_at), scalar(text), loc);
    Ok(out)
}

fn machine_batch(
    machine: &str,
    text: &str,
    received_at: i64,
    scope: Option<&str>,
) -> Result<DecodedBatch, DecodeError> {
    let v: Value = serde_json::from_str(text).map_err(|e| syntax_error(&e))?;
    let is_values_form = |v: &Value| {
        v.as_object()
            .is_some_and(|o| o.contains_key("values") && !o.contains_key("series"))
    };
    let rows: Vec<&Value> = match &v {
        Value::Array(items) => items.iter().collect(),
        obj if is_values_form(obj) => vec![obj],
        Value::Object(_) => {
            let mut out =
                decode_json_with(text.as_bytes(), Names::RelativeTo(machine), Some(machine))?;
            for p in &mut out.points {
                p.ts = Some(p.ts.unwrap_or(received_at));
            }
            confine_events(&mut out, machine, scope);
            return Ok(out);
        }
        _ => {
            return Err(DecodeError::Shape {
                path: "payload".into(),
                message: "expected an object or an array of {\"ts\", \"values\"} objects".into(),
            });
        }
    };
    let mut out = DecodedBatch::default();
    for (i, row) in rows.iter().enumerate() {
        let loc = if matches!(v, Value::Array(_)) {
            format!("payload[{i}]")
        } else {
            "payload".to_owned()
        };
        let Some(obj) = row.as_object() else {
            out.errors.push(ItemError {
                location: loc,
                message: "expected an object {\"ts\", \"values\"}".into(),
            });
            continue;
        };
        if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "ts" | "values")) {
            out.errors.push(ItemError {
                location: format!("{loc}.{k}"),
                message: "unknown field; a row has ts and values".into(),
            });
            continue;
        }
        let ts = match ts_of(obj.get("ts").unwrap_or(&Value::Null)) {
            Ok(t) => t.unwrap_or(received_at),
            Err(message) => {
                out.errors.push(ItemError {
                    location: format!("{loc}.ts"),
                    message,
                });
                continue;
            }
        };
        let Some(values) = obj.get("values").and_then(Value::as_object) else {
            out.errors.push(ItemError {
                location: format!("{loc}.values"),
                message: "expected an object of signal name → value".into(),
            });
            continue;
        };
        for (name, val) in values {
            let vloc = format!("{loc}.values.{name}");
            if let Err(r) = check_segment(name) {
                out.errors.push(ItemError {
                    location: vloc,
                    message: format!("signal name {r}"),
                });
                continue;
            }
            out.push_point(format!("{machine}/{name}"), Some(ts), value_of(val), vloc);
        }
    }
    Ok(out)
}

/// A machine's batch speaks for that machine (the topic is what its credentials were checked
/// against): an event for another machine, or anything off the machine's own path, becomes an
/// item error. Events of the machine, below it, or of the line, area and site above it stay (a
/// line's events, such as lot moves and shift starts, travel on its machines' topics: the topic
/// scheme has no line topic).
fn confine_events(out: &mut DecodedBatch, machine: &str, scope: Option<&str>) {
    let events = std::mem::take(&mut out.events);
    for (i, e) in events.into_iter().enumerate() {
        let on_path =
            gemba_core::is_under(&e.asset, machine) || gemba_core::is_under(machine, &e.asset);
        let message = if !on_path {
            format!(
                "{} is outside this topic's machine {machine:?}: publish it to that asset's own topic",
                gemba_core::quote_clipped(&e.asset, 64)
            )
        } else if let Some(scope) = scope.filter(|s| !gemba_core::is_under(&e.asset, s)) {
            format!(
                "{} is outside the publisher's scope {scope:?} (its token)",
                gemba_core::quote_clipped(&e.asset, 64)
            )
        } else {
            out.events.push(e);
            continue;
        };
        out.errors.push(ItemError {
            location: format!("payload.events[{i}].asset"),
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawValue;

    const P: &str = "gemba/v1";

    #[test]
    fn topics_and_filters_in_a_scope() {
        let m1 = "s1/a1/l1/m1";
        for t in [
            "gemba/v1/s1/a1/l1/m1",
            "gemba/v1/s1/a1/l1/m1/temp",
            "gemba/v1/s1/a1/l1/m1/#",
            "gemba/v1/s1/a1/l1/m1/+",
        ] {
            assert!(topic_in_scope(P, m1, t), "{t}");
        }
        for t in [
            "gemba/v1/s1/a1/l1/m2/temp",
            "gemba/v1/s1/a1/l1/m10/temp",
            "gemba/v1/s1/a1/l1",
            "gemba/v1/s1/a1/l1/#",
            "gemba/v1/s1/a1/l1/+/temp",
            "gemba/v1/#",
            "#",
            "gemba/v2/s1/a1/l1/m1/temp",
            "other/s1/a1/l1/m1/temp",
            "$share/g/gemba/v1/s1/a1/l1/m1/#",
        ] {
            assert!(!topic_in_scope(P, m1, t), "{t}");
        }
        // A line scope covers its machines.
        assert!(topic_in_scope(P, "s1/a1/l1", "gemba/v1/s1/a1/l1/m2/temp"));
        assert!(!topic_in_scope(P, "s1/a1/l1", "gemba/v1/s1/a1/l2/m1/temp"));
    }

    #[test]
    fn single_sample_payloads() {
        let b = decode_mqtt(P, "gemba/v1/s/a/l/m/temp", b"21.5", 7).expect("ok");
        assert_eq!(b.points[0].signal, "s/a/l/m/temp");
        assert_eq!(
            (b.points[0].ts, b.points[0].value.clone()),
            (Some(7), RawValue::Number(21.5))
        );
        let b = decode_mqtt(P, "gemba/v1/s/a/l/m/door", b"true", 7).expect("ok");
        assert_eq!(b.points[0].value, RawValue::Bool(true));
        let b = decode_mqtt(P, "gemba/v1/s/a/l/m/state", b"running", 7).expect("ok");
        assert_eq!(b.points[0].value, RawValue::Text("running".into()));
        let b = decode_mqtt(
            P,
            "gemba/v1/s/a/l/m/temp",
            br#"{"value": 3, "ts": 1700000000000}"#,
            7,
        )
        .expect("ok");
        assert_eq!(b.points[0].ts, Some(1_700_000_000_000));
        let b = decode_mqtt(P, "gemba/v1/s/a/l/m/temp", b"NaN", 7).expect("ok");
        assert!(b.points.is_empty() && b.errors[0].message.contains("finite"));
        let b = decode_mqtt(P, "gemba/v1/s/a/l/m/temp", b"12abc", 7).expect("ok");
        assert!(b.errors[0].message.contains("not a number"));
        let b = decode_mqtt(P, "gemba/v1/s/a/l/m/temp", br#"{"value": null}"#, 7).expect("ok");
        assert_eq!(b.errors[0].location, "payload.value");
    }

    #[test]
    fn machine_batches() {
        let b = decode_mqtt(
            P,
            "gemba/v1/s/a/l/m",
            br#"{"ts": 5, "values": {"speed": 1500, "state": "running"}}"#,
            7,
        )
        .expect("ok");
        let mut sigs: Vec<&str> = b.points.iter().map(|p| p.signal.as_str()).collect();
        sigs.sort_unstable();
        assert_eq!(sigs, vec!["s/a/l/m/speed", "s/a/l/m/state"]);
        assert!(b.points.iter().all(|p| p.ts == Some(5)));
        let b = decode_mqtt(
            P,
            "gemba/v1/s/a/l/m",
            br#"[{"values": {"x": 1}}, {"ts": 9, "values": {"x": 2}}, 3]"#,
            7,
        )
        .expect("ok");
        assert_eq!(
            b.points.iter().map(|p| p.ts).collect::<Vec<_>>(),
            vec![Some(7), Some(9)]
        );
        assert_eq!(b.errors[0].location, "payload[2]");
        let b = decode_mqtt(
            P,
            "gemba/v1/s/a/l/m",
            br#"{"series": [{"signal": "x", "t0": 1, "dt": 1, "values": [1, 2]}], "events": [{"ts": 1, "type": "state", "state": "idle"}]}"#,
            7,
        )
        .expect("ok");
        assert_eq!(b.series[0].signal, "s/a/l/m/x");
        assert_eq!(b.events[0].asset, "s/a/l/m");
    }

    #[test]
    fn a_machine_batch_cannot_write_events_for_another_asset() {
        let b = decode_mqtt(
            P,
            "gemba/v1/s/a/l/m",
            br#"{"events": [
                {"ts": 1, "type": "state", "state": "idle", "asset": "s/a/l/m2"},
                {"ts": 2, "type": "state", "state": "idle", "asset": "s/a/l2"},
                {"ts": 3, "type": "state", "state": "idle", "asset": "s/a/l/m"},
                {"ts": 4, "type": "state", "state": "idle"},
                {"ts": 5, "type": "state", "state": "idle", "asset": "s/a/l"}
            ]}"#,
            7,
        )
        .expect("ok");
        let kept: Vec<i64> = b.events.iter().map(|e| e.ts).collect();
        assert_eq!(kept, [3, 4, 5]);
        let locs: Vec<&str> = b.errors.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(locs, ["payload.events[0].asset", "payload.events[1].asset"]);
        assert!(b.errors[0].message.contains("outside this topic's machine"));
    }

    /// A publisher's scope (its token) bounds a machine batch's events too: a machine-scoped
    /// device cannot write its line's events, a line-scoped one can.
    #[test]
    fn a_scoped_publisher_writes_events_only_in_its_scope() {
        let body = br#"{"events": [
            {"ts": 1, "type": "state", "state": "idle", "asset": "s/a/l"},
            {"ts": 2, "type": "state", "state": "idle"},
            {"ts": 3, "type": "state", "state": "idle", "asset": "s/a"}
        ]}"#;
        let kept = |scope| {
            let b = decode_mqtt_within(P, "gemba/v1/s/a/l/m", body, 7, scope).expect("ok");
            for e in &b.errors {
                assert!(e.message.contains("outside"), "{}", e.message);
            }
            b.events.iter().map(|e| e.ts).collect::<Vec<i64>>()
        };
        assert_eq!(kept(Some("s/a/l/m")), [2]);
        assert_eq!(kept(Some("s/a/l")), [1, 2]);
        assert_eq!(kept(Some("s")), [1, 2, 3]);
        assert_eq!(kept(None), [1, 2, 3]);
        let b = decode_mqtt_within(P, "gemba/v1/s/a/l/m", body, 7, Some("s/a/l/m")).unwrap();
        assert!(
            b.errors[0]
                .message
                .contains("outside the publisher's scope")
        );
        assert_eq!(b.errors[0].location, "payload.events[0].asset");
    }

    #[test]
    fn junk_is_an_error_not_a_panic() {
        assert!(matches!(
            decode_mqtt(P, "other/s/a/l/m/x", b"1", 0),
            Err(DecodeError::Topic { .. })
        ));
        assert!(matches!(
            decode_mqtt(P, "gemba/v1/s/a", b"1", 0),
            Err(DecodeError::Topic { .. })
        ));
        assert!(matches!(
            decode_mqtt(P, "gemba/v1/s/a/l/m/x/y", b"1", 0),
            Err(DecodeError::Topic { .. })
        ));
        assert!(matches!(
            decode_mqtt(P, "gemba/v1/s/a b/l/m/x", b"1", 0),
            Err(DecodeError::Topic { .. })
        ));
        assert!(matches!(
            decode_mqtt(P, "gemba/v1/s/a/l/m/x", b"", 0),
            Err(DecodeError::Empty)
        ));
        assert!(matches!(
            decode_mqtt(P, "gemba/v1/s/a/l/m/x", b"\xff", 0),
            Err(DecodeError::NotUtf8)
        ));
        assert!(matches!(
            decode_mqtt(P, "gemba/v1/s/a/l/m/x", b"{not json", 0),
            Err(DecodeError::Syntax { .. })
        ));
        assert!(decode_mqtt(P, "gemba/v1/s/a/l/m", b"42", 0).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
                        topic in "[a-z/#+ ]{0,40}") {
            let _ = decode_mqtt(P, "gemba/v1/s/a/l/m/x", &bytes, 0);
            let _ = decode_mqtt(P, "gemba/v1/s/a/l/m", &bytes, 0);
            let _ = decode_mqtt(P, &topic, &bytes, 0);
        }
    }
}

#![allow(clippy::unwrap_used)]

use super::*;

fn errs(b: &DecodedBatch) -> Vec<(String, String)> {
    b.errors
        .iter()
        .map(|e| (e.location.clone(), e.message.clone()))
        .collect()
}

/// Asserts that the batch has exactly one error, at `loc`, whose message contains `phrase`.
#[track_caller]
fn one_error(body: &str, loc: &str, phrase: &str) {
    let b = decode_json(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
    let e = errs(&b);
    assert_eq!(e.len(), 1, "{body}: {e:#?}");
    assert_eq!(e[0].0, loc, "{body}: {e:#?}");
    assert!(e[0].1.contains(phrase), "{body}: {:?} lacks {phrase:?}", e[0].1);
    assert_eq!(b.sample_count() + b.events.len(), 0, "{body}: kept a bad item");
}

#[test]
fn decodes_every_form() {
    let b = decode_json(
        br#"{"points":[{"signal":"s/a/l/m/x","ts":1700000000000,"value":1.5},
                      {"signal":"s/a/l/m/st","ts":"2023-11-14T22:13:20Z","value":"running"},
                      {"signal":"s/a/l/m/d","value":true},
                      {"signal":"s/a/l/m/d","value":false,"ts":null}],
            "series":[{"signal":"s/a/l/m/y","ts":[1,2],"values":[3,4.5]},
                      {"signal":"s/a/l/m/z","t0":100,"dt":10,"values":[1,2,3]},
                      {"signal":"s/a/l/m/z","t0":"2023-11-14T22:13:20Z","dt":1000,"values":[1]},
                      {"signal":"s/a/l/m/w","ts":["2023-11-14T22:13:20Z", 1.7e12],"values":[-1e300, 0]},
                      {"signal":"s/a/l/m/e","ts":[],"values":[]}],
            "events":[{"ts":5,"asset":"s/a/l/m","type":"production","good":3},
                      {"ts":"2023-11-14T22:13:20Z","asset":"s/a/l/m","type":"state","state":"down","reason":"tool_break"}]}"#,
    )
    .unwrap();
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert_eq!(b.points.len(), 4);
    assert_eq!(b.points[0].value, RawValue::Number(1.5));
    assert_eq!(b.points[0].location, "points[0]");
    assert_eq!(b.points[1].ts, Some(1_700_000_000_000));
    assert_eq!(b.points[1].value, RawValue::Text("running".into()));
    assert_eq!(b.points[2].ts, None);
    assert_eq!(b.points[2].value, RawValue::Bool(true));
    assert_eq!(b.points[3].ts, None);
    assert_eq!(b.series[0].values, vec![3.0, 4.5]);
    assert_eq!(b.series[1].ts, vec![100, 110, 120]);
    assert_eq!(b.series[1].location, "series[1]");
    assert_eq!(b.series[2].ts, vec![1_700_000_000_000]);
    assert_eq!(b.series[3].ts, vec![1_700_000_000_000, 1_700_000_000_000]);
    assert!(b.series[4].values.is_empty());
    assert_eq!(b.events[0].asset, "s/a/l/m");
    assert_eq!(b.events[1].ts, 1_700_000_000_000);
    assert_eq!(b.sample_count(), 4 + 2 + 3 + 1 + 2);
}

#[test]
fn empty_bodies_and_arrays() {
    assert_eq!(decode_json(b"{}").unwrap(), DecodedBatch::default());
    assert_eq!(
        decode_json(br#"{"points":[],"series":[],"events":[]}"#).unwrap(),
        DecodedBatch::default()
    );
    assert_eq!(
        decode_json(br#"{"points":null}"#).unwrap(),
        DecodedBatch::default()
    );
    // A byte-order mark and surrounding whitespace are fine.
    assert!(decode_json(b"\xef\xbb\xbf \n{}\n").is_ok());
}

#[test]
fn point_errors() {
    let p = |body: &str| format!(r#"{{"points":[{body}]}}"#);
    one_error(&p(r#"{"signal":"x","value":null}"#), "points[0].value", "expected a number, boolean or state name, got null");
    one_error(&p(r#"{"signal":"x","value":[1]}"#), "points[0].value", "got an array");
    one_error(&p(r#"{"signal":"x","value":{"a":1}}"#), "points[0].value", "got an object");
    one_error(&p(r#"{"signal":"x","value":1e999}"#), "points[0].value", "1e999 is out of range");
    one_error(&p(r#"{"signal":"x","value":-1e400}"#), "points[0].value", "out of range");
    one_error(&p(r#"{"signal":"x"}"#), "points[0].value", "missing");
    one_error(&p(r#"{"signal":5,"value":1}"#), "points[0].signal", "expected a string, got 5");
    one_error(&p(r#"{"signal":null,"value":1}"#), "points[0].signal", "got null");
    one_error(&p(r#"{"value":1}"#), "points[0].signal", "missing");
    one_error(&p(r#"{"signal":"x","value":1,"extra":2}"#), "points[0].extra", "unknown field");
    one_error(&p(r#"{"signal":"x","ts":1.5,"value":1}"#), "points[0].ts", "not a whole number");
    one_error(&p(r#"{"signal":"x","ts":1e300,"value":1}"#), "points[0].ts", "not a whole number");
    one_error(&p(r#"{"signal":"x","ts":99999999999999999999,"value":1}"#), "points[0].ts", "");
    one_error(&p(r#"{"signal":"x","ts":"soon","value":1}"#), "points[0].ts", "cannot parse timestamp \"soon\"");
    one_error(&p(r#"{"signal":"x","ts":true,"value":1}"#), "points[0].ts", "got true");
    one_error(&p(r#"{"signal":"x","ts":[1],"value":1}"#), "points[0].ts", "got an array");
    one_error(&p("7"), "points[0]", "expected an object, got 7");
    one_error(&p("null"), "points[0]", "expected an object, got null");
    one_error(&p(r#""x y/1 2""#), "points[0]", "got the string \"x y/1 2\"");
    one_error(&p("[]"), "points[0]", "got an array");
}

#[test]
fn good_items_survive_bad_neighbours() {
    let b = decode_json(
        br#"{"points":[{"signal":"a","value":1},{"signal":"b","value":null},{"signal":"c","value":"idle"}],
             "series":[{"signal":"d","ts":[1],"values":["x"]},{"signal":"e","ts":[1],"values":[2]}],
             "events":[{"ts":1,"asset":"a","type":"explode"},{"ts":1,"asset":"a","type":"custom","name":"n"}]}"#,
    )
    .unwrap();
    assert_eq!(
        errs(&b).iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        vec!["points[1].value", "series[0].values[0]", "events[0]"]
    );
    let signals: Vec<_> = b.points.iter().map(|p| (p.signal.as_str(), p.location.as_str())).collect();
    assert_eq!(signals, vec![("a", "points[0]"), ("c", "points[2]")]);
    assert_eq!(b.series.len(), 1);
    assert_eq!(b.series[0].location, "series[1]");
    assert_eq!(b.events.len(), 1);
}

#[test]
fn series_errors() {
    let s = |body: &str| format!(r#"{{"series":[{body}]}}"#);
    one_error(&s(r#"{"signal":"y","ts":[1,2,3],"values":[1,2]}"#), "series[0]", "ts has 3 entries but values has 2");
    one_error(&s(r#"{"signal":"y","ts":[1],"t0":1,"dt":1,"values":[1]}"#), "series[0]", "give either ts or t0+dt, not both");
    one_error(&s(r#"{"signal":"y","ts":[1],"dt":1,"values":[1]}"#), "series[0]", "not both");
    one_error(&s(r#"{"signal":"y","values":[1]}"#), "series[0]", "needs ts");
    one_error(&s(r#"{"signal":"y","t0":1,"values":[1]}"#), "series[0]", "t0 needs dt");
    one_error(&s(r#"{"signal":"y","dt":1,"values":[1]}"#), "series[0]", "dt needs t0");
    one_error(&s(r#"{"signal":"y","t0":1,"dt":0,"values":[1]}"#), "series[0].dt", "0 must be a positive number");
    one_error(&s(r#"{"signal":"y","t0":1,"dt":-5,"values":[1]}"#), "series[0].dt", "-5 must be a positive");
    one_error(&s(r#"{"signal":"y","t0":9223372036854775000,"dt":1000,"values":[1,2]}"#), "series[0]", "overflows");
    one_error(&s(r#"{"signal":"y","t0":1,"dt":1.5,"values":[1]}"#), "series[0].dt", "whole number of milliseconds, got 1.5");
    one_error(&s(r#"{"signal":"y","t0":"later","dt":1,"values":[1]}"#), "series[0].t0", "cannot parse timestamp");
    one_error(&s(r#"{"signal":"y","t0":null,"dt":1,"values":[1]}"#), "series[0]", "t0");
    // Entries: the exact index, the value and the reason.
    one_error(&s(r#"{"signal":"y","ts":[1,2],"values":[1,"NaN"]}"#), "series[0].values[1]", "got the string \"NaN\" (JSON has no NaN");
    one_error(&s(r#"{"signal":"y","ts":[1,2,3],"values":[1,null,null]}"#), "series[0].values[1]", "got null (and 1 more bad entries");
    one_error(&s(r#"{"signal":"y","ts":[1],"values":[1e999]}"#), "series[0].values[0]", "1e999 is out of range");
    one_error(&s(r#"{"signal":"y","ts":[1],"values":[true]}"#), "series[0].values[0]", "expected a number, got true");
    one_error(&s(r#"{"signal":"y","ts":[1],"values":[[1]]}"#), "series[0].values[0]", "got an array");
    one_error(&s(r#"{"signal":"y","ts":[1,2.5],"values":[1,2]}"#), "series[0].ts[1]", "2.5 is not a whole number");
    one_error(&s(r#"{"signal":"y","ts":[1,"x"],"values":[1,2]}"#), "series[0].ts[1]", "cannot parse timestamp \"x\"");
    one_error(&s(r#"{"signal":"y","ts":[null],"values":[1]}"#), "series[0].ts[0]", "got null");
    one_error(&s(r#"{"signal":"y","ts":5,"values":[1]}"#), "series[0].ts", "expected an array, got 5");
    one_error(&s(r#"{"signal":"y","ts":[1],"values":{"a":1}}"#), "series[0].values", "expected an array, got an object");
    one_error(&s(r#"{"signal":"y","ts":[1]}"#), "series[0].values", "missing");
    one_error(&s(r#"{"ts":[1],"values":[1]}"#), "series[0].signal", "missing");
    one_error(&s(r#"{"signal":1,"ts":[1],"values":[1]}"#), "series[0].signal", "expected a string, got 1");
    one_error(&s(r#"{"signal":"y","ts":[1],"values":[1],"unit":"K"}"#), "series[0].unit", "unknown field");
    one_error(&s(r#"[1,2]"#), "series[0]", "expected an object with signal, values and ts or t0+dt, got an array");
    one_error(&s(r#""s""#), "series[0]", "got the string \"s\"");
}

#[test]
fn event_errors() {
    let e = |body: &str| format!(r#"{{"events":[{body}]}}"#);
    one_error(&e(r#"{"ts":1,"asset":"a","type":"explode"}"#), "events[0]", "unknown variant `explode`");
    one_error(&e(r#"{"ts":1,"asset":"a","type":"state"}"#), "events[0]", "missing field `state`");
    one_error(&e(r#"{"asset":"a","type":"state","state":"x"}"#), "events[0]", "missing field `ts`");
    one_error(&e(r#"{"ts":"noon","asset":"a","type":"state","state":"x"}"#), "events[0]", "ts: cannot parse timestamp");
    one_error(&e(r#"{"ts":1,"asset":"a","type":"state","state":"x","colour":"red"}"#), "events[0]", "colour");
    one_error(&e(r#"{"ts":1,"type":"state","state":"x"}"#), "events[0]", "asset");
    one_error(&e("3"), "events[0]", "expected an event object, got 3");
    one_error(&e(r#"{"ts":1,"asset":"a","type":"production","good":1e999}"#), "events[0]", "out of range");
}

#[test]
fn whole_body_errors() {
    assert_eq!(decode_json(b""), Err(DecodeError::Empty));
    assert_eq!(decode_json(b" \n\t"), Err(DecodeError::Empty));
    assert_eq!(decode_json(b"\xff\xfe{}"), Err(DecodeError::NotUtf8));
    match decode_json(b"{\"points\": [\n{") {
        Err(DecodeError::Syntax { line, column, .. }) => assert_eq!((line, column), (2, 1)),
        other => panic!("{other:?}"),
    }
    match decode_json(b"{\"points\": [1,]}") {
        Err(e @ DecodeError::Syntax { .. }) => assert!(e.to_string().contains("line 1, column 15"), "{e}"),
        other => panic!("{other:?}"),
    }
    match decode_json(b"{} trailing") {
        Err(DecodeError::Syntax { message, .. }) => assert!(message.contains("trailing"), "{message}"),
        other => panic!("{other:?}"),
    }
    let e = decode_json(br#"{"pointz":[]}"#).unwrap_err();
    assert!(matches!(e, DecodeError::Shape { .. }), "{e:?}");
    assert!(e.to_string().contains("unknown field `pointz`"), "{e}");
    let e = decode_json(br#"{"points":[],"points":[]}"#).unwrap_err();
    assert!(e.to_string().contains("duplicate field"), "{e}");
    assert_eq!(
        decode_json(br#"{"points":5}"#),
        Err(DecodeError::Shape { path: "points".into(), message: "expected an array, got 5".into() })
    );
    assert_eq!(
        decode_json(br#"{"series":{"signal":"x"}}"#),
        Err(DecodeError::Shape { path: "series".into(), message: "expected an array, got an object".into() })
    );
    for body in [&b"[1,2]"[..], b"5", b"\"text\"", b"null", b"true"] {
        match decode_json(body) {
            Err(DecodeError::Shape { path, message }) => {
                assert_eq!(path, "body");
                assert!(message.starts_with("expected a JSON object"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(decode_json(b"nope"), Err(DecodeError::Syntax { .. })));
    assert!(matches!(decode_json(b"\x00\x01\x02"), Err(DecodeError::Syntax { .. })));
    // Deep nesting hits serde_json's recursion limit: an error, not a stack overflow.
    let deep = format!("{{\"points\":[{}{}]}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(decode_json(deep.as_bytes()), Err(DecodeError::Syntax { .. })));
    let deep = "{\"a\":".repeat(50_000);
    assert!(decode_json(deep.as_bytes()).is_err());
}

#[test]
fn nested_junk_inside_items_is_an_item_error() {
    // 100 levels is within serde_json's limit: the body parses, the item is rejected.
    let nested = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let body = format!(r#"{{"points":[{{"signal":"x","value":{nested}}}],"series":[{{"signal":"x","ts":[1],"values":[{nested}]}}]}}"#);
    let b = decode_json(body.as_bytes()).unwrap();
    assert_eq!(
        errs(&b).iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        vec!["points[0].value", "series[0].values[0]"]
    );
}

#[test]
fn escaped_strings_and_unicode() {
    let b = decode_json(
        br#"{"points":[{"signal":"s\/a\/l\/m\/x","value":"caf\u00e9"}],"series":[{"signal":"s\/y","ts":[1],"values":[1]}]}"#,
    )
    .unwrap();
    assert_eq!(b.points[0].signal, "s/a/l/m/x");
    assert_eq!(b.points[0].value, RawValue::Text("café".into()));
    assert_eq!(b.series[0].signal, "s/y");
}

#[test]
fn relative_names_and_default_time_for_machine_batches() {
    let ctx = Context {
        machine: Some("s/a/l/m"),
        default_ts: Some(42),
    };
    let b = decode_json_with(
        br#"{"points":[{"signal":"temp","value":1},{"signal":"a/b","value":1},{"signal":"x","ts":7,"value":2}],
             "series":[{"signal":"v","t0":1,"dt":1,"values":[1]},{"signal":"","t0":1,"dt":1,"values":[1]}],
             "events":[{"type":"state","state":"idle"},{"ts":9,"asset":"s/a/l","type":"state","state":"idle"}]}"#,
        ctx,
    )
    .unwrap();
    assert_eq!(b.points[0].signal, "s/a/l/m/temp");
    assert_eq!(b.points[0].ts, Some(42));
    assert_eq!(b.points[1].ts, Some(7));
    assert_eq!(b.series[0].signal, "s/a/l/m/v");
    let e = errs(&b);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!(e[0].0, "points[1].signal");
    assert!(e[0].1.contains("relative to the machine s/a/l/m"), "{}", e[0].1);
    assert_eq!(e[1].0, "series[1].signal");
    assert_eq!(b.events[0].asset, "s/a/l/m");
    assert_eq!(b.events[0].ts, 42);
    assert_eq!(b.events[1].asset, "s/a/l");
    assert_eq!(b.events[1].ts, 9);
}

#[test]
fn line_protocol() {
    let b = decode_line_protocol(
        b"# c\ns/a/l/m/x 1.5 1700000000000\n\n  s/a/l/m/st\trunning  \r\nbad\ns/a/l/m/x NaN\ns/a/l/m/x 1 2 3\ns/a/l/m/x 2 yesterday\ns/a/l/m/x \xff\ns/a/l/m/x 1e999\ns/a/l/m/x 1.2.3\ns/a/l/m/x two words\ns/a/l/m/x true 2023-11-14T22:13:20Z\ns/a/l/m/x -inf\n",
    )
    .unwrap();
    let pts: Vec<_> = b.points.iter().map(|p| (p.location.as_str(), p.ts)).collect();
    assert_eq!(
        pts,
        vec![
            ("line 2", Some(1_700_000_000_000)),
            ("line 4", None),
            ("line 13", Some(1_700_000_000_000))
        ]
    );
    assert_eq!(b.points[1].value, RawValue::Text("running".into()));
    assert_eq!(b.points[2].value, RawValue::Bool(true));
    let e = errs(&b);
    let want = [
        ("line 5", "expected `<signal path> <value> [<ts>]`"),
        ("line 6", "\"NaN\" is not a finite number"),
        ("line 7", "unexpected \"3\" after the timestamp"),
        ("line 8", "cannot parse timestamp \"yesterday\""),
        ("line 9", "not UTF-8"),
        ("line 10", "out of range"),
        ("line 11", "\"1.2.3\" is not a number"),
        ("line 12", "unexpected \"words\""),
        ("line 14", "\"-inf\" is not a finite number"),
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for ((loc, msg), (wloc, wphrase)) in e.iter().zip(want) {
        assert_eq!(loc, wloc);
        assert!(msg.contains(wphrase), "{loc}: {msg:?} lacks {wphrase:?}");
    }
    assert_eq!(decode_line_protocol(b""), Err(DecodeError::Empty));
    assert_eq!(decode_line_protocol(b"\n \n"), Err(DecodeError::Empty));
    assert_eq!(decode_line_protocol(b"# only a comment\n").unwrap(), DecodedBatch::default());
}

#[test]
fn scalar_values() {
    assert_eq!(scalar("21.5"), Ok(RawValue::Number(21.5)));
    assert_eq!(scalar("-3"), Ok(RawValue::Number(-3.0)));
    assert_eq!(scalar("+.5e1"), Ok(RawValue::Number(5.0)));
    assert_eq!(scalar("true"), Ok(RawValue::Bool(true)));
    assert_eq!(scalar("running"), Ok(RawValue::Text("running".into())));
    for bad in ["NaN", "nan", "inf", "-Infinity", "1e400", "1,5", "{x", "a b", ""] {
        assert!(scalar(bad).is_err(), "{bad}");
    }
}

proptest::proptest! {
    #[test]
    fn never_panics_on_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let _ = decode_json(&bytes);
        let _ = decode_line_protocol(&bytes);
        let ctx = Context { machine: Some("s/a/l/m"), default_ts: Some(1) };
        let _ = decode_json_with(&bytes, ctx);
    }

    #[test]
    fn never_panics_on_json_like_text(s in r#"\{"(points|series|events)":\[(\{("(signal|ts|t0|dt|value|values|type|asset)":(-?[0-9]{1,25}(\.[0-9]+)?(e[+-]?[0-9]{1,4})?|"[a-z0-9/:TZ-]{0,30}"|null|true|\[[0-9,."a-z]{0,20}\]|\{\}),?){0,5}\},?){0,3}\]\}"#) {
        let _ = decode_json(s.as_bytes());
    }
}

/// Decode speed of the columnar bulk format; run with
/// `cargo test -p gemba-ingest --release -- --ignored --nocapture bulk_decode_speed`.
#[test]
#[ignore = "measurement"]
fn bulk_decode_speed() {
    let t0 = 1_700_000_000_000i64;
    let mut body = String::from("{\"series\":[");
    for s in 0..100 {
        let ts: Vec<String> = (0..10_000).map(|i| (t0 + i * 1000).to_string()).collect();
        let vs: Vec<String> = (0..10_000).map(|i| format!("{:.3}", 20.0 + (i as f64 * 0.01).sin())).collect();
        if s > 0 {
            body.push(',');
        }
        if s % 2 == 0 {
            body.push_str(&format!("{{\"signal\":\"p/a/l/m/s{s}\",\"ts\":[{}],\"values\":[{}]}}", ts.join(","), vs.join(",")));
        } else {
            body.push_str(&format!("{{\"signal\":\"p/a/l/m/s{s}\",\"t0\":{t0},\"dt\":1000,\"values\":[{}]}}", vs.join(",")));
        }
    }
    body.push_str("]}");
    let start = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..5 {
        n += decode_json(body.as_bytes()).unwrap().sample_count();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bulk decode: {n} samples from {:.1} MB in {secs:.3} s = {:.1} M samples/s, {:.0} MB/s",
        5.0 * body.len() as f64 / 1e6,
        n as f64 / secs / 1e6,
        5.0 * body.len() as f64 / secs / 1e6
    );
    let mut body = String::from("{\"points\":[");
    for i in 0..100_000 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!("{{\"signal\":\"p/a/l/m/s{}\",\"ts\":{},\"value\":{:.2}}}", i % 50, t0 + i, i as f64 / 7.0));
    }
    body.push_str("]}");
    let start = std::time::Instant::now();
    let n = decode_json(body.as_bytes()).unwrap().sample_count();
    let secs = start.elapsed().as_secs_f64();
    println!("row points decode: {:.2} M points/s", n as f64 / secs / 1e6);
}

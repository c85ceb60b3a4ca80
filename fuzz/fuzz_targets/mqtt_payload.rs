//! MQTT messages as the bridge receives them: `decode_mqtt(prefix, topic, payload, received_at)`.
//! The first byte picks the topic: a signal topic, a machine topic, or (otherwise) a topic read
//! from the input up to its first newline, so topics are fuzzed as well as payloads.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PREFIX: &str = "gemba/v1";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (topic, payload): (String, &[u8]) = match mode % 3 {
        0 => ("gemba/v1/s/a/l/m/x".into(), rest),
        1 => ("gemba/v1/s/a/l/m".into(), rest),
        _ => {
            let cut = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let topic = String::from_utf8_lossy(&rest[..cut]).into_owned();
            (topic, rest.get(cut + 1..).unwrap_or(&[]))
        }
    };
    // A machine-scoped publisher (issue 27): every event kept lies under its scope.
    if mode % 3 == 1 {
        if let Ok(batch) = gemba_ingest::mqtt::decode_mqtt_within(
            PREFIX,
            &topic,
            payload,
            1_700_000_000_000,
            Some("s/a/l/m"),
        ) {
            for e in &batch.events {
                assert!(gemba_core::is_under(&e.asset, "s/a/l/m"), "{:?}", e.asset);
            }
        }
    }
    match gemba_ingest::mqtt::decode_mqtt(PREFIX, &topic, payload, 1_700_000_000_000) {
        Ok(batch) => {
            for p in &batch.points {
                assert!(p.ts.is_some(), "MQTT points are stamped on receipt");
            }
            // A machine batch speaks for its machine's path only (issue 27, finding 4).
            if mode % 3 == 1 {
                for e in &batch.events {
                    assert!(
                        gemba_core::is_under(&e.asset, "s/a/l/m")
                            || gemba_core::is_under("s/a/l/m", &e.asset),
                        "event for {:?} from m's topic",
                        e.asset
                    );
                }
            }
            // Errors quote outside input clipped, never whole (finding 9).
            for e in &batch.errors {
                assert!(e.message.len() < 2_000, "error of {} bytes", e.message.len());
            }
        }
        Err(e) => assert!(e.to_string().len() < 2_000, "error of {} bytes", e.to_string().len()),
    }
});

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
    if let Ok(batch) = gemba_ingest::mqtt::decode_mqtt(PREFIX, &topic, payload, 1_700_000_000_000) {
        for p in &batch.points {
            assert!(p.ts.is_some(), "MQTT points are stamped on receipt");
        }
    }
});

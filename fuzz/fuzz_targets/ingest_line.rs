//! `POST /api/v1/ingest` with `Content-Type: text/plain`: the line protocol
//! (`<signal> <value> [<ts>]` per line).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = gemba_ingest::wire::decode_line_protocol(data) {
        for p in &batch.points {
            if let gemba_ingest::RawValue::Number(v) = p.value {
                assert!(v.is_finite(), "{}: non-finite value accepted", p.location);
            }
        }
    }
});

//! `POST /api/v1/ingest` with `Content-Type: application/json`: the JSON batch (points, columnar
//! series, events). Any input must give `Ok` or a `DecodeError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = gemba_ingest::wire::decode_json(data) {
        // every decoded series is columnar: one timestamp per value
        for s in &batch.series {
            assert_eq!(s.ts.len(), s.values.len(), "{}", s.location);
        }
        let _ = batch.sample_count();
    }
});

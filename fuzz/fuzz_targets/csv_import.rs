//! `gemba import csv`: the mapping (`--map`, `--start`, `--interval`, `--ts-format`) and the
//! streamed file. The first 17 bytes choose the options, the rest is the file.
#![no_main]

use gemba_ingest::csv_import::{CsvImporter, CsvMapping, TsFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let (opts, file) = data.split_at(17);
    let format = match opts[0] % 3 {
        0 => TsFormat::Millis,
        1 => TsFormat::Seconds,
        _ => TsFormat::Rfc3339,
    };
    let spaced = opts[1] & 1 == 1;
    let delimiter = if opts[1] & 2 == 2 { b';' } else { b',' };
    let start = i64::from_le_bytes(opts[1..9].try_into().unwrap_or_default());
    let interval = i64::from_le_bytes(opts[9..17].try_into().unwrap_or_default());
    let mut specs = vec!["x=a".to_owned(), "s/a/l/m/y=b".to_owned()];
    if !spaced {
        specs.push("ts=t".to_owned());
    }
    let Ok(mapping) = CsvMapping::parse(
        &specs,
        Some("s/a/l/m"),
        format,
        spaced.then_some((start, interval)),
    ) else {
        return;
    };
    let Ok(importer) = CsvImporter::new(file, mapping, delimiter, 7) else {
        return;
    };
    for batch in importer {
        for s in &batch.series {
            assert_eq!(s.ts.len(), s.values.len());
            assert!(s.values.iter().all(|v| v.is_finite()));
        }
    }
});

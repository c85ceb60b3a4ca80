//! CSV import: one row per instant, one column per signal.
//!
//! The mapping is written as `--map` specs: `ts=<column>` names the timestamp column and
//! `<signal>=<column>` maps a column to a signal (a full path, or a name relative to `--machine`).
//! Without a timestamp column, rows are spaced `interval` apart from `start`. Empty cells are missing
//! values (skipped); unparsable cells and broken rows are item errors; the rest is imported.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gemba_core::time::parse_timestamp;
use gemba_core::{Level, check_path};

use crate::{CsvError, DecodedBatch, ItemError, RawSeries};

/// How the timestamp column is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsFormat {
    Millis,
    Seconds,
    Rfc3339,
}

impl std::str::FromStr for TsFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ms" => Ok(TsFormat::Millis),
            "s" => Ok(TsFormat::Seconds),
            "rfc3339" => Ok(TsFormat::Rfc3339),
            _ => Err(format!(
                "unknown timestamp format {s:?}; use ms, s or rfc3339"
            )),
        }
    }
}

/// Where the rows' timestamps come from.
#[derive(Debug, Clone, PartialEq)]
pub enum RowTime {
    Column { name: String, format: TsFormat },
    Spaced { start: i64, interval_ms: i64 },
}

/// A validated mapping from CSV columns to signals.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvMapping {
    pub time: RowTime,
    /// (signal path, column name)
    pub signals: Vec<(String, String)>,
}

impl CsvMapping {
    /// Parses `--map` specs. `spaced` is `(start, interval)` for files without a timestamp column.
    pub fn parse(
        specs: &[String],
        machine: Option<&str>,
        ts_format: TsFormat,
        spaced: Option<(i64, i64)>,
    ) -> Result<CsvMapping, CsvError> {
        let bad = |spec: &str, reason: String| CsvError::Mapping {
            spec: spec.to_owned(),
            reason,
        };
        if let Some(m) = machine {
            check_path(m, Level::Machine).map_err(|e| bad(m, format!("--machine: {e}")))?;
        }
        let mut ts_col = None;
        let mut signals: Vec<(String, String)> = Vec::new();
        for spec in specs {
            let (key, col) = spec
                .split_once('=')
                .ok_or_else(|| bad(spec, "expected <signal>=<column> or ts=<column>".into()))?;
            let (key, col) = (key.trim(), col.trim());
            if col.is_empty() {
                return Err(bad(spec, "the column name is empty".into()));
            }
            if key == "ts" {
                if ts_col.replace(col.to_owned()).is_some() {
                    return Err(bad(spec, "ts is mapped twice".into()));
                }
                continue;
            }
            let path = if key.contains('/') {
                key.to_owned()
            } else {
                match machine {
                    Some(m) => format!("{m}/{key}"),
                    None => {
                        return Err(bad(
                            spec,
                            format!(
                                "{key:?} is not a full signal path; give --machine or write site/area/line/machine/{key}"
                            ),
                        ));
                    }
                }
            };
            check_path(&path, Level::Signal).map_err(|e| bad(spec, e.to_string()))?;
            if signals.iter().any(|(p, _)| *p == path) {
                return Err(bad(spec, format!("signal {path} is mapped twice")));
            }
            signals.push((path, col.to_owned()));
        }
        if signals.is_empty() {
            return Err(bad("", "map at least one column to a signal".into()));
        }
        let time = match (ts_col, spaced) {
            (Some(name), None) => RowTime::Column {
                name,
                format: ts_format,
            },
            (None, Some((start, interval_ms))) if interval_ms > 0 => {
                RowTime::Spaced { start, interval_ms }
            }
            (None, Some(_)) => return Err(bad("--interval", "must be positive".into())),
            (Some(_), Some(_)) => {
                return Err(bad(
                    "ts",
                    "give either a ts column or --start/--interval, not both".into(),
                ));
            }
            (None, None) => {
                return Err(bad("", "map the timestamp column with --map ts=<column>, or give --start and --interval".into()));
            }
        };
        Ok(CsvMapping { time, signals })
    }
}

/// Counts the bytes read, for progress bars.
#[derive(Debug)]
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Streams a CSV file as batches of decoded rows.
pub struct CsvImporter<R: Read> {
    reader: csv::Reader<Counting<R>>,
    ts_index: Option<usize>,
    columns: Vec<(String, usize)>,
    mapping: CsvMapping,
    batch_rows: usize,
    row: u64,
    bytes: Arc<AtomicU64>,
    done: bool,
    fatal: Option<String>,
}

impl<R: Read> std::fmt::Debug for CsvImporter<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvImporter")
            .field("row", &self.row)
            .finish()
    }
}

impl<R: Read> CsvImporter<R> {
    /// Reads the header and resolves the mapped columns.
    pub fn new(
        input: R,
        mapping: CsvMapping,
        delimiter: u8,
        batch_rows: usize,
    ) -> Result<Self, CsvError> {
        let bytes = Arc::new(AtomicU64::new(0));
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_reader(Counting {
                inner: input,
                count: bytes.clone(),
            });
        let headers = reader
            .headers()
            .map_err(|e| CsvError::Header(format!("cannot read the header row: {e}")))?
            .clone();
        let names: Vec<&str> = headers.iter().map(str::trim).collect();
        let find = |col: &str| {
            names.iter().position(|h| *h == col).ok_or_else(|| {
                CsvError::Header(format!(
                    "no column {col:?}; the file has: {}",
                    names
                        .iter()
                        .map(|n| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        let ts_index = match &mapping.time {
            RowTime::Column { name, .. } => Some(find(name)?),
            RowTime::Spaced { .. } => None,
        };
        let columns = mapping
            .signals
            .iter()
            .map(|(sig, col)| Ok((sig.clone(), find(col)?)))
            .collect::<Result<Vec<_>, CsvError>>()?;
        Ok(CsvImporter {
            reader,
            ts_index,
            columns,
            mapping,
            batch_rows: batch_rows.max(1),
            row: 0,
            bytes,
            done: false,
            fatal: None,
        })
    }

    /// Bytes of the input read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Data rows read so far.
    pub fn rows_read(&self) -> u64 {
        self.row
    }

    /// Why reading stopped before the end of the input (an I/O error), if it did.
    pub fn fatal_error(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    fn row_ts(&self, record: &csv::ByteRecord) -> Result<i64, String> {
        match (&self.mapping.time, self.ts_index) {
            (RowTime::Spaced { start, interval_ms }, _) => i64::try_from(self.row - 1)
                .ok()
                .and_then(|i| i.checked_mul(*interval_ms))
                .and_then(|offset| start.checked_add(offset))
                .ok_or_else(|| {
                    format!(
                        "--start {start} + {} × --interval {interval_ms} ms does not fit in 64 bits",
                        self.row - 1
                    )
                }),
            (RowTime::Column { name, format }, Some(i)) => {
                let raw = record
                    .get(i)
                    .ok_or_else(|| format!("column {name:?} is missing in this row"))?;
                let s = std::str::from_utf8(raw)
                    .map_err(|_| format!("column {name:?} is not UTF-8"))?
                    .trim();
                match format {
                    TsFormat::Millis => s
                        .parse::<i64>()
                        .map_err(|_| format!("column {name:?}: {s:?} is not whole milliseconds")),
                    TsFormat::Seconds => s
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .map(|v| (v * 1000.0).round() as i64)
                        .ok_or_else(|| {
                            format!("column {name:?}: {s:?} is not a number of seconds")
                        }),
                    TsFormat::Rfc3339 => {
                        parse_timestamp(s).map_err(|e| format!("column {name:?}: {e}"))
                    }
                }
            }
            (RowTime::Column { name, .. }, None) => Err(format!("column {name:?} not resolved")),
        }
    }
}

impl<R: Read> Iterator for CsvImporter<R> {
    type Item = DecodedBatch;

    /// The next batch of at most `batch_rows` rows; `None` at the end of the file.
    fn next(&mut self) -> Option<DecodedBatch> {
        if self.done {
            return None;
        }
        let mut out = DecodedBatch::default();
        let mut series: Vec<RawSeries> = self
            .columns
            .iter()
            .map(|(sig, _)| RawSeries {
                signal: sig.clone(),
                ts: Vec::new(),
                values: Vec::new(),
                location: format!("signal {sig}"),
            })
            .collect();
        let mut record = csv::ByteRecord::new();
        let mut rows = 0;
        while rows < self.batch_rows {
            match self.reader.read_byte_record(&mut record) {
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Ok(true) => {}
                Err(e) => {
                    self.row += 1;
                    rows += 1;
                    out.errors.push(ItemError {
                        location: format!("row {}", self.row),
                        message: e.to_string(),
                    });
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        self.fatal = Some(format!("reading stopped at row {}: {e}", self.row));
                        self.done = true;
                        break;
                    }
                    continue;
                }
            }
            self.row += 1;
            rows += 1;
            let line = record.position().map_or(self.row + 1, |p| p.line());
            let loc = format!("row {} (line {line})", self.row);
            let ts = match self.row_ts(&record) {
                Ok(t) => t,
                Err(message) => {
                    out.errors.push(ItemError {
                        location: loc,
                        message,
                    });
                    continue;
                }
            };
            for (k, (_, idx)) in self.columns.iter().enumerate() {
                let col = &self.mapping.signals[k].1;
                let Some(raw) = record.get(*idx) else {
                    out.errors.push(ItemError {
                        location: format!("{loc}, column {col:?}"),
                        message: format!(
                            "the row has {} fields; the column is number {}",
                            record.len(),
                            idx + 1
                        ),
                    });
                    continue;
                };
                let Ok(s) = std::str::from_utf8(raw) else {
                    out.errors.push(ItemError {
                        location: format!("{loc}, column {col:?}"),
                        message: "not UTF-8".into(),
                    });
                    continue;
                };
                let s = s.trim();
                if s.is_empty() {
                    continue;
                }
                match s.parse::<f64>() {
                    Ok(v) if v.is_finite() => {
                        series[k].ts.push(ts);
                        series[k].values.push(v);
                    }
                    _ => out.errors.push(ItemError {
                        location: format!("{loc}, column {col:?}"),
                        message: format!("{s:?} is not a finite number"),
                    }),
                }
            }
        }
        if rows == 0 {
            return None;
        }
        out.series = series
            .into_iter()
            .filter(|s| !s.values.is_empty())
            .collect();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(specs: &[&str]) -> Result<CsvMapping, CsvError> {
        let specs: Vec<String> = specs.iter().map(|s| (*s).to_owned()).collect();
        CsvMapping::parse(&specs, Some("s/a/l/m"), TsFormat::Rfc3339, None)
    }

    #[test]
    fn imports_rows_and_reports_broken_ones() {
        let csv = "UDI,time,Air temperature [K],Torque [Nm]\n\
                   1,2026-01-01T00:00:00Z,298.1,42.8\n\
                   2,2026-01-01T00:00:01Z,abc,46.3\n\
                   3,not-a-time,298.2,40.0\n\
                   4,2026-01-01T00:00:03Z,,39.5\n\
                   5,2026-01-01T00:00:04Z\n\
                   6,2026-01-01T00:00:05Z,NaN,1\n";
        let m = mapping(&[
            "ts=time",
            "air_temp=Air temperature [K]",
            "s/a/l/m/torque=Torque [Nm]",
        ])
        .expect("valid");
        let mut imp = CsvImporter::new(csv.as_bytes(), m, b',', 2).expect("header");
        let batches: Vec<DecodedBatch> = imp.by_ref().collect();
        assert_eq!(batches.len(), 3);
        let all_series: Vec<&RawSeries> = batches.iter().flat_map(|b| &b.series).collect();
        let count = |sig: &str| {
            all_series
                .iter()
                .filter(|s| s.signal == sig)
                .map(|s| s.values.len())
                .sum::<usize>()
        };
        assert_eq!(count("s/a/l/m/air_temp"), 1);
        assert_eq!(count("s/a/l/m/torque"), 4);
        let errors: Vec<&ItemError> = batches.iter().flat_map(|b| &b.errors).collect();
        let locs: Vec<&str> = errors.iter().map(|e| e.location.as_str()).collect();
        assert!(
            locs[0].starts_with("row 2") && locs[0].contains("Air temperature"),
            "{locs:?}"
        );
        assert!(errors[0].message.contains("\"abc\""));
        assert!(
            locs[1].starts_with("row 3") && errors[1].message.contains("cannot parse timestamp"),
            "{errors:?}"
        );
        assert!(locs[2].starts_with("row 5"), "{locs:?}");
        assert!(
            locs[4].starts_with("row 6") && errors[4].message.contains("NaN"),
            "{errors:?}"
        );
        assert_eq!(imp.rows_read(), 6);
        assert_eq!(imp.bytes_read(), csv.len() as u64);
    }

    #[test]
    fn mapping_errors_are_precise() {
        assert!(
            mapping(&["air_temp"])
                .unwrap_err()
                .to_string()
                .contains("expected <signal>=<column>")
        );
        assert!(
            mapping(&["ts=time"])
                .unwrap_err()
                .to_string()
                .contains("at least one")
        );
        assert!(
            mapping(&["x=a"])
                .unwrap_err()
                .to_string()
                .contains("--map ts=")
        );
        assert!(mapping(&["ts=t", "bad name=a"]).is_err());
        let no_machine =
            CsvMapping::parse(&["ts=t".into(), "x=a".into()], None, TsFormat::Millis, None);
        assert!(no_machine.unwrap_err().to_string().contains("--machine"));
        let m = mapping(&["ts=time", "x=nope"]).expect("valid");
        let err = CsvImporter::new("time,a\n".as_bytes(), m, b',', 10).unwrap_err();
        assert!(
            err.to_string().contains("no column \"nope\"") && err.to_string().contains("\"a\""),
            "{err}"
        );
    }

    #[test]
    fn spaced_rows_without_a_ts_column() {
        let specs = vec!["x=a".to_owned()];
        let m = CsvMapping::parse(&specs, Some("s/a/l/m"), TsFormat::Millis, Some((1000, 500)))
            .expect("valid");
        let b: Vec<DecodedBatch> = CsvImporter::new("a\n1\n2\n3\n".as_bytes(), m, b',', 100)
            .expect("ok")
            .collect();
        assert_eq!(b[0].series[0].ts, vec![1000, 1500, 2000]);
    }
}

#[cfg(test)]
mod regression_tests {
    use super::*;

    /// Found by the csv_import fuzz target: a huge --start or --interval made the spaced
    /// timestamp overflow (a panic in debug builds, a wrapped, wrong timestamp in release). The
    /// fuzzer's input is fuzz/corpus/csv_import/regression-spaced-overflow.
    #[test]
    fn spaced_timestamps_that_overflow_are_row_errors() {
        let specs = vec!["x=a".to_owned()];
        let start = i64::MAX - 1_000;
        let m = CsvMapping::parse(
            &specs,
            Some("s/a/l/m"),
            TsFormat::Millis,
            Some((start, 600)),
        )
        .expect("valid");
        let b: Vec<DecodedBatch> = CsvImporter::new("a\n1\n2\n3\n".as_bytes(), m, b',', 100)
            .expect("header")
            .collect();
        assert_eq!(b[0].series[0].ts, vec![start, start + 600]);
        assert_eq!(b[0].errors.len(), 1, "{:?}", b[0].errors);
        assert!(b[0].errors[0].location.starts_with("row 3"));
        assert!(
            b[0].errors[0].message.contains("does not fit"),
            "{:?}",
            b[0].errors
        );
    }
}

#[cfg(test)]
mod io_error_tests {
    use super::*;

    /// A reader that fails after its first bytes, like a file on a dying disk.
    struct Failing(&'static [u8]);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = self.0.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn an_io_error_stops_the_import_and_is_reported() {
        let specs = vec!["x=a".to_owned()];
        let m = CsvMapping::parse(&specs, Some("s/a/l/m"), TsFormat::Millis, Some((0, 1)))
            .expect("valid");
        let mut imp = CsvImporter::new(Failing(b"a\n1\n2\n"), m, b',', 100).expect("header");
        let batches: Vec<DecodedBatch> = imp.by_ref().collect();
        assert_eq!(
            batches
                .iter()
                .map(DecodedBatch::sample_count)
                .sum::<usize>(),
            2
        );
        assert!(
            imp.fatal_error()
                .is_some_and(|e| e.contains("disk on fire")),
            "{:?}",
            imp.fatal_error()
        );
    }
}

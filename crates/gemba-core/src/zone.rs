//! Time zones of sites and the local calendar of reports.
//!
//! A site's `timezone` is an IANA name (`Europe/Berlin`, `Asia/Shanghai`) resolved against the
//! time-zone database that `jiff` bundles into the binary (feature `tzdb-bundle-always`): no file
//! under `/usr/share/zoneinfo` is read, so a minimal container, CI and a plant PC compute the same
//! shifts, and this crate still does no IO. A site without a time zone is in UTC.
//!
//! Reports are made of local calendar units turned into UTC instants: a day is `[local midnight,
//! next local midnight)` (23 or 25 hours on daylight-saving days), a month likewise, and a daily
//! window `HH:MM`–`HH:MM` (a shift, a break, a tariff band) starts on each local day when the wall
//! clock first reads its start and ends when the wall clock first reads its end. *First reads T or
//! later*: a time skipped by a spring-forward gap maps to the instant of the jump, a time repeated
//! by a fall-back fold to its first occurrence. That mapping never runs backwards, so windows that
//! are adjacent on the wall clock stay adjacent, never overlap and never leave a hole: a night
//! shift 22:00–06:00 in Europe/Berlin lasts 7 h on the spring-forward night and 9 h on the
//! fall-back night.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::Timestamp;

/// The zone of a site that names none.
pub const DEFAULT_ZONE: &str = "UTC";

const HOUR_MS: i64 = 3_600_000;
/// Calendar arithmetic is done between 0001-01-01 and 9000-01-01 UTC; timestamps outside are
/// clamped (Gemba stores nothing before 1990).
const MIN_MS: i64 = -62_135_596_800_000;
const MAX_MS: i64 = 221_845_392_000_000;

/// A name that is not in the time-zone database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name:?} is not a time zone of the IANA database (write a name such as \"Europe/Berlin\", \"Asia/Shanghai\" or \"UTC\")"
)]
pub struct UnknownZone {
    pub name: String,
}

/// A time zone with its IANA name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Default for Zone {
    fn default() -> Self {
        Zone::utc()
    }
}

/// One occurrence of a daily window: the window's index, the local date it starts on and the
/// instants `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub window: usize,
    pub date: Date,
    pub start: Timestamp,
    pub end: Timestamp,
}

fn next_day(d: Date) -> Date {
    d.tomorrow().unwrap_or(d)
}

fn prev_day(d: Date) -> Date {
    d.yesterday().unwrap_or(d)
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            name: DEFAULT_ZONE.into(),
            tz: TimeZone::UTC,
        }
    }

    /// Looks an IANA name up in the bundled database (case-insensitively; the name keeps the
    /// database's spelling).
    pub fn parse(name: &str) -> Result<Zone, UnknownZone> {
        let unknown = || UnknownZone {
            name: name.to_owned(),
        };
        // Only database names: jiff's `get` would also take nothing else, but be explicit that
        // POSIX TZ strings and offsets are not zones of a site.
        if name.is_empty() || name.len() > 64 {
            return Err(unknown());
        }
        let tz = TimeZone::get(name).map_err(|_| unknown())?;
        let name = tz.iana_name().unwrap_or(name).to_owned();
        Ok(Zone { name, tz })
    }

    /// The zone of an optional name: UTC when absent.
    pub fn of(name: Option<&str>) -> Result<Zone, UnknownZone> {
        name.map_or_else(|| Ok(Zone::utc()), Zone::parse)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn instant(ts: Timestamp) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(ts.clamp(MIN_MS, MAX_MS))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// The local date and time at `ts`.
    pub fn datetime(&self, ts: Timestamp) -> DateTime {
        self.tz.to_datetime(Self::instant(ts))
    }

    /// The local date at `ts`.
    pub fn date_of(&self, ts: Timestamp) -> Date {
        self.datetime(ts).date()
    }

    /// The offset from UTC at `ts` in seconds.
    pub fn offset_s(&self, ts: Timestamp) -> i32 {
        self.tz.to_offset(Self::instant(ts)).seconds()
    }

    /// The first instant at which the wall clock reads `dt` or later (see the module docs).
    pub fn first_at(&self, dt: DateTime) -> Timestamp {
        let amb = self.tz.to_ambiguous_timestamp(dt);
        let ts = match amb.offset() {
            AmbiguousOffset::Unambiguous { offset }
            | AmbiguousOffset::Fold { before: offset, .. } => offset.to_timestamp(dt),
            AmbiguousOffset::Gap { after, .. } => {
                // The instant of the jump: the first transition after the gap's earlier reading.
                after.to_timestamp(dt).map(|early| {
                    self.tz
                        .following(early)
                        .next()
                        .map_or(early, |t| t.timestamp())
                })
            }
        };
        ts.map_or_else(
            |_| {
                if dt.date().year() < 1970 {
                    MIN_MS
                } else {
                    MAX_MS
                }
            },
            jiff::Timestamp::as_millisecond,
        )
    }

    /// The first instant at which the wall clock of `date` reads `minute` minutes after
    /// midnight (`minute` 0..1440; 1440 is the next midnight).
    pub fn at(&self, date: Date, minute: u32) -> Timestamp {
        let (date, minute) = if minute >= 1440 {
            (next_day(date), minute - 1440)
        } else {
            (date, minute)
        };
        let (h, m) = ((minute / 60) as i8, (minute % 60) as i8);
        self.first_at(date.at(h, m, 0, 0))
    }

    /// The start of the local day `date`.
    pub fn day_start(&self, date: Date) -> Timestamp {
        self.at(date, 0)
    }

    /// The local day holding `ts`: its date and `[start, end)`.
    pub fn day(&self, ts: Timestamp) -> (Date, Timestamp, Timestamp) {
        let d = self.date_of(ts);
        (d, self.day_start(d), self.day_start(next_day(d)))
    }

    /// The local month holding `ts`: its first day and `[start, end)`.
    pub fn month(&self, ts: Timestamp) -> (Date, Timestamp, Timestamp) {
        let first = self.date_of(ts).first_of_month();
        let next = first.last_of_month().tomorrow().unwrap_or(first);
        (first, self.day_start(first), self.day_start(next))
    }

    /// The start of the local clock hour holding `ts` (in a fall-back fold the repeated hour is
    /// an hour of its own).
    pub fn hour_start(&self, ts: Timestamp) -> Timestamp {
        let off = i64::from(self.offset_s(ts)) * 1000;
        (ts + off).div_euclid(HOUR_MS) * HOUR_MS - off
    }

    /// The starts of the local clock hours in `[from, to)`, `from` first even when it is not on
    /// an hour.
    pub fn hours(&self, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            out.push(t);
            let next = self.hour_start(t + HOUR_MS);
            // An offset change by less than an hour (Lord Howe Island) must not stall the walk.
            t = if next > t { next } else { t + HOUR_MS };
        }
        out
    }

    /// The starts of the local days in `[from, to)`, `from` first.
    pub fn days(&self, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            out.push(t);
            let (_, _, end) = self.day(t);
            t = if end > t { end } else { t + 24 * HOUR_MS };
        }
        out
    }

    /// `ts` as ISO 8601 local time with its offset, e.g. `2026-03-29T03:00:00+02:00`
    /// (milliseconds only when there are any).
    pub fn format(&self, ts: Timestamp) -> String {
        let dt = self.datetime(ts);
        let off = self.offset_s(ts);
        let (sign, a) = if off < 0 { ('-', -off) } else { ('+', off) };
        let ms = ts.rem_euclid(1000);
        let frac = if ms == 0 {
            String::new()
        } else {
            format!(".{ms:03}")
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{sign}{:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            a / 3600,
            a / 60 % 60
        )
    }

    /// One occurrence of a daily window `(start, end)` in minutes after local midnight (`end <=
    /// start` crosses midnight) starting on `date`; `None` when a gap swallows it.
    fn occurrence(&self, window: usize, w: (u32, u32), date: Date) -> Option<Occurrence> {
        let start = self.at(date, w.0);
        let end = if w.1 > w.0 {
            self.at(date, w.1)
        } else {
            self.at(next_day(date), w.1)
        };
        (end > start).then_some(Occurrence {
            window,
            date,
            start,
            end,
        })
    }

    /// Every occurrence of the daily windows that overlaps `[from, to)`, clipped to it, sorted
    /// by start.
    pub fn occurrences(
        &self,
        windows: &[(u32, u32)],
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<Occurrence> {
        let mut out = Vec::new();
        if from >= to {
            return out;
        }
        let last = self.date_of(to);
        let mut d = prev_day(self.date_of(from));
        loop {
            for (i, &w) in windows.iter().enumerate() {
                if let Some(o) = self.occurrence(i, w, d) {
                    let (a, z) = (o.start.max(from), o.end.min(to));
                    if a < z {
                        out.push(Occurrence {
                            start: a,
                            end: z,
                            ..o
                        });
                    }
                }
            }
            let n = next_day(d);
            if d >= last || n == d {
                break;
            }
            d = n;
        }
        out.sort_by_key(|o| (o.start, o.window));
        out.dedup();
        out
    }

    /// The occurrence of a daily window that holds `ts` (unclipped), if any.
    pub fn window_at(&self, windows: &[(u32, u32)], ts: Timestamp) -> Option<Occurrence> {
        let d = self.date_of(ts);
        [prev_day(d), d].into_iter().find_map(|date| {
            windows.iter().enumerate().find_map(|(i, &w)| {
                self.occurrence(i, w, date)
                    .filter(|o| o.start <= ts && ts < o.end)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const H: i64 = HOUR_MS;
    const MINUTE_MS: i64 = 60_000;
    // 2026-03-28T21:00:00Z and 2026-10-24T20:00:00Z: 22:00 in Berlin before each change.
    const MAR_28_21Z: i64 = 1_774_731_600_000;
    const OCT_24_20Z: i64 = 1_792_872_000_000;
    const JUN_01_0Z: i64 = 1_780_272_000_000;

    fn zone(name: &str) -> Zone {
        Zone::parse(name).expect(name)
    }

    /// The database is the bundled one: no file of /usr/share/zoneinfo (or `TZDIR`) is read, so
    /// an install without tzdata computes the same shifts. Fails if a dependency turns on jiff's
    /// `tzdb-zoneinfo` feature.
    #[test]
    fn the_database_is_bundled() {
        assert_eq!(
            format!("{:?}", jiff::tz::db()),
            "TimeZoneDatabase(Bundled(available))"
        );
    }

    #[test]
    fn names_are_checked_against_the_database() {
        assert_eq!(zone("europe/berlin").name(), "Europe/Berlin");
        assert_eq!(Zone::of(None).expect("utc"), Zone::utc());
        for bad in [
            "",
            "Mars/Olympus_Mons",
            "+08:00",
            "EST5EDT,M3.2.0,M11.1.0",
            "../etc/passwd",
        ] {
            let err = Zone::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("IANA"), "{err}");
        }
    }

    /// Daily windows in local wall-clock time: (zone, window, local start date, UTC start, hours).
    #[test]
    fn daily_windows_follow_the_wall_clock() {
        let night = (22 * 60, 6 * 60);
        type Case = (&'static str, (u32, u32), Date, i64, i64);
        let cases: [Case; 6] = [
            // UTC+8 all year: 08:00–16:00 local is 00:00–08:00 UTC.
            (
                "Asia/Shanghai",
                (8 * 60, 16 * 60),
                date(2026, 6, 1),
                JUN_01_0Z,
                8,
            ),
            (
                "UTC",
                (8 * 60, 16 * 60),
                date(2026, 6, 1),
                JUN_01_0Z + 8 * H,
                8,
            ),
            // Berlin night shifts: 8 h normally, 7 h into 29 March, 9 h into 25 October 2026.
            (
                "Europe/Berlin",
                night,
                date(2026, 3, 27),
                MAR_28_21Z - 24 * H,
                8,
            ),
            ("Europe/Berlin", night, date(2026, 3, 28), MAR_28_21Z, 7),
            ("Europe/Berlin", night, date(2026, 10, 24), OCT_24_20Z, 9),
            (
                "Europe/Berlin",
                night,
                date(2026, 10, 25),
                OCT_24_20Z + 25 * H,
                8,
            ),
        ];
        for (name, w, d, start, hours) in cases {
            let z = zone(name);
            let o = z
                .occurrence(0, w, d)
                .unwrap_or_else(|| panic!("{name} {d}"));
            assert_eq!((o.start, o.end - o.start), (start, hours * H), "{name} {d}");
            assert_eq!(z.window_at(&[w], o.end - 1), Some(o), "{name} {d}");
            assert_eq!(z.window_at(&[w], o.start - 1), None, "{name} {d}");
        }
    }

    /// Wall-clock times a gap skips map to the jump, folded times to their first occurrence, so
    /// adjacent windows neither overlap nor leave holes.
    #[test]
    fn gaps_and_folds() {
        let z = zone("Europe/Berlin");
        // 02:30 does not exist on 29 March 2026: the clock jumps 02:00 → 03:00 at 01:00Z.
        assert_eq!(z.at(date(2026, 3, 29), 150), MAR_28_21Z + 4 * H);
        assert_eq!(z.at(date(2026, 3, 29), 180), MAR_28_21Z + 4 * H);
        // 02:30 happens twice on 25 October 2026: first at 00:30Z.
        assert_eq!(
            z.at(date(2026, 10, 25), 150),
            OCT_24_20Z + 4 * H + 30 * MINUTE_MS
        );
        let windows = [(22 * 60, 150), (150, 180), (180, 22 * 60)];
        for from in [MAR_28_21Z - 2 * H, OCT_24_20Z - 2 * H] {
            let occ = z.occurrences(&windows, from, from + 48 * H);
            for pair in occ.windows(2) {
                assert_eq!(pair[0].end, pair[1].start, "{pair:?}");
            }
            assert_eq!(occ.first().map(|o| o.start), Some(from));
            assert_eq!(occ.last().map(|o| o.end), Some(from + 48 * H));
        }
        // On the spring-forward night the 02:30–03:00 window does not happen at all.
        let spring = z.occurrences(&windows, MAR_28_21Z, MAR_28_21Z + 12 * H);
        assert!(!spring.iter().any(|o| o.window == 1), "{spring:?}");
    }

    /// Local days, months and hours: (zone, a time, expected start, expected length).
    #[test]
    fn local_days_months_and_hours() {
        let berlin = zone("Europe/Berlin");
        let days: [(&Zone, i64, i64, i64); 4] = [
            (&berlin, MAR_28_21Z + 3 * H, MAR_28_21Z + 2 * H, 23 * H),
            (&berlin, OCT_24_20Z + 5 * H, OCT_24_20Z + 2 * H, 25 * H),
            (&berlin, JUN_01_0Z, JUN_01_0Z - 2 * H, 24 * H),
            (&Zone::utc(), JUN_01_0Z + H, JUN_01_0Z, 24 * H),
        ];
        for (z, ts, start, len) in days {
            let (_, s, e) = z.day(ts);
            assert_eq!((s, e - s), (start, len), "{} {ts}", z.name());
        }
        // March 2026 in Berlin: 31 days minus the hour of the spring-forward night.
        let (first, s, e) = berlin.month(MAR_28_21Z);
        assert_eq!(first, date(2026, 3, 1));
        assert_eq!(e - s, 31 * 24 * H - H);
        assert_eq!(berlin.format(s), "2026-03-01T00:00:00+01:00");
        assert_eq!(berlin.format(e), "2026-04-01T00:00:00+02:00");
        // The local hours of the fall-back day: 25 of them, 02:00 twice.
        let (_, s, e) = berlin.day(OCT_24_20Z + 5 * H);
        let hours = berlin.hours(s, e);
        assert_eq!(hours.len(), 25);
        let labels: Vec<String> = hours[2..4].iter().map(|&t| berlin.format(t)).collect();
        assert_eq!(
            labels,
            ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
        );
        assert_eq!(berlin.days(s - 24 * H, e).len(), 2);
        // India's half-hour offset: local hours start at :30 UTC.
        let india = zone("Asia/Kolkata");
        assert_eq!(india.hour_start(JUN_01_0Z), JUN_01_0Z - 30 * MINUTE_MS);
        assert_eq!(
            zone("Asia/Shanghai").format(JUN_01_0Z + 1),
            "2026-06-01T08:00:00.001+08:00"
        );
    }
}

//! Statistics of a signal over a trailing time window: the window features of failure prediction
//! (the level, spread and trend of a signal over the last minutes, not only its latest value).
//!
//! A window ending at `now` holds the samples with `now - window < ts <= now`. A statistic needs
//! the signal's data to reach back to the window's start ([`covered`]): the trend of the first
//! seconds after a start is noise, not a 30-minute trend. When the window holds too
//! few for a statistic (a signal sent on change that did not change), the signal is taken as
//! constant at its latest value ([`window_stat_held`]). The same function
//! computes a feature when a training set is cut from history and when a model is scored live
//! ([`Rolling`]), over the samples in the same order, so that a model sees the same numbers in
//! both.

use std::collections::VecDeque;

/// What is computed over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    /// Arithmetic mean.
    Mean,
    /// Sample standard deviation (n − 1); needs two samples.
    Std,
    /// Least-squares slope in units per hour; needs two samples at different times.
    Slope,
    Min,
    Max,
}

impl Stat {
    pub const ALL: [Stat; 5] = [Stat::Mean, Stat::Std, Stat::Slope, Stat::Min, Stat::Max];

    pub fn name(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::Std => "std",
            Stat::Slope => "slope",
            Stat::Min => "min",
            Stat::Max => "max",
        }
    }

    pub fn parse(s: &str) -> Option<Stat> {
        Stat::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// `stat` over `samples` (timestamps in ms, ascending; the caller has cut them to the window).
/// `None` when there are too few samples (none; one for `std` and `slope`) or the times do not
/// spread (`slope`).
pub fn window_stat(stat: Stat, samples: &[(i64, f64)]) -> Option<f64> {
    let n = samples.len();
    if n == 0 || (n < 2 && matches!(stat, Stat::Std | Stat::Slope)) {
        return None;
    }
    let mean = || samples.iter().map(|s| s.1).sum::<f64>() / n as f64;
    match stat {
        Stat::Mean => Some(mean()),
        Stat::Std => {
            let m = mean();
            let ss: f64 = samples.iter().map(|s| (s.1 - m).powi(2)).sum();
            Some((ss / (n - 1) as f64).sqrt())
        }
        Stat::Slope => {
            // Times in hours from the newest sample keep the sums small.
            let t0 = samples[n - 1].0;
            let th = |t: i64| (t - t0) as f64 / 3_600_000.0;
            let tm = samples.iter().map(|s| th(s.0)).sum::<f64>() / n as f64;
            let vm = mean();
            let (mut sxy, mut sxx) = (0.0, 0.0);
            for s in samples {
                let dt = th(s.0) - tm;
                sxy += dt * (s.1 - vm);
                sxx += dt * dt;
            }
            (sxx > 0.0).then(|| sxy / sxx)
        }
        Stat::Min => samples.iter().map(|s| s.1).min_by(f64::total_cmp),
        Stat::Max => samples.iter().map(|s| s.1).max_by(f64::total_cmp),
    }
}

/// Whether a signal whose first known sample is at `first` covers the window of `window_ms`
/// ending at `now`: data from at or before the window's start.
pub fn covered(first: Option<i64>, window_ms: i64, now: i64) -> bool {
    first.is_some_and(|f| f <= now - window_ms)
}

/// [`window_stat`], or, when the window holds too few samples for it, the signal taken as constant
/// at `held` (its latest value at or before the window's end): `held` for mean, min and max, 0 for
/// std and slope. `None` only without a value at all.
pub fn window_stat_held(stat: Stat, samples: &[(i64, f64)], held: Option<f64>) -> Option<f64> {
    window_stat(stat, samples).or_else(|| {
        let h = held?;
        Some(match stat {
            Stat::Mean | Stat::Min | Stat::Max => h,
            Stat::Std | Stat::Slope => 0.0,
        })
    })
}

/// The samples of one signal in the trailing window, fed as they arrive (live scoring).
#[derive(Debug, Clone)]
pub struct Rolling {
    window_ms: i64,
    buf: VecDeque<(i64, f64)>,
    /// The latest sample, kept when the window has moved past it.
    last: Option<(i64, f64)>,
    /// The time of the first sample (see [`covered`]).
    first: Option<i64>,
}

impl Rolling {
    /// Keeps the last `window_ms` (the longest window any feature of the signal asks for).
    pub fn new(window_ms: i64) -> Rolling {
        Rolling {
            window_ms: window_ms.max(1),
            buf: VecDeque::new(),
            last: None,
            first: None,
        }
    }

    /// Adds a sample; non-finite values and samples older than the newest are ignored.
    pub fn push(&mut self, ts: i64, v: f64) {
        if !v.is_finite() || self.last.is_some_and(|b| b.0 > ts) {
            return;
        }
        self.buf.push_back((ts, v));
        self.last = Some((ts, v));
        self.first.get_or_insert(ts);
        self.evict(ts);
    }

    fn evict(&mut self, now: i64) {
        while self
            .buf
            .front()
            .is_some_and(|f| f.0 <= now - self.window_ms)
        {
            self.buf.pop_front();
        }
    }

    /// The longest window kept.
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// [`window_stat_held`] over the window of `window_ms` (at most the one given to `new`)
    /// ending at `now` (not before the latest sample); `None` until the samples pushed reach back
    /// to the window's start ([`covered`]).
    pub fn stat(&mut self, stat: Stat, window_ms: i64, now: i64) -> Option<f64> {
        if !covered(self.first, window_ms, now) {
            return None;
        }
        self.evict(now);
        let held = self.last.filter(|l| l.0 <= now).map(|l| l.1);
        window_stat_held(
            stat,
            in_window(self.buf.make_contiguous(), window_ms, now),
            held,
        )
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// [`window_stat_held`] over a stored series (ascending; from before the window when there is
/// data there), with the same [`covered`] rule as [`Rolling::stat`].
pub fn series_stat(
    stat: Stat,
    series: &[(i64, f64)],
    window_ms: i64,
    now: i64,
    held: Option<f64>,
) -> Option<f64> {
    if !covered(series.first().map(|s| s.0), window_ms, now) {
        return None;
    }
    window_stat_held(stat, in_window(series, window_ms, now), held)
}

/// The samples of `series` (ascending) in the window of `window_ms` ending at `now`.
pub fn in_window(series: &[(i64, f64)], window_ms: i64, now: i64) -> &[(i64, f64)] {
    let start = series.partition_point(|s| s.0 <= now - window_ms);
    let end = series.partition_point(|s| s.0 <= now);
    &series[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_values() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sample standard deviation sqrt(32/7).
        let s: Vec<(i64, f64)> = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 * 60_000, v))
            .collect();
        assert_eq!(window_stat(Stat::Mean, &s), Some(5.0));
        let sd = window_stat(Stat::Std, &s).unwrap();
        assert!((sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(window_stat(Stat::Min, &s), Some(2.0));
        assert_eq!(window_stat(Stat::Max, &s), Some(9.0));
        // A line rising 3 units every 10 minutes: slope 18 per hour, whatever the offset.
        let line: Vec<(i64, f64)> = (0..20)
            .map(|i| (1_795_000_000_000 + i * 600_000, 7.0 + 3.0 * i as f64))
            .collect();
        assert!((window_stat(Stat::Slope, &line).unwrap() - 18.0).abs() < 1e-9);
        assert_eq!(window_stat(Stat::Slope, &line[..1]), None);
        assert_eq!(window_stat(Stat::Std, &line[..1]), None);
        assert_eq!(window_stat(Stat::Mean, &[]), None);
    }

    #[test]
    fn rolling_matches_the_cut_series() {
        // Every second, with a gap of five minutes in the middle (the window empties).
        let series: Vec<(i64, f64)> = (0..500)
            .map(|i| {
                let gap = if i >= 250 { 300_000 } else { 0 };
                (i * 1000 + (i % 7) * 13 + gap, ((i * 37) % 101) as f64 * 0.5)
            })
            .collect();
        let mut live = Rolling::new(120_000);
        for (k, &(ts, v)) in series.iter().enumerate() {
            live.push(ts, v);
            // At the sample, and later with no new sample (in the gap: the window is empty).
            for now in [ts, ts + 150_000] {
                if k + 1 < series.len() && series[k + 1].0 <= now {
                    continue;
                }
                for w in [30_000, 120_000] {
                    for stat in Stat::ALL {
                        let cut = series_stat(stat, &series, w, now, Some(v));
                        assert_eq!(live.stat(stat, w, now), cut, "{stat:?} {w} at {now}");
                        // Defined once the data reaches back to the window's start.
                        assert_eq!(
                            cut.is_some(),
                            now - w >= series[0].0,
                            "{stat:?} {w} at {now}"
                        );
                    }
                }
            }
        }
        // An empty window: the signal is taken as constant at its latest value.
        assert_eq!(
            live.stat(Stat::Mean, 30_000, 10_000_000),
            Some(series[499].1)
        );
        assert_eq!(live.stat(Stat::Slope, 30_000, 10_000_000), Some(0.0));
        // Only the longest window is kept.
        assert!(live.len() <= 121);
        // Older samples and non-finite values are ignored.
        let n = live.len();
        live.push(0, 1.0);
        live.push(600_000, f64::NAN);
        assert_eq!(live.len(), n);
    }
}

//! Min/max-per-bucket downsampling of a metric history, for charts
//! ([`TrackingStore::get_metric_history_downsampled`](crate::TrackingStore::get_metric_history_downsampled)).
//!
//! The x range `[lo, hi]` (steps or timestamps) is cut into `n` equal buckets; each bucket keeps
//! the value with the smallest and the one with the greatest `value` (NaN left out of the
//! comparison; a bucket of NaN only keeps its first point, so the gap shows). Drawn as a line in
//! x order, that keeps every spike a pixel column holds, which an evenly spaced sample of steps
//! (`get-history-bulk-interval`) misses when the spike falls between two sampled steps.
//! Memory: two points per bucket, whatever the history's length.

use crate::entities::Metric;
use serde::{Deserialize, Serialize};

/// The x coordinate buckets are cut on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryAxis {
    /// The metric's step.
    Step,
    /// The metric's timestamp (ms); also what a relative-time chart needs.
    Timestamp,
}

impl HistoryAxis {
    /// The coordinate of `m` on this axis.
    pub fn of(self, m: &Metric) -> i64 {
        match self {
            HistoryAxis::Step => m.step,
            HistoryAxis::Timestamp => m.timestamp,
        }
    }
}

/// The buckets of one series: feed every point of the range with [`Buckets::push`] (any order),
/// then take the kept points with [`Buckets::finish`].
#[derive(Debug)]
pub struct Buckets {
    axis: HistoryAxis,
    lo: i64,
    width: i128,
    n: usize,
    slots: Vec<Option<Slot>>,
}

#[derive(Debug)]
struct Slot {
    min: Metric,
    max: Metric,
    finite: bool,
}

impl Buckets {
    /// `n` (at least 1) buckets over the inclusive range `[lo, hi]` of `axis`.
    pub fn new(axis: HistoryAxis, lo: i64, hi: i64, n: usize) -> Self {
        let n = n.max(1);
        let hi = hi.max(lo);
        Buckets {
            axis,
            lo,
            width: i128::from(hi) - i128::from(lo) + 1,
            n,
            slots: (0..n).map(|_| None).collect(),
        }
    }

    /// Adds a point; one outside `[lo, hi]` is ignored.
    pub fn push(&mut self, m: Metric) {
        let x = i128::from(self.axis.of(&m)) - i128::from(self.lo);
        if x < 0 || x >= self.width {
            return;
        }
        let i = usize::try_from(x * self.n as i128 / self.width).unwrap_or(self.n - 1);
        let slot = &mut self.slots[i.min(self.n - 1)];
        match slot {
            None => {
                let finite = !m.value.is_nan();
                *slot = Some(Slot {
                    min: m.clone(),
                    max: m,
                    finite,
                });
            }
            Some(s) => {
                if m.value.is_nan() {
                    return;
                }
                if !s.finite {
                    *s = Slot {
                        min: m.clone(),
                        max: m,
                        finite: true,
                    };
                } else if m.value < s.min.value {
                    s.min = m;
                } else if m.value > s.max.value {
                    s.max = m;
                }
            }
        }
    }

    /// The kept points in x order (then timestamp, then step): per bucket its minimum and
    /// maximum, once when they are the same point.
    pub fn finish(self) -> Vec<Metric> {
        let axis = self.axis;
        let mut out = Vec::with_capacity(self.n * 2);
        for s in self.slots.into_iter().flatten() {
            let key = |m: &Metric| (axis.of(m), m.timestamp, m.step);
            let (a, b) = if key(&s.max) < key(&s.min) {
                (s.max, s.min)
            } else {
                (s.min, s.max)
            };
            let same = key(&a) == key(&b) && a.value.to_bits() == b.value.to_bits();
            out.push(a);
            if !same {
                out.push(b);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_step_spike_survives_and_output_is_bounded() {
        let mut b = Buckets::new(HistoryAxis::Step, 0, 99_999, 100);
        for step in (0..100_000).rev() {
            let v = if step == 54_321 {
                1e6
            } else {
                (step % 7) as f64
            };
            b.push(Metric::new("k", v, 1000 + step, step));
        }
        let out = b.finish();
        assert!(out.len() <= 200, "{}", out.len());
        assert!(out.iter().any(|m| m.step == 54_321 && m.value == 1e6));
        assert!(out.windows(2).all(|w| w[0].step <= w[1].step));
    }

    #[test]
    fn nan_only_buckets_keep_one_point_and_nan_never_wins() {
        let mut b = Buckets::new(HistoryAxis::Timestamp, 0, 9, 2);
        b.push(Metric::new("k", f64::NAN, 1, 0));
        b.push(Metric::new("k", f64::NAN, 2, 1));
        b.push(Metric::new("k", f64::NAN, 6, 2));
        b.push(Metric::new("k", 3.0, 7, 3));
        b.push(Metric::new("k", 1.0, 8, 4));
        b.push(Metric::new("k", 5.0, 20, 5)); // outside the range
        let out = b.finish();
        let got: Vec<(i64, bool)> = out
            .iter()
            .map(|m| (m.timestamp, m.value.is_nan()))
            .collect();
        assert_eq!(got, vec![(1, true), (7, false), (8, false)]);
    }
}

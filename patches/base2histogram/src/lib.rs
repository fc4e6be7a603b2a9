//! The subset of base2histogram 0.2.3's API that openraft uses, without lookup tables (see
//! README.md). Values are counted in buckets of a quarter power of two: exact below 4, then 4
//! buckets per power of two (a relative error under 25%, enough for openraft's batch-size and
//! latency statistics).

use std::fmt;
use std::marker::PhantomData;

/// Buckets: 4 exact ones for 0..4, then 4 for each power of two from 2^2 to 2^63.
const BUCKETS: usize = 4 + 62 * 4;

fn bucket_of(v: u64) -> usize {
    if v < 4 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros() as usize; // >= 2
    let sub = ((v >> (msb - 2)) & 3) as usize;
    4 + (msb - 2) * 4 + sub
}

/// The smallest value that falls in bucket `i`.
fn bucket_min(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let msb = (i - 4) / 4 + 2;
    let sub = ((i - 4) % 4) as u64;
    (1u64 << msb) | (sub << (msb - 2))
}

/// A histogram of `u64` values. `T` is the slot label of the original crate; this stand-in
/// keeps one slot and ignores it.
pub struct Histogram<T = ()> {
    counts: Vec<u64>,
    total: u64,
    _slot: PhantomData<T>,
}

impl<T> Clone for Histogram<T> {
    fn clone(&self) -> Self {
        Histogram {
            counts: self.counts.clone(),
            total: self.total,
            _slot: PhantomData,
        }
    }
}

impl<T> PartialEq for Histogram<T> {
    fn eq(&self, other: &Self) -> bool {
        self.total == other.total && self.counts == other.counts
    }
}

impl<T> Eq for Histogram<T> {}

impl<T> fmt::Debug for Histogram<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("stats", &self.percentile_stats())
            .finish()
    }
}

impl<T> Default for Histogram<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Histogram<T> {
    /// An empty histogram; allocates nothing until the first value.
    pub fn new() -> Self {
        Histogram {
            counts: Vec::new(),
            total: 0,
            _slot: PhantomData,
        }
    }

    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    pub fn record_n(&mut self, value: u64, count: u64) {
        if count == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        self.counts[bucket_of(value)] += count;
        self.total += count;
    }

    /// The lower bound of the bucket holding the value at quantile `p` (0.0..=1.0); 0 when
    /// empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_min(i);
            }
        }
        bucket_min(BUCKETS - 1)
    }

    pub fn percentile_stats(&self) -> PercentileStats {
        PercentileStats {
            samples: self.total,
            p0_1: self.percentile(0.001),
            p1: self.percentile(0.01),
            p5: self.percentile(0.05),
            p10: self.percentile(0.10),
            p50: self.percentile(0.50),
            p90: self.percentile(0.90),
            p99: self.percentile(0.99),
            p99_9: self.percentile(0.999),
        }
    }
}

/// Percentile statistics for a histogram (the same fields as base2histogram's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PercentileStats {
    pub samples: u64,
    pub p0_1: u64,
    pub p1: u64,
    pub p5: u64,
    pub p10: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
}

impl fmt::Display for PercentileStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[samples: {}, P0.1: {}, P1: {}, P5: {}, P10: {}, P50: {}, P90: {}, P99: {}, P99.9: {}]",
            self.samples,
            self.p0_1,
            self.p1,
            self.p5,
            self.p10,
            self.p50,
            self.p90,
            self.p99,
            self.p99_9
        )
    }
}

/// Named histograms shown one line each (the original draws bars; a line of percentiles is
/// what zkherd's logs need).
pub struct AsciiChart<T = ()> {
    series: Vec<(String, Histogram<T>)>,
}

impl<T> Default for AsciiChart<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> AsciiChart<T> {
    pub fn new() -> Self {
        AsciiChart { series: Vec::new() }
    }

    pub fn add(mut self, name: &str, hist: Histogram<T>) -> Self {
        self.series.push((name.to_string(), hist));
        self
    }

    pub fn detailed(&self) -> &Self {
        self
    }
}

impl<T> fmt::Display for AsciiChart<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, h) in &self.series {
            writeln!(f, "{name}: {}", h.percentile_stats())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for v in (0..5000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = bucket_of(v);
            assert!(i < BUCKETS, "{v}");
            assert!(bucket_min(i) <= v, "{v} below its bucket {i}");
            if i + 1 < BUCKETS {
                assert!(v < bucket_min(i + 1), "{v} past its bucket {i}");
            }
        }
    }

    #[test]
    fn percentiles_fall_in_the_right_bucket() {
        let mut h = Histogram::<()>::new();
        assert_eq!(h.percentile(0.5), 0);
        for v in 1..=1000 {
            h.record(v);
        }
        h.record_n(1_000_000, 10);
        let s = h.percentile_stats();
        assert_eq!(s.samples, 1010);
        assert_eq!(bucket_of(s.p50), bucket_of(505));
        assert_eq!(bucket_of(s.p99_9), bucket_of(1_000_000));
        assert!(s.p1 <= 10);
    }
}

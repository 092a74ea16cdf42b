//! Order statistics of a sample, and ratios of two series paired by repetition.

use std::collections::BTreeMap;

/// Median, p99, min and max of a non-empty sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        // Nearest rank: the smallest value with at least 99 % of the sample at or below it.
        let rank = (n * 99).div_ceil(100).max(1);
        Some(Summary {
            n,
            median,
            p99: v[rank - 1],
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// One series: values grouped by repetition number.
pub type Series = BTreeMap<usize, Vec<f64>>;

/// All values of a series, in repetition order.
pub fn values(series: &Series) -> Vec<f64> {
    series.values().flatten().copied().collect()
}

/// Values of the repetitions whose number is in `range`.
pub fn values_in(series: &Series, range: std::ops::Range<usize>) -> Vec<f64> {
    series
        .range(range)
        .flat_map(|(_, v)| v.iter().copied())
        .collect()
}

/// `a / b` per repetition present in both (each side the median of that repetition's values),
/// summarised: the ratio of two configurations measured side by side, one repetition apart at
/// most, so that drift of a shared machine cancels out.
pub fn paired_ratio(a: &Series, b: &Series) -> Option<Summary> {
    let ratios: Vec<f64> = a
        .iter()
        .filter_map(|(rep, va)| {
            let vb = b.get(rep)?;
            let ma = Summary::of(va)?.median;
            let mb = Summary::of(vb)?.median;
            (mb > 0.0).then_some(ma / mb)
        })
        .collect();
    Summary::of(&ratios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistics() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.p99), (2.5, 1.0, 5.0, 5.0));
        let many: Vec<f64> = (1..=200).map(f64::from).collect();
        let s = Summary::of(&many).unwrap();
        assert_eq!((s.median, s.p99), (100.5, 198.0));
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn ratios_pair_repetitions() {
        let a: Series = [(0, vec![2.0]), (1, vec![4.0]), (2, vec![9.0])].into();
        let b: Series = [(0, vec![1.0]), (1, vec![1.0, 3.0])].into();
        let r = paired_ratio(&a, &b).unwrap();
        assert_eq!((r.n, r.min, r.max), (2, 2.0, 2.0));
    }
}

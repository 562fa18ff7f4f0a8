//! Alternating an engine measurement with its baseline, round by round, and summarising the ratios.

use crate::timing::{Timing, mb_per_s};

/// An engine measurement and its baseline taken in alternation by [`paired`], round by round, so that both
/// see the same machine: on a shared machine the load changes between two criterion runs of a few seconds,
/// while the ratio of neighbouring rounds stays meaningful.
#[derive(Clone, Debug, Default)]
pub struct Paired {
    /// Engine wall-clock MB/s of every round.
    pub engine: Vec<f64>,
    /// Baseline wall-clock MB/s of every round.
    pub baseline: Vec<f64>,
    /// Engine MB/s per second of calling-thread CPU time, every round.
    pub engine_cpu: Vec<f64>,
    /// Baseline MB/s per second of calling-thread CPU time, every round.
    pub baseline_cpu: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn ratios(engine: &[f64], baseline: &[f64]) -> Vec<f64> {
    engine.iter().zip(baseline).map(|(e, b)| e / b).collect()
}

impl Paired {
    /// Median engine wall-clock MB/s.
    pub fn engine_median(&self) -> f64 {
        median(&self.engine)
    }

    /// Median baseline wall-clock MB/s.
    pub fn baseline_median(&self) -> f64 {
        median(&self.baseline)
    }

    /// Engine over baseline wall-clock MB/s of each round.
    pub fn ratios(&self) -> Vec<f64> {
        ratios(&self.engine, &self.baseline)
    }

    /// Median of the per-round wall-clock ratios.
    pub fn ratio_median(&self) -> f64 {
        median(&self.ratios())
    }

    /// Median of the per-round CPU-time ratios (engine MB per CPU-second over the baseline's).
    pub fn cpu_ratio_median(&self) -> f64 {
        median(&ratios(&self.engine_cpu, &self.baseline_cpu))
    }

    /// Whether every round has CPU times (a closure that returns a zero [`Timing::cpu`], e.g. because the work
    /// ran on other threads, opts out).
    pub fn has_cpu(&self) -> bool {
        self.engine_cpu.iter().chain(&self.baseline_cpu).all(|v| v.is_finite())
    }
}

impl std::fmt::Display for Paired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ratios = self.ratios();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        write!(
            f,
            "engine {:.0} MB/s, baseline {:.0} MB/s (medians of {} rounds); ratio {:.2} (median; rounds {lo:.2}..{hi:.2})",
            self.engine_median(),
            self.baseline_median(),
            ratios.len(),
            self.ratio_median(),
        )?;
        if self.has_cpu() {
            write!(
                f,
                "; per CPU-second: engine {:.0} MB, baseline {:.0} MB, ratio {:.2}",
                median(&self.engine_cpu),
                median(&self.baseline_cpu),
                self.cpu_ratio_median(),
            )?;
        }
        Ok(())
    }
}

/// Runs `rounds` rounds, each timing `engine` and `baseline` once (alternating which goes first); both must move
/// `bytes_per_round` bytes and return the [`Timing`] of doing so.
pub fn paired(
    rounds: usize,
    bytes_per_round: u64,
    mut engine: impl FnMut() -> Timing,
    mut baseline: impl FnMut() -> Timing,
) -> Paired {
    let mut out = Paired::default();
    for round in 0..rounds {
        let (e, b) = if round % 2 == 0 {
            let e = engine();
            (e, baseline())
        } else {
            let b = baseline();
            (engine(), b)
        };
        out.engine.push(mb_per_s(bytes_per_round, e.wall));
        out.baseline.push(mb_per_s(bytes_per_round, b.wall));
        out.engine_cpu.push(mb_per_s(bytes_per_round, e.cpu));
        out.baseline_cpu.push(mb_per_s(bytes_per_round, b.cpu));
    }
    out
}

/// Whether a bench should run its paired rounds: only in a real benchmark run (`cargo bench`), not under
/// `cargo test --benches`, `--profile-time` or `--list`.
pub fn paired_enabled() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time" || a == "--list")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn paired_reports_medians_and_ratios() {
        let mut n = 0u32;
        let ms = |n: u32| Timing { wall: Duration::from_millis(n.into()), cpu: Duration::from_millis(n.into()) };
        let p = paired(
            3,
            1_000_000,
            || {
                n += 1;
                ms(n)
            },
            || ms(1),
        );
        assert_eq!(p.baseline_median(), 1000.0);
        assert_eq!(p.engine_median(), 500.0);
        assert!((p.ratio_median() - 0.5).abs() < 1e-9);
        assert!((p.cpu_ratio_median() - 0.5).abs() < 1e-9);
        assert!(p.to_string().contains("ratio 0.50"), "{p}");
    }
}

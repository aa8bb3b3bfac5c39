//! lmlb's performance goals, checked against a run's records. The bench
//! prints the outcome but does not fail a run on it, because timing depends
//! on the machine.

use crate::report::{Measurement, Record, Table};

/// lmlb's overhead throughput must be at least this multiple of nginx's.
const MIN_THROUGHPUT_VS_NGINX: f64 = 1.0;
const MAX_OVERHEAD_RSS_MB: f64 = 30.0;
const MAX_ADDED_ITL_P99_MS: f64 = 1.0;
const MAX_STREAMING_RSS_MB: f64 = 60.0;
/// lmlb's scheduling latency may exceed the ideal's by at most 5 %.
const MAX_VS_IDEAL: f64 = 1.05;

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub goal: String,
    pub measured: String,
    pub met: bool,
}

/// Checks every goal whose scenario is in `records`.
pub fn evaluate(records: &[Record]) -> Vec<Outcome> {
    let measured: Vec<&Measurement> = records.iter().filter_map(Record::measured).collect();
    let mut outcomes = Vec::new();
    overhead(&measured, &mut outcomes);
    streaming(&measured, &mut outcomes);
    scheduling(&measured, &mut outcomes);
    outcomes
}

fn find<'a>(measured: &[&'a Measurement], scenario: &str, target: &str) -> Option<&'a Measurement> {
    measured
        .iter()
        .copied()
        .find(|m| m.scenario == scenario && m.target == target)
}

fn overhead(measured: &[&Measurement], outcomes: &mut Vec<Outcome>) {
    let Some(lmlb) = find(measured, "overhead", "lmlb") else {
        return;
    };
    if let Some(nginx) = find(measured, "overhead", "nginx") {
        let ratio = lmlb.requests_per_sec / nginx.requests_per_sec;
        outcomes.push(Outcome {
            goal: format!("overhead: req/s at least {MIN_THROUGHPUT_VS_NGINX:.1}x nginx"),
            measured: format!("{ratio:.2}x"),
            met: ratio >= MIN_THROUGHPUT_VS_NGINX,
        });
        outcomes.push(Outcome {
            goal: "overhead: p50 no worse than nginx".to_owned(),
            measured: format!("{:.3} vs {:.3} ms", lmlb.p50_ms, nginx.p50_ms),
            met: lmlb.p50_ms <= nginx.p50_ms,
        });
    }
    if let Some(rss) = lmlb.rss_mb {
        outcomes.push(Outcome {
            goal: format!("overhead: memory under {MAX_OVERHEAD_RSS_MB} MB"),
            measured: format!("{rss:.1} MB"),
            met: rss < MAX_OVERHEAD_RSS_MB,
        });
    }
}

fn streaming(measured: &[&Measurement], outcomes: &mut Vec<Outcome>) {
    let Some(lmlb) = find(measured, "streaming", "lmlb") else {
        return;
    };
    if let Some(added) = lmlb.number("added_itl_p99_ms") {
        outcomes.push(Outcome {
            goal: format!("streaming: added inter-token delay p99 under {MAX_ADDED_ITL_P99_MS} ms"),
            measured: format!("{added:.3} ms"),
            met: added < MAX_ADDED_ITL_P99_MS,
        });
    }
    if let Some(added) = lmlb.number("added_transit_p99_ms") {
        outcomes.push(Outcome {
            goal: format!(
                "streaming: added delay per token p99 under {MAX_ADDED_ITL_P99_MS} ms (by send time)"
            ),
            measured: format!("{added:.3} ms"),
            met: added < MAX_ADDED_ITL_P99_MS,
        });
    }
    if let Some(rss) = lmlb.rss_mb {
        outcomes.push(Outcome {
            goal: format!("streaming: memory under {MAX_STREAMING_RSS_MB} MB"),
            measured: format!("{rss:.1} MB"),
            met: rss < MAX_STREAMING_RSS_MB,
        });
    }
}

fn scheduling(measured: &[&Measurement], outcomes: &mut Vec<Outcome>) {
    let runs = measured
        .iter()
        .filter(|m| m.scenario == "scheduling" && m.target == "lmlb");
    for lmlb in runs {
        let load = lmlb.load_percent.unwrap_or_default();
        let checks = [
            ("mean_vs_ideal", "mean", "ideal"),
            ("p99_vs_ideal", "p99", "ideal"),
            ("mean_vs_calibrated", "mean", "calibrated ideal"),
            ("p99_vs_calibrated", "p99", "calibrated ideal"),
        ];
        for (key, statistic, reference) in checks {
            let Some(ratio) = lmlb.number(key) else {
                continue;
            };
            outcomes.push(Outcome {
                goal: format!("scheduling {load:.0} %: {statistic} within 5 % of {reference}"),
                measured: format!("{ratio:.3}x"),
                met: ratio <= MAX_VS_IDEAL,
            });
        }
    }
}

pub fn print(outcomes: &[Outcome], quick: bool) {
    if outcomes.is_empty() {
        return;
    }
    let mut table = Table::new(&["goal", "measured", "met"]);
    for outcome in outcomes {
        let met = if outcome.met { "yes" } else { "no" };
        table.row(vec![
            outcome.goal.clone(),
            outcome.measured.clone(),
            met.to_owned(),
        ]);
    }
    let note = if quick {
        " (--quick: not for comparison)"
    } else {
        ""
    };
    println!("\nGoals{note}\n");
    print!("{}", table.render());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(scenario: &'static str, target: &str, rps: f64, p50: f64) -> Measurement {
        Measurement {
            scenario,
            target: target.to_owned(),
            load_percent: None,
            requests: 1,
            requests_per_sec: rps,
            mean_ms: p50,
            p50_ms: p50,
            p99_ms: p50,
            errors: 0,
            rss_mb: Some(10.0),
            cpu_percent: Some(50.0),
            extra: Default::default(),
        }
    }

    #[test]
    fn overhead_goals_compare_with_nginx() {
        let records = vec![
            Record::Measured(measurement("overhead", "lmlb", 900.0, 1.0)),
            Record::Measured(measurement("overhead", "nginx", 1000.0, 2.0)),
        ];

        let outcomes = evaluate(&records);

        assert_eq!(outcomes.len(), 3);
        assert_eq!(outcomes[0].measured, "0.90x");
        assert!(!outcomes[0].met);
        assert!(outcomes[1].met);
        assert!(outcomes[2].met);
    }

    #[test]
    fn scheduling_goal_per_load_and_statistic() {
        let mut lmlb = measurement("scheduling", "lmlb", 1.0, 1.0);
        lmlb.load_percent = Some(90.0);
        lmlb.set("mean_vs_ideal", 1.04);
        lmlb.set("p99_vs_ideal", 1.2);

        let outcomes = evaluate(&[Record::Measured(lmlb)]);

        assert_eq!(outcomes.len(), 2);
        assert!(outcomes[0].met);
        assert!(!outcomes[1].met);
        assert!(outcomes[1].goal.contains("90 %"));
    }

    #[test]
    fn missing_scenarios_give_no_goals() {
        let records = vec![Record::skipped("overhead", "litellm", "not installed")];
        assert!(evaluate(&records).is_empty());
    }
}

//! Results: one record per target (and per load in the scheduling scenario),
//! printed as aligned tables and written as JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::BenchError;
use crate::usage::Usage;

/// Measurements of one target in one scenario. Latencies are in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub scenario: &'static str,
    pub target: String,
    /// Offered load in percent of capacity (scheduling only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_percent: Option<f64>,
    /// Requests that completed and count in the statistics.
    pub requests: u64,
    pub requests_per_sec: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// Peak resident memory of the proxy's processes, or `None` for `direct`
    /// and the ideal, which have no proxy.
    pub rss_mb: Option<f64>,
    /// CPU of the proxy's processes in percent of one core.
    pub cpu_percent: Option<f64>,
    /// Scenario-specific fields.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Measurement {
    pub fn set_usage(&mut self, usage: Option<Usage>) {
        self.rss_mb = usage.map(|u| u.peak_rss_mb);
        self.cpu_percent = usage.map(|u| u.cpu_percent);
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.extra.insert(key.to_owned(), value.into());
    }

    pub fn number(&self, key: &str) -> Option<f64> {
        self.extra.get(key).and_then(Value::as_f64)
    }
}

/// A target that did not run, with the reason.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub scenario: &'static str,
    pub target: String,
    pub skipped: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Record {
    Measured(Measurement),
    Skipped(Skipped),
}

impl Record {
    pub fn skipped(scenario: &'static str, target: &str, reason: impl Into<String>) -> Self {
        Record::Skipped(Skipped {
            scenario,
            target: target.to_owned(),
            skipped: reason.into(),
        })
    }

    pub fn measured(&self) -> Option<&Measurement> {
        match self {
            Record::Measured(m) => Some(m),
            Record::Skipped(_) => None,
        }
    }
}

/// Writes every record as one JSON array, pretty-printed.
pub fn write_json(path: &Path, records: &[Record]) -> Result<(), BenchError> {
    let text = serde_json::to_string_pretty(records).expect("records always serialize");
    std::fs::write(path, text + "\n")
        .map_err(|e| BenchError::io(format!("failed to write {}", path.display()), e))
}

/// A text table with a header row. The first column is left-aligned and the
/// others right-aligned.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Row>,
}

#[derive(Debug)]
enum Row {
    Cells(Vec<String>),
    /// A first cell and a text that runs past the columns without widening
    /// them, such as the reason a target was skipped.
    Note(String, String),
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(Row::Cells(cells));
    }

    /// Adds a row of `first` and a `text` that does not widen the columns.
    pub fn note(&mut self, first: String, text: String) {
        self.rows.push(Row::Note(first, text));
    }

    pub fn render(&self) -> String {
        let widths = self.column_widths();
        let mut out = String::new();
        out.push_str(&render_row(&self.header, &widths));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&render_row(&rule, &widths));
        for row in &self.rows {
            match row {
                Row::Cells(cells) => out.push_str(&render_row(cells, &widths)),
                Row::Note(first, text) => {
                    let width = widths[0];
                    out.push_str(&format!("{first:<width$}  {text}\n"));
                }
            }
        }
        out
    }

    fn column_widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            let cells = match row {
                Row::Cells(cells) => &cells[..],
                Row::Note(first, _) => std::slice::from_ref(first),
            };
            for (width, cell) in widths.iter_mut().zip(cells) {
                *width = (*width).max(cell.chars().count());
            }
        }
        widths
    }
}

fn render_row(cells: &[String], widths: &[usize]) -> String {
    let padded: Vec<String> = cells
        .iter()
        .zip(widths)
        .enumerate()
        .map(|(column, (cell, &width))| {
            if column == 0 {
                format!("{cell:<width$}")
            } else {
                format!("{cell:>width$}")
            }
        })
        .collect();
    padded.join("  ").trim_end().to_owned() + "\n"
}

/// Formats with `decimals` digits, or `-` when there is no value.
pub fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement() -> Measurement {
        Measurement {
            scenario: "overhead",
            target: "lmlb".to_owned(),
            load_percent: None,
            requests: 10,
            requests_per_sec: 5.0,
            mean_ms: 1.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            errors: 0,
            rss_mb: Some(12.5),
            cpu_percent: Some(80.0),
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn json_has_required_fields() {
        let mut m = measurement();
        m.set("ttft_p50_ms", 3.5);
        let json = serde_json::to_value(Record::Measured(m)).unwrap();
        for key in [
            "target",
            "requests_per_sec",
            "p50_ms",
            "p99_ms",
            "errors",
            "rss_mb",
            "cpu_percent",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(json["ttft_p50_ms"], 3.5);
        assert!(json.get("load_percent").is_none());
    }

    #[test]
    fn notes_do_not_widen_columns() {
        let mut table = Table::new(&["target", "req/s"]);
        table.row(vec!["lmlb".to_owned(), "28428".to_owned()]);
        table.note("litellm".to_owned(), "skipped: not installed".to_owned());

        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "target   req/s");
        assert_eq!(lines[2], "lmlb     28428");
        assert_eq!(lines[3], "litellm  skipped: not installed");
    }

    #[test]
    fn skipped_record_names_the_reason() {
        let json =
            serde_json::to_value(Record::skipped("overhead", "litellm", "not installed")).unwrap();
        assert_eq!(json["target"], "litellm");
        assert_eq!(json["skipped"], "not installed");
    }

    #[test]
    fn table_aligns_columns() {
        let mut table = Table::new(&["target", "req/s"]);
        table.row(vec!["direct".to_owned(), "12345.6".to_owned()]);
        table.row(vec!["lmlb".to_owned(), "9.0".to_owned()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "target    req/s");
        assert_eq!(lines[1], "------  -------");
        assert_eq!(lines[2], "direct  12345.6");
        assert_eq!(lines[3], "lmlb        9.0");
    }

    #[test]
    fn empty_cell_is_a_dash() {
        assert_eq!(cell(None, 1), "-");
        assert_eq!(cell(Some(2.346), 2), "2.35");
    }
}

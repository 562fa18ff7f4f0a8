//! Summary tables, verdicts and the per-run `report.md`.

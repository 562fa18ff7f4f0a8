//! Output helpers: plain tables and JSON messages.

use bytes::Bytes;
use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, Table};

use crate::record::ConsumerRecord;

/// A borderless table with a header row; numeric columns (by index) are right-aligned.
pub(crate) fn table(header: &[&str], numeric: &[usize]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(header.iter().copied());
    for col in t.column_iter_mut() {
        col.set_padding((0, 2));
    }
    for &i in numeric {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// Renders a table without trailing spaces, one row per line, ending with a newline.
pub(crate) fn render(table: &Table) -> String {
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn text(b: &Option<Bytes>) -> serde_json::Value {
    match b {
        Some(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
        None => serde_json::Value::Null,
    }
}

/// One message as a JSON object (bytes shown as UTF-8, invalid sequences replaced).
pub(crate) fn record_json(r: &ConsumerRecord) -> String {
    let headers: serde_json::Map<String, serde_json::Value> =
        r.headers.iter().map(|(k, v)| (k.clone(), text(v))).collect();
    serde_json::json!({
        "partition": r.partition,
        "offset": r.offset,
        "timestamp_ms": r.timestamp_ms,
        "key": text(&r.key),
        "value": text(&r.value),
        "headers": headers,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_every_field() {
        let r = ConsumerRecord {
            partition: 1,
            offset: 2,
            timestamp_ms: 3,
            key: None,
            value: Some(Bytes::from_static(b"hi \"there\"")),
            headers: vec![("TAGS".into(), Some(Bytes::from_static(b"red")))],
        };
        let v: serde_json::Value = serde_json::from_str(&record_json(&r)).unwrap();
        assert_eq!(v["partition"], 1);
        assert_eq!(v["offset"], 2);
        assert_eq!(v["key"], serde_json::Value::Null);
        assert_eq!(v["value"], "hi \"there\"");
        assert_eq!(v["headers"]["TAGS"], "red");
    }

    #[test]
    fn tables_have_no_trailing_spaces() {
        let mut t = table(&["A", "LONG HEADER"], &[1]);
        t.add_row(vec!["x", "1"]);
        let s = render(&t);
        assert!(s.lines().all(|l| !l.ends_with(' ')), "{s:?}");
        assert_eq!(s.lines().count(), 2);
    }
}

//! What the messaging layer records (see the table in [`crate::metrics`]).

use metrics::{counter, gauge, histogram};

/// Describes the messaging metrics to the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("janus_timers_pending", "Delayed and timed messages scheduled and not yet delivered");
    describe_histogram!("janus_timer_lateness_seconds", "Delivery time minus due time of delivered timed messages");
    describe_counter!("janus_timers_delivered_total", "Timed messages delivered");
    describe_counter!("janus_timers_cancelled_total", "Timed messages cancelled before they were due");
    describe_counter!("janus_timers_dropped_total", "Timed messages whose topic or partition was gone when due");
    describe_gauge!("janus_leases_inflight", "Messages received and not yet acknowledged (invisible)");
    describe_counter!("janus_retries_total", "Messages sent back for redelivery (nacked or timed out), per group");
    describe_counter!("janus_dead_letters_total", "Messages moved to the dead-letter topic, per group");
    describe_gauge!("janus_transactions_pending", "Transactions prepared and not yet decided (their half messages)");
    describe_counter!(
        "janus_transaction_checks_total",
        "Checks of undecided transactions, by whether a live producer of the group took them (sent=true|false)"
    );
    describe_counter!("janus_transactions_committed_total", "Transactions committed");
    describe_counter!("janus_transactions_rolled_back_total", "Transactions rolled back");
    describe_counter!(
        "janus_transactions_discarded_total",
        "Transactions undecided after their last check, moved to TRANS_CHECK_MAX_TIME_TOPIC"
    );
}

pub(crate) fn set_transactions_pending(n: usize) {
    gauge!("janus_transactions_pending").set(n as f64);
}

pub(crate) fn transaction_check(sent: bool) {
    counter!("janus_transaction_checks_total", "sent" => if sent { "true" } else { "false" }).increment(1);
}

pub(crate) fn transaction_committed() {
    counter!("janus_transactions_committed_total").increment(1);
}

pub(crate) fn transaction_rolled_back() {
    counter!("janus_transactions_rolled_back_total").increment(1);
}

pub(crate) fn transaction_discarded() {
    counter!("janus_transactions_discarded_total").increment(1);
}

pub(crate) fn set_timers_pending(n: u64) {
    gauge!("janus_timers_pending").set(n as f64);
}

pub(crate) fn record_timer_lateness(ms: i64) {
    histogram!("janus_timer_lateness_seconds").record(ms.max(0) as f64 / 1000.0);
}

pub(crate) fn timers_delivered(n: u64) {
    counter!("janus_timers_delivered_total").increment(n);
}

pub(crate) fn timer_cancelled() {
    counter!("janus_timers_cancelled_total").increment(1);
}

pub(crate) fn timers_dropped(n: u64) {
    counter!("janus_timers_dropped_total").increment(n);
}

pub(crate) fn set_leases_inflight(n: usize) {
    gauge!("janus_leases_inflight").set(n as f64);
}

pub(crate) fn retried(group: &str) {
    counter!("janus_retries_total", "group" => group.to_string()).increment(1);
}

pub(crate) fn dead_lettered(group: &str) {
    counter!("janus_dead_letters_total", "group" => group.to_string()).increment(1);
}

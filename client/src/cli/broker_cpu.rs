//! The broker's CPU counter, read from its metrics endpoint: a plain HTTP/1.0 GET of `--metrics` and the
//! Prometheus text format's `process_cpu_seconds_total`, read just before and just after a benchmark's
//! measured phase ([`CpuProbe`]).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The broker's CPU counter (user + system seconds of the broker process).
pub(crate) const CPU_METRIC: &str = "process_cpu_seconds_total";
/// How long one scrape of the metrics endpoint may take, connection included.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest metrics response read.
const SCRAPE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Why the broker's CPU counter could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScrapeError {
    /// The URL is not `http://HOST[:PORT][/PATH]`.
    #[error("invalid metrics URL {url:?}: {why}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Connecting, sending or reading failed.
    #[error("{context} {addr}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// HOST:PORT.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The endpoint did not answer within [`SCRAPE_TIMEOUT`].
    #[error("the metrics endpoint {0} did not answer within {SCRAPE_TIMEOUT:?}")]
    Timeout(String),
    /// The answer is not `HTTP/1.x 200`.
    #[error("the metrics endpoint answered {0:?}")]
    Status(String),
    /// The metrics have no sample of the counter.
    #[error("the metrics have no {CPU_METRIC} (a janusd older than this client?)")]
    Missing,
    /// The counter's sample is not a finite number.
    #[error("{CPU_METRIC} has the value {0:?}, not a finite number")]
    BadValue(String),
    /// The counter is lower after the run than before it.
    #[error("{CPU_METRIC} went down from {before} to {after} during the run (was the broker restarted?)")]
    WentDown {
        /// Before the run.
        before: f64,
        /// After the run.
        after: f64,
    },
}

/// Splits `http://HOST[:PORT][/PATH]` into `HOST:PORT` (port 80 by default) and the path (`/` by default).
pub(crate) fn split_url(url: &str) -> Result<(String, String), ScrapeError> {
    let invalid = |why| ScrapeError::InvalidUrl { url: url.to_string(), why };
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some(_) => return Err(invalid("only http:// is supported")),
        None => return Err(invalid("expected http://HOST:PORT/PATH")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || authority.chars().any(char::is_whitespace) {
        return Err(invalid("expected a host (and port) after http://"));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("the path may not contain spaces or control characters"));
    }
    // A port follows the last ':' unless that ':' is inside an IPv6 literal ("[::1]").
    let has_port = match authority.rsplit_once(':') {
        Some((host, _)) if host.starts_with('[') && !host.ends_with(']') => false,
        Some((_, port)) if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(invalid("the port is not a number"));
        }
        Some(_) => true,
        None => false,
    };
    let addr = if has_port { authority.to_string() } else { format!("{authority}:80") };
    Ok((addr, path.to_string()))
}

/// GETs `url` (plain HTTP/1.0, so the body is neither chunked nor kept alive) and returns the body.
async fn get(url: &str) -> Result<String, ScrapeError> {
    let (addr, path) = split_url(url)?;
    let io = |context| {
        let addr = addr.clone();
        move |source| ScrapeError::Io { context, addr, source }
    };
    let exchange = async {
        let mut stream =
            tokio::net::TcpStream::connect(&addr).await.map_err(io("cannot connect to the metrics endpoint"))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io("sending the metrics request to"))?;
        let mut response = Vec::new();
        (&mut stream)
            .take(SCRAPE_MAX_BYTES)
            .read_to_end(&mut response)
            .await
            .map_err(io("reading the metrics from"))?;
        Ok::<_, ScrapeError>(response)
    };
    let response =
        tokio::time::timeout(SCRAPE_TIMEOUT, exchange).await.map_err(|_| ScrapeError::Timeout(addr.clone()))??;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    let code = status.split_whitespace().nth(1);
    if !status.starts_with("HTTP/1.") || code != Some("200") {
        return Err(ScrapeError::Status(status.chars().take(200).collect()));
    }
    Ok(body.to_string())
}

/// The value of the first sample of the metric `name` in Prometheus text format (labels, if any, are
/// skipped; a timestamp after the value is ignored).
pub(crate) fn parse_metric(text: &str, name: &str) -> Result<f64, ScrapeError> {
    for line in text.lines() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix(name) else { continue };
        let rest = match rest.chars().next() {
            Some('{') => match labels_end(rest) {
                Some(end) => &rest[end..],
                None => continue,
            },
            Some(c) if c == ' ' || c == '\t' => rest,
            // Another metric whose name starts with `name`, or a bare name.
            _ => continue,
        };
        let value = rest.split_whitespace().next().unwrap_or_default();
        return match value.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(ScrapeError::BadValue(value.chars().take(100).collect())),
        };
    }
    Err(ScrapeError::Missing)
}

/// The index just past the `}` closing the label set that `s` starts with (label values are quoted and
/// may contain `}` and escaped quotes); `None` if it is not closed.
fn labels_end(s: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Scrapes the broker's CPU counter from `url`.
async fn broker_cpu(url: &str) -> Result<f64, ScrapeError> {
    parse_metric(&get(url).await?, CPU_METRIC)
}

/// The broker CPU counter read before the measured phase.
pub(crate) struct CpuProbe {
    url: String,
    before: Result<f64, ScrapeError>,
}

impl CpuProbe {
    /// Reads the counter now (call just before the measured phase).
    pub(crate) async fn start(url: &str) -> CpuProbe {
        CpuProbe { url: url.to_string(), before: broker_cpu(url).await }
    }

    /// Reads the counter again (call just after the measured phase) and returns the CPU seconds in between.
    pub(crate) async fn finish(self) -> Result<f64, ScrapeError> {
        let before = self.before?;
        let after = broker_cpu(&self.url).await?;
        if after < before {
            return Err(ScrapeError::WentDown { before, after });
        }
        Ok(after - before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape of janusd: the recorder's metrics, then the process metrics.
    const SCRAPE: &str = "# TYPE janus_topics gauge\njanus_topics 3\n\n\
        # HELP process_cpu_seconds_total_x A decoy whose name starts with the counter's.\n\
        process_cpu_seconds_total_x 99\n\
        # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
        # TYPE process_cpu_seconds_total counter\n\
        process_cpu_seconds_total 12.375\n";

    #[test]
    fn the_cpu_counter_is_parsed() {
        assert_eq!(parse_metric(SCRAPE, CPU_METRIC).unwrap(), 12.375);
        // Labels (with a quoted brace) and a timestamp are skipped.
        let labelled = "process_cpu_seconds_total{job=\"a}\\\"b\"} 4.5 1700000000000\n";
        assert_eq!(parse_metric(labelled, CPU_METRIC).unwrap(), 4.5);
        assert_eq!(parse_metric("process_cpu_seconds_total 1e3", CPU_METRIC).unwrap(), 1000.0);
    }

    #[test]
    fn a_missing_or_bad_counter_is_an_error_not_a_panic() {
        assert!(matches!(parse_metric("", CPU_METRIC), Err(ScrapeError::Missing)));
        assert!(matches!(
            parse_metric("# TYPE process_cpu_seconds_total counter\n", CPU_METRIC),
            Err(ScrapeError::Missing)
        ));
        assert!(matches!(parse_metric("process_cpu_seconds_total_x 1\n", CPU_METRIC), Err(ScrapeError::Missing)));
        assert!(matches!(parse_metric("process_cpu_seconds_total{a=\"1\" 2\n", CPU_METRIC), Err(ScrapeError::Missing)));
        assert!(matches!(parse_metric("process_cpu_seconds_total\n", CPU_METRIC), Err(ScrapeError::Missing)));
        for bad in ["process_cpu_seconds_total abc", "process_cpu_seconds_total NaN", "process_cpu_seconds_total +Inf"]
        {
            assert!(matches!(parse_metric(bad, CPU_METRIC), Err(ScrapeError::BadValue(_))), "{bad}");
        }
        assert!(matches!(parse_metric("process_cpu_seconds_total ", CPU_METRIC), Err(ScrapeError::BadValue(_))));
    }

    #[test]
    fn metrics_urls_are_split() {
        let ok = |u: &str| split_url(u).unwrap();
        assert_eq!(ok("http://127.0.0.1:7071/metrics"), ("127.0.0.1:7071".into(), "/metrics".into()));
        assert_eq!(ok("HTTP://localhost:9/"), ("localhost:9".into(), "/".into()));
        assert_eq!(ok("http://example"), ("example:80".into(), "/".into()));
        assert_eq!(ok("http://[::1]:7071/m?x=1"), ("[::1]:7071".into(), "/m?x=1".into()));
        assert_eq!(ok("http://[::1]/"), ("[::1]:80".into(), "/".into()));
        for bad in [
            "https://h:1/",
            "127.0.0.1:7071",
            "http://",
            "http:///x",
            "http://h:x/",
            "http://h:/",
            "http://u@h/",
            "http://h/a b",
        ] {
            assert!(matches!(split_url(bad), Err(ScrapeError::InvalidUrl { .. })), "{bad}");
        }
    }
}

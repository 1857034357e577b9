//! The scoring server's `GET /metrics` in Prometheus' text format (version 0.0.4): requests by
//! route and status, the latency of `/invocations`, requests per inference call (how well
//! micro-batching merges) and the requests waiting for one.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the batch-size buckets, in requests per inference call.
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A histogram with fixed buckets.
struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += value;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count;
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {cumulative}", self.sum);
    }
}

/// The scoring server's counters; shared by the routes and the batcher.
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<Histogram>,
    batch: Mutex<Histogram>,
    queued: AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            latency: Mutex::new(Histogram::new(LATENCY_BOUNDS)),
            batch: Mutex::new(Histogram::new(BATCH_BOUNDS)),
            queued: AtomicUsize::new(0),
        }
    }
}

impl Metrics {
    /// One answered request on `route` (the matched route, not the raw path).
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((route.to_string(), status)).or_default() += 1;
        drop(requests);
        if route == "/invocations" {
            self.latency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .observe(elapsed.as_secs_f64());
        }
    }

    /// One inference call made for `requests` requests.
    pub fn batch(&self, requests: usize) {
        self.batch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(requests as f64);
    }

    /// `delta` more (or, negative, fewer) requests wait for an inference call.
    pub fn queued(&self, delta: isize) {
        if delta >= 0 {
            self.queued
                .fetch_add(delta.unsigned_abs(), Ordering::SeqCst);
        } else {
            self.queued
                .fetch_sub(delta.unsigned_abs(), Ordering::SeqCst);
        }
    }

    /// The requests waiting for an inference call now.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Everything in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP cairn_models_requests_total Requests answered, by route and HTTP status.\n\
             # TYPE cairn_models_requests_total counter\n",
        );
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let route = route.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "cairn_models_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .render(
                &mut out,
                "cairn_models_request_duration_seconds",
                "Time to answer POST /invocations, in seconds.",
            );
        self.batch.lock().unwrap_or_else(|e| e.into_inner()).render(
            &mut out,
            "cairn_models_batch_requests",
            "Requests answered by one inference call (above 1 when micro-batching merged them).",
        );
        let _ = writeln!(
            out,
            "# HELP cairn_models_queued_requests Requests waiting for an inference call.\n\
             # TYPE cairn_models_queued_requests gauge\ncairn_models_queued_requests {}",
            self.queue_depth()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_with_cumulative_buckets() {
        let m = Metrics::default();
        m.request("/invocations", 200, Duration::from_micros(300));
        m.request("/invocations", 200, Duration::from_millis(3));
        m.request("/invocations", 400, Duration::from_secs(30));
        m.request("/ping", 200, Duration::ZERO);
        m.batch(1);
        m.batch(3);
        m.queued(2);
        m.queued(-1);
        let text = m.render();
        for line in [
            "cairn_models_requests_total{route=\"/invocations\",status=\"200\"} 2",
            "cairn_models_requests_total{route=\"/invocations\",status=\"400\"} 1",
            "cairn_models_requests_total{route=\"/ping\",status=\"200\"} 1",
            "cairn_models_request_duration_seconds_bucket{le=\"0.0005\"} 1",
            "cairn_models_request_duration_seconds_bucket{le=\"0.005\"} 2",
            "cairn_models_request_duration_seconds_bucket{le=\"10\"} 2",
            "cairn_models_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "cairn_models_request_duration_seconds_count 3",
            "cairn_models_batch_requests_bucket{le=\"1\"} 1",
            "cairn_models_batch_requests_bucket{le=\"2\"} 1",
            "cairn_models_batch_requests_bucket{le=\"4\"} 2",
            "cairn_models_batch_requests_sum 4",
            "cairn_models_queued_requests 1",
            "# TYPE cairn_models_batch_requests histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}

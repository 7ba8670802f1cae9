//! An open-loop HTTP load generator for `cascade bench serve`.
//!
//! Request k is due at start + k / rate whether or not earlier ones have
//! answered, and its latency counts from that due time. A closed loop
//! (send, wait, send) slows down with the server and hides queueing — the
//! "coordinated omission" that makes saturated servers look fast. Client
//! threads with keep-alive connections pick the next due request; with
//! enough of them, a slow answer delays no other request's send.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::bench::serving::percentile;
use crate::progress::Progress;

/// One load step.
#[derive(Debug, Clone, Copy)]
pub struct LoadSettings {
    /// Requests per second offered.
    pub rate: f64,
    /// How long the rate is offered.
    pub duration: Duration,
    /// Client threads, each with its own keep-alive connection.
    pub clients: usize,
}

/// What one step measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Latency of every answered request, in milliseconds, from its due time.
    pub latencies_ms: Vec<f64>,
    /// Requests that got no answer or a non-2xx status.
    pub failed: u64,
    /// From the first due time to the last answer.
    pub elapsed: Duration,
    /// The first failure's description, if any.
    pub first_error: Option<String>,
}

impl LoadReport {
    /// Answered requests per second.
    pub fn achieved_rps(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The p-th latency percentile in milliseconds.
    pub fn latency_ms(&self, p: f64) -> f64 {
        percentile(&mut self.latencies_ms.clone(), p)
    }
}

/// POSTs `body(k)` to `url` for k = 0, 1, … at `settings.rate` per second.
pub fn run_load(
    url: &str,
    body: &(dyn Fn(u64) -> String + Sync),
    settings: LoadSettings,
    progress: Progress,
) -> Result<LoadReport> {
    if settings.rate.is_nan() || settings.rate <= 0.0 || settings.clients == 0 {
        bail!("the load needs a positive rate and at least one client");
    }
    let total = (settings.rate * settings.duration.as_secs_f64()).ceil() as u64;
    let interval = Duration::from_secs_f64(1.0 / settings.rate);
    let next = AtomicU64::new(0);
    let latencies = Mutex::new(Vec::with_capacity(total as usize));
    let failures = Mutex::new((0u64, None::<String>));
    let bar = progress.bar(total, &format!("{:.0} req/s", settings.rate), "requests");
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..settings.clients {
            scope.spawn(|| {
                let agent: ureq::Agent =
                    ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let mut mine = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= total {
                        break;
                    }
                    let due = start + interval.mul_f64(k as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let outcome = agent
                        .post(url)
                        .header("content-type", "application/json")
                        .send(body(k).as_str())
                        .map_err(|e| e.to_string())
                        .and_then(|mut response| {
                            let status = response.status();
                            // Read the whole body: the answer is not complete before.
                            let text =
                                response.body_mut().read_to_string().map_err(|e| e.to_string())?;
                            if status.is_success() {
                                Ok(())
                            } else {
                                Err(format!("{status}: {text}"))
                            }
                        });
                    match outcome {
                        Ok(()) => mine.push(due.elapsed().as_secs_f64() * 1e3),
                        Err(e) => {
                            let mut failures = failures.lock();
                            failures.0 += 1;
                            failures.1.get_or_insert(e);
                        }
                    }
                    bar.inc(1);
                }
                latencies.lock().extend(mine);
            });
        }
    });
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let (failed, first_error) = failures.into_inner();
    Ok(LoadReport { latencies_ms: latencies.into_inner(), failed, elapsed, first_error })
}

//! The resile demo: one misbehaving HTTP server, the same traffic sent by a naive client and by
//! resile's client stack, and a report of what each of them did to the server.
//!
//! ```text
//! cargo run -p resile --example demo
//! ```
//!
//! Two copies of the same server run in this process on 127.0.0.1, one per client, on the same
//! timeline: healthy, then rate-limited (`429` with an HTTP-date `Retry-After`), then flaky
//! (bursts of `503` with `Retry-After: 1`), then down (`503` to everything), then healthy again.
//! Each client is asked for the same thing: one `GET` every 20 ms for 18 seconds.
//!
//! - The naive client is a plain hyper-util client in a loop that retries at once, up to three
//!   times, whatever went wrong: the way retries are often written.
//! - The resile client is the same hyper-util client behind `resile::stack::http_client()`:
//!   retry with backoff, server hints and a budget; a circuit breaker; a rate limiter that obeys
//!   the server's `429`s; a per-attempt timeout.
//!
//! No external service, no network beyond loopback; about 20 seconds.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use resile::breaker::{BreakerOpen, ByAuthority, CircuitBreakerLayer, State, Transition};
use resile::classify::clock::Clock;
use resile::classify::{HostKey, RejectedBy, RetryRefused};
use resile::ratelimit::client::WaitTooLong;
use resile::ratelimit::{QueueFull, Quota, RateLimitLayer, ServerPauseLayer};
use resile::retry::{GiveUp, RetryPolicy};
use resile::retry_after::format_http_date;
use resile::telemetry::{AlertEvent, AlertRule, Figures, Report, Telemetry, TelemetryService};
use resile::BoxError;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{Layer, ServiceBuilder, ServiceExt};

/// One request every `TICK` from each client: 50 requests per second.
const TICK: Duration = Duration::from_millis(20);
/// When the clients stop sending new requests.
const END: Duration = Duration::from_secs(18);
/// How long requests still in flight at `END` may take to finish.
const DRAIN: Duration = Duration::from_secs(8);
/// Attempts of the naive client: the first and three immediate retries.
const NAIVE_ATTEMPTS: u32 = 4;
/// The server's quota while it is rate-limited: `WINDOW_QUOTA` requests per window of
/// `WINDOW_SECS` wall-clock seconds (40 req/s, for 50 req/s offered).
const WINDOW_QUOTA: u32 = 80;
const WINDOW_SECS: u64 = 2;
/// The flaky phase: in every `FLAKY_PERIOD`, `503` from `FLAKY_BURST_AT` for `FLAKY_BURST`.
const FLAKY_PERIOD: Duration = Duration::from_millis(1500);
const FLAKY_BURST_AT: Duration = Duration::from_millis(1000);
const FLAKY_BURST: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Healthy,
    RateLimited,
    Flaky,
    Outage,
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    name: &'static str,
    from: Duration,
    kind: Kind,
    what: &'static str,
}

const PHASES: [Phase; 5] = [
    Phase {
        name: "healthy",
        from: Duration::from_secs(0),
        kind: Kind::Healthy,
        what: "every request answered 200",
    },
    Phase {
        name: "rate-limited",
        from: Duration::from_secs(2),
        kind: Kind::RateLimited,
        what: "80 requests per 2 s window, then 429 + Retry-After: its end (HTTP-date)",
    },
    Phase {
        name: "flaky",
        from: Duration::from_secs(6),
        kind: Kind::Flaky,
        what: "a 500 ms burst of 503 + Retry-After: 1 every 1.5 s",
    },
    Phase {
        name: "outage",
        from: Duration::from_secs(10),
        kind: Kind::Outage,
        what: "every request answered 503, no hint",
    },
    Phase {
        name: "recovery",
        from: Duration::from_secs(14),
        kind: Kind::Healthy,
        what: "every request answered 200",
    },
];

fn phase_of(t: Duration) -> usize {
    PHASES.iter().rposition(|p| t >= p.from).unwrap_or(0)
}

fn phase_end(i: usize) -> Duration {
    PHASES.get(i + 1).map_or(END, |p| p.from)
}

// ------------------------------------------------------------------------------------------------
// The misbehaving server.

#[derive(Default)]
struct ServerCounters {
    hits: [AtomicU64; PHASES.len()],
    /// `429`s answered, per phase.
    too_many: [AtomicU64; PHASES.len()],
}

impl ServerCounters {
    fn hits(&self) -> u64 {
        self.hits.iter().map(|h| h.load(Ordering::Relaxed)).sum()
    }

    fn phase_hits(&self, i: usize) -> u64 {
        self.hits[i].load(Ordering::Relaxed)
    }
}

/// The rate-limited phase's quota: a count per fixed window of wall-clock seconds.
#[derive(Default)]
struct Window {
    index: u64,
    count: u32,
}

struct DemoServer {
    addr: SocketAddr,
    counters: Arc<ServerCounters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn response(status: StatusCode) -> Response<Full<Bytes>> {
    let body = if status.is_success() {
        Bytes::from_static(b"ok")
    } else {
        Bytes::new()
    };
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res
}

/// `429` with `Retry-After` set to the end of the current window, as an HTTP-date (and the
/// `Date` it is measured against).
fn too_many_requests(now: SystemTime, window_end: SystemTime) -> Response<Full<Bytes>> {
    let mut res = response(StatusCode::TOO_MANY_REQUESTS);
    let date = format_http_date(now);
    let until = format_http_date(window_end);
    if let (Ok(date), Ok(until)) = (
        HeaderValue::from_str(date.as_str()),
        HeaderValue::from_str(until.as_str()),
    ) {
        res.headers_mut().insert(header::DATE, date);
        res.headers_mut().insert(header::RETRY_AFTER, until);
    }
    res
}

/// What the server answers at `t` into the timeline.
fn answer(t: Duration, window: &Mutex<Window>, counters: &ServerCounters) -> Response<Full<Bytes>> {
    let i = phase_of(t);
    counters.hits[i].fetch_add(1, Ordering::Relaxed);
    match PHASES[i].kind {
        Kind::Healthy => response(StatusCode::OK),
        Kind::RateLimited => {
            let now = SystemTime::now();
            let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let index = secs / WINDOW_SECS;
            let mut w = lock(window);
            if w.index != index {
                *w = Window { index, count: 0 };
            }
            if w.count < WINDOW_QUOTA {
                w.count += 1;
                response(StatusCode::OK)
            } else {
                counters.too_many[i].fetch_add(1, Ordering::Relaxed);
                let end = UNIX_EPOCH + Duration::from_secs((index + 1) * WINDOW_SECS);
                too_many_requests(now, end)
            }
        }
        Kind::Flaky => {
            let into = (t - PHASES[i].from).as_nanos() % FLAKY_PERIOD.as_nanos();
            let burst = FLAKY_BURST_AT.as_nanos()..(FLAKY_BURST_AT + FLAKY_BURST).as_nanos();
            if burst.contains(&into) {
                let mut res = response(StatusCode::SERVICE_UNAVAILABLE);
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                res
            } else {
                response(StatusCode::OK)
            }
        }
        Kind::Outage => response(StatusCode::SERVICE_UNAVAILABLE),
    }
}

async fn start_server(epoch: Instant) -> std::io::Result<DemoServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counters = Arc::new(ServerCounters::default());
    let window = Arc::new(Mutex::new(Window::default()));
    let c = counters.clone();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let _ = stream.set_nodelay(true);
            let (window, counters) = (window.clone(), c.clone());
            connections.spawn(async move {
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let res = answer(epoch.elapsed(), &window, &counters);
                    async move { Ok::<_, Infallible>(res) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(DemoServer {
        addr,
        counters,
        task,
    })
}

// ------------------------------------------------------------------------------------------------
// The clients.

type HyperClient = Client<HttpConnector, Empty<Bytes>>;

fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// How one request of the workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// A 2xx.
    Ok,
    /// An error status or a transport error, after the client's retries.
    Failed,
    /// Refused by the circuit breaker without asking the server.
    Breaker,
    /// Refused by the rate limiter without asking the server.
    Limiter,
    /// Still running when the demo stopped waiting.
    Unfinished,
}

#[derive(Debug, Clone, Copy)]
struct Outcome {
    /// The phase it was sent in.
    phase: usize,
    ended: Ended,
    /// How long the caller waited for it.
    latency: Duration,
}

/// The naive client: retries at once, a fixed number of times, whatever the failure.
async fn naive_get(client: TelemetryService<HyperClient>, uri: Uri) -> Ended {
    for _ in 0..NAIVE_ATTEMPTS {
        let Ok(req) = Request::get(uri.clone()).body(Empty::<Bytes>::new()) else {
            return Ended::Failed;
        };
        if let Ok(res) = client.clone().oneshot(req).await {
            let ok = res.status().is_success();
            let _ = res.into_body().collect().await;
            if ok {
                return Ended::Ok;
            }
        }
    }
    Ended::Failed
}

/// One request through a resile stack.
async fn stack_get<S>(svc: S, uri: Uri) -> Ended
where
    S: tower::Service<Request<Empty<Bytes>>, Response = Response<Incoming>, Error = BoxError>,
{
    let Ok(req) = Request::get(uri).body(Empty::<Bytes>::new()) else {
        return Ended::Failed;
    };
    match svc.oneshot(req).await {
        Ok(res) => {
            let ok = res.status().is_success();
            // The server's answer to an earlier attempt, returned because the retry after it
            // was refused locally: the layer that refused it ended the request.
            let refused = res.extensions().get::<RetryRefused>().map(|r| r.rejection);
            let _ = res.into_body().collect().await;
            match refused.map(|r| r.rejected_by()) {
                _ if ok => Ended::Ok,
                Some(RejectedBy::CircuitBreaker) => Ended::Breaker,
                Some(RejectedBy::RateLimiter) => Ended::Limiter,
                _ => Ended::Failed,
            }
        }
        Err(err) if err.is::<BreakerOpen>() => Ended::Breaker,
        Err(err) if err.is::<WaitTooLong>() || err.is::<QueueFull>() => Ended::Limiter,
        Err(_) => Ended::Failed,
    }
}

/// What the resile client's hooks and the limiter watcher record, with their time into the
/// timeline.
#[derive(Default)]
struct Journal {
    retries: AtomicU64,
    hinted_waits: AtomicU64,
    budget_refusals: AtomicU64,
    transitions: Mutex<Vec<(Duration, Transition)>>,
    pauses: Mutex<Vec<(Duration, Duration)>>,
    /// Alerts raised and cleared: when, which client, what.
    alerts: Mutex<Vec<(Duration, &'static str, AlertEvent)>>,
    /// Each client's telemetry report, taken just before each phase ends.
    phase_reports: Mutex<Vec<(usize, Report, Report)>>,
}

/// The demo's timeline as a telemetry clock, so that telemetry intervals start on the phases'
/// whole seconds.
struct Timeline(Instant);

impl Clock for Timeline {
    fn now(&self) -> u64 {
        resile::classify::clock::nanos(Instant::now().saturating_duration_since(self.0))
    }
}

/// Telemetry per client: 1 s intervals, windows of 2 s and 4 s (the phases' lengths), and the
/// 5xx alert over 2 s.
fn telemetry(epoch: Instant, name: &'static str, journal: &Arc<Journal>) -> Telemetry {
    let j = journal.clone();
    Telemetry::builder()
        .name(name)
        .clock(Timeline(epoch))
        .interval(Duration::from_secs(1))
        .windows([Duration::from_secs(2), Duration::from_secs(4)])
        .no_alerts()
        .alert(AlertRule::server_errors().window(Duration::from_secs(2)))
        .on_alert(move |e| {
            let at = Instant::now().saturating_duration_since(epoch);
            lock(&j.alerts).push((at, name, e.clone()));
        })
        .build()
}

/// Takes both clients' reports 10 ms before each phase ends.
async fn watch_phases(epoch: Instant, naive: Telemetry, resile: Telemetry, journal: Arc<Journal>) {
    for i in 0..PHASES.len() {
        tokio::time::sleep_until(epoch + phase_end(i) - Duration::from_millis(10)).await;
        lock(&journal.phase_reports).push((i, naive.report(), resile.report()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends the workload: one request every `TICK` until `END`, each in its own task, the way
/// independent users would. Returns the outcomes in sending order.
async fn drive<F, Fut>(epoch: Instant, send: F, sent: Arc<AtomicU64>) -> Vec<Outcome>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Ended> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut phases = Vec::new();
    let mut n: u32 = 0;
    while TICK * n < END {
        tokio::time::sleep_until(epoch + TICK * n).await;
        let phase = phase_of(epoch.elapsed());
        phases.push(phase);
        let fut = send();
        tasks.spawn(async move {
            let start = Instant::now();
            let ended = fut.await;
            (n, ended, start.elapsed())
        });
        sent.fetch_add(1, Ordering::Relaxed);
        n += 1;
    }
    let mut outcomes: Vec<Outcome> = phases
        .iter()
        .map(|&phase| Outcome {
            phase,
            ended: Ended::Unfinished,
            latency: DRAIN,
        })
        .collect();
    let deadline = Instant::now() + DRAIN;
    while let Ok(Some(done)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        if let Ok((i, ended, latency)) = done {
            if let Some(o) = outcomes.get_mut(i as usize) {
                o.ended = ended;
                o.latency = latency;
            }
        }
    }
    tasks.abort_all();
    outcomes
}

/// Records the pauses of the stack's limiter (a server's `429`/`503` hint holds the requests to
/// that host back) by watching the limiter's own state for `host`.
async fn watch_limiter(
    epoch: Instant,
    limiter: ServerPauseLayer,
    host: HostKey,
    journal: Arc<Journal>,
) {
    let mut paused_until: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let wait = limiter.remaining(&host);
        let now = Instant::now();
        if wait >= Duration::from_millis(50) {
            let until = now + wait;
            let new = paused_until.is_none_or(|p| until > p + Duration::from_millis(100));
            if new {
                let at = now.saturating_duration_since(epoch);
                lock(&journal.pauses).push((at, wait));
            }
            paused_until = Some(until);
        } else if paused_until.is_some_and(|p| now >= p) {
            paused_until = None;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Progress and report.

fn progress(epoch: Instant, naive: &ServerCounters, resile: &ServerCounters, sent: &AtomicU64) {
    const WIDTH: usize = 36;
    let t = epoch.elapsed().min(END);
    let filled = (t.as_secs_f64() / END.as_secs_f64() * WIDTH as f64) as usize;
    let bar: String = (0..WIDTH)
        .map(|c| {
            let from = END.mul_f64(c as f64 / WIDTH as f64);
            let to = END.mul_f64((c + 1) as f64 / WIDTH as f64);
            let boundary = c > 0 && PHASES.iter().any(|p| p.from >= from && p.from < to);
            match (boundary, c < filled) {
                (true, _) => '|',
                (false, true) => '#',
                (false, false) => '.',
            }
        })
        .collect();
    let phase = PHASES[phase_of(t)].name;
    eprint!(
        "\r  [{bar}] {:>4.1} s  {phase:<12}  requests {:>4}   server hits: naive {:>5}  resile {:>5} ",
        t.as_secs_f64(),
        sent.load(Ordering::Relaxed) / 2,
        naive.hits(),
        resile.hits(),
    );
    let _ = std::io::stderr().flush();
}

struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (n, row) in self.rows.iter().enumerate() {
            let mut line = String::from("  ");
            for (c, w) in widths.iter().enumerate() {
                let cell = row.get(c).map_or("", String::as_str);
                if c == 0 {
                    let _ = write!(line, "{cell:<w$}");
                } else {
                    let _ = write!(line, "   {cell:>w$}");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
            if n == 0 {
                let total: usize = widths.iter().sum::<usize>() + 3 * cols.saturating_sub(1);
                let _ = writeln!(out, "  {}", "-".repeat(total));
            }
        }
    }
}

struct Summary {
    requests: usize,
    ok: usize,
    breaker: usize,
    limiter: usize,
    unfinished: usize,
    hits: u64,
    p50: Duration,
    p99: Duration,
}

impl Summary {
    fn of(outcomes: &[Outcome], server: &ServerCounters) -> Summary {
        let mut lat: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
        lat.sort();
        let pct = |p: f64| -> Duration {
            let i = ((lat.len().saturating_sub(1)) as f64 * p).round() as usize;
            lat.get(i).copied().unwrap_or_default()
        };
        let count = |e: Ended| outcomes.iter().filter(|o| o.ended == e).count();
        Summary {
            requests: outcomes.len(),
            ok: count(Ended::Ok),
            breaker: count(Ended::Breaker),
            limiter: count(Ended::Limiter),
            unfinished: count(Ended::Unfinished),
            hits: server.hits(),
            p50: pct(0.5),
            p99: pct(0.99),
        }
    }

    fn amplification(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.hits as f64 / self.requests as f64
        }
    }
}

fn secs(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else if d >= Duration::from_millis(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Closed => "closed",
        State::Open => "open",
        State::HalfOpen => "half-open",
        _ => "other",
    }
}

struct Run<'a> {
    outcomes: &'a [Outcome],
    server: &'a ServerCounters,
}

fn report(naive: Run<'_>, resile: Run<'_>, journal: &Journal, elapsed: Duration) -> String {
    let n = Summary::of(naive.outcomes, naive.server);
    let r = Summary::of(resile.outcomes, resile.server);
    let mut out = String::new();

    out.push_str("\nTotals\n\n");
    let mut t = Table::new(&["", "naive client", "resile stack"]);
    let both = |a: usize, b: usize| vec![a.to_string(), b.to_string()];
    let mut row = |name: &str, cells: Vec<String>| {
        let mut v = vec![name.to_string()];
        v.extend(cells);
        t.row(v);
    };
    row("requests asked for", both(n.requests, r.requests));
    row("server hits", vec![n.hits.to_string(), r.hits.to_string()]);
    row(
        "amplification (hits per request)",
        vec![
            format!("{:.2}x", n.amplification()),
            format!("{:.2}x", r.amplification()),
        ],
    );
    row("succeeded", both(n.ok, r.ok));
    row("failed", both(n.requests - n.ok, r.requests - r.ok));
    row(
        "  refused by the breaker (no hit)",
        both(n.breaker, r.breaker),
    );
    row(
        "  refused by the limiter (no hit)",
        both(n.limiter, r.limiter),
    );
    if n.unfinished + r.unfinished > 0 {
        row("  unfinished", both(n.unfinished, r.unfinished));
    }
    row(
        "retries sent",
        vec![
            n.hits.saturating_sub(n.requests as u64).to_string(),
            journal.retries.load(Ordering::Relaxed).to_string(),
        ],
    );
    row(
        "retries that waited for the server's hint",
        vec![
            "0".into(),
            journal.hinted_waits.load(Ordering::Relaxed).to_string(),
        ],
    );
    row(
        "retries refused by the budget",
        vec![
            "-".into(),
            journal.budget_refusals.load(Ordering::Relaxed).to_string(),
        ],
    );
    row("latency p50", vec![secs(n.p50), secs(r.p50)]);
    row("latency p99", vec![secs(n.p99), secs(r.p99)]);
    t.render(&mut out);

    out.push_str("\nPer phase: requests that succeeded, and server hits\n\n");
    let mut t = Table::new(&[
        "phase",
        "naive ok",
        "naive hits",
        "resile ok",
        "resile hits",
    ]);
    for (i, p) in PHASES.iter().enumerate() {
        let ok = |o: &[Outcome]| {
            let asked = o.iter().filter(|x| x.phase == i).count();
            let ok = o
                .iter()
                .filter(|x| x.phase == i && x.ended == Ended::Ok)
                .count();
            format!("{ok} / {asked}")
        };
        t.row(vec![
            p.name.to_string(),
            ok(naive.outcomes),
            naive.server.phase_hits(i).to_string(),
            ok(resile.outcomes),
            resile.server.phase_hits(i).to_string(),
        ]);
    }
    t.render(&mut out);

    out.push_str(
        "\nTelemetry per phase (resile::telemetry, each phase's window read 10 ms before it ends)\n\n",
    );
    let mut t = Table::new(&[
        "phase",
        "view",
        "requests",
        "2xx",
        "5xx",
        "p99",
        "top codes",
    ]);
    let phase_reports = lock(&journal.phase_reports);
    for (i, naive_r, resile_r) in phase_reports.iter() {
        let len = phase_end(*i) - PHASES[*i].from;
        let window = |r: &Report, attempts: bool| -> Option<Figures> {
            let v = if attempts {
                r.attempts.as_ref()?
            } else {
                &r.requests
            };
            v.windows.iter().find(|f| f.window == Some(len)).cloned()
        };
        let rows = [
            ("naive: each attempt", window(naive_r, false)),
            ("resile: callers", window(resile_r, false)),
            ("resile: each attempt", window(resile_r, true)),
        ];
        for (j, (view, fig)) in rows.into_iter().enumerate() {
            let Some(f) = fig else { continue };
            let top: Vec<String> = f
                .by_status
                .iter()
                .map(|s| format!("{} x{}", s.code.unwrap_or(0), s.count))
                .chain(
                    f.by_error
                        .iter()
                        .map(|e| format!("{} x{}", e.kind, e.count)),
                )
                .take(3)
                .collect();
            t.row(vec![
                if j == 0 {
                    PHASES[*i].name.to_string()
                } else {
                    String::new()
                },
                view.to_string(),
                f.requests.to_string(),
                format!("{:.0} %", f.success_rate * 100.0),
                format!("{:.0} %", f.server_error_rate * 100.0),
                f.latency.p99.map_or_else(|| "-".into(), secs),
                top.join(", "),
            ]);
        }
    }
    drop(phase_reports);
    t.render(&mut out);

    out.push_str("\nAlerts (5xx rate of what the server answered, over 2 s: raised above 5 %, cleared below 2.5 %)\n\n");
    let alerts = lock(&journal.alerts);
    if alerts.is_empty() {
        out.push_str("  none\n");
    }
    for (at, client, e) in alerts.iter() {
        let state = match e.state {
            resile::telemetry::AlertState::Raised => "RAISED ",
            _ => "cleared",
        };
        let _ = writeln!(
            out,
            "  {:>6.2} s  {:<13} {:<7} {state} 5xx rate {:.0} % over 2 s ({} requests)",
            at.as_secs_f64(),
            PHASES[phase_of(*at)].name,
            client,
            e.value * 100.0,
            e.requests,
        );
    }
    drop(alerts);

    out.push_str("\nCircuit breaker transitions (resile stack)\n\n");
    let transitions = lock(&journal.transitions);
    if transitions.is_empty() {
        out.push_str("  none\n");
    }
    for (at, tr) in transitions.iter() {
        let mut line = format!(
            "  {:>6.2} s  {:<13} {:<9} -> {:<9}",
            at.as_secs_f64(),
            PHASES[phase_of(*at)].name,
            state_name(tr.from),
            state_name(tr.to)
        );
        if let Some(d) = tr.open_for {
            let _ = write!(line, "  for {}", secs(d));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    drop(transitions);

    out.push_str("\nPauses the server asked for (resile stack, kept for its host)\n\n");
    let pauses = lock(&journal.pauses);
    if pauses.is_empty() {
        out.push_str("  none\n");
    }
    for (at, d) in pauses.iter() {
        let _ = writeln!(
            out,
            "  {:>6.2} s  {:<13} requests to the host held for {}",
            at.as_secs_f64(),
            PHASES[phase_of(*at)].name,
            secs(*d),
        );
    }
    drop(pauses);

    out.push_str("\nWhat it shows\n\n");
    let outage = PHASES
        .iter()
        .position(|p| p.kind == Kind::Outage)
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "  - Load: the naive client sent the server {:.2} requests for each one it was asked\n    \
         for; resile sent {:.2}.",
        n.amplification(),
        r.amplification()
    );
    let _ = writeln!(
        out,
        "  - Outage: the naive client hit the dead server {} times; resile {} times (probes),\n    \
         its breaker answered {} requests at once instead.",
        naive.server.phase_hits(outage),
        resile.server.phase_hits(outage),
        r.breaker
    );
    let _ = writeln!(
        out,
        "  - Hints: resile waited as the server asked ({} retries after Retry-After, {} limiter\n    \
         pauses) and {} requests succeeded, against {} for the naive client.",
        journal.hinted_waits.load(Ordering::Relaxed),
        lock(&journal.pauses).len(),
        r.ok,
        n.ok
    );
    let _ = writeln!(
        out,
        "  - Cost: waiting is not free: resile's slowest requests took {} (p99), the naive\n    \
         client's {}, but those waits are what turned failures into successes.",
        secs(r.p99),
        secs(n.p99)
    );
    let _ = writeln!(out, "\n  (ran for {:.1} s)", elapsed.as_secs_f64());
    out
}

// ------------------------------------------------------------------------------------------------

fn intro() -> String {
    let mut s = String::new();
    s.push_str(
        "resile demo: the same traffic from a naive client and from resile's client stack,\n\
         each against its own copy of a misbehaving HTTP server on 127.0.0.1.\n\n",
    );
    let _ = writeln!(
        s,
        "Workload: one GET every {} ms for {} s ({} requests per client), each on its own task.\n",
        TICK.as_millis(),
        END.as_secs(),
        END.as_millis() / TICK.as_millis()
    );
    s.push_str("Server timeline\n");
    for (i, p) in PHASES.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {:>4.1} - {:>4.1} s  {:<13} {}",
            p.from.as_secs_f64(),
            phase_end(i).as_secs_f64(),
            p.name,
            p.what
        );
    }
    let _ = write!(
        s,
        "\nnaive client   hyper-util in a loop: on any failure, retry at once, up to {} times\n\
         resile stack   the same hyper-util client behind resile::stack::http_client():\n\
         \x20              retry (defaults: backoff 100 ms x2 + jitter, Retry-After, budget 20 %)\n\
         \x20              > circuit breaker (5 failures; open 1 s, shortened for a short demo)\n\
         \x20              > server pause (defaults: the host paused by its 429/503 hint)\n\
         \x20              > 2 s per-attempt timeout\n\
         resile adaptive the same stack with RateLimitLayer::adaptive(50 req/s) as its limiter:\n\
         \x20              it learns the host's rate from its 429s and paces and queues to it\n\
         \x20              (its own server copy; compared in the rate-limited phase at the end)\n\n",
        NAIVE_ATTEMPTS - 1
    );
    s
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let journal = Arc::new(Journal::default());

    // Both servers and both clients share one timeline.
    let epoch = Instant::now() + Duration::from_millis(200);
    let naive_server = start_server(epoch).await?;
    let resile_server = start_server(epoch).await?;
    let adaptive_server = start_server(epoch).await?;

    print!("{}", intro());
    let _ = std::io::stdout().flush();

    // The naive client.
    let naive_uri: Uri = format!("http://{}/", naive_server.addr).parse()?;
    let naive_telemetry = telemetry(epoch, "naive", &journal);
    // The naive client's every attempt goes through its telemetry layer: what its server saw.
    let naive_http = naive_telemetry.layer().layer(hyper_client());

    // The resile client: the stack's defaults, with hooks to report what it does, a breaker whose
    // open period fits an 18-second run, and a 2 s attempt timeout.
    let resile_uri: Uri = format!("http://{}/", resile_server.addr).parse()?;
    let policy = {
        let (j, g) = (journal.clone(), journal.clone());
        RetryPolicy::builder()
            .on_retry(move |e| {
                j.retries.fetch_add(1, Ordering::Relaxed);
                if e.server_hint.is_some() {
                    j.hinted_waits.fetch_add(1, Ordering::Relaxed);
                }
            })
            .on_give_up(move |e| {
                if e.cause == GiveUp::BudgetExhausted {
                    g.budget_refusals.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build()
    };
    let breaker = {
        let j = journal.clone();
        CircuitBreakerLayer::builder()
            .open_duration(Duration::from_secs(1))
            .on_transition(move |tr| {
                let at = Instant::now().saturating_duration_since(epoch);
                lock(&j.transitions).push((at, tr.clone()));
            })
            .build_keyed(ByAuthority, resile::stack::DEFAULT_HOSTS)?
    };
    let resile_telemetry = telemetry(epoch, "resile", &journal);
    let stack = resile::stack::http_client()
        .retry(policy)
        .circuit_breaker(breaker)
        .attempt_timeout(Duration::from_secs(2))
        .telemetry(&resile_telemetry);
    let phase_watcher = tokio::spawn(watch_phases(
        epoch,
        naive_telemetry.clone(),
        resile_telemetry.clone(),
        journal.clone(),
    ));
    let watcher = tokio::spawn(watch_limiter(
        epoch,
        stack.layers().limiter.clone(),
        HostKey::from(resile_uri.authority().cloned().ok_or("no authority")?),
        journal.clone(),
    ));
    let resile_http = ServiceBuilder::new().layer(stack).service(hyper_client());

    // The adaptive client: the stack's defaults with the adaptive limiter, started at the rate
    // the workload offers.
    let adaptive_uri: Uri = format!("http://{}/", adaptive_server.addr).parse()?;
    let adaptive_limiter = RateLimitLayer::adaptive(Quota::per_second(
        std::num::NonZeroU32::new(50).ok_or("zero")?,
    ))
    .build();
    let adaptive_stack = resile::stack::http_client()
        .circuit_breaker(
            CircuitBreakerLayer::builder()
                .open_duration(Duration::from_secs(1))
                .build_keyed(ByAuthority, resile::stack::DEFAULT_HOSTS)?,
        )
        .attempt_timeout(Duration::from_secs(2))
        .rate_limit(adaptive_limiter.clone());
    let adaptive_http = ServiceBuilder::new()
        .layer(adaptive_stack)
        .service(hyper_client());

    let sent = Arc::new(AtomicU64::new(0));
    let tty = std::io::stderr().is_terminal();
    let ticker = {
        let sent = sent.clone();
        let naive = naive_server.counters.clone();
        let resile = resile_server.counters.clone();
        tokio::spawn(async move {
            let mut last_phase = usize::MAX;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let t = epoch.elapsed();
                if tty {
                    progress(epoch, &naive, &resile, &sent);
                } else if t < END && phase_of(t) != last_phase {
                    last_phase = phase_of(t);
                    eprintln!("  {:>4.1} s  {}", t.as_secs_f64(), PHASES[last_phase].name);
                }
            }
        })
    };

    let started = std::time::Instant::now();
    let naive_run = drive(
        epoch,
        || naive_get(naive_http.clone(), naive_uri.clone()),
        sent.clone(),
    );
    let resile_run = drive(
        epoch,
        || stack_get(resile_http.clone(), resile_uri.clone()),
        sent.clone(),
    );
    // The adaptive limiter's learned rate for its host, read as the rate-limited phase ends.
    let learned = {
        let (limiter, host) = (
            adaptive_limiter.clone(),
            HostKey::from(adaptive_uri.authority().cloned().ok_or("no authority")?),
        );
        let i = PHASES
            .iter()
            .position(|p| p.kind == Kind::RateLimited)
            .unwrap_or(1);
        tokio::spawn(async move {
            tokio::time::sleep_until(epoch + phase_end(i) - Duration::from_millis(10)).await;
            limiter.host(&host).map_or(0.0, |h| h.rate)
        })
    };
    let adaptive_run = drive(
        epoch,
        || stack_get(adaptive_http.clone(), adaptive_uri.clone()),
        Arc::new(AtomicU64::new(0)),
    );
    let (naive_out, resile_out, adaptive_out) = tokio::join!(naive_run, resile_run, adaptive_run);
    ticker.abort();
    watcher.abort();
    // Its last report is due 10 ms before the end of the last phase.
    let _ = phase_watcher.await;
    if tty {
        eprint!("\r{:120}\r", "");
    }
    eprintln!("  done in {:.1} s", started.elapsed().as_secs_f64());

    let text = report(
        Run {
            outcomes: &naive_out,
            server: &naive_server.counters,
        },
        Run {
            outcomes: &resile_out,
            server: &resile_server.counters,
        },
        &journal,
        started.elapsed(),
    );
    print!("{text}");
    let learned = learned.await.unwrap_or(0.0);
    print!(
        "{}",
        rate_limited_phase(
            [
                ("naive client", &naive_out, &naive_server.counters),
                ("resile stack", &resile_out, &resile_server.counters),
                ("resile adaptive", &adaptive_out, &adaptive_server.counters),
            ],
            learned,
        )
    );
    Ok(())
}

/// The rate-limited phase, three clients side by side.
fn rate_limited_phase(runs: [(&str, &[Outcome], &ServerCounters); 3], learned: f64) -> String {
    let i = PHASES
        .iter()
        .position(|p| p.kind == Kind::RateLimited)
        .unwrap_or(1);
    let secs = (phase_end(i) - PHASES[i].from).as_secs_f64();
    let mut out = format!(
        "\nThe rate-limited phase ({:.0} s, {} requests per {} s window = {} req/s for {} offered), three clients\n\n",
        secs,
        WINDOW_QUOTA,
        WINDOW_SECS,
        u64::from(WINDOW_QUOTA) / WINDOW_SECS,
        Duration::from_secs(1).as_nanos() / TICK.as_nanos()
    );
    let mut t = Table::new(&[
        "",
        "asked",
        "succeeded",
        "server hits",
        "429s answered",
        "refused locally",
    ]);
    for (name, outcomes, server) in runs {
        let of_phase = || outcomes.iter().filter(|o| o.phase == i);
        let local = of_phase()
            .filter(|o| matches!(o.ended, Ended::Breaker | Ended::Limiter))
            .count();
        t.row(vec![
            name.to_string(),
            of_phase().count().to_string(),
            of_phase()
                .filter(|o| o.ended == Ended::Ok)
                .count()
                .to_string(),
            server.phase_hits(i).to_string(),
            server.too_many[i].load(Ordering::Relaxed).to_string(),
            local.to_string(),
        ]);
    }
    t.render(&mut out);
    let _ = writeln!(
        out,
        "\n  The adaptive limiter learned {learned:.1} req/s for the host by the end of the phase: it paces\n  \
         to what the server takes instead of running into each window's end, and the requests\n  \
         over that rate wait in its queue (so some reach the server after the phase)."
    );
    out
}

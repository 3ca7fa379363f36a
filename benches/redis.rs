//! resile-ratelimit's Redis store on loopback: decisions per second on one multiplexed
//! connection, awaited one after another and with concurrent callers pipelining on it, beside the
//! in-memory keyed store through the same `Store` trait, in the same run. Then a counted run
//! checks with `INFO commandstats` that every decision is exactly one `EVALSHA` and nothing else.
//! The leased mode (leases of 16 cells) runs beside them, with its commands per decision counted
//! the same way.
//!
//! `cargo bench -p resile-benches --bench redis`
//!
//! The bench starts its own `redis-server` (from `RESILE_REDIS_SERVER` or `PATH`) on a free
//! loopback port, without persistence, and stops it at the end.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use resile_ratelimit::redis::{Leases, OnFailure, RedisStore};
use resile_ratelimit::{KeyedStore, Quota, Store};
use tokio::runtime::Runtime;

/// Distinct keys the decisions cycle through.
const KEYS: u32 = 1024;
/// Concurrent callers sharing the one connection in the pipelined case.
const CALLERS: [u32; 2] = [16, 128];
/// Decisions of the counted run, per mode.
const COUNTED: u64 = 20_000;
/// Decisions of the leased counted run: 256 per key.
const LEASED_COUNTED: u64 = 256 * KEYS as u64;

/// A `redis-server` of the bench's own, killed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start() -> Server {
        let bin = std::env::var_os("RESILE_REDIS_SERVER")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::split_paths(&std::env::var_os("PATH")?)
                    .map(|d| d.join("redis-server"))
                    .find(|p| p.is_file())
            })
            .expect("redis-server not found: set RESILE_REDIS_SERVER or install it (apt-get install redis-server)");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = std::env::temp_dir().join(format!("resile-redis-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("bench directory");
        let child = Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = Server { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(5);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every decision is admitted (the write path: TIME, GET and SET in the script), so that the
/// figure is the cost of the full script, not of cheap refusals.
fn quota() -> Quota {
    Quota::per_second(NonZeroU32::MAX)
}

/// `iters` decisions awaited one after another.
async fn sequential<S: Store<u32>>(store: &S, iters: u64, first: u64) {
    let q = quota();
    for i in first..first + iters {
        let d = store
            .decide(&((i % u64::from(KEYS)) as u32), &q, NonZeroU32::MIN)
            .await
            .expect("a decision");
        let _ = black_box(d);
    }
}

/// `iters` decisions spread over `callers` tasks that share the store (and its connection).
async fn concurrent(store: &RedisStore, iters: u64, callers: u32) {
    let per = iters.div_ceil(u64::from(callers));
    let tasks: Vec<_> = (0..u64::from(callers))
        .map(|c| {
            let store = store.clone();
            let n = per.min(iters.saturating_sub(c * per));
            tokio::spawn(async move { sequential(&store, n, c * per).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("caller task");
    }
}

fn benches(c: &mut Criterion, rt: &Runtime, store: &RedisStore, leased: &RedisStore) {
    let memory: KeyedStore<u32> = KeyedStore::new();
    let mut g = c.benchmark_group("redis/decide");
    g.throughput(Throughput::Elements(1));
    g.bench_function("memory KeyedStore (Store trait)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                sequential(&memory, iters, 0).await;
                start.elapsed()
            })
        })
    });
    g.bench_function("redis sequential (1 connection)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                sequential(store, iters, 0).await;
                start.elapsed()
            })
        })
    });
    g.bench_function("redis leased, leases of 16 (1 connection)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                sequential(leased, iters, 0).await;
                start.elapsed()
            })
        })
    });
    // The bare round trips, for scale: the same client and connection without the store.
    let mut conn = store.connection().clone();
    g.bench_function("bare PING (redis-rs, 1 connection)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let pong: String = redis::cmd("PING")
                        .query_async(&mut conn)
                        .await
                        .expect("PING");
                    black_box(pong);
                }
                start.elapsed()
            })
        })
    });
    let sha = redis::Script::new(resile_ratelimit::redis::SCRIPT)
        .get_hash()
        .to_string();
    g.bench_function("bare EVALSHA of the script (redis-rs, 1 connection)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let reply: redis::Value = redis::cmd("EVALSHA")
                        .arg(&sha)
                        .arg(1)
                        .arg(format!("bench:{}", i % u64::from(KEYS)))
                        .arg("r")
                        .arg(1u64)
                        .arg(u64::from(u32::MAX))
                        .arg(1u64)
                        .arg(0u64)
                        .query_async(&mut conn)
                        .await
                        .expect("EVALSHA");
                    black_box(reply);
                }
                start.elapsed()
            })
        })
    });
    for callers in CALLERS {
        g.bench_with_input(
            BenchmarkId::new("redis concurrent callers (1 connection)", callers),
            &callers,
            |b, &callers| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        concurrent(store, iters, callers).await;
                        start.elapsed()
                    })
                })
            },
        );
    }
    g.finish();
}

/// `cmdstat_NAME:calls=N` of `INFO commandstats`.
async fn command_calls(conn: &mut redis::aio::MultiplexedConnection) -> Vec<(String, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields.split(',').find_map(|f| f.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}

/// An admin connection, with the server's command statistics reset.
async fn fresh_stats(server: &Server) -> redis::aio::MultiplexedConnection {
    let mut admin = redis::Client::open(server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await
        .expect("CONFIG RESETSTAT");
    admin
}

/// Counted decisions: `INFO commandstats` before and after must show one `EVALSHA` per decision
/// and no other command from a client.
async fn round_trips(server: &Server, store: &RedisStore) {
    let before_metrics = store.metrics();
    let mut admin = fresh_stats(server).await;

    let start = Instant::now();
    sequential(store, COUNTED, 0).await;
    let seq = start.elapsed();
    let start = Instant::now();
    concurrent(store, COUNTED, CALLERS[1]).await;
    let conc = start.elapsed();

    let calls = command_calls(&mut admin).await;
    // Every decision, sequential or concurrent, went over one connection: the store's, the
    // leased store's (idle here) and this admin connection are the only clients.
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .expect("CLIENT LIST");
    assert_eq!(clients.lines().count(), 3, "clients:\n{clients}");
    let count = |name: &str| calls.iter().find(|(n, _)| n == name).map_or(0, |c| c.1);
    let decisions = 2 * COUNTED;
    println!("\nredis/round-trips: {decisions} decisions, INFO commandstats: {calls:?}");
    assert_eq!(count("evalsha"), decisions, "one EVALSHA per decision");
    for (name, n) in &calls {
        // Redis 7 also lists the commands the script runs inside the server (not round trips).
        let inside_script = matches!(name.as_str(), "time" | "get" | "set") && *n <= decisions;
        let ours = matches!(
            name.as_str(),
            "evalsha" | "config|resetstat" | "config" | "info"
        );
        assert!(
            inside_script || ours,
            "unexpected client command {name} x{n}"
        );
    }
    let m = store.metrics();
    assert_eq!(m.decisions - before_metrics.decisions, decisions);
    assert_eq!((m.errors, m.fallbacks), (0, 0), "{m:?}");
    println!(
        "redis/round-trips: evalsha = {} = decisions, no other client command, one connection; \
         sequential {:.0} decisions/s, {} concurrent callers {:.0} decisions/s",
        count("evalsha"),
        COUNTED as f64 / seq.as_secs_f64(),
        CALLERS[1],
        COUNTED as f64 / conc.as_secs_f64(),
    );
}

/// Counted leased decisions: at most one `EVALSHA` per lease of 16 cells, and nothing else.
async fn leased_round_trips(server: &Server, store: &RedisStore) {
    let mut admin = fresh_stats(server).await;
    let start = Instant::now();
    sequential(store, LEASED_COUNTED, 0).await;
    let took = start.elapsed();
    let calls = command_calls(&mut admin).await;
    let evalsha = calls.iter().find(|c| c.0 == "evalsha").map_or(0, |c| c.1);
    println!(
        "redis/leased-round-trips: {LEASED_COUNTED} decisions over {KEYS} keys, leases of 16: \
         {evalsha} EVALSHA ({:.3} per decision), {:.0} decisions/s",
        evalsha as f64 / LEASED_COUNTED as f64,
        LEASED_COUNTED as f64 / took.as_secs_f64(),
    );
    assert!(
        evalsha * 10 <= LEASED_COUNTED,
        "more than one command per 10 decisions"
    );
}

fn main() {
    let server = Server::start();
    // One thread: the callers and the connection's driver share it, and redis-server has the
    // other core to itself.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt.block_on(async {
        RedisStore::builder()
            .prefix("bench:")
            .timeout(Duration::from_secs(2))
            .on_failure(OnFailure::Error)
            .connect(server.url())
            .await
            .expect("connect to the bench's redis-server")
    });
    let leased = rt.block_on(async {
        RedisStore::builder()
            .prefix("bench:leased:")
            .timeout(Duration::from_secs(2))
            .on_failure(OnFailure::Error)
            // A lease is spent within its interval or given back; the decisions cycle through
            // 1,024 keys, so each key comes round only every few milliseconds (every ~100 ms
            // while every decision is a round trip): a 1 s interval keeps the leases alive
            // between visits, as a hot key's would be.
            .leases(
                Leases::fixed(NonZeroU32::new(16).expect("16")).interval(Duration::from_secs(1)),
            )
            .connect(server.url())
            .await
            .expect("connect to the bench's redis-server")
    });
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &rt, &store, &leased);
    rt.block_on(round_trips(&server, &store));
    rt.block_on(leased_round_trips(&server, &leased));
    c.final_summary();
}

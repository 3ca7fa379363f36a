//! A throwaway `redis-server` for the Redis store's tests: its own free loopback port, its own
//! temporary directory, no persistence, killed on drop.
//!
//! The binary comes from `RESILE_REDIS_SERVER` or `redis-server` on `PATH`. A missing binary is a
//! test failure, not a skip: `scripts/test` installs it when it is missing.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

const START_DEADLINE: Duration = Duration::from_secs(5);

/// `n` as a `NonZeroU32` (the tests' quotas and costs are nonzero literals).
pub(crate) fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// Runs `f` within `deadline`: a test that would hang on a stuck server fails instead.
pub(crate) async fn bounded<F: Future>(deadline: Duration, f: F) -> F::Output {
    tokio::time::timeout(deadline, f)
        .await
        .expect("test exceeded its deadline")
}

/// The `redis-server` binary, or a panic that says how to get one.
pub(crate) fn redis_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RESILE_REDIS_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "RESILE_REDIS_SERVER={} is not a file: the Redis store tests need redis-server",
            path.display()
        );
        return path;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "redis-server not found (set RESILE_REDIS_SERVER or put it on PATH). The Redis store \
             tests start their own server; `scripts/test` installs it (Debian package \
             `redis-server`), or run `apt-get install redis-server`."
        )
    })
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free loopback port");
    listener.local_addr().expect("local addr").port()
}

/// A running `redis-server` on 127.0.0.1.
pub(crate) struct RedisServer {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub(crate) fn start() -> RedisServer {
        RedisServer::start_with(&[], |_| true)
    }

    /// Starts a Redis Cluster node (no slots yet) on a free port whose cluster bus port
    /// (port + 10000) is free too.
    pub(crate) fn start_cluster_node() -> RedisServer {
        let extra = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
        ];
        RedisServer::start_with(&extra, |port| {
            port < 55_000 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok()
        })
    }

    fn start_with(extra: &[&str], port_ok: impl Fn(u16) -> bool) -> RedisServer {
        let bin = redis_server_binary();
        let dir = std::env::temp_dir().join(format!(
            "resile-redis-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the server's temporary directory");
        let mut last_err = String::new();
        // The free port may be taken between probing and binding: try a few.
        for _ in 0..5 {
            let port = (0..100)
                .map(|_| free_port())
                .find(|p| port_ok(*p))
                .expect("a free port meeting the server's needs");
            let mut server = RedisServer {
                bin: bin.clone(),
                port,
                dir: dir.clone(),
                extra: extra.iter().map(|a| a.to_string()).collect(),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => {
                    last_err = e;
                    server.dir = PathBuf::new(); // keep the directory for the next attempt
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("redis-server did not start: {last_err}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.join("redis.log");
        let child = Command::new(&self.bin)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "redis-server exited with {status}; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    ));
                }
            }
            if ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        Err(format!(
            "redis-server did not answer PING within {START_DEADLINE:?}; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ))
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its working directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills it (SIGKILL) and waits for it to exit. Its data is gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: no persistence).
    pub(crate) fn restart(&mut self) {
        self.kill();
        let mut last_err = String::new();
        // The port is free again at once (redis-server binds with SO_REUSEADDR); retry briefly
        // in case the kernel is slow to release it.
        for _ in 0..5 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last_err = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "redis-server did not restart on port {}: {last_err}",
            self.port
        );
    }

    /// Freezes it (SIGSTOP): it keeps its connections but answers nothing.
    pub(crate) fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes it after [`freeze`](RedisServer::freeze) (SIGCONT).
    pub(crate) fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("server running").id();
        let status = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {pid} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A frozen server still dies of SIGKILL.
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether a server on `port` answers `PING` with `+PONG` within half a second.
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// A plain multiplexed connection for the tests' own commands (INFO, GET, ...).
pub(crate) async fn admin(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

/// `cmdstat_*` call counts from `INFO commandstats`, e.g. `("evalsha", 10)`.
pub(crate) async fn command_calls(
    conn: &mut redis::aio::MultiplexedConnection,
) -> Vec<(String, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    parse_commandstats(&info)
}

/// Parses `cmdstat_NAME:calls=N,...` lines.
pub(crate) fn parse_commandstats(info: &str) -> Vec<(String, u64)> {
    info.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("cmdstat_")?;
            let (name, fields) = rest.split_once(':')?;
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// Resets the server's command statistics.
pub(crate) async fn reset_stats(conn: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .expect("CONFIG RESETSTAT");
}

/// A small deterministic generator for test sequences (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

//! A [`Store`](crate::Store) on Redis: GCRA in one atomic Lua script on the server's clock, so
//! that every process of a service shares one limit.
//!
//! A per-process limiter lets `N` times its quota through when the service runs on `N` machines.
//! [`RedisStore`] keeps the GCRA state of each key in Redis instead, with the same semantics as
//! the in-memory stores: it implements the same [`Store`](crate::Store) trait and returns the
//! same [`Decision`](crate::Decision), so both limiter layers run on it unchanged.
//!
//! # Pointing it at a Redis
//!
//! ```no_run
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use resile_ratelimit::redis::{OnFailure, RedisStore, QuotaShare};
//! use resile_ratelimit::{Quota, Store};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder()
//!     .prefix("api:ratelimit:")
//!     .timeout(Duration::from_millis(20))
//!     // Three instances: while Redis is away, each enforces a third of every quota.
//!     .on_failure(OnFailure::Fallback { share: QuotaShare::one_of(NonZeroU32::new(3).unwrap()) })
//!     .connect("redis://127.0.0.1:6379/")
//!     .await?;
//!
//! let quota = Quota::per_minute(NonZeroU32::new(600).unwrap());
//! let decision = store.decide("tenant-42", &quota, NonZeroU32::MIN).await?;
//! if !decision.allowed {
//!     println!("retry in {:?}", decision.retry_after);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`RedisStoreBuilder::connect`] makes a [`ConnectionManager`](redis::aio::ConnectionManager):
//! one multiplexed connection, shared by every clone of the store and every concurrent decision
//! (requests are pipelined on it), that reconnects on its own. [`RedisStoreBuilder::build`] takes
//! a connection you made instead (any clonable `redis::aio::ConnectionLike`). Keys are any type
//! implementing [`RedisKey`]: `()` for a direct limiter, strings, bytes, integers, IP addresses,
//! header values.
//!
//! # How a decision is made
//!
//! One script (`EVALSHA`, one round trip) reads the key's TAT, reads the server's clock with
//! `TIME`, applies exactly the GCRA step of the in-memory store (weighted costs, reservations up
//! to a `max_wait`, the same `remaining` / `retry_after` / `reset_after`), and writes the new
//! TAT with `SET key tat PX ttl`, where `ttl` is the time until the bucket is full again (plus
//! 1 ms): a key that stops being used disappears by itself, and Redis holds only keys that
//! carry information. A refused request writes nothing. Scripts run atomically, so concurrent
//! decisions from any number of processes are serialised on the server: together they never
//! admit more than the quota.
//!
//! - **Clock.** Only the server's clock is read, so the clocks of the clients (skewed, stepped)
//!   play no part. The TAT is stored as nanoseconds since the Unix epoch.
//! - **Precision.** Redis scripts compute in doubles, exact for integers below 2^53. The script
//!   never holds an absolute time in one number: it splits the stored TAT into seconds and
//!   nanoseconds and works on offsets from now, which are exact to the nanosecond while below
//!   2^53 ns (104 days). Every quota whose window (`burst × T`) plus reservation horizon stays
//!   under that gets exactly the in-memory store's decisions; beyond it offsets are rounded to
//!   the double's precision, one part in 2^53 (at most about 1 µs for the longest window the
//!   crate accepts, 2^62 ns), and reported durations saturate at 2^62 ns.
//! - **Script cache.** If the server does not hold the script (first use, restart,
//!   `SCRIPT FLUSH`), the `NOSCRIPT` reply is followed by one `EVAL` that sends and caches it:
//!   two round trips, once. [`RedisStoreBuilder::connect`] loads it up front.
//! - **Versions.** Redis 3.2 and later, and its forks that run Lua scripts: servers before 5.0
//!   refuse writes after `TIME` unless the script replicates its effects, which it asks for
//!   where the function exists (a no-op on 7). The tests run against the `redis-server` the
//!   system provides (7.0 on Debian 12).
//! - **Redis Cluster.** Each call touches exactly one key, passed as the script's only `KEYS`
//!   entry, so it is routed to the key's slot like any single-key command and keys spread over
//!   the cluster. Build the store on a cluster connection (`redis::cluster_async`, feature
//!   `cluster-async` of the `redis` crate) with [`RedisStoreBuilder::build`]. Do not put a hash
//!   tag in the prefix: it would pin every key to one slot.
//! - **Keys.** The prefix ([`RedisStoreBuilder::prefix`]) namespaces them. Key bytes may come
//!   from requests: they are sent as one binary-safe argument. A value under the prefix that the
//!   script did not write is treated as a full bucket and overwritten by the next admission; a
//!   key of another Redis type fails the call (the failure policy decides).
//!
//! Decisions must be awaited within a tokio runtime with its time driver enabled (the Redis
//! client needs tokio anyway; the decision timeout is a tokio timer).
//!
//! `release` and `pause` are fire-and-forget: the script call is spawned on the current tokio
//! runtime. Without a runtime, or while the store skips Redis after a failure, they are dropped
//! and counted ([`RedisMetrics::dropped_updates`]); the only effect is a stricter limit for a
//! moment, or a pause Redis did not hear of (it is still applied to the local fallback limiter).
//!
//! # When Redis is unreachable or slow
//!
//! Every decision waits at most [`RedisStoreBuilder::timeout`] (default 50 ms) for Redis,
//! reconnecting included. When Redis errors, the connection is down, or the timeout passes, the
//! [`OnFailure`] policy decides:
//!
//! | policy | the request is |
//! |---|---|
//! | [`OnFailure::FailOpen`] (default) | admitted, as by a fresh key |
//! | [`OnFailure::FailClosed`] | refused, as by an exhausted key (`retry_after = cost × T`) |
//! | [`OnFailure::Fallback`] | decided by a local in-memory limiter enforcing a [`QuotaShare`] of the quota |
//! | [`OnFailure::Error`] | not decided: the call fails with a [`StoreError`](crate::StoreError) |
//!
//! After a failure the store skips Redis for [`RedisStoreBuilder::probe_interval`] (default
//! 500 ms), so an outage does not add the timeout to every request; the next decision after it
//! asks Redis again. The connection reconnects by itself; as soon as Redis answers, decisions
//! are Redis's again. The first failure after a success is logged at `WARN` and the recovery at
//! `INFO` (target `resile_ratelimit::redis`); [`RedisStore::metrics`] counts decisions,
//! fallbacks, errors and timeouts.
//!
//! # Leased mode
//!
//! With [`RedisStoreBuilder::leases`], the store takes each key's cells from Redis in leases.
//! A lease is one script call for up to its size in cells. The store decides locally from the
//! lease until it is spent or its interval has passed, so most decisions make no round trip. In
//! exchange the fleet may admit up to `instances × max lease` cells more than the quota over any
//! window, and `remaining` / `reset_after` of a local decision are estimates. See [`Leases`] for
//! the bound, the sizing and what happens to unused cells.
//!
//! # What it costs
//!
//! One round trip per decision in per-decision mode (`EVALSHA`; no other command), a few microseconds of script on the
//! server, and on the client one boxed future besides the Redis client's own encoding. On
//! loopback, `docs/benchmarks.md` (section "resile-ratelimit on Redis") gives the decisions per
//! second on one connection, sequential and pipelined, beside the in-memory store.

mod builder;
mod error;
mod future;
mod key;
mod lease;
mod metrics;
mod policy;
mod script;
mod store;

pub use builder::{RedisStoreBuilder, DEFAULT_PREFIX, DEFAULT_PROBE_INTERVAL, DEFAULT_TIMEOUT};
pub use error::{RedisUnavailable, UnexpectedReply};
pub use future::RedisStoreFuture;
pub use key::RedisKey;
pub use lease::{
    Leases, DEFAULT_LEASE_INTERVAL, DEFAULT_MAX_LEASE, DEFAULT_MAX_LEASED_KEYS, DEFAULT_MIN_LEASE,
};
pub use metrics::RedisMetrics;
pub use policy::{OnFailure, QuotaShare};
pub use store::RedisStore;

/// The Lua source of the GCRA script the store runs: to audit it, or to load it into a server
/// with your own tooling (`SCRIPT LOAD`). Its arguments are documented at its top.
pub const SCRIPT: &str = script::SOURCE;

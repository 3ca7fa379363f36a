//! The state machine against a reference model (proptest), and multi-thread stress tests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use proptest::prelude::*;
use resile_backoff::Backoff;

use crate::clock::Tick;
use crate::state::{
    ceil_ms, Change, Core, Permit, PermitKind, Policy, Refusal, State, Trip, Verdict, Window,
};
use crate::window::{CountWindow, TimeWindow};

/// A deterministic backoff: `base`, `2 base`, ... up to `4 base`, then stays there.
#[derive(Debug, Clone)]
struct Steps {
    base_ms: u64,
    n: u64,
}

impl Backoff for Steps {
    fn next_delay(&mut self) -> Option<Duration> {
        self.n += 1;
        Some(Duration::from_millis(self.base_ms * self.n.min(4)))
    }
    fn reset(&mut self) {
        self.n = 0;
    }
}

#[derive(Debug, Clone, Copy)]
enum WindowKind {
    None,
    Count(u32),
    Time { bucket_ms: u64, buckets: u32 },
}

#[derive(Debug, Clone, Copy)]
struct Config {
    policy: Policy,
    window: WindowKind,
    base_ms: u64,
}

fn core_for(cfg: &Config) -> Core {
    let window = match cfg.window {
        WindowKind::None => Window::None,
        WindowKind::Count(n) => Window::Count(CountWindow::new(n)),
        WindowKind::Time { bucket_ms, buckets } => {
            Window::Time(TimeWindow::new(bucket_ms, buckets))
        }
    };
    Core::new(
        window,
        Box::new(Steps {
            base_ms: cfg.base_ms,
            n: 0,
        }),
        Duration::from_millis(cfg.base_ms),
    )
}

/// The reference: the same semantics written the plain way, single-threaded.
#[derive(Debug)]
struct Model {
    cfg: Config,
    state: State,
    epoch: u32,
    consecutive: u64,
    deadline: u64,
    inflight: u64,
    successes: u64,
    opened: u64,
    count: VecDeque<bool>,
    time: Vec<(u64, bool)>,
    head: u64,
}

const EPOCH_MASK: u32 = (1 << 21) - 1;

impl Model {
    fn new(cfg: Config) -> Self {
        Model {
            cfg,
            state: State::Closed,
            epoch: 0,
            consecutive: 0,
            deadline: 0,
            inflight: 0,
            successes: 0,
            opened: 0,
            count: VecDeque::new(),
            time: Vec::new(),
            head: 0,
        }
    }

    fn go(&mut self, to: State) -> Option<Change> {
        let from = self.state;
        self.state = to;
        self.epoch = (self.epoch + 1) & EPOCH_MASK;
        self.consecutive = 0;
        self.inflight = 0;
        self.successes = 0;
        (from != to).then_some(Change {
            from,
            to,
            open_for: None,
        })
    }

    fn payload(&self) -> u64 {
        match self.state {
            State::Closed => self.consecutive,
            State::Open => self.deadline,
            State::HalfOpen => self.inflight | (self.successes << 20),
            _ => 0,
        }
    }

    fn clear_window(&mut self) {
        self.count.clear();
        self.time.clear();
    }

    fn acquire(&mut self, tick: Tick) -> (Result<Permit, Refusal>, Option<Change>) {
        let permit = Permit::new;
        let now = tick.floor;
        match self.state {
            State::Closed => (Ok(permit(self.epoch, PermitKind::Closed)), None),
            State::Disabled => (Ok(permit(self.epoch, PermitKind::Disabled)), None),
            State::ForcedOpen => (Err(Refusal { until_probe: None }), None),
            State::Open if now < self.deadline => (
                Err(Refusal {
                    until_probe: Some(Duration::from_millis(self.deadline - now)),
                }),
                None,
            ),
            State::Open => {
                let change = self.go(State::HalfOpen);
                self.inflight = 1;
                (Ok(permit(self.epoch, PermitKind::Probe)), change)
            }
            State::HalfOpen if self.inflight >= self.cfg.policy.probes => (
                Err(Refusal {
                    until_probe: Some(Duration::ZERO),
                }),
                None,
            ),
            State::HalfOpen => {
                self.inflight += 1;
                (Ok(permit(self.epoch, PermitKind::Probe)), None)
            }
        }
    }

    fn open(&mut self, tick: Tick, hint: Option<Duration>) -> Option<Change> {
        self.opened += 1;
        let mut d = Duration::from_millis(self.cfg.base_ms * self.opened.min(4));
        if let Some(h) = hint {
            d = d.max(h.min(self.cfg.policy.max_hint));
        }
        let mut change = self.go(State::Open);
        self.deadline = tick.ceil + ceil_ms(d);
        self.clear_window();
        if let Some(c) = change.as_mut() {
            c.open_for = Some(d);
        }
        change
    }

    fn window_counts(&mut self, failure: bool, tick: Tick) -> (u64, u64) {
        let now = tick.floor;
        match self.cfg.window {
            WindowKind::None => (0, 0),
            WindowKind::Count(n) => {
                self.count.push_back(failure);
                if self.count.len() > n as usize {
                    self.count.pop_front();
                }
                let f = self.count.iter().filter(|f| **f).count() as u64;
                (self.count.len() as u64, f)
            }
            WindowKind::Time { bucket_ms, buckets } => {
                let m = now / bucket_ms;
                if m > self.head {
                    self.head = m;
                }
                let head = self.head;
                self.time.retain(|(b, _)| b + u64::from(buckets) > head);
                self.time.push((head, failure));
                let f = self.time.iter().filter(|(_, f)| *f).count() as u64;
                (self.time.len() as u64, f)
            }
        }
    }

    fn record(
        &mut self,
        p: Permit,
        v: Verdict,
        hint: Option<Duration>,
        now: Tick,
    ) -> Option<Change> {
        match p.kind() {
            PermitKind::Disabled => None,
            PermitKind::Closed => {
                if self.state != State::Closed || self.epoch != p.epoch() || v == Verdict::Neutral {
                    return None;
                }
                let failure = v == Verdict::Failure;
                match self.cfg.policy.trip {
                    Trip::Consecutive(n) => {
                        if !failure {
                            self.consecutive = 0;
                            return None;
                        }
                        self.consecutive += 1;
                        if self.consecutive >= n {
                            return self.open(now, hint);
                        }
                        None
                    }
                    Trip::Rate { ppm, min_calls } => {
                        let (calls, failures) = self.window_counts(failure, now);
                        if calls >= min_calls && failures * 1_000_000 >= ppm * calls {
                            return self.open(now, hint);
                        }
                        None
                    }
                }
            }
            PermitKind::Probe => {
                if self.state != State::HalfOpen || self.epoch != p.epoch() {
                    return None;
                }
                match v {
                    Verdict::Neutral => {
                        self.release(p);
                        None
                    }
                    Verdict::Success => {
                        self.inflight = self.inflight.saturating_sub(1);
                        self.successes += 1;
                        if self.successes >= self.cfg.policy.close_after {
                            self.opened = 0;
                            return self.go(State::Closed);
                        }
                        None
                    }
                    Verdict::Failure => self.open(now, hint),
                }
            }
        }
    }

    fn release(&mut self, p: Permit) {
        if p.kind() == PermitKind::Probe
            && self.state == State::HalfOpen
            && self.epoch == p.epoch()
            && self.inflight > 0
        {
            self.inflight -= 1;
        }
    }

    fn set(&mut self, to: State) -> Option<Change> {
        let change = self.go(to);
        if to == State::Closed {
            self.clear_window();
            self.opened = 0;
        }
        change
    }
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Complete {
        pick: usize,
        verdict: Verdict,
        hint_ms: Option<u64>,
    },
    Cancel {
        pick: usize,
    },
    Advance(u64),
    ForceOpen,
    Disable,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    let verdict = prop_oneof![
        3 => Just(Verdict::Failure),
        3 => Just(Verdict::Success),
        1 => Just(Verdict::Neutral),
    ];
    prop_oneof![
        20 => Just(Op::Acquire),
        20 => (any::<usize>(), verdict, prop::option::weighted(0.2, 0u64..5_000))
            .prop_map(|(pick, verdict, hint_ms)| Op::Complete { pick, verdict, hint_ms }),
        4 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        8 => (0u64..1_500_000).prop_map(Op::Advance),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::Reset),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    let trip = prop_oneof![
        (1u64..6).prop_map(|n| (Trip::Consecutive(n), WindowKind::None)),
        (1u32..12, 1u64..1_000_000, 1u64..8).prop_map(|(n, ppm, min)| (
            Trip::Rate {
                ppm,
                min_calls: min
            },
            WindowKind::Count(n)
        )),
        (1u64..300, 1u32..6, 1u64..1_000_000, 1u64..8).prop_map(|(w, b, ppm, min)| (
            Trip::Rate {
                ppm,
                min_calls: min
            },
            WindowKind::Time {
                bucket_ms: w,
                buckets: b
            }
        )),
    ];
    (trip, 1u64..4, 1u64..4, 1u64..2_000, 0u64..3_000).prop_map(
        |((trip, window), probes, close_after, base_ms, max_hint)| Config {
            policy: Policy {
                trip,
                probes,
                close_after,
                max_hint: Duration::from_millis(max_hint),
            },
            window,
            base_ms,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn core_matches_the_reference_model(cfg in config(), ops in prop::collection::vec(op(), 1..200)) {
        let core = core_for(&cfg);
        let mut model = Model::new(cfg);
        // Time in microseconds: clock readings fall between milliseconds.
        let mut now_us = 0u64;
        let tick = |us: u64| Tick { floor: us / 1000, ceil: us.div_ceil(1000) };
        let mut held: Vec<Permit> = Vec::new();
        for op in ops {
            match op {
                Op::Acquire => {
                    let got = core.acquire(&cfg.policy, || tick(now_us));
                    let want = model.acquire(tick(now_us));
                    prop_assert_eq!(got, want);
                    if let Ok(p) = got.0 {
                        held.push(p);
                    }
                }
                Op::Complete { pick, verdict, hint_ms } if !held.is_empty() => {
                    let p = held.swap_remove(pick % held.len());
                    let hint = hint_ms.map(Duration::from_millis);
                    let got = core.record(&cfg.policy, p, verdict, || hint, || tick(now_us));
                    let want = model.record(p, verdict, hint, tick(now_us));
                    prop_assert_eq!(got, want);
                }
                Op::Cancel { pick } if !held.is_empty() => {
                    let p = held.swap_remove(pick % held.len());
                    core.release(p);
                    model.release(p);
                }
                Op::Complete { .. } | Op::Cancel { .. } => {}
                Op::Advance(us) => now_us += us,
                Op::ForceOpen => prop_assert_eq!(core.force_open(), model.set(State::ForcedOpen)),
                Op::Disable => prop_assert_eq!(core.disable(), model.set(State::Disabled)),
                Op::Reset => prop_assert_eq!(core.reset(), model.set(State::Closed)),
            }
            let (state, epoch, payload) = core.raw();
            prop_assert_eq!(state, model.state);
            prop_assert_eq!(epoch, model.epoch);
            prop_assert_eq!(payload, model.payload());
            if let Some(c) = core.window_counts() {
                let f = |w: &mut dyn Iterator<Item = bool>| w.filter(|f| *f).count() as u64;
                let (calls, failures) = match cfg.window {
                    WindowKind::Count(_) => (model.count.len() as u64, f(&mut model.count.iter().copied())),
                    _ => (model.time.len() as u64, f(&mut model.time.iter().map(|(_, f)| *f))),
                };
                prop_assert_eq!((c.calls, c.failures), (calls, failures));
            }
            let until = core.until_probe(|| tick(now_us));
            let want = match model.state {
                State::ForcedOpen => None,
                State::Open => Some(Duration::from_millis(model.deadline.saturating_sub(now_us / 1000))),
                _ => Some(Duration::ZERO),
            };
            prop_assert_eq!(until, want);
        }
    }
}

fn consecutive(n: u64, probes: u64) -> Policy {
    Policy {
        trip: Trip::Consecutive(n),
        probes,
        close_after: 1,
        max_hint: Duration::from_secs(60),
    }
}

fn zero_backoff_core() -> Core {
    Core::new(
        Window::None,
        Box::new(resile_backoff::Constant::new(Duration::ZERO).no_max_retries()),
        Duration::ZERO,
    )
}

#[test]
fn stress_exactly_one_trip_per_round() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 300;
    let policy = consecutive(3, 1);
    // Open periods of an hour: no thread can turn it half-open within a round.
    let core = Arc::new(Core::new(
        Window::None,
        Box::new(resile_backoff::Constant::new(Duration::from_secs(3600)).no_max_retries()),
        Duration::from_secs(3600),
    ));
    let opens = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (core, opens, barrier) = (core.clone(), opens.clone(), barrier.clone());
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    barrier.wait();
                    // Every thread admits calls in the same closed period, then they all fail.
                    let permits: Vec<_> = (0..3)
                        .filter_map(|_| core.acquire(&policy, || Tick::exact(0)).0.ok())
                        .collect();
                    for p in permits {
                        if let Some(c) =
                            core.record(&policy, p, Verdict::Failure, || None, || Tick::exact(0))
                        {
                            assert_eq!((c.from, c.to), (State::Closed, State::Open));
                            opens.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    barrier.wait();
                    if t == 0 {
                        assert_eq!(core.state(), State::Open);
                        assert_eq!(opens.swap(0, Ordering::SeqCst), 1, "one trip per round");
                        core.reset();
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn stress_half_open_permits_are_never_lost() {
    const THREADS: usize = 4;
    const PROBES: u64 = 3;
    let policy = consecutive(1, PROBES);
    let core = Arc::new(zero_backoff_core());
    // Trip it: open with a zero open period, so the next acquire goes half-open.
    let p = core.acquire(&policy, || Tick::exact(0)).0.unwrap();
    core.record(&policy, p, Verdict::Failure, || None, || Tick::exact(0))
        .unwrap();
    let held = Arc::new(AtomicU64::new(0));
    let max_held = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (core, held, max_held) = (core.clone(), held.clone(), max_held.clone());
            std::thread::spawn(move || {
                let mut rng = fastrand_like(t as u64 + 1);
                for _ in 0..20_000 {
                    if let (Ok(p), _) = core.acquire(&policy, || Tick::exact(0)) {
                        assert_eq!(p.kind(), PermitKind::Probe);
                        let n = held.fetch_add(1, Ordering::SeqCst) + 1;
                        max_held.fetch_max(n, Ordering::SeqCst);
                        std::hint::spin_loop();
                        held.fetch_sub(1, Ordering::SeqCst);
                        // Cancel or a neutral outcome: the slot must come back either way.
                        if rng().is_multiple_of(2) {
                            core.release(p);
                        } else {
                            core.record(&policy, p, Verdict::Neutral, || None, || Tick::exact(0));
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let (state, _, payload) = core.raw();
    assert_eq!(state, State::HalfOpen);
    assert_eq!(payload, 0, "every probe slot came back");
    assert!(max_held.load(Ordering::SeqCst) <= PROBES);
    assert!(max_held.load(Ordering::SeqCst) >= 1);
}

#[test]
fn stress_close_and_reopen_race_reports_one_transition() {
    const THREADS: usize = 4;
    let policy = Policy {
        trip: Trip::Consecutive(1),
        probes: THREADS as u64,
        close_after: 1,
        max_hint: Duration::ZERO,
    };
    for round in 0..300 {
        let core = Arc::new(zero_backoff_core());
        let p = core.acquire(&policy, || Tick::exact(0)).0.unwrap();
        core.record(&policy, p, Verdict::Failure, || None, || Tick::exact(0))
            .unwrap();
        let first = core.acquire(&policy, || Tick::exact(0)).0.unwrap();
        let mut permits = vec![first];
        for _ in 1..THREADS {
            permits.push(core.acquire(&policy, || Tick::exact(0)).0.unwrap());
        }
        let changes = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = permits
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let (core, changes, barrier) = (core.clone(), changes.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let v = if (i + round) % 2 == 0 {
                        Verdict::Success
                    } else {
                        Verdict::Failure
                    };
                    if core
                        .record(&policy, p, v, || None, || Tick::exact(0))
                        .is_some()
                    {
                        changes.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            changes.load(Ordering::SeqCst),
            1,
            "the probes of one half-open period decide once"
        );
        assert!(matches!(core.state(), State::Closed | State::Open));
    }
}

/// A tiny xorshift, to avoid a dependency for coin flips.
fn fastrand_like(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

#[test]
fn ceil_ms_rounds_up() {
    assert_eq!(ceil_ms(Duration::ZERO), 0);
    assert_eq!(ceil_ms(Duration::from_nanos(1)), 1);
    assert_eq!(ceil_ms(Duration::from_millis(5)), 5);
    assert_eq!(ceil_ms(Duration::from_micros(5_001)), 6);
    assert_eq!(ceil_ms(Duration::MAX), u64::MAX);
}

#[test]
fn open_deadline_saturates() {
    let policy = consecutive(1, 1);
    let core = Core::new(
        Window::None,
        Box::new(resile_backoff::Constant::new(Duration::MAX).no_max_retries()),
        Duration::MAX,
    );
    let p = core.acquire(&policy, || Tick::exact(1_000)).0.unwrap();
    let c = core
        .record(&policy, p, Verdict::Failure, || None, || Tick::exact(1_000))
        .unwrap();
    assert_eq!(c.to, State::Open);
    // The deadline saturates (34 years after the clock's origin): no overflow, still open.
    assert!(core
        .acquire(&policy, || Tick::exact(1_000_000_000))
        .0
        .is_err());
}

//! Loom models of the races of the state machine: every interleaving of two threads.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p resile-breaker --release --lib`.

use std::time::Duration;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use crate::clock::Tick;
use crate::state::{Core, Permit, PermitKind, Policy, State, Trip, Verdict, Window};
use crate::window::CountWindow;

fn policy(threshold: u64, probes: u64) -> Policy {
    Policy {
        trip: Trip::Consecutive(threshold),
        probes,
        close_after: 1,
        max_hint: Duration::ZERO,
    }
}

/// A breaker whose open periods last zero ms: the next acquire after a trip goes half-open.
fn core(window: Window) -> Core {
    Core::new(
        window,
        Box::new(resile_backoff::Constant::new(Duration::ZERO).no_max_retries()),
        Duration::ZERO,
    )
}

fn trip(core: &Core, p: &Policy) {
    let permit = core.acquire(p, || Tick::exact(0)).0.unwrap();
    let change = core.record(p, permit, Verdict::Failure, || None, || Tick::exact(0));
    assert_eq!(change.map(|c| c.to), Some(State::Open));
}

#[test]
fn loom_two_failures_trip_exactly_once() {
    loom::model(|| {
        let p = policy(2, 1);
        let core = Arc::new(core(Window::None));
        let opens = Arc::new(AtomicUsize::new(0));
        let permits: Vec<Permit> = (0..2)
            .map(|_| core.acquire(&p, || Tick::exact(0)).0.unwrap())
            .collect();
        let handles: Vec<_> = permits
            .into_iter()
            .map(|permit| {
                let (core, opens) = (core.clone(), opens.clone());
                thread::spawn(move || {
                    if core
                        .record(&p, permit, Verdict::Failure, || None, || Tick::exact(0))
                        .is_some()
                    {
                        opens.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(opens.load(Ordering::SeqCst), 1);
        assert_eq!(core.state(), State::Open);
    });
}

#[test]
fn loom_failure_and_success_race() {
    // threshold 2 with one failure already counted: a failure and a success race. Either the
    // failure lands first (trip) and the success is stale, or the success clears the streak
    // and the failure starts a new one: never a lost update that trips on a cleared streak.
    loom::model(|| {
        let p = policy(2, 1);
        let core = Arc::new(core(Window::None));
        let first = core.acquire(&p, || Tick::exact(0)).0.unwrap();
        assert!(core
            .record(&p, first, Verdict::Failure, || None, || Tick::exact(0))
            .is_none());
        let a = core.acquire(&p, || Tick::exact(0)).0.unwrap();
        let b = core.acquire(&p, || Tick::exact(0)).0.unwrap();
        let c1 = core.clone();
        let t = thread::spawn(move || {
            c1.record(&p, a, Verdict::Failure, || None, || Tick::exact(0))
                .is_some()
        });
        let cleared = core.record(&p, b, Verdict::Success, || None, || Tick::exact(0));
        assert!(cleared.is_none());
        let tripped = t.join().unwrap();
        let (state, _, payload) = core.raw();
        if tripped {
            assert_eq!(state, State::Open);
        } else {
            // The success cleared the streak, then maybe the failure started a new one.
            assert_eq!(state, State::Closed);
            assert!(payload <= 1);
        }
    });
}

#[test]
fn loom_one_probe_slot_goes_to_one_caller() {
    loom::model(|| {
        let p = policy(1, 1);
        let core = Arc::new(core(Window::None));
        trip(&core, &p);
        let admitted = Arc::new(AtomicUsize::new(0));
        let half_opens = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (core, admitted, half_opens) =
                    (core.clone(), admitted.clone(), half_opens.clone());
                thread::spawn(move || {
                    let (result, change) = core.acquire(&p, || Tick::exact(0));
                    if let Ok(permit) = result {
                        assert_eq!(permit.kind(), PermitKind::Probe);
                        admitted.fetch_add(1, Ordering::SeqCst);
                    } else {
                        assert_eq!(result.unwrap_err().until_probe, Some(Duration::ZERO));
                    }
                    if change.is_some() {
                        half_opens.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::SeqCst), 1);
        assert_eq!(half_opens.load(Ordering::SeqCst), 1);
        assert_eq!(core.raw(), (State::HalfOpen, core.raw().1, 1));
    });
}

#[test]
fn loom_cancelled_probe_returns_its_slot() {
    // One thread cancels its probe while another asks for a slot: whatever the order, once both
    // are done no slot is lost, and a new probe can always be admitted after.
    loom::model(|| {
        let p = policy(1, 1);
        let core = Arc::new(core(Window::None));
        trip(&core, &p);
        let probe = core.acquire(&p, || Tick::exact(0)).0.unwrap();
        let c1 = core.clone();
        let t = thread::spawn(move || c1.release(probe));
        let other = core.acquire(&p, || Tick::exact(0)).0;
        t.join().unwrap();
        let (state, _, inflight) = core.raw();
        assert_eq!(state, State::HalfOpen);
        match other {
            Ok(permit) => {
                assert_eq!(inflight, 1);
                core.release(permit);
            }
            Err(_) => assert_eq!(inflight, 0),
        }
        assert!(
            core.acquire(&p, || Tick::exact(0)).0.is_ok(),
            "never stuck half-open"
        );
    });
}

#[test]
fn loom_probe_success_and_failure_decide_once() {
    loom::model(|| {
        let p = policy(1, 2);
        let core = Arc::new(core(Window::None));
        trip(&core, &p);
        let a = core.acquire(&p, || Tick::exact(0)).0.unwrap();
        let b = core.acquire(&p, || Tick::exact(0)).0.unwrap();
        let c1 = core.clone();
        let t =
            thread::spawn(move || c1.record(&p, a, Verdict::Success, || None, || Tick::exact(0)));
        let failed = core.record(&p, b, Verdict::Failure, || None, || Tick::exact(0));
        let succeeded = t.join().unwrap();
        // Exactly one of them changed the state; the other was stale.
        assert!(failed.is_some() != succeeded.is_some());
        let state = core.state();
        if failed.is_some() {
            assert_eq!(state, State::Open);
        } else {
            assert_eq!(state, State::Closed);
        }
    });
}

#[test]
fn loom_stale_probe_cancel_after_reopen_is_ignored() {
    // A probe fails and reopens; a second probe of the same half-open period is cancelled
    // concurrently. The cancel must not touch the new state.
    loom::model(|| {
        let p = policy(1, 2);
        let core = Arc::new(core(Window::None));
        trip(&core, &p);
        let a = core.acquire(&p, || Tick::exact(0)).0.unwrap();
        let b = core.acquire(&p, || Tick::exact(0)).0.unwrap();
        let c1 = core.clone();
        let t = thread::spawn(move || c1.release(b));
        let change = core.record(&p, a, Verdict::Failure, || None, || Tick::exact(0));
        t.join().unwrap();
        assert_eq!(change.map(|c| c.to), Some(State::Open));
        assert_eq!(core.state(), State::Open);
    });
}

#[test]
fn loom_count_window_total_matches_bits_under_reset() {
    loom::model(|| {
        let w = Arc::new(CountWindow::new(2));
        let w1 = w.clone();
        let t = thread::spawn(move || {
            w1.record(true);
        });
        w.record(true);
        w.reset();
        t.join().unwrap();
        let c = w.counts();
        // Whatever interleaving: the running failure count equals the set bits.
        assert_eq!(c.failures, w.set_bits().min(c.calls));
        assert_eq!(w.raw_failures(), w.set_bits());
    });
}

//! How the response futures of a hints-only layer reach it without a shared reference count.
//!
//! A response future must be able to pause its limiter when the server answers `429`/`503` with
//! a hint, and tower futures own what they use, so the obvious design clones the layer's `Arc`
//! into every future: two atomic read-modify-writes per request (the clone and the drop), for a
//! pause that almost no response asks for. A hints-only layer is registered here instead, under
//! an id; its futures carry the id, and only a response that carries a hint (a `429`/`503` whose
//! hint parses) looks the layer up, under one lock, on a path that then writes the shared pause
//! anyway. A future whose layer is gone (the layer and every service built from it dropped) has
//! nobody left to pause: its hint is dropped.
//!
//! A layer that paces by a quota keeps the `Arc` in its futures: its store and key are generic,
//! and the registry holds one concrete type.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use super::layer::Shared;
use crate::direct::MemoryStore;

/// What a hints-only layer shares.
pub(crate) type HintsOnlyShared = Shared<MemoryStore, ()>;

static REGISTRY: Mutex<Vec<(u64, Weak<HintsOnlyShared>)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn registry() -> MutexGuard<'static, Vec<(u64, Weak<HintsOnlyShared>)>> {
    // The lock guards a list only: a panic elsewhere while it was held leaves it consistent.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh id for a layer about to be registered.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Registers `shared` under its id (`Shared::registered`).
pub(crate) fn register(id: u64, shared: &Arc<HintsOnlyShared>) {
    registry().push((id, Arc::downgrade(shared)));
}

/// Forgets `id` (its layer is being dropped).
pub(crate) fn unregister(id: u64) {
    registry().retain(|(i, _)| *i != id);
}

/// Pauses the layer registered under `id` for the server's `hint` (capped by the layer's
/// maximum pause); nothing if the layer is gone.
pub(crate) fn pause(id: u64, hint: Duration) {
    let found = registry()
        .iter()
        .find(|(i, _)| *i == id)
        .and_then(|(_, w)| w.upgrade());
    // Dropped outside the lock: the last reference unregisters, which takes the lock.
    if let Some(shared) = found {
        if let Some(pause) = shared.hints.cap(hint) {
            tracing::debug!(
                ?pause,
                "rate limit: server asked to slow down, pausing the limiter"
            );
            shared.pause(pause);
        }
    }
}

/// Whether a live layer is registered under `id`.
#[cfg(all(test, not(loom)))]
pub(crate) fn is_registered(id: u64) -> bool {
    registry()
        .iter()
        .any(|(i, w)| *i == id && w.strong_count() > 0)
}

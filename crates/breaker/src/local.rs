//! How a response future reaches its breaker without touching a shared reference count.
//!
//! A response future must record its outcome when it completes, and tower futures own what they
//! use, so the obvious design clones an `Arc` of the breaker into every future. That is two
//! atomic read-modify-writes per call (the clone and the drop), the most expensive part of a
//! closed-path call, and a cache line written by every thread that uses the breaker.
//!
//! Instead, a future carries only the breaker's id. Each thread keeps a small cache of the
//! breakers it records for (`id -> Arc<Local>`, plus that thread's metric counters, at most [`CACHED`] of them): the first
//! outcome a thread records for a breaker takes a strong reference from a global registry of
//! weak references (one lock, once per thread and breaker); every later one is a thread-local
//! lookup and no shared write.
//!
//! Lifetimes:
//!
//! - The layer and every service built from it hold an [`Owner`]; when the last one is dropped,
//!   the breaker is marked dead. A thread drops every dead breaker from its cache whenever it
//!   caches a new one, and its whole cache when it exits: a breaker that is replaced (a new
//!   layer built on a configuration reload, say) is freed once each thread that used it has
//!   used the new one.
//! - A future whose breaker was freed (every owner, cache and handle gone) has nobody left to
//!   report to: its outcome is dropped.
//!
//! A thread that records for more than [`CACHED`] breakers in turn keeps missing its cache and
//! pays the registry lock on those calls; keyed breakers count as one breaker however many keys
//! they hold.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::shared::{Counters, Shared};

type AnyLocal = dyn Any + Send + Sync;

/// What a breaker's futures need at completion: the breaker and the classifier.
pub(crate) struct Local<C> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) classifier: C,
    id: u64,
    dead: AtomicBool,
}

/// Every breaker with live futures-to-be, by id.
static REGISTRY: Mutex<Vec<(u64, Weak<AnyLocal>)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn registry() -> std::sync::MutexGuard<'static, Vec<(u64, Weak<AnyLocal>)>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

impl<C: Send + Sync + 'static> Local<C> {
    /// A registered breaker handle, owned by the returned [`Owner`].
    pub(crate) fn register(shared: Arc<Shared>, classifier: C) -> Arc<Owner<C>> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let local = Arc::new(Local {
            shared,
            classifier,
            id,
            dead: AtomicBool::new(false),
        });
        let erased: Arc<AnyLocal> = local.clone();
        registry().push((id, Arc::downgrade(&erased)));
        Arc::new(Owner { local })
    }
}

impl<C> Local<C> {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl<C> Drop for Local<C> {
    fn drop(&mut self) {
        let id = self.id;
        registry().retain(|(i, _)| *i != id);
    }
}

/// Held by the layer and its services: the breaker is alive while one of them is.
pub(crate) struct Owner<C> {
    pub(crate) local: Arc<Local<C>>,
}

impl<C> Drop for Owner<C> {
    fn drop(&mut self) {
        self.local.dead.store(true, Ordering::Release);
    }
}

/// The most breakers one thread caches.
pub(crate) const CACHED: usize = 32;

struct Entry {
    id: u64,
    local: Arc<AnyLocal>,
    counters: Arc<Counters>,
    dead: fn(&AnyLocal) -> bool,
}

thread_local! {
    static CACHE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

fn is_dead<C: Send + Sync + 'static>(any: &AnyLocal) -> bool {
    any.downcast_ref::<Local<C>>()
        .is_none_or(|l| l.dead.load(Ordering::Acquire))
}

/// The id of a breaker, as carried by its futures; typed by the classifier so the lookup can
/// give back the right `Local`.
pub(crate) struct LocalId<C> {
    id: u64,
    _c: PhantomData<fn() -> C>,
}

impl<C> Clone for LocalId<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for LocalId<C> {}

impl<C> LocalId<C> {
    pub(crate) fn raw(self) -> u64 {
        self.id
    }

    pub(crate) fn new(id: u64) -> Self {
        LocalId {
            id,
            _c: PhantomData,
        }
    }
}

impl<C: Send + Sync + 'static> LocalId<C> {
    /// Runs `f` with the breaker and this thread's counters for it; `None` if the breaker is
    /// gone.
    #[inline(always)]
    pub(crate) fn with<R>(self, f: impl FnOnce(&Local<C>, &Counters) -> R) -> Option<R> {
        let mut f = Some(f);
        let hit = CACHE
            .try_with(|cache| {
                let cache = cache.try_borrow().ok()?;
                let entry = cache.iter().find(|e| e.id == self.id)?;
                let local = entry.local.downcast_ref::<Local<C>>()?;
                let f = f.take()?;
                Some(f(local, &entry.counters))
            })
            .ok()
            .flatten();
        if hit.is_some() {
            return hit;
        }
        let f = f.take()?;
        self.miss(f)
    }

    #[cold]
    #[inline(never)]
    fn miss<R>(self, f: impl FnOnce(&Local<C>, &Counters) -> R) -> Option<R> {
        let found = {
            let reg = registry();
            reg.iter()
                .find(|(i, _)| *i == self.id)
                .and_then(|(_, w)| w.upgrade())
        };
        let any = found?;
        let local = any.downcast_ref::<Local<C>>()?;
        let counters = local.shared.new_block();
        let result = f(local, &counters);
        let entry = Entry {
            id: self.id,
            local: any.clone(),
            counters,
            dead: is_dead::<C>,
        };
        // Cache it. Every dead breaker goes first (so a breaker that was replaced is freed as
        // soon as each thread meets its successor), then the oldest if the cache is still full.
        // What leaves is dropped after the cache is released: dropping a breaker runs user code
        // (its listeners' destructors) and takes the registry lock.
        let evicted = CACHE
            .try_with(|cache| {
                let mut cache = cache.try_borrow_mut().ok()?;
                let mut evicted: Vec<Entry> = Vec::new();
                let mut i = 0;
                while i < cache.len() {
                    if (cache[i].dead)(&*cache[i].local) {
                        evicted.push(cache.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
                if cache.len() >= CACHED {
                    evicted.push(cache.remove(0));
                }
                cache.push(entry);
                Some(evicted)
            })
            .ok()
            .flatten();
        drop(evicted);
        drop(any);
        Some(result)
    }
}

//! The threads of an inference pass: a fork/join team whose idle members
//! spin between the parallel steps of a pass instead of going to sleep.
//!
//! An encoder pass is a chain of short parallel steps (per layer: two layer
//! norms, four products, attention: about 70 steps for one image, most of
//! them well under a millisecond). On rayon alone, a worker that finds no
//! work for ~50 µs parks itself, and waking a parked thread costs tens of
//! microseconds (a park/unpark round trip; measured in
//! `benches/results/2026-11-29-session6.md`): nearly one context switch per
//! step, each on the critical path.
//!
//! [`run`] instead occupies every worker of the current rayon pool for the
//! duration of a pass (`rayon::broadcast`): the first to arrive leads and
//! runs the pass; the others follow it, spinning on the team's current step
//! and taking its tasks, and meanwhile running any rayon job they find (so
//! rayon parallelism inside a pass, e.g. the `gemm` crate's, still gets
//! their help). Inside the pass, [`for_each`] hands the leader's steps to
//! the team; anywhere else it is a rayon parallel loop. The pool's size is
//! still the one knob: the team is its workers, no thread is added.

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// A parallel step: `tasks` calls of `job`. The leader claims them from
/// the front, the followers from the back, so each thread runs a run of
/// neighbouring tasks (as rayon's halving would): a product's shares of one
/// row block then mostly fall to one thread, which reads the block's
/// activations once.
struct Step {
    /// The step's closure, its lifetime erased: the leader keeps it alive
    /// until no follower can reach the step any more (see [`for_each`]).
    job: *const (dyn Fn(usize) + Sync + 'static),
    /// The unclaimed tasks `front..back`, as `front | back << 32`.
    left: AtomicU64,
}

/// What the leader and the followers of one pass share.
struct Team {
    /// The step in progress, or null between steps.
    step: AtomicPtr<Step>,
    /// How many steps have been published (tells a follower a new one from
    /// the one it has just finished, which may sit at the same address).
    published: AtomicUsize,
    /// Followers that may be holding a reference to `step`.
    inside: AtomicUsize,
    /// Set by the leader when the pass is over.
    done: AtomicBool,
    /// The first panic of a follower's task, re-raised by the leader.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

thread_local! {
    /// The team this thread leads, if any.
    static LEADING: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
    /// Whether this thread is following a team.
    static FOLLOWING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` as one pass on the current rayon pool (the global one when
/// called from outside a pool): `f` runs on one of the pool's workers, the
/// others follow it until `f` returns. A panic in `f` or in a task of its
/// steps is re-raised here. Called by a thread of a pass (its leader, or a
/// follower's task), it runs `f` as part of that pass: a new pass there
/// would wait for the pool's threads, one of which is waiting for it.
pub(crate) fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if !LEADING.get().is_null() || FOLLOWING.get() {
        return f();
    }
    let team = Team {
        step: AtomicPtr::new(std::ptr::null_mut()),
        published: AtomicUsize::new(0),
        inside: AtomicUsize::new(0),
        done: AtomicBool::new(false),
        panic: Mutex::new(None),
    };
    let claimed = AtomicBool::new(false);
    let f = Mutex::new(Some(f));
    let result = Mutex::new(None);
    rayon::broadcast(|_| {
        if claimed.swap(true, Ordering::AcqRel) {
            let previous = FOLLOWING.replace(true);
            team.follow();
            FOLLOWING.set(previous);
            return;
        }
        let f = lock(&f).take();
        let previous = LEADING.replace(&team);
        let r = catch_unwind(AssertUnwindSafe(|| f.map(|f| f())));
        LEADING.set(previous);
        // Whatever happened, the followers must be let go.
        team.done.store(true, Ordering::Release);
        *lock(&result) = Some(r);
    });
    let result = result.into_inner().unwrap_or_else(|e| e.into_inner());
    match result {
        Some(Ok(Some(r))) => r,
        Some(Err(panic)) => resume_unwind(panic),
        // The closure was taken and run exactly once, by the leader.
        _ => unreachable!("team::run: the pass did not run"),
    }
}

/// Calls `job(i)` for every `i` in `0..tasks`, in parallel: on the team
/// when called by the leader of a pass ([`run`]), else on rayon. Tasks are
/// claimed one at a time (the leader's from the front, the followers' from
/// the back), so a thread slowed down by a neighbour on a shared machine
/// takes fewer. Returns when every task has returned; a panic in a task is
/// re-raised here once all have.
pub(crate) fn for_each(tasks: usize, job: impl Fn(usize) + Sync) {
    if tasks <= 1 {
        (0..tasks).for_each(job);
        return;
    }
    let team = LEADING.get();
    // (A step's task indices are 32-bit: more go to rayon.)
    if team.is_null() || tasks > u32::MAX as usize {
        use rayon::prelude::*;
        (0..tasks).into_par_iter().with_max_len(1).for_each(&job);
        return;
    }
    // SAFETY: `LEADING` points to the team of the pass this thread is
    // leading: `run` sets it before the pass and clears it after, and the
    // team outlives the pass.
    let team = unsafe { &*team };
    let job: &(dyn Fn(usize) + Sync) = &job;
    // SAFETY: only the lifetime changes. Followers reach `job` through
    // `team.step` alone; below, the step is unpublished and every follower
    // that may have read it has left (`inside` is zero) before this
    // function returns and `job` goes out of scope, also on a panic.
    let job: &(dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(job) };
    let step = Step { job, left: AtomicU64::new((tasks as u64) << 32) };
    team.step.store(&step as *const Step as *mut Step, Ordering::SeqCst);
    team.published.fetch_add(1, Ordering::Release);
    let mine = catch_unwind(AssertUnwindSafe(|| step.run(false)));
    team.step.store(std::ptr::null_mut(), Ordering::SeqCst);
    // A follower that read the step incremented `inside` before (and
    // decrements it after its last task): once it is zero, every task has
    // returned and no follower will touch `step` again.
    while team.inside.load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
    }
    if let Some(panic) = lock(&team.panic).take() {
        resume_unwind(panic);
    }
    if let Err(panic) = mine {
        resume_unwind(panic);
    }
}

/// Calls `f(i, chunk)` for the `chunk`-element chunks of `data` (the last
/// may be shorter), in parallel as [`for_each`].
pub(crate) fn for_each_chunk<T: Send>(
    data: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunks = Chunks::of(data, chunk);
    // SAFETY: task `i` alone takes chunk `i`.
    for_each(chunks.count(), |i| f(i, unsafe { chunks.get(i) }));
}

/// A mutable slice cut into chunks of `size` elements (the last may be
/// shorter) that the tasks of one step take one each.
struct Chunks<'a, T> {
    base: *mut T,
    len: usize,
    size: usize,
    _slice: std::marker::PhantomData<&'a mut [T]>,
}

impl<'a, T> Chunks<'a, T> {
    fn of(data: &'a mut [T], size: usize) -> Self {
        let len = data.len();
        Chunks { base: data.as_mut_ptr(), len, size: size.max(1), _slice: std::marker::PhantomData }
    }

    fn count(&self) -> usize {
        self.len.div_ceil(self.size)
    }

    /// Chunk `i`.
    ///
    /// # Safety
    /// `i < self.count()`, and no other reference to chunk `i` is alive
    /// while the returned one is.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self, i: usize) -> &'a mut [T] {
        let start = i * self.size;
        // SAFETY: `start < len` (the caller's `i < count()`), so the chunk
        // lies within the slice `Chunks::of` borrowed mutably for `'a`; the
        // caller rules out aliasing (chunks are disjoint).
        unsafe {
            std::slice::from_raw_parts_mut(self.base.add(start), self.size.min(self.len - start))
        }
    }
}
// SAFETY: shared between the tasks of one step, each taking a different
// chunk (see `get`), of a slice of `Send` elements borrowed for the step.
unsafe impl<T: Send> Sync for Chunks<'_, T> {}

impl Step {
    /// Claims (from the front, or from the back) and runs tasks until none
    /// is left.
    fn run(&self, from_back: bool) {
        while let Some(i) = self.claim(from_back) {
            // SAFETY: `job` is alive while the step is reachable (see
            // `for_each`), and the caller reached it through the team.
            unsafe { (*self.job)(i) }
        }
    }

    fn claim(&self, from_back: bool) -> Option<usize> {
        let mut left = self.left.load(Ordering::Relaxed);
        loop {
            let (front, back) = (left & 0xffff_ffff, left >> 32);
            if front >= back {
                return None;
            }
            let (task, rest) =
                if from_back { (back - 1, left - (1 << 32)) } else { (front, left + 1) };
            match self.left.compare_exchange_weak(left, rest, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(task as usize),
                Err(now) => left = now,
            }
        }
    }
}

impl Team {
    /// A follower's loop: help with each published step until the pass is
    /// done, running rayon's pending jobs meanwhile.
    fn follow(&self) {
        let mut seen = 0;
        let mut idle = 0u32;
        while !self.done.load(Ordering::Acquire) {
            let published = self.published.load(Ordering::Acquire);
            if published != seen {
                self.help();
                seen = published;
                idle = 0;
                continue;
            }
            idle = idle.wrapping_add(1);
            if idle.is_multiple_of(64) {
                // Rayon jobs the leader (or someone else) left to steal.
                if let Some(rayon::Yield::Executed) = rayon::yield_now() {
                    continue;
                }
            }
            std::hint::spin_loop();
        }
    }

    /// Runs tasks of the current step, if there is one.
    fn help(&self) {
        self.inside.fetch_add(1, Ordering::SeqCst);
        let step = self.step.load(Ordering::SeqCst);
        if !step.is_null() {
            // SAFETY: the leader unpublishes a step and then waits for
            // `inside` to drop to zero before the step goes away; this
            // follower incremented `inside` before reading the pointer.
            let step = unsafe { &*step };
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| step.run(true))) {
                lock(&self.panic).get_or_insert(panic);
            }
        }
        self.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A lock whose poisoning (a panic elsewhere while it was held) is ignored:
/// what it guards is written whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
    }

    /// Every task runs exactly once, in every step of a pass, on pools of
    /// several sizes, from inside and outside the pool.
    #[test]
    fn every_task_runs_once() {
        for threads in [1, 2, 3] {
            let counts: Vec<AtomicU64> = (0..1000).map(|_| AtomicU64::new(0)).collect();
            let steps = 50;
            let total = pool(threads).install(|| {
                run(|| {
                    for s in 0..steps {
                        for_each(s * 20, |i| {
                            counts[i].fetch_add(1, Ordering::Relaxed);
                        });
                    }
                    7
                })
            });
            assert_eq!(total, 7);
            for (i, c) in counts.iter().enumerate() {
                // Task i is in the steps with s * 20 > i.
                let expected = (0..steps).filter(|s| s * 20 > i).count() as u64;
                assert_eq!(c.load(Ordering::Relaxed), expected, "task {i}, {threads} threads");
            }
        }
    }

    /// With two threads, the follower takes part: some tasks run on
    /// another thread than the leader's.
    #[test]
    fn followers_take_tasks() {
        let seen_other = AtomicBool::new(false);
        pool(2).install(|| {
            run(|| {
                let leader = std::thread::current().id();
                for _ in 0..200 {
                    for_each(8, |_| {
                        if std::thread::current().id() != leader {
                            seen_other.store(true, Ordering::Relaxed);
                        }
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    });
                    if seen_other.load(Ordering::Relaxed) {
                        break;
                    }
                }
            })
        });
        assert!(seen_other.load(Ordering::Relaxed));
    }

    /// Chunks cover the data once, each with its index.
    #[test]
    fn chunks_cover_the_data() {
        let mut data = vec![0usize; 103];
        pool(2).install(|| run(|| for_each_chunk(&mut data, 10, |i, c| c.fill(i + 1))));
        assert!(data.iter().enumerate().all(|(j, &v)| v == j / 10 + 1), "{data:?}");
    }

    /// A panic in a task (on the leader or a follower) reaches the caller of
    /// `run`, and the pool stays usable.
    #[test]
    fn a_panicking_task_reaches_the_caller() {
        let p = pool(2);
        for bad in [0, 5] {
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                p.install(|| {
                    run(|| {
                        for_each(8, |i| {
                            if i == bad {
                                panic!("task {i}");
                            }
                        })
                    })
                })
            }));
            assert!(r.is_err());
        }
        assert_eq!(p.install(|| run(|| 3)), 3);
    }

    /// A pass started inside a pass (by the leader, or by a task on a
    /// follower) runs as part of it instead of waiting for the busy pool.
    #[test]
    fn nested_passes_run_inline() {
        let count = AtomicU64::new(0);
        pool(2).install(|| {
            run(|| {
                run(|| for_each(4, |_| _ = count.fetch_add(1, Ordering::Relaxed)));
                for_each(64, |_| {
                    run(|| for_each(3, |_| _ = count.fetch_add(1, Ordering::Relaxed)));
                });
            })
        });
        assert_eq!(count.load(Ordering::Relaxed), 4 + 64 * 3);
    }

    /// Rayon parallelism inside a pass still completes (followers run
    /// stolen jobs while they wait).
    #[test]
    fn rayon_inside_a_pass() {
        use rayon::prelude::*;
        let sum: u64 = pool(2).install(|| run(|| (0..10_000u64).into_par_iter().sum()));
        assert_eq!(sum, 10_000 * 9_999 / 2);
    }
}

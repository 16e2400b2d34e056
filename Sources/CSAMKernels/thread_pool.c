// A fork-join pool for SAMTensor's parallel loops (sam_thread_pool.h).
//
// A decode runs some 40 loops of 0.05 to 0.5 ms each, separated by short serial stretches. When a
// loop has to wake a sleeping thread (libdispatch's concurrentPerform, or a condition variable),
// the chunk on that thread starts 10 to 20 microseconds late on a virtual machine, and the caller
// then sleeps and is woken again at the end: 10-15% of a 2-thread decode. Here a worker that has
// finished a chunk spins, for a bounded time, on the loop counter before it goes to sleep, and the
// caller spins, for the same bounded time, on the count of chunks still running before it sleeps.
// The spinning is bounded (100 us by default), so an idle process costs no CPU, and a machine whose
// cores are taken by others loses at most that much per loop.
//
// One loop at a time: a second caller (another thread, or a chunk starting a loop of its own) gets
// -1 and runs its loop another way.
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "sam_thread_pool.h"

#define MAX_WORKERS 255

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_workers = PTHREAD_COND_INITIALIZER;
static pthread_cond_t wake_caller = PTHREAD_COND_INITIALIZER;

// Whether a caller owns the pool (its loop is being set up or running).
static atomic_int busy;
// The loop counter times CHUNK_FIELD plus the loop's chunk count, changed (under the lock) for every
// loop; workers wait for it to change. A worker reads the loop's function and context only when the
// count includes its chunk: the caller then waits for that chunk before it writes them again.
#define CHUNK_FIELD 512u
static atomic_uint_fast64_t loop_state;
static sam_pool_chunk current_chunk;
static void *current_context;
// Chunks of the current loop not yet finished by the workers.
static atomic_size_t remaining;
// Whether the caller sleeps (under the lock) waiting for `remaining` to reach 0.
static int caller_sleeps;
// Workers started; they never stop (they sleep when there is no work).
static size_t workers;
// The loop state each worker was started in (before the loop that starts it): the worker's first
// loop is the next one, however late the thread begins to run.
static uint64_t started_in[MAX_WORKERS];
static atomic_uint spin_microseconds = 100;

// Set on the pool's threads and while a caller runs its chunk 0: a loop started from a chunk runs
// another way.
static _Thread_local int inside_pool;

void sam_pool_set_spin_microseconds(uint32_t microseconds) { atomic_store(&spin_microseconds, microseconds); }

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline void pause_cpu(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until *value != old (returns 1) or the spin time is over (returns 0).
static int spin_until_changed(atomic_uint_fast64_t *value, uint64_t old) {
  const uint64_t budget = (uint64_t)atomic_load_explicit(&spin_microseconds, memory_order_relaxed) * 1000u;
  if (budget == 0) return atomic_load_explicit(value, memory_order_acquire) != old;
  const uint64_t start = now_ns();
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (atomic_load_explicit(value, memory_order_acquire) != old) return 1;
      pause_cpu();
    }
    if (now_ns() - start > budget) return 0;
  }
}

// The same, until *count == 0.
static int spin_until_zero(atomic_size_t *count) {
  const uint64_t budget = (uint64_t)atomic_load_explicit(&spin_microseconds, memory_order_relaxed) * 1000u;
  if (budget == 0) return atomic_load_explicit(count, memory_order_acquire) == 0;
  const uint64_t start = now_ns();
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (atomic_load_explicit(count, memory_order_acquire) == 0) return 1;
      pause_cpu();
    }
    if (now_ns() - start > budget) return 0;
  }
}

static void *worker_main(void *argument) {
  const size_t index = (size_t)(uintptr_t)argument;  // runs chunk index + 1
  inside_pool = 1;
  uint64_t seen = started_in[index];
  // A worker the last loop had no chunk for (more workers than the thread count now in use)
  // sleeps at once instead of spinning.
  int needed = 1;
  for (;;) {
    if (!needed || !spin_until_changed(&loop_state, seen)) {
      pthread_mutex_lock(&lock);
      while (atomic_load_explicit(&loop_state, memory_order_acquire) == seen) pthread_cond_wait(&wake_workers, &lock);
      pthread_mutex_unlock(&lock);
    }
    seen = atomic_load_explicit(&loop_state, memory_order_acquire);
    // Workers past the loop's chunk count have nothing to do in it.
    needed = index + 1 < seen % CHUNK_FIELD;
    if (!needed) continue;
    current_chunk(current_context, index + 1);
    if (atomic_fetch_sub_explicit(&remaining, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&lock);
      if (caller_sleeps) pthread_cond_signal(&wake_caller);
      pthread_mutex_unlock(&lock);
    }
  }
  return NULL;
}

// Starts workers until there are `count` (under the lock). Returns 0, or -1 if one cannot start.
static int start_workers(size_t count) {
  while (workers < count) {
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 8u << 20);
    pthread_t thread;
    started_in[workers] = atomic_load_explicit(&loop_state, memory_order_relaxed);
    const int failed = pthread_create(&thread, &attributes, worker_main, (void *)(uintptr_t)workers);
    pthread_attr_destroy(&attributes);
    if (failed) return -1;
    workers++;
  }
  return 0;
}

int sam_pool_run(size_t chunks, sam_pool_chunk chunk, void *context) {
  if (chunks == 0) return 0;
  if (inside_pool || chunks > MAX_WORKERS + 1) return -1;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&busy, &expected, 1)) return -1;
  pthread_mutex_lock(&lock);
  if (start_workers(chunks - 1) != 0) {
    pthread_mutex_unlock(&lock);
    atomic_store(&busy, 0);
    return -1;
  }
  current_chunk = chunk;
  current_context = context;
  atomic_store_explicit(&remaining, chunks - 1, memory_order_relaxed);
  const uint64_t loop = atomic_load_explicit(&loop_state, memory_order_relaxed) / CHUNK_FIELD + 1;
  atomic_store_explicit(&loop_state, loop * CHUNK_FIELD + chunks, memory_order_release);
  pthread_cond_broadcast(&wake_workers);
  pthread_mutex_unlock(&lock);

  inside_pool = 1;
  chunk(context, 0);
  inside_pool = 0;

  if (!spin_until_zero(&remaining)) {
    pthread_mutex_lock(&lock);
    caller_sleeps = 1;
    while (atomic_load_explicit(&remaining, memory_order_acquire) != 0) pthread_cond_wait(&wake_caller, &lock);
    caller_sleeps = 0;
    pthread_mutex_unlock(&lock);
  }
  atomic_store_explicit(&busy, 0, memory_order_release);
  return 0;
}

// The threads behind SAMTensor's parallel loops: workers that wait a little (spinning) for the next
// loop before they sleep, so that the short loops of a decode do not each wait for a sleeping
// thread to be woken. Knows nothing of what the chunks compute.
#ifndef SAM_THREAD_POOL_H
#define SAM_THREAD_POOL_H

#include <stddef.h>
#include <stdint.h>

/// One chunk of a loop: chunk 0 runs on the calling thread, chunk c >= 1 on worker c - 1.
typedef void (*sam_pool_chunk)(void *context, size_t chunk);

/// Runs chunk(context, c) for every c in 0..<chunks, chunk c >= 1 on worker c - 1 (started on first
/// use), and returns once all have returned. Returns 0 when it ran them. Returns -1 without running
/// anything when the pool is busy with another caller's loop, when it is called from inside one of
/// its chunks, or when a worker thread cannot be started: the caller then runs the loop another way.
int sam_pool_run(size_t chunks, sam_pool_chunk chunk, void *context);

/// How long, in microseconds, a worker waits for the next loop (and the caller for the workers)
/// by spinning before it sleeps: 0 sleeps at once. The default is 100.
void sam_pool_set_spin_microseconds(uint32_t microseconds);

#endif

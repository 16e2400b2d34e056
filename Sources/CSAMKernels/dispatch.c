// Which compiled version of the kernels runs: chosen once from the CPU's features.
#include "sam_kernels.h"

#include <stdatomic.h>

// -1 = not yet decided; else the lanes in use.
static atomic_int lanes_in_use = -1;

static int cpu_has_avx512(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return 0;
#endif
}

int sam_kernels_set_isa(int choice) {
  int lanes = (choice == 1 || !cpu_has_avx512()) ? 8 : 16;
  atomic_store_explicit(&lanes_in_use, lanes, memory_order_relaxed);
  return lanes;
}

int sam_kernels_lanes(void) {
  int lanes = atomic_load_explicit(&lanes_in_use, memory_order_relaxed);
  return lanes > 0 ? lanes : sam_kernels_set_isa(0);
}


// The OpenMP thread count for the machine's current load.
//
// The CPU backend runs each op as one parallel region (fork, split the outputs, join). On 2 cores that other
// processes also use, a team of 2 waits at every join for a thread the scheduler has paused: measured on this
// project's 2-core machine at load 4-5 (notes/perf.md), a demo SFT step took 95-137 ms with 2 threads and
// 39-54 ms with 1; on an idle machine 2 threads are 1.1-1.4x faster than 1. threads_adapt(), called between
// steps, looks at most once a second at how much CPU the other processes took since its last look, and
// runs the next steps on as many threads as they left cores free (rounded; at least 1, at most what OpenMP
// would use): on 2 cores, 2 threads while the others take under a third of a core, 1 above two thirds.
//
// Every parallel op splits independent outputs, so no result depends on the thread count (the tests check
// 1 against 2 threads bitwise): this changes the time only. An explicit OMP_NUM_THREADS, or
// VLM_ADAPT_THREADS=0, turns it off; VLM_ADAPT_THREADS=verbose prints each decision.
#pragma once

// Re-decides the thread count when a second has passed since it last did (cheap otherwise: a clock read);
// the first call starts the clock, and the first decision comes a quarter of a second later.
void threads_adapt(void);
// Keeps the thread count as it is from now on (benchmarks time a given count).
void threads_adapt_off(void);
// The decision: `others` the cores other processes used on average over the interval, `current` the team
// size now, `max` the most threads to use, `ncpu` the machine's cores. Returns the team size for the next
// interval: ncpu - others rounded, or the current size when that is within a sixth of a core of a midpoint.
int threads_choose(double others, int current, int max, int ncpu);

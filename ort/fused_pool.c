// The worker threads of the decoding kernels (BlockStep): one process-wide
// pool whose workers spin for a while after a job, so that the next job
// (the next projection, a few microseconds later) starts without a wake-up,
// and then sleep. A job runs on at most the threads its session was given:
// the caller takes the first share of its tasks and parts−1 workers the
// others (the rest only acknowledge it). ONNX Runtime's own intra-op pool is a poor fit for these jobs: it
// hands a step's short products to its threads at a cost larger than what
// the second thread saves (docs/kernels.md).

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "fused_kernels.h"

// poolSpins is how many times an idle worker checks for a new job before it
// sleeps: some tens of microseconds, longer than the gap between two jobs of
// one decoding step and between steps.
enum { poolSpins = 1 << 15, poolMaxWorkers = 255 };

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static struct {
	pthread_mutex_t busy; // held by the job's caller: one job at a time
	pthread_mutex_t mu;   // with cv: workers sleep and wake
	pthread_cond_t cv;
	int sleepers, workers;
	_Atomic unsigned seq; // bumped per job
	_Atomic int done;     // workers finished with the current job (all of them, even those it does not use)
	nss_task fn;          // the job: written only while no worker reads it
	void *user;
	size_t total;
	int parts;
	unsigned start[poolMaxWorkers + 1]; // the seq each worker was started at
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

// share runs part i of parts of the tasks [0, total): a contiguous range.
static void share(nss_task fn, void *user, size_t total, int parts, int i) {
	size_t lo = total * (size_t)i / (size_t)parts, hi = total * (size_t)(i + 1) / (size_t)parts;
	for (size_t t = lo; t < hi; t++) fn(user, t);
}

static void *worker(void *arg) {
	int id = (int)(intptr_t)arg; // 1…workers
	unsigned seen = pool.start[id];
	for (;;) {
		unsigned s;
		for (int spins = 0; (s = atomic_load_explicit(&pool.seq, memory_order_acquire)) == seen; spins++) {
			if (spins < poolSpins) {
				cpu_relax();
				continue;
			}
			pthread_mutex_lock(&pool.mu);
			pool.sleepers++;
			while (atomic_load_explicit(&pool.seq, memory_order_acquire) == seen) pthread_cond_wait(&pool.cv, &pool.mu);
			pool.sleepers--;
			pthread_mutex_unlock(&pool.mu);
			spins = 0;
		}
		seen = s;
		if (id < pool.parts) share(pool.fn, pool.user, pool.total, pool.parts, id);
		// Every worker says it is done, so that the caller writes the next
		// job only when no worker reads this one.
		atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
	}
	return NULL;
}

// grow starts workers until there are n (the caller holds busy); it
// returns how many there are.
static int grow(int n) {
	if (n > poolMaxWorkers) n = poolMaxWorkers;
	while (pool.workers < n) {
		pthread_t t;
		pthread_attr_t attr;
		if (pthread_attr_init(&attr)) break;
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pool.start[pool.workers + 1] = atomic_load_explicit(&pool.seq, memory_order_relaxed);
		int err = pthread_create(&t, &attr, worker, (void *)(intptr_t)(pool.workers + 1));
		pthread_attr_destroy(&attr);
		if (err) break;
		pool.workers++;
	}
	return pool.workers;
}

void nss_pool_par(void *ctx, nss_task fn, size_t total, void *user) {
	int parts = ctx ? *(const int *)ctx : 1;
	if (parts > 1 && (size_t)parts > total) parts = (int)total;
	if (parts <= 1 || pthread_mutex_trylock(&pool.busy) != 0) { // one thread, or another session's job is running
		nss_serial(NULL, fn, total, user);
		return;
	}
	int w = grow(parts - 1);
	if (parts > w + 1) parts = w + 1;
	pool.fn = fn, pool.user = user, pool.total = total, pool.parts = parts;
	atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&pool.seq, 1, memory_order_release);
	pthread_mutex_lock(&pool.mu);
	if (pool.sleepers) pthread_cond_broadcast(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	share(fn, user, total, parts, 0);
	while (atomic_load_explicit(&pool.done, memory_order_acquire) < w) cpu_relax();
	pthread_mutex_unlock(&pool.busy);
}

// nss_pool_count runs total tasks on parts threads, each adding one to its
// counts[i] (for the tests: every task runs exactly once).
static void count_task(void *user, size_t i) { __atomic_fetch_add((int *)user + i, 1, __ATOMIC_RELAXED); }

void nss_pool_count(int parts, size_t total, int *counts) { nss_pool_par(&parts, count_task, total, counts); }

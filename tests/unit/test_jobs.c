/*
 * The job pool: jobs run on pool threads and finish on their worker's
 * thread, which may free them at once (the pool reads nothing of a job
 * after handing it back: TSan checks that here); a full queue refuses;
 * freeing the pool drops what was never finished.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/jobs.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct test_job {
	struct bw_job job;
	int value;
	int *done_sum;
};

static atomic_int wakes, dropped;

static void wake(void *arg, uint32_t worker)
{
	(void)arg;
	(void)worker;
	atomic_fetch_add(&wakes, 1);
}

static void run(struct bw_job *job)
{
	((struct test_job *)job)->value *= 2;
}

static void done(struct bw_job *job)
{
	struct test_job *t = (struct test_job *)job;
	*t->done_sum += t->value;
	free(t); /* at once: the pool must not touch it any more */
}

static void drop(struct bw_job *job)
{
	atomic_fetch_add(&dropped, 1);
	free(job);
}

static struct test_job *job_new(int v, int *sum, uint32_t worker)
{
	struct test_job *t = calloc(1, sizeof(*t));
	t->job = (struct bw_job){ .run = run, .done = done, .drop = drop, .worker = worker };
	t->value = v;
	t->done_sum = sum;
	return t;
}

static void test_jobs_run_and_finish_on_their_worker(void **state)
{
	struct bw_jobs *j = bw_jobs_new(3, 2, wake, NULL);
	int sum[2] = { 0, 0 }, want[2] = { 0, 0 };
	(void)state;
	assert_non_null(j);
	for (int i = 1; i <= 2000; i++) {
		uint32_t w = (uint32_t)i % 2;
		assert_int_equal(bw_jobs_submit(j, &job_new(i, &sum[w], w)->job), 0);
		want[w] += 2 * i;
	}
	/* Bounded by time, not by spins: a loaded machine runs the pool late. */
	uint32_t finished = 0;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (now = start; finished < 2000 && now.tv_sec - start.tv_sec < 20;) {
		uint32_t n = bw_jobs_finish(j, 0, 64) + bw_jobs_finish(j, 1, 64);
		finished += n;
		if (!n) {
			nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
			clock_gettime(CLOCK_MONOTONIC, &now);
		}
	}
	assert_int_equal(finished, 2000);
	assert_int_equal(sum[0], want[0]);
	assert_int_equal(sum[1], want[1]);
	assert_true(atomic_load(&wakes) > 0);
	assert_int_equal(bw_jobs_pending(j), 0);
	bw_jobs_free(&j);
	assert_null(j);
}

static void test_unfinished_jobs_are_dropped(void **state)
{
	struct bw_jobs *j = bw_jobs_new(1, 1, NULL, NULL);
	int sum = 0;
	(void)state;
	atomic_store(&dropped, 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(bw_jobs_submit(j, &job_new(i, &sum, 0)->job), 0);
	struct test_job *bad = job_new(1, &sum, 5); /* no such worker */
	assert_int_equal(bw_jobs_submit(j, &bad->job), -EAGAIN);
	free(bad);
	bw_jobs_free(&j); /* none finished by a worker: all dropped */
	assert_int_equal(atomic_load(&dropped), 10);
	assert_int_equal(sum, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jobs_run_and_finish_on_their_worker),
		cmocka_unit_test(test_unfinished_jobs_are_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

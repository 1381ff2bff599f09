/*
 * Blocking work off the workers' threads: a small pool of threads for what
 * must not stall an event loop (password hashes cost 100 ms by design).
 * A worker submits a job; a pool thread runs job->run(); the job goes back
 * to its worker's done list and the worker is woken (the wake hook) to
 * call job->done() on its own thread. The queue is bounded: past
 * BW_JOBS_QUEUE_MAX jobs waiting, submit refuses (the caller fails closed).
 *
 * A job's memory is the submitter's (embed struct bw_job in it); run()
 * must touch nothing a worker owns. At shutdown, bw_jobs_free() stops the
 * threads and hands every job not yet done to drop() instead.
 */
#ifndef BW_NODE_JOBS_H
#define BW_NODE_JOBS_H

#include <stdint.h>

#define BW_JOBS_QUEUE_MAX 4096u

struct bw_job {
	struct bw_job *next;
	void (*run)(struct bw_job *job);  /* on a pool thread */
	void (*done)(struct bw_job *job); /* on the submitting worker's thread */
	void (*drop)(struct bw_job *job); /* never run or never done: frees it */
	uint32_t worker;
};

struct bw_jobs;

/*
 * threads pool threads for n_workers workers; wake(arg, worker) is called
 * from a pool thread after a job of that worker is done. NULL (errno).
 */
struct bw_jobs *bw_jobs_new(uint32_t threads, uint32_t n_workers,
                            void (*wake)(void *arg, uint32_t worker), void *arg);

/* Queues job (job->worker set); 0 or -EAGAIN when the queue is full. */
int bw_jobs_submit(struct bw_jobs *j, struct bw_job *job);

/* On worker's thread: calls done() of up to max of its finished jobs; returns how many. */
uint32_t bw_jobs_finish(struct bw_jobs *j, uint32_t worker, uint32_t max);

/* Jobs queued or running (a gauge for metrics). */
uint32_t bw_jobs_pending(struct bw_jobs *j);

/* Stops and joins the threads, drops every job left; NULLs *j. */
void bw_jobs_free(struct bw_jobs **j);

#endif

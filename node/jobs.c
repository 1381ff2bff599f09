/*
 * The job pool (see jobs.h): one mutex and condition for the queue, and a
 * done list a worker under its own mutex. Jobs are rare next to messages
 * (one a password CONNECT), so plain locks are the right tool.
 */
#include "node/jobs.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct done_list {
	pthread_mutex_t mu;
	struct bw_job *head, **tail;
};

struct bw_jobs {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct bw_job *head, **tail; /* queued */
	uint32_t queued, running;
	bool stop;
	void (*wake)(void *arg, uint32_t worker);
	void *arg;
	uint32_t n_threads, n_workers;
	pthread_t *threads;
	struct done_list *done; /* [n_workers] */
};

static void *pool_main(void *arg)
{
	struct bw_jobs *j = arg;

	pthread_mutex_lock(&j->mu);
	for (;;) {
		while (!j->head && !j->stop)
			pthread_cond_wait(&j->cv, &j->mu);
		if (j->stop)
			break;
		struct bw_job *job = j->head;
		j->head = job->next;
		if (!j->head)
			j->tail = &j->head;
		j->queued--;
		j->running++;
		pthread_mutex_unlock(&j->mu);

		job->run(job);
		/* Once on the done list the job is the worker's, who may free it
		 * at once: nothing of it is read after the push. It stops
		 * counting as running in the same step, so a caller that has
		 * finished every job never sees one still pending. */
		uint32_t worker = job->worker;
		struct done_list *d = &j->done[worker];
		job->next = NULL;
		pthread_mutex_lock(&j->mu);
		j->running--;
		pthread_mutex_lock(&d->mu);
		*d->tail = job;
		d->tail = &job->next;
		pthread_mutex_unlock(&d->mu);
		pthread_mutex_unlock(&j->mu);
		if (j->wake)
			j->wake(j->arg, worker);
		pthread_mutex_lock(&j->mu);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

struct bw_jobs *bw_jobs_new(uint32_t threads, uint32_t n_workers,
                            void (*wake)(void *arg, uint32_t worker), void *arg)
{
	struct bw_jobs *j = calloc(1, sizeof(*j));
	if (!j || !threads || !n_workers) {
		free(j);
		errno = j ? EINVAL : ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	j->tail = &j->head;
	j->wake = wake;
	j->arg = arg;
	j->n_workers = n_workers;
	j->threads = calloc(threads, sizeof(*j->threads));
	j->done = calloc(n_workers, sizeof(*j->done));
	if (!j->threads || !j->done) {
		bw_jobs_free(&j);
		errno = ENOMEM;
		return NULL;
	}
	for (uint32_t i = 0; i < n_workers; i++) {
		pthread_mutex_init(&j->done[i].mu, NULL);
		j->done[i].tail = &j->done[i].head;
	}
	for (; j->n_threads < threads; j->n_threads++) {
		if (pthread_create(&j->threads[j->n_threads], NULL, pool_main, j)) {
			bw_jobs_free(&j);
			errno = EAGAIN;
			return NULL;
		}
	}
	return j;
}

int bw_jobs_submit(struct bw_jobs *j, struct bw_job *job)
{
	int rc = 0;

	job->next = NULL;
	pthread_mutex_lock(&j->mu);
	if (j->stop || j->queued >= BW_JOBS_QUEUE_MAX || job->worker >= j->n_workers) {
		rc = -EAGAIN;
	} else {
		*j->tail = job;
		j->tail = &job->next;
		j->queued++;
		pthread_cond_signal(&j->cv);
	}
	pthread_mutex_unlock(&j->mu);
	return rc;
}

uint32_t bw_jobs_finish(struct bw_jobs *j, uint32_t worker, uint32_t max)
{
	struct done_list *d = &j->done[worker];
	uint32_t n = 0;

	while (n < max) {
		pthread_mutex_lock(&d->mu);
		struct bw_job *job = d->head;
		if (job) {
			d->head = job->next;
			if (!d->head)
				d->tail = &d->head;
		}
		pthread_mutex_unlock(&d->mu);
		if (!job)
			break;
		job->done(job);
		n++;
	}
	return n;
}

uint32_t bw_jobs_pending(struct bw_jobs *j)
{
	pthread_mutex_lock(&j->mu);
	uint32_t n = j->queued + j->running;
	pthread_mutex_unlock(&j->mu);
	return n;
}

void bw_jobs_free(struct bw_jobs **jp)
{
	struct bw_jobs *j = *jp;
	if (!j)
		return;
	*jp = NULL;
	pthread_mutex_lock(&j->mu);
	j->stop = true;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
	for (uint32_t i = 0; i < j->n_threads; i++)
		pthread_join(j->threads[i], NULL);
	for (struct bw_job *job = j->head, *next; job; job = next) {
		next = job->next;
		job->drop(job);
	}
	for (uint32_t w = 0; j->done && w < j->n_workers; w++) {
		for (struct bw_job *job = j->done[w].head, *next; job; job = next) {
			next = job->next;
			job->drop(job);
		}
		pthread_mutex_destroy(&j->done[w].mu);
	}
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j->threads);
	free(j->done);
	free(j);
}

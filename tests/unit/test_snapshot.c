/*
 * Snapshots: a session (subscriptions, will, inflight in both directions,
 * offline queue, next packet id) and retained messages go to a file and
 * come back to a fresh node, to their client id's home worker; a missing
 * file is an empty start; a truncated, foreign or damaged file is an error
 * that names the file and loads nothing past the damage.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/core/msg.h"
#include "node/core/session.h"
#include "node/core/snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const tenants[] = { "default", "acme" };
static struct bw_listener_config listener;
static struct bw_hub *hub;
static struct bw_broker *brokers[2];
static char dir[] = "/tmp/bw-snapshot-XXXXXX";

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wants_send(void *u)
{
	(void)u;
}

static void node_up(void)
{
	struct bw_hub_config hc = {
		.n_workers = 2, .tenant = tenants, .n_tenants = 2, .retained = { 100, 1 << 20, 16 }
	};
	hub = bw_hub_new(&hc);
	assert_non_null(hub);
	strcpy(listener.tenant, "acme");
	struct bw_broker_config bc = {
		.listeners = &listener,
		.n_listeners = 1,
		.max_inflight = 16,
		.quotas = { .max_qos = 2, .client_subscriptions = 8, .session_queued_msgs = 100 },
		.max_topic_levels = 16,
		.filters_max = 100,
		.hub = hub,
		.version = "test",
		.now_ms = mono_ms,
		.wants_send = wants_send
	};
	for (uint32_t i = 0; i < 2; i++) {
		bc.worker = i;
		assert_non_null(brokers[i] = bw_broker_new(&bc));
	}
}

static void node_down(void)
{
	for (int i = 0; i < 2; i++)
		bw_broker_free(&brokers[i]);
	bw_hub_free(&hub, NULL, NULL);
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/bw-snapshot-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char p[128];
	(void)state;
	snprintf(p, sizeof(p), "%s/%s", dir, BW_SNAPSHOT_FILE);
	unlink(p);
	rmdir(dir);
	return 0;
}

struct found {
	int n;
	struct bw_session_info si;
	int subs;
};

static int count_sub(void *arg, const uint8_t *f, size_t len, const struct bw_sub_opts *o)
{
	struct found *fd = arg;
	(void)o;
	if ((len == 3 && !memcmp(f, "a/#", 3)) || (len == 12 && !memcmp(f, "$share/g/b/+", 12)))
		fd->subs++;
	return 0;
}

static int find(void *arg, const struct bw_session_info *si)
{
	struct found *fd = arg;
	fd->n++;
	fd->si = *si;
	return 0;
}

static void test_round_trip(void **state)
{
	struct bw_snapshot_counts n;
	char err[256];
	(void)state;
	node_up();
	/* A session of tenant acme, on its home worker. */
	struct bw_str id = { (const uint8_t *)"dev-1", 5 };
	uint32_t home = bw_hub_home(hub, 1, id.p, id.len);
	struct bw_msg *will = bw_msg_new("w/t", 3, NULL, "bye", 3, 1, false, 0);
	struct bw_session_info si = { .tenant = 1,
		                      .client_id = id,
		                      .expiry_s = 600,
		                      .expires_at_ms = mono_ms() + 600000,
		                      .will = will,
		                      .will_delay_s = 30,
		                      .will_expiry_s = 9 };
	struct bw_session *s = bw_broker_session_restore(brokers[home], &si);
	assert_non_null(s);
	bw_msg_unref(&will);
	struct bw_sub_opts o = { .qos = 1, .sub_id = 5 };
	assert_int_equal(bw_broker_sub_restore(brokers[home], s, (const uint8_t *)"a/#", 3, &o), 0);
	o.sub_id = 0;
	assert_int_equal(
	        bw_broker_sub_restore(brokers[home], s, (const uint8_t *)"$share/g/b/+", 12, &o),
	        0);
	struct bw_msg *m = bw_msg_new("a/1", 3, NULL, "p1", 2, 2, false, 0);
	struct bw_delivery d = { .msg = m, .qos = 2, .n_sub_ids = 1, .sub_ids = { 5 } };
	assert_int_equal(bw_session_restore(s, &d, 41, BW_INFLIGHT_RELEASED, 0, 0), 0);
	d.qos = 1;
	assert_int_equal(bw_session_enqueue(s, &d), 0);
	bw_msg_unref(&m);
	assert_int_equal(bw_session_inbound_qos2(s, 9), 1);
	bw_session_restore(s, NULL, 0, 0, 0, 77);
	struct bw_msg *r = bw_msg_new("keep", 4, NULL, "R", 1, 1, true, 0);
	assert_int_equal(bw_hub_retained_put(hub, 1, (const uint8_t *)"keep", 4, r), 0);
	bw_msg_unref(&r);
	assert_int_equal(bw_snapshot_save(dir, hub, brokers, true, &n, err, sizeof(err)), 0);
	assert_int_equal(n.sessions, 1);
	assert_int_equal(n.retained, 1);
	node_down();

	node_up();
	assert_int_equal(bw_snapshot_load(dir, hub, brokers, true, &n, err, sizeof(err)), 0);
	assert_int_equal(n.sessions, 1);
	assert_int_equal(n.retained, 1);
	struct found fd = { 0 };
	bw_broker_sessions(brokers[1 - home], find, &fd);
	assert_int_equal(fd.n, 0); /* not on the other worker */
	bw_broker_sessions(brokers[home], find, &fd);
	assert_int_equal(fd.n, 1);
	assert_int_equal(fd.si.tenant, 1);
	assert_int_equal(fd.si.expiry_s, 600);
	assert_non_null(fd.si.will);
	assert_int_equal(fd.si.will_delay_s, 30);
	assert_int_equal(fd.si.will_expiry_s, 9);
	bw_broker_session_subs(brokers[home], &fd.si, count_sub, &fd);
	assert_int_equal(fd.subs, 2);
	uint32_t cur = 0;
	const struct bw_inflight *f = bw_session_inflight_at(fd.si.state, &cur);
	assert_non_null(f);
	assert_int_equal(f->packet_id, 41);
	assert_int_equal(f->state, BW_INFLIGHT_RELEASED);
	assert_int_equal(f->d.n_sub_ids, 1);
	assert_int_equal(f->d.sub_ids[0], 5);
	assert_int_equal(bw_session_queued(fd.si.state), 1);
	assert_int_equal(bw_session_inbound_qos2(fd.si.state, 9), 0); /* still pending */
	assert_int_equal(bw_session_next_id(fd.si.state), 77);
	struct bw_tenant_totals tt;
	bw_hub_totals(hub, 1, &tt);
	assert_int_equal(tt.retained, 1);
	assert_int_equal(tt.subscriptions, 2);
	node_down();

	/* Sessions and retained messages in Redis: the snapshot's are skipped, and no new ones
	 * saved. */
	node_up();
	assert_int_equal(bw_snapshot_load(dir, hub, brokers, false, &n, err, sizeof(err)), 0);
	assert_int_equal(n.sessions, 0);
	assert_int_equal(n.retained, 0);
	assert_int_equal(n.skipped, 2);
	bw_hub_totals(hub, 1, &tt);
	assert_int_equal(tt.retained, 0);
	r = bw_msg_new("keep", 4, NULL, "R", 1, 1, true, 0);
	assert_int_equal(bw_hub_retained_put(hub, 1, (const uint8_t *)"keep", 4, r), 0);
	bw_msg_unref(&r);
	assert_int_equal(bw_snapshot_save(dir, hub, brokers, false, &n, err, sizeof(err)), 0);
	assert_int_equal(n.sessions, 0);
	assert_int_equal(n.retained, 0);
	node_down();
	node_up();
	assert_int_equal(bw_snapshot_load(dir, hub, brokers, true, &n, err, sizeof(err)), 0);
	assert_int_equal(n.retained, 0);
	assert_int_equal(n.skipped, 0);
	node_down();
}

static void write_file(const void *p, size_t n)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, BW_SNAPSHOT_FILE);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static void test_missing_and_damaged_files(void **state)
{
	struct bw_snapshot_counts n;
	char err[256];
	(void)state;
	node_up();
	assert_int_equal(bw_snapshot_load(dir, hub, brokers, true, &n, err, sizeof(err)), 0);
	assert_int_equal(n.sessions + n.retained, 0);
	write_file("not a snapshot", 14);
	assert_int_equal(bw_snapshot_load(dir, hub, brokers, true, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, BW_SNAPSHOT_FILE));
	/* The header alone: no end frame, so it was cut short. */
	static const uint8_t head[] = { 'B', 'W', 'S', 'N', 'A', 'P', 0, 1 };
	write_file(head, sizeof(head));
	assert_int_equal(bw_snapshot_load(dir, hub, brokers, true, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "truncated"));
	/* A frame whose length runs past the end, and one that is not a record. */
	uint8_t bad[8 + 5 + 3];
	memcpy(bad, head, 8);
	memcpy(bad + 8, (uint8_t[]){ 1, 200, 0, 0, 0 }, 5);
	write_file(bad, 8 + 5);
	assert_int_equal(bw_snapshot_load(dir, hub, brokers, true, &n, err, sizeof(err)), -EINVAL);
	memcpy(bad + 8, (uint8_t[]){ 1, 3, 0, 0, 0, 0xff, 0xff, 0xff }, 8);
	write_file(bad, sizeof(bad));
	assert_true(bw_snapshot_load(dir, hub, brokers, true, &n, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "byte 8"));
	node_down();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_damaged_files, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Live migration of shared memory (see migrate.h). */
#include "migrate.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

int sim_migrate_init(struct sim *s)
{
	struct sim_migration *m = &s->migration;

	m->enabled = s->cfg.migrate;
	if (!m->enabled)
		return 0;
	s->host.pages_changed = sim_migrate_mark;
	m->nr_words = (s->nr_gfns + 63) / 64;
	m->marked = calloc(m->nr_words, sizeof(*m->marked));
	m->harvest = calloc(m->nr_words, sizeof(*m->harvest));
	m->dest = calloc(s->nr_gfns, sizeof(*m->dest));
	m->copied_in = calloc(s->nr_gfns, sizeof(*m->copied_in));
	if (!m->marked || !m->harvest || !m->dest || !m->copied_in)
		return -ENOMEM;
	return 0;
}

void sim_migrate_fini(struct sim *s)
{
	struct sim_migration *m = &s->migration;

	free(m->marked);
	free(m->harvest);
	free(m->dest);
	free(m->copied_in);
	memset(m, 0, sizeof(*m));
}

void sim_migrate_mark(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	struct sim_migration *m = &s->migration;

	if (!m->enabled)
		return;
	for (tdp_gfn_t g = gfn; g < gfn + n && g < s->nr_gfns; g++)
		__atomic_fetch_or(&m->marked[g / 64], 1ULL << (g % 64),
				  __ATOMIC_RELEASE);
}

/* Copy page @gfn if it is shared; returns true if it was. */
static bool copy_page(struct sim *s, tdp_gfn_t gfn, unsigned int round)
{
	struct sim_migration *m = &s->migration;
	uint64_t tag;

	if (!sim_host_read_shared(s, gfn, &tag)) {
		m->copied_in[gfn] = 0;
		return false;
	}
	m->dest[gfn] = tag;
	m->copied_in[gfn] = round + 1;
	return true;
}

static bool engine_ok(struct sim *s, int64_t ret, const char *what)
{
	if (ret >= 0)
		return true;
	sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0, SIM_NO_GFN,
		      SIM_NO_VCPU, "%s failed: %" PRId64, what, ret);
	if (ret == -EIO || ret == -ESHUTDOWN)
		sim_stop_request(&s->run);
	return false;
}

bool sim_migrate_round(struct sim *s)
{
	struct sim_migration *m = &s->migration;
	unsigned int round = m->nr_rounds;
	struct sim_migrate_round *r;
	int64_t ret;

	if (!m->enabled || round >= SIM_MIGRATE_MAX_ROUNDS)
		return false;
	r = &m->rounds[round];
	m->nr_rounds++;
	sim_count(&s->stats, SIM_C_MIGRATE_ROUNDS, 1);
	if (round == 0) {
		/* Logging on: dirty bits from now on mean "written since". */
		ret = tdp_clear_dirty_range(s->mmu, 0, s->nr_gfns,
					    TDP_ALIAS_SHARED);
		if (!engine_ok(s, ret, "tdp_clear_dirty_range"))
			return false;
		/* Everything is copied now: older marks are moot. */
		for (uint64_t w = 0; w < m->nr_words; w++)
			__atomic_exchange_n(&m->marked[w], 0, __ATOMIC_ACQ_REL);
		for (tdp_gfn_t g = 0; g < s->nr_gfns; g++)
			r->copied += copy_page(s, g, round);
		sim_count(&s->stats, SIM_C_MIGRATE_COPIED, r->copied);
		return true;
	}

	memset(m->harvest, 0, m->nr_words * sizeof(*m->harvest));
	ret = tdp_harvest_dirty(s->mmu, 0, s->nr_gfns, m->harvest,
				TDP_ALIAS_SHARED);
	if (!engine_ok(s, ret, "tdp_harvest_dirty"))
		return false;
	r->harvested = (uint64_t)ret;
	for (uint64_t w = 0; w < m->nr_words; w++) {
		uint64_t marked = __atomic_exchange_n(&m->marked[w], 0,
						      __ATOMIC_ACQ_REL);
		uint64_t dirty = m->harvest[w] | marked;

		r->marked += (uint64_t)__builtin_popcountll(marked);
		for (; dirty; dirty &= dirty - 1) {
			tdp_gfn_t g = w * 64 + (uint64_t)__builtin_ctzll(dirty);

			if (g >= s->nr_gfns)
				break;
			r->dirtied++;
			if (m->copied_in[g] == round)
				r->redirtied++;
			r->copied += copy_page(s, g, round);
		}
	}
	sim_count(&s->stats, SIM_C_MIGRATE_HARVESTED, r->harvested);
	sim_count(&s->stats, SIM_C_MIGRATE_COPIED, r->copied);
	return true;
}

uint64_t sim_migrate_finish(struct sim *s)
{
	struct sim_migration *m = &s->migration;
	uint64_t missed = 0;

	if (!m->enabled || !m->nr_rounds)
		return 0;
	/* Stop and copy: the last round, with the guest stopped. */
	if (m->nr_rounds == SIM_MIGRATE_MAX_ROUNDS)
		m->nr_rounds--;
	if (!sim_migrate_round(s))
		return 0;
	for (tdp_gfn_t g = 0; g < s->nr_gfns; g++) {
		uint64_t tag;

		if (!sim_host_read_shared(s, g, &tag))
			continue;
		m->final_checked++;
		if (m->copied_in[g] && m->dest[g] == tag)
			continue;
		missed++;
		sim_violation(&s->report, SIM_V_DIRTY_LOG, 0, g, SIM_NO_VCPU,
			      "migration: shared page holds version %" PRIu64
			      " but the destination got %s: it was written "
			      "after round %u copied it and never reported "
			      "dirty",
			      SIM_TAG_VERSION(tag),
			      m->copied_in[g] ? "an older one" : "nothing",
			      m->copied_in[g] ? m->copied_in[g] - 1 : 0);
	}
	sim_count(&s->stats, SIM_C_MIGRATE_FINAL_CHECKED, m->final_checked);
	return missed;
}

/* ---- the migration thread ------------------------------------------------ */

static void *migrate_main(void *arg)
{
	struct sim *s = arg;
	/* About 20 rounds over the run, leaving room for the last one. */
	double interval = fmax(0.02, s->cfg.duration / 20);
	double next;

	tdp_thread_register();
	next = sim_now();
	while (!sim_stop_requested(&s->run)) {
		sim_pause_point(&s->run);
		if (sim_now() < next) {
			usleep(2000);
			continue;
		}
		if (s->migration.nr_rounds + 1 >= SIM_MIGRATE_MAX_ROUNDS ||
		    !sim_migrate_round(s))
			break;
		next = sim_now() + interval;
	}
	sim_worker_done(&s->run);
	tdp_thread_unregister();
	return NULL;
}

int sim_migrate_start(struct sim *s)
{
	if (!s->migration.enabled)
		return 0;
	if (pthread_create(&s->migration.thread, NULL, migrate_main, s))
		return -EAGAIN;
	s->migration.thread_started = true;
	return 0;
}

void sim_migrate_join(struct sim *s)
{
	if (s->migration.thread_started)
		pthread_join(s->migration.thread, NULL);
	s->migration.thread_started = false;
}

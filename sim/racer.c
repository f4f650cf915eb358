/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The racing CPU (see racer.h).
 *
 * The engine updates direct leaves that hardware may update at the same
 * time: write-protect and clear-dirty rewrite a leaf whose accessed and
 * dirty bits a CPU may set between the engine's read and its write, and
 * the zap of an invalidated root clears leaves a CPU still walks until
 * it loads the new root.  The engine must use compare-exchange there and
 * refresh its copy when it loses.  The vCPUs do set these bits, but only
 * on a TLB miss, and the window is a few instructions wide: on two
 * loaded cores they almost never land in it.
 *
 * This thread is a CPU that writes every page of a small range in a
 * tight loop: while the host aims it (sim_racer_aim()), it walks the tree
 * from the aimed root and sets the accessed bit of each present leaf, and
 * the dirty bit of each writable one, with a compare-exchange, as
 * hardware does.  Aimed at a zap's front, it sets the bits of the first
 * leaf still present, the very entry the zap is working on.
 *
 * It obeys flushes like vCPU 0: each walk and update is made with vCPU
 * 0's TLB lock held, which every shootdown takes, so after a flush
 * returns the racer no longer writes into what the flush covered (what
 * an engine that reads an unlinked table after its flush relies on).  A
 * dirty bit it sets goes into the dirty-bit ledger under the same lock,
 * like a vCPU's: the engine must report it or leave it in the tree.  It
 * writes no guest memory, so a page it marks dirty only looks written to
 * the dirty log, which is allowed.
 */
#include "racer.h"

#include <pthread.h>
#include <unistd.h>

#include "layout.h"
#include "sim.h"
#include "vcpu.h"

/* Leaves updated per aim check: short, so a disarm takes effect soon. */
#define RACER_BATCH 64

struct racer_aim {
	tdp_pfn_t root_pfn;
	int root_level;
	tdp_gfn_t start;
	uint64_t n;
	bool front;
};

static uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

void sim_racer_aim(struct sim *s, tdp_pfn_t root_pfn, int root_level,
		   tdp_gfn_t start, uint64_t n, bool front)
{
	struct sim_racer *r = &s->racer;
	uint64_t gen = load(&r->gen);

	store(&r->gen, gen + 1);
	store(&r->root_level, (uint64_t)root_level);
	store(&r->start, start);
	store(&r->n, n);
	store(&r->front, front);
	store(&r->root_pfn, root_pfn);
	store(&r->gen, gen + 2);
}

void sim_racer_disarm(struct sim *s)
{
	struct sim_racer *r = &s->racer;
	uint64_t gen = load(&r->gen);

	store(&r->gen, gen + 1);
	store(&r->root_pfn, 0);
	store(&r->gen, gen + 2);
	/* Whatever it read before, it is done with the root once it took
	 * and left vCPU 0's TLB lock after this (it holds it per batch). */
	if (s->vcpus.nr) {
		pthread_mutex_lock(&s->vcpus.v[0].tlb_lock);
		pthread_mutex_unlock(&s->vcpus.v[0].tlb_lock);
	}
}

/* A consistent copy of the aim; false if not aimed. */
static bool read_aim(struct sim_racer *r, struct racer_aim *a)
{
	for (;;) {
		uint64_t gen = load(&r->gen);

		if (gen & 1)
			continue;
		a->root_pfn = load(&r->root_pfn);
		a->root_level = (int)load(&r->root_level);
		a->start = load(&r->start);
		a->n = load(&r->n);
		a->front = load(&r->front);
		if (load(&r->gen) == gen)
			return a->root_pfn != 0;
	}
}

static unsigned int index_at(tdp_gfn_t gfn, int level)
{
	return (unsigned int)(gfn >> ((level - 1) * TDP_LEVEL_BITS)) &
	       (TDP_SPTES_PER_TABLE - 1);
}

/*
 * The first present leaf at or after @gfn below @table (level @level,
 * covering the GFNs from @base), before @end: its slot, or NULL.
 * *@gfn_out is the first GFN it maps.
 */
static tdp_spte_t *first_leaf(const struct tdp_spte_format *fmt,
			      const tdp_spte_t *table, int level,
			      tdp_gfn_t base, tdp_gfn_t gfn, tdp_gfn_t end,
			      tdp_gfn_t *gfn_out, int *level_out)
{
	uint64_t span = tdp_level_pages(level);

	for (unsigned int i = index_at(gfn, level);
	     i < TDP_SPTES_PER_TABLE && base + i * span < end; i++) {
		tdp_spte_t spte = __atomic_load_n(&table[i], __ATOMIC_ACQUIRE);
		tdp_gfn_t from = base + i * span;
		tdp_spte_t *slot;

		if (!tdp_spte_is_present(fmt, spte) ||
		    tdp_spte_is_mmio(fmt, spte))
			continue;
		if (tdp_spte_is_leaf(fmt, spte, level)) {
			*gfn_out = from;
			*level_out = level;
			/* The engine's table; hardware writes it. */
			return (tdp_spte_t *)&table[i];
		}
		slot = first_leaf(fmt, tdp_pfn_to_table(tdp_spte_pfn(fmt, spte)),
				  level - 1, from, from > gfn ? from : gfn, end,
				  gfn_out, level_out);
		if (slot)
			return slot;
	}
	return NULL;
}

/* The slot of the leaf translating @gfn below @root, or NULL. */
static tdp_spte_t *leaf_slot(const struct tdp_spte_format *fmt,
			     const tdp_spte_t *table, int level, tdp_gfn_t gfn,
			     int *level_out)
{
	for (; level >= TDP_LEVEL_4K; level--) {
		const tdp_spte_t *slot = &table[index_at(gfn, level)];
		tdp_spte_t spte = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

		if (!tdp_spte_is_present(fmt, spte) ||
		    tdp_spte_is_mmio(fmt, spte))
			return NULL;
		if (tdp_spte_is_leaf(fmt, spte, level)) {
			*level_out = level;
			/* The engine's table; hardware writes it. */
			return (tdp_spte_t *)slot;
		}
		table = tdp_pfn_to_table(tdp_spte_pfn(fmt, spte));
	}
	return NULL;
}

/*
 * What a write to the page does to leaf @slot (mapping from @gfn): the
 * accessed bit, and the dirty bit if the leaf is writable, with a
 * compare-exchange.  Returns false if the leaf is write-protected (the
 * write takes a fault), true otherwise.
 */
static bool touch(struct sim *s, tdp_spte_t *slot, tdp_gfn_t gfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	tdp_spte_t seen = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	tdp_spte_t want;

	if (!tdp_spte_is_present(fmt, seen) || tdp_spte_is_frozen(fmt, seen))
		return true;
	if (!(seen & fmt->writable))
		return false;
	want = seen | fmt->accessed;
	if (seen & fmt->writable)
		want |= fmt->dirty;
	if (want == seen ||
	    !__atomic_compare_exchange_n(slot, &seen, want, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return true;
	sim_count(&s->stats, SIM_C_RACER_BITS, 1);
	if ((want & fmt->dirty) && !(seen & fmt->dirty))
		sim_ledger_cpu_dirtied(s, gfn & ~SIM_SHARED_BIT);
	return true;
}

/*
 * One batch of updates on the aim @a; vCPU 0's TLB lock held.  Returns
 * the number of write-protected leaves met (their GFNs in @wp): the
 * writes to them fault, which the caller resolves after the batch.
 */
static unsigned int racer_batch(struct sim *s, const struct racer_aim *a,
				tdp_gfn_t *next, tdp_gfn_t *wp)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	const tdp_spte_t *root = tdp_pfn_to_table(a->root_pfn);
	tdp_gfn_t end = a->start + a->n;
	unsigned int nr_wp = 0;

	for (int i = 0; i < RACER_BATCH && !a->front; i++) {
		tdp_gfn_t gfn;
		int level;
		tdp_spte_t *slot;

		/* Downwards: the engine's walks go up, so the two meet in
		 * the middle of the range on every pass. */
		if (*next <= a->start || *next > end)
			*next = end;
		gfn = --*next;
		slot = leaf_slot(fmt, root, a->root_level, gfn, &level);
		if (slot && !touch(s, slot, gfn) && nr_wp < RACER_BATCH)
			wp[nr_wp++] = gfn;
	}
	for (int i = 0; i < RACER_BATCH && a->front; i++) {
		tdp_gfn_t gfn;
		int level;
		tdp_spte_t *slot;

		if (*next < a->start || *next >= end)
			*next = a->start;
		slot = first_leaf(fmt, root, a->root_level, 0, *next, end, &gfn,
				  &level);
		if (!slot) {
			/* Past the end: the next pass starts over. */
			*next = a->start;
			break;
		}
		touch(s, slot, gfn);
		/* A zap's front only moves up within a pass: stay on it. */
		*next = gfn;
	}
	return nr_wp;
}

static void *racer_main(void *arg)
{
	struct sim *s = arg;
	struct sim_vcpu *v0 = &s->vcpus.v[0];
	tdp_gfn_t next = 0;

	tdp_thread_register();
	while (!sim_stop_requested(&s->run)) {
		tdp_gfn_t wp[RACER_BATCH];
		unsigned int nr_wp = 0;
		struct racer_aim a;

		sim_pause_point(&s->run);
		pthread_mutex_lock(&v0->tlb_lock);
		tdp_walk_begin();
		if (read_aim(&s->racer, &a))
			nr_wp = racer_batch(s, &a, &next, wp);
		tdp_walk_end();
		pthread_mutex_unlock(&v0->tlb_lock);
		/*
		 * A write to a write-protected page faults; the fast path
		 * gives the write bit back when the host allows it (dirty
		 * logging's write-protect), as a vCPU's fault would, and the
		 * next batch dirties the page again.
		 */
		for (unsigned int i = 0; i < nr_wp; i++)
			tdp_fast_fix(s->mmu, wp[i],
				     TDP_PROT_READ | TDP_PROT_WRITE);
		if (!a.root_pfn)
			usleep(100);
	}
	sim_worker_done(&s->run);
	tdp_thread_unregister();
	return NULL;
}

bool sim_racer_start(struct sim *s)
{
	if (s->replay || s->cfg.event_rate <= 0 || !s->vcpus.nr)
		return false;
	s->racer.started =
		!pthread_create(&s->racer.thread, NULL, racer_main, s);
	return s->racer.started;
}

void sim_racer_join(struct sim *s)
{
	if (s->racer.started)
		pthread_join(s->racer.thread, NULL);
	s->racer.started = false;
}

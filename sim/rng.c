/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Seeding of the per-thread generators. */
#include "rng.h"

_Thread_local struct sim_rng *sim_rng_current;
static _Thread_local struct sim_rng fallback_rng;
static _Thread_local bool fallback_seeded;

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL);

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

struct sim_rng *sim_rng_for_thread(void)
{
	if (sim_rng_current)
		return sim_rng_current;
	if (!fallback_seeded) {
		sim_rng_seed(&fallback_rng, (uint64_t)(uintptr_t)&fallback_rng,
			     0);
		fallback_seeded = true;
	}
	return &fallback_rng;
}

uint32_t sim_pct_to_ppm(double pct)
{
	if (pct <= 0)
		return 0;
	if (pct >= 100)
		return 1000000;
	return (uint32_t)(pct * 10000.0 + 0.5);
}

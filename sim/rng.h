/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Seeded pseudo-random numbers for the simulator.  Every thread owns one
 * generator derived from the run's seed and the thread's role, so a run is
 * reproducible from its seed as far as thread scheduling allows.  Code that
 * is not handed a generator (the TDX module's fault injection) uses the
 * calling thread's own, published in sim_rng_current.
 */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <stdbool.h>
#include <stdint.h>

/* xoshiro256** state; owned by one thread. */
struct sim_rng {
	uint64_t s[4];
};

/* The calling thread's generator, or NULL (see sim_rng_for_thread()). */
extern _Thread_local struct sim_rng *sim_rng_current;

static inline uint64_t sim_rng_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t sim_rng_next(struct sim_rng *r)
{
	uint64_t result = sim_rng_rotl(r->s[1] * 5, 7) * 9;
	uint64_t t = r->s[1] << 17;

	r->s[2] ^= r->s[0];
	r->s[3] ^= r->s[1];
	r->s[1] ^= r->s[2];
	r->s[0] ^= r->s[3];
	r->s[2] ^= t;
	r->s[3] = sim_rng_rotl(r->s[3], 45);
	return result;
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t sim_rng_below(struct sim_rng *r, uint64_t n)
{
	return sim_rng_next(r) % n;
}

/* True with probability @ppm parts per million. */
static inline bool sim_rng_ppm(struct sim_rng *r, uint32_t ppm)
{
	return ppm && sim_rng_below(r, 1000000) < ppm;
}

/* Seed @r from the run's @seed and a per-thread @stream number. */
void sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream);

/*
 * The calling thread's generator; a thread that never set one gets a
 * private generator seeded from its stack address (used only by threads
 * outside the scenario, such as liburcu's callback thread).
 */
struct sim_rng *sim_rng_for_thread(void);

/* Convert a percentage (0..100) to parts per million. */
uint32_t sim_pct_to_ppm(double pct);

#endif /* SIM_RNG_H */

// SPDX-License-Identifier: LGPL-2.1-or-later
/* The environment of one test: the shared test support's, checked. */
#include "st.h"

bool st_env_init(struct st *t, struct ts_env *e, const struct ts_env_opts *o)
{
	int ret;

	tdp_thread_register();
	ret = ts_env_init(e, o);
	if (!ST_EQ(t, ret, 0)) {
		tdp_thread_unregister();
		return false;
	}
	e->owner = t;
	return true;
}

void st_env_teardown(struct ts_env *e, int expect)
{
	if (e->mmu)
		ST_EQ(st_of(e), ts_env_teardown(e, expect), 0);
}

void st_env_destroy(struct ts_env *e)
{
	if (!e->mmu)
		return;
	ts_env_destroy(e);
	tdp_thread_unregister();
}

void st_env_fini(struct ts_env *e)
{
	st_env_teardown(e, 0);
	st_env_destroy(e);
}

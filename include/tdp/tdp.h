/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libtdp: everything an embedder includes. */
#ifndef TDP_TDP_H
#define TDP_TDP_H

#include <tdp/age.h>
#include <tdp/backend.h>
#include <tdp/dirty.h>
#include <tdp/fault.h>
#include <tdp/huge.h>
#include <tdp/lookup.h>
#include <tdp/mmu.h>
#include <tdp/root.h>
#include <tdp/spte.h>
#include <tdp/stats.h>
#include <tdp/types.h>
#include <tdp/zap.h>

#endif /* TDP_TDP_H */

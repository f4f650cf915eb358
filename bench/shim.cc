// SPDX-License-Identifier: LGPL-2.1-or-later
// The C shim over Google Benchmark: every call is a cast of the opaque
// handle back to the C++ object.
#include "shim.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>

namespace {
benchmark::State &S(tdpb_state *st) { return *reinterpret_cast<benchmark::State *>(st); }
benchmark::internal::Benchmark *B(tdpb_bench *b)
{
	return reinterpret_cast<benchmark::internal::Benchmark *>(b);
}
tdpb_bench *H(benchmark::internal::Benchmark *b) { return reinterpret_cast<tdpb_bench *>(b); }

// The display reporter --benchmark_format selects, counting the runs that
// failed, so that a failed check fails the program and not only its row.
class FailureCounter : public benchmark::BenchmarkReporter {
public:
	explicit FailureCounter(benchmark::BenchmarkReporter *inner) : inner_(inner) {}
	bool ReportContext(const Context &context) override { return inner_->ReportContext(context); }
	void ReportRuns(const std::vector<Run> &runs) override
	{
		for (const Run &run : runs)
			failed_ += run.error_occurred;
		inner_->ReportRuns(runs);
	}
	void Finalize() override { inner_->Finalize(); }
	int failed() const { return failed_; }

private:
	std::unique_ptr<benchmark::BenchmarkReporter> inner_;
	int failed_ = 0;
};

// --verify: every benchmark runs one iteration; only its checks matter.
bool verify_mode = false;
} // namespace

extern "C" {

void tdpb_set_verify(bool on) { verify_mode = on; }
bool tdpb_verifying(void) { return verify_mode; }

tdpb_bench *tdpb_register(const char *name, tdpb_fn fn, void *arg)
{
	benchmark::internal::Benchmark *b =
		benchmark::RegisterBenchmark(name, [fn, arg](benchmark::State &st) {
			fn(reinterpret_cast<tdpb_state *>(&st), arg);
		});
	if (verify_mode)
		b->Iterations(1);
	return H(b);
}

tdpb_bench *tdpb_arg(tdpb_bench *b, int64_t arg) { return H(B(b)->Arg(arg)); }
tdpb_bench *tdpb_range(tdpb_bench *b, int64_t lo, int64_t hi) { return H(B(b)->Range(lo, hi)); }
tdpb_bench *tdpb_arg_name(tdpb_bench *b, const char *name) { return H(B(b)->ArgName(name)); }
tdpb_bench *tdpb_threads(tdpb_bench *b, int threads) { return H(B(b)->Threads(threads)); }
tdpb_bench *tdpb_thread_range(tdpb_bench *b, int lo, int hi) { return H(B(b)->ThreadRange(lo, hi)); }
tdpb_bench *tdpb_real_time(tdpb_bench *b) { return H(B(b)->UseRealTime()); }
// In --verify mode the one iteration set at registration stands.
tdpb_bench *tdpb_min_time(tdpb_bench *b, double seconds)
{
	return verify_mode ? b : H(B(b)->MinTime(seconds));
}
tdpb_bench *tdpb_iterations(tdpb_bench *b, int64_t n)
{
	return verify_mode ? b : H(B(b)->Iterations(n));
}
tdpb_bench *tdpb_unit_ns(tdpb_bench *b) { return H(B(b)->Unit(benchmark::kNanosecond)); }
tdpb_bench *tdpb_manual_time(tdpb_bench *b) { return H(B(b)->UseManualTime()); }

bool tdpb_keep_running(tdpb_state *st) { return S(st).KeepRunning(); }
bool tdpb_keep_running_batch(tdpb_state *st, int64_t n) { return S(st).KeepRunningBatch(n); }
void tdpb_pause(tdpb_state *st) { S(st).PauseTiming(); }
void tdpb_resume(tdpb_state *st) { S(st).ResumeTiming(); }
void tdpb_set_iteration_time(tdpb_state *st, double seconds) { S(st).SetIterationTime(seconds); }

int64_t tdpb_range_arg(tdpb_state *st, int index) { return S(st).range(static_cast<size_t>(index)); }
int tdpb_thread_index(tdpb_state *st) { return S(st).thread_index(); }
int tdpb_thread_count(tdpb_state *st) { return S(st).threads(); }
int64_t tdpb_iterations_done(tdpb_state *st) { return static_cast<int64_t>(S(st).iterations()); }

void tdpb_set_items_processed(tdpb_state *st, int64_t items) { S(st).SetItemsProcessed(items); }
void tdpb_set_bytes_processed(tdpb_state *st, int64_t bytes) { S(st).SetBytesProcessed(bytes); }

void tdpb_counter(tdpb_state *st, const char *name, double value, bool avg_threads)
{
	S(st).counters[name] = benchmark::Counter(
		value, avg_threads ? benchmark::Counter::kAvgThreads : benchmark::Counter::kDefaults);
}

void tdpb_counter_rate(tdpb_state *st, const char *name, double value)
{
	S(st).counters[name] = benchmark::Counter(value, benchmark::Counter::kIsRate);
}

void tdpb_skip_with_error(tdpb_state *st, const char *msg) { S(st).SkipWithError(msg); }
void tdpb_set_label(tdpb_state *st, const char *label) { S(st).SetLabel(label); }

int tdpb_main(int argc, char **argv)
{
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	FailureCounter display(benchmark::CreateDefaultDisplayReporter());
	benchmark::RunSpecifiedBenchmarks(&display);
	benchmark::Shutdown();
	if (display.failed()) {
		fprintf(stderr, "tdpbench: %d run(s) failed\n", display.failed());
		return 1;
	}
	return 0;
}

} // extern "C"

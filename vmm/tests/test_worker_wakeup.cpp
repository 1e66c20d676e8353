#include <doctest/doctest.h>

#include "devices/worker_wakeup.h"

using namespace ntc::vmm;

TEST_CASE("a worker starts batched, serves at once after small batches, and tries batching again") {
    WorkerWakeup w;
    CHECK(w.batched());
    // A batch worth its cost resets the run of small ones.
    for (unsigned i = 0; i + 1 < WorkerWakeup::kSmallBatches; i++) CHECK_FALSE(w.served(1));
    CHECK_FALSE(w.served(WorkerWakeup::kWorthwhileBatch));
    for (unsigned i = 0; i + 1 < WorkerWakeup::kSmallBatches; i++)
        CHECK_FALSE(w.served(WorkerWakeup::kWorthwhileBatch - 1));
    CHECK_FALSE(w.served(0));  // found nothing: says nothing
    CHECK(w.batched());
    CHECK(w.served(1));
    CHECK_FALSE(w.batched());

    // Served at once, every wake-up finds one request whatever the guest
    // queues; after a while batching is tried again.
    for (unsigned i = 0; i + 1 < WorkerWakeup::kPromptBeforeRetry; i++) CHECK_FALSE(w.served(i % 3 ? 1 : 2));
    CHECK_FALSE(w.batched());
    CHECK(w.served(1));
    CHECK(w.batched());
    // A guest that queues many keeps it batched.
    for (unsigned i = 0; i < 1000; i++) CHECK_FALSE(w.served(i % 2 ? 1 : 32));
    CHECK(w.batched());
}

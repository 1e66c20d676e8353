#pragma once
// When a virtio device's worker runs after a notification.  Where vCPUs and
// workers share host CPUs (the lab's host VM has one), the host scheduler
// either lets the woken worker preempt the vCPU that notified it
// (SCHED_OTHER: the request is served at once, the lowest latency for a
// guest that waits for each request) or lets the vCPU run on until its
// guest idles or its slice ends (SCHED_BATCH: a guest that queues many
// requests queues more, unnotified with the event index, and the worker
// serves them as one batch with one interrupt).  Only a batched wake-up
// shows which kind of guest this is, so the worker starts batched, serves
// at once after a run of batched wake-ups that found one request each,
// and tries batching again every so often.  With a CPU to spare for the
// worker both policies run it at once and none of this matters.
namespace ntc::vmm {

class WorkerWakeup {
public:
    // A batch of one saves nothing and costs the guest an idle trip.  (Four
    // made 1 MiB reads, about three requests each, faster but lost half the
    // depth-32 reads: benchmarks.md, vmm.)
    static constexpr unsigned kWorthwhileBatch = 2;
    // Batched wake-ups in a row with smaller batches before serving at once.
    static constexpr unsigned kSmallBatches = 4;
    // Wake-ups served at once before batching is tried again.
    static constexpr unsigned kPromptBeforeRetry = 256;

    bool batched() const { return batched_; }
    // After a wake-up that served `chains` chains on all queues; returns
    // whether batched() changed.  A wake-up that found nothing says nothing.
    bool served(unsigned chains);

private:
    bool batched_ = true;
    unsigned run_ = 0;  // small batches in a row, or prompt wake-ups since the switch
};

}  // namespace ntc::vmm

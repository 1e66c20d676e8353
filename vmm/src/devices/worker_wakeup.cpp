#include "devices/worker_wakeup.h"

namespace ntc::vmm {

bool WorkerWakeup::served(unsigned chains) {
    if (chains == 0) return false;
    if (batched_) {
        run_ = chains < kWorthwhileBatch ? run_ + 1 : 0;
        if (run_ < kSmallBatches) return false;
    } else if (++run_ < kPromptBeforeRetry) {
        return false;
    }
    batched_ = !batched_;
    run_ = 0;
    return true;
}

}  // namespace ntc::vmm

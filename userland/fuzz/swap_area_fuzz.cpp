// libFuzzer target: the input is the content of a swap partition taken from an
// untrusted disk.  ntc-info must classify it and walk its swap map without
// reading outside the partition, looping, or trusting unchecked lengths.
#include "ntc/error.h"
#include "ntc/swap_area.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

class FuzzPages : public ntc::PageReader {
public:
    FuzzPages(const uint8_t* data, size_t size) : data_(data), pages_(size / NTC_PAGE_SIZE) {}
    uint64_t page_count() const override { return pages_; }
    void read_page(uint64_t index, std::span<uint8_t, NTC_PAGE_SIZE> out) override {
        if (index >= pages_) std::abort();  // the walker must never ask for this
        std::memcpy(out.data(), data_ + index * NTC_PAGE_SIZE, NTC_PAGE_SIZE);
    }

private:
    const uint8_t* data_;
    uint64_t pages_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < NTC_PAGE_SIZE || size > 256 * NTC_PAGE_SIZE) return 0;
    ntc::Page page0;
    std::memcpy(page0.data(), data, NTC_PAGE_SIZE);
    ntc::SwapArea area = ntc::inspect_swap_area(page0);
    FuzzPages pages(data, size);
    ntc::ImageCheck check = ntc::check_image(pages, area);
    if (check.ok() && check.pages_walked == 0 && area.kind == ntc::AreaKind::ntc_checkpoint)
        std::abort();  // a sound checkpoint has at least its header page
    // The walk without the data pages (ntc-vmm's lazy resume) agrees on
    // the page count of a sound image, and never gives a slot twice.
    std::vector<uint64_t> slots;
    ntc::ImageCheck mapped = ntc::map_image(pages, area, {}, slots);
    if (check.ok() && mapped.ok() && mapped.pages_walked != check.pages_walked) std::abort();
    std::sort(slots.begin(), slots.end());
    if (std::adjacent_find(slots.begin(), slots.end()) != slots.end()) std::abort();
    try {
        ntc::make_area_page(page0, ntc::AreaSource{});
    } catch (const ntc::Error&) {}
    return 0;
}

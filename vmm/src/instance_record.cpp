#include "instance_record.h"

#include <cctype>
#include <cstring>
#include <ntc/error.h>

#include "layout.h"

namespace ntc::vmm {

static_assert(layout::kInstanceRecordBytes == sizeof(ntc_instance_record));

void check_instance_name(const std::string& name) {
    if (name.size() > kInstanceNameMax)
        throw ntc::Error("--name '" + name + "' is longer than " + std::to_string(kInstanceNameMax) + " characters");
    for (unsigned char c : name)
        if (!std::isalnum(c) && c != '.' && c != '_' && c != '-')
            throw ntc::Error("--name '" + name + "': use letters, digits, '.', '_' and '-' only");
}

void store_instance_record(const GuestMemory& memory, const std::string& name, const std::vector<InstanceCard>& cards) {
    check_instance_name(name);
    if (cards.size() > NTC_INSTANCE_MAX_CARDS)
        throw ntc::Error("the instance record holds " + std::to_string(NTC_INSTANCE_MAX_CARDS) +
                         " network cards, not " + std::to_string(cards.size()));
    ntc_instance_record record{};
    name.copy(record.name, name.size());
    record.card_count = uint32_t(cards.size());
    for (size_t i = 0; i < cards.size(); i++) {
        record.cards[i].devfn = cards[i].devfn;
        std::memcpy(record.cards[i].mac, cards[i].mac.data(), sizeof record.cards[i].mac);
    }
    if (!memory.write(layout::kInstanceRecord, record))
        throw ntc::Error("guest RAM does not hold the instance record's address");
}

}  // namespace ntc::vmm

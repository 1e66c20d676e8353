#include "ntc/swap_area.h"

#include "ntc/error.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <zlib.h>

namespace ntc {
namespace {

bool sig_is(PageView page, const char* sig) { return std::memcmp(page.data() + NTC_OFF_SIG, sig, NTC_SIG_LEN) == 0; }

template <typename T>
T load(PageView page, size_t offset) {
    T value;
    std::memcpy(&value, page.data() + offset, sizeof value);
    return value;
}

std::string bounded_string(const char* p, size_t max) { return std::string(p, strnlen(p, max)); }

bool is_swap_header(PageView page) {
    return sig_is(page, NTC_SWAP_SIG) || sig_is(page, NTC_HIBERNATE_SIG) || sig_is(page, NTC_AREA_SIG);
}

}  // namespace

const char* area_kind_name(AreaKind kind) {
    switch (kind) {
    case AreaKind::not_swap:
        return "not swap";
    case AreaKind::swap:
        return "swap";
    case AreaKind::ntc_area:
        return "ntc-area";
    case AreaKind::ntc_checkpoint:
        return "ntc-checkpoint";
    case AreaKind::stock_image:
        return "hibernation-image";
    }
    return "?";
}

uint32_t crc32_update(uint32_t crc, std::span<const uint8_t> data) {
    return static_cast<uint32_t>(::crc32(crc, data.data(), static_cast<uInt>(data.size())));
}

uint32_t record_crc32(const ntc_record& rec) {
    ntc_record copy = rec;
    copy.record_crc32 = 0;
    return crc32_update(0, {reinterpret_cast<const uint8_t*>(&copy), sizeof copy});
}

void seal_record(ntc_record& rec) {
    std::memcpy(rec.magic, NTC_RECORD_MAGIC, sizeof rec.magic);
    rec.version = NTC_RECORD_VERSION;
    rec.record_crc32 = record_crc32(rec);
}

bool record_is_valid(const ntc_record& rec) {
    return std::memcmp(rec.magic, NTC_RECORD_MAGIC, sizeof rec.magic) == 0 && rec.version == NTC_RECORD_VERSION &&
           rec.record_crc32 == record_crc32(rec);
}

SwapArea inspect_swap_area(PageView page) {
    SwapArea area;
    if (!is_swap_header(page)) return area;
    const auto* info = reinterpret_cast<const ntc_swap_header_info*>(page.data());
    area.swap_version = load<uint32_t>(page, offsetof(ntc_swap_header_info, version));
    area.last_page = load<uint32_t>(page, offsetof(ntc_swap_header_info, last_page));
    std::memcpy(area.uuid.data(), info->sws_uuid, 16);
    area.label = bounded_string(info->sws_volume, sizeof info->sws_volume);
    area.first_map_page = load<uint64_t>(page, offsetof(ntc_swsusp_header, image));
    area.image_flags = load<uint32_t>(page, offsetof(ntc_swsusp_header, flags));

    ntc_record rec;
    std::memcpy(&rec, page.data() + NTC_OFF_RECORD, sizeof rec);
    bool has_magic = std::memcmp(rec.magic, NTC_RECORD_MAGIC, sizeof rec.magic) == 0;
    if (record_is_valid(rec)) area.record = rec;
    else if (has_magic) area.problem = "NTC record is damaged (bad version or CRC)";

    if (sig_is(page, NTC_SWAP_SIG)) {
        area.kind = AreaKind::swap;
    } else if (sig_is(page, NTC_AREA_SIG)) {
        area.kind = AreaKind::ntc_area;
    } else if (area.record && area.record->state == NTC_STATE_CHECKPOINT) {
        area.kind = AreaKind::ntc_checkpoint;
    } else {
        area.kind = AreaKind::stock_image;
        if (area.record)
            area.problem = "resume signature present but the NTC record says the "
                           "checkpoint was not completed";
    }
    return area;
}

Page make_area_page(PageView source, const AreaSource& src) {
    if (!is_swap_header(source)) throw Error("the source partition has no swap header to turn into a snapshot area");
    Page page;
    std::memcpy(page.data(), source.data(), page.size());
    // Only the Linux swap header fields (version .. badpages) are kept.
    std::memset(page.data(), 0, sizeof(ntc_record));
    size_t tail = offsetof(ntc_swap_header_info, badpages) +
                  sizeof(uint32_t) * (1 + load<uint32_t>(source, offsetof(ntc_swap_header_info, nr_badpages)));
    if (tail > offsetof(ntc_swsusp_header, hw_sig)) tail = offsetof(ntc_swsusp_header, hw_sig);
    std::memset(page.data() + tail, 0, page.size() - tail);

    ntc_record rec{};
    rec.state = NTC_STATE_EMPTY;
    std::memcpy(rec.source_disk_guid, src.disk_guid.data(), 16);
    rec.source_mbr_id = src.mbr_id;
    rec.source_partno = src.partno;
    rec.source_disk_bytes = src.disk_bytes;
    rec.area_created_unix = src.created_unix;
    if (src.origin.size() > NTC_ORIGIN_PARTITIONS) throw Error("more clone-origin partitions than the record holds");
    std::copy(src.origin.begin(), src.origin.end(), rec.origin);
    seal_record(rec);
    std::memcpy(page.data() + NTC_OFF_RECORD, &rec, sizeof rec);
    std::memcpy(page.data() + NTC_OFF_SIG, NTC_AREA_SIG, NTC_SIG_LEN);
    return page;
}

Page make_unfinished_area_page(PageView source, const AreaSource& src) {
    Page page = make_area_page(source, src);
    std::memset(page.data() + NTC_OFF_SIG, 0, NTC_SIG_LEN);
    return page;
}

bool is_unfinished_area_page(PageView page) {
    const uint8_t* sig = page.data() + NTC_OFF_SIG;
    if (std::any_of(sig, sig + NTC_SIG_LEN, [](uint8_t b) { return b != 0; })) return false;
    ntc_record rec;
    std::memcpy(&rec, page.data() + NTC_OFF_RECORD, sizeof rec);
    return record_is_valid(rec);
}

namespace {

class ImageWalker {
public:
    ImageWalker(PageReader& reader, const SwapArea& area, ImageCheck& out)
        : reader_(reader), out_(out), used_(reader.page_count(), false) {
        limit_ = reader.page_count();
        if (area.last_page != 0 && area.last_page + uint64_t{1} < limit_) limit_ = area.last_page + uint64_t{1};
        used_[0] = true;  // the header page
    }

    bool claim(uint64_t page, const char* what) {
        if (page == 0 || page >= limit_) {
            problem(std::string(what) + " at page " + std::to_string(page) + " lies outside the swap area (1.." +
                    std::to_string(limit_ - 1) + ")");
            return false;
        }
        if (used_[page]) {
            problem(std::string(what) + " at page " + std::to_string(page) + " is used twice");
            return false;
        }
        used_[page] = true;
        return true;
    }

    void problem(std::string text) { out_.problems.push_back(std::move(text)); }

    PageReader& reader_;
    ImageCheck& out_;
    std::vector<bool> used_;
    uint64_t limit_ = 0;
};

}  // namespace

namespace {

// check_image, or with data_slots, map_image.
ImageCheck walk_image(PageReader& reader, const SwapArea& area, const ImagePageSink& sink,
                      std::vector<uint64_t>* data_slots) {
    ImageCheck out;
    if (area.kind != AreaKind::ntc_checkpoint && area.kind != AreaKind::stock_image) {
        out.problems.push_back("the swap area holds no image");
        return out;
    }
    if (reader.page_count() < 3) {
        out.problems.push_back("the swap area is too small to hold an image");
        return out;
    }
    ImageWalker walk(reader, area, out);
    ntc_swap_map_page map;
    auto map_bytes = std::span<uint8_t, NTC_PAGE_SIZE>(reinterpret_cast<uint8_t*>(&map), sizeof map);
    if (!walk.claim(area.first_map_page, "the first swap map page")) return out;
    reader.read_page(area.first_map_page, map_bytes);
    out.map_pages = 1;

    const bool compressed = !(area.image_flags & NTC_SF_NOCOMPRESS_MODE);
    uint64_t expected = 0;  // known once the image header page is read
    unsigned k = 0;
    Page page;
    uint32_t crc = 0;
    uint64_t meta_pages = 0;  // PFN pages after the header, for map_image
    // Ends on any disk: every pass claims a page no pass claimed before, or
    // returns, so a looping or endless map stops within the partition.
    while (expected == 0 || out.pages_walked < expected) {
        if (k == NTC_MAP_PAGE_ENTRIES) {
            uint64_t next = map.next_swap;
            if (next == 0) {
                out.problems.push_back("the swap map ends after " + std::to_string(out.pages_walked) + " pages");
                return out;
            }
            if (!walk.claim(next, "a swap map page")) return out;
            reader.read_page(next, map_bytes);
            out.map_pages++;
            k = 0;
        }
        uint64_t entry = map.entries[k++];
        if (entry == 0) {
            if (compressed && out.pages_walked > 0) break;  // a compressed stream's length is not in the header
            out.problems.push_back("the swap map ends after " + std::to_string(out.pages_walked) + " pages");
            return out;
        }
        if (!walk.claim(entry, "image page")) return out;
        if (data_slots && out.pages_walked > meta_pages) {
            data_slots->push_back(entry);
            out.pages_walked++;
            continue;
        }
        reader.read_page(entry, page);
        crc = crc32_update(crc, page);
        if (out.pages_walked == 0) {
            ntc_swsusp_info info;
            std::memcpy(&info, page.data(), sizeof info);
            out.info = info;
            if (info.magic != NTC_X86_RESTORE_MAGIC)
                out.problems.push_back("the image header lacks the x86-64 restore magic");
            if (info.pages == 0 || info.pages >= walk.limit_ || info.image_pages >= info.pages ||
                info.size != info.pages * NTC_PAGE_SIZE) {
                out.problems.push_back("the image header's page counts are inconsistent");
                return out;
            }
            if (!compressed) expected = info.pages;
            // snapshot.c: the PFNs of the data pages as unsigned longs.
            meta_pages = (info.image_pages + NTC_PAGE_SIZE / 8 - 1) / (NTC_PAGE_SIZE / 8);
        }
        if (sink) sink(out.pages_walked, page);
        out.pages_walked++;
    }
    for (unsigned i = k; i < NTC_MAP_PAGE_ENTRIES && !compressed; i++) {
        if (map.entries[i] != 0) {
            out.problems.push_back("the swap map holds entries beyond the image's " + std::to_string(expected) +
                                   " pages");
            break;
        }
    }
    out.crc32 = crc;
    if (area.record && area.kind == AreaKind::ntc_checkpoint) {
        if (area.record->image_pages != out.pages_walked)
            out.problems.push_back("the NTC record counts " + std::to_string(area.record->image_pages) +
                                   " image pages, the swap map " + std::to_string(out.pages_walked));
        else if (!data_slots && area.record->image_crc32 != crc)
            out.problems.push_back("image CRC mismatch: the record says " + std::to_string(area.record->image_crc32) +
                                   ", the pages give " + std::to_string(crc));
    }
    return out;
}

}  // namespace

ImageCheck check_image(PageReader& reader, const SwapArea& area, const ImagePageSink& sink) {
    return walk_image(reader, area, sink, nullptr);
}

ImageCheck map_image(PageReader& reader, const SwapArea& area, const ImagePageSink& sink,
                     std::vector<uint64_t>& data_slots) {
    if (!(area.image_flags & NTC_SF_NOCOMPRESS_MODE)) {
        ImageCheck out;
        out.problems.push_back("the image is compressed: its pages have no slots of their own");
        return out;
    }
    data_slots.clear();
    return walk_image(reader, area, sink, &data_slots);
}

std::string uuid_string(const std::array<uint8_t, 16>& u) {
    char buf[37];
    std::snprintf(buf, sizeof buf, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                  u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    return buf;
}

bool parse_guid(const std::string& text, std::array<uint8_t, 16>& out) {
    // GPT GUIDs are stored mixed-endian; NTC keeps the text order, which is
    // what blkid prints and what a user compares.
    std::string hex;
    for (char c : text) {
        if (c == '-') continue;
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
        hex += c;
    }
    if (hex.size() != 32) return false;
    for (size_t i = 0; i < 16; i++) out[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    return true;
}

}  // namespace ntc

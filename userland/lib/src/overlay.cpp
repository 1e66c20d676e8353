#include "ntc/overlay.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <unistd.h>
#include <utility>

#include "ntc/error.h"
#include "ntc/swap_area.h"

namespace ntc {

namespace {

uint32_t header_crc32(const ntc_overlay_header& header) {
    ntc_overlay_header copy = header;
    copy.header_crc32 = 0;
    return crc32_update(0, {reinterpret_cast<const uint8_t*>(&copy), sizeof copy});
}

int64_t mtime_ns(const DiskFile& file) {
    return int64_t(file.stat().st_mtim.tv_sec) * 1000000000 + file.stat().st_mtim.tv_nsec;
}

std::string absolute_path(const std::string& path) {
    char* resolved = ::realpath(path.c_str(), nullptr);
    if (!resolved) throw_errno("cannot resolve the path of " + path);
    std::string text(resolved);
    std::free(resolved);
    return text;
}

uint64_t round_up(uint64_t value, uint64_t unit) { return (value + unit - 1) / unit * unit; }

// What the header must say about itself; empty when it holds together.
std::string header_fault(const ntc_overlay_header& h, uint64_t file_bytes) {
    if (std::memcmp(h.magic, NTC_OVERLAY_MAGIC, sizeof h.magic) != 0) return "it is not an NTC overlay";
    if (h.version != NTC_OVERLAY_VERSION)
        return "it is an NTC overlay of version " + std::to_string(h.version) + ", this program reads version " +
               std::to_string(NTC_OVERLAY_VERSION);
    if (h.header_crc32 != header_crc32(h)) return "its header is damaged (checksum mismatch)";
    uint64_t sectors = h.disk_bytes / Overlay::kSector;
    if (h.sector_bytes != Overlay::kSector || h.disk_bytes % Overlay::kSector || h.bitmap_offset != NTC_PAGE_SIZE ||
        h.bitmap_bytes != (sectors + 7) / 8 || h.data_offset < h.bitmap_offset + h.bitmap_bytes ||
        h.data_offset % NTC_PAGE_SIZE || std::memchr(h.base_path, 0, sizeof h.base_path) == nullptr)
        return "its header's layout is inconsistent";
    if (file_bytes < h.data_offset + h.disk_bytes) return "it is shorter than its header says (truncated?)";
    return {};
}

}  // namespace

Overlay::Overlay(DiskFile file, DiskFile base, const ntc_overlay_header& header)
    : file_(std::move(file)), base_(std::move(base)), header_(header), present_(header.bitmap_bytes),
      durable_(header.bitmap_bytes) {}

Overlay Overlay::create(const std::string& path, DiskFile base) {
    if (base.size() == 0 || base.size() % kSector)
        throw Error("cannot make an overlay of " + base.path() + ": its size, " + std::to_string(base.size()) +
                    " bytes, is not a whole number of 512-byte sectors");
    ntc_overlay_header h{};
    std::memcpy(h.magic, NTC_OVERLAY_MAGIC, sizeof h.magic);
    h.version = NTC_OVERLAY_VERSION;
    h.sector_bytes = kSector;
    h.disk_bytes = base.size();
    h.bitmap_offset = NTC_PAGE_SIZE;
    h.bitmap_bytes = (h.disk_bytes / kSector + 7) / 8;
    h.data_offset = round_up(h.bitmap_offset + h.bitmap_bytes, NTC_OVERLAY_DATA_ALIGN);
    h.base_mtime_ns = mtime_ns(base);
    h.created_unix = uint64_t(::time(nullptr));
    std::string base_path = absolute_path(base.path());
    if (base_path.size() >= sizeof h.base_path)
        throw Error("cannot make an overlay of " + base_path + ": its path is longer than an overlay records (" +
                    std::to_string(sizeof h.base_path - 1) + " bytes)");
    std::memcpy(h.base_path, base_path.data(), base_path.size());
    h.header_crc32 = header_crc32(h);

    DiskFile file = DiskFile::create_sparse(path, h.data_offset + h.disk_bytes);
    try {
        file.write_at(0, {reinterpret_cast<const uint8_t*>(&h), sizeof h});
        file.sync();
    } catch (const Error& e) {
        ::unlink(path.c_str());
        throw Error("cannot make the overlay " + path + ": " + e.what());
    }
    return Overlay(std::move(file), std::move(base), h);
}

bool Overlay::is_overlay(const DiskFile& file) {
    char magic[sizeof ntc_overlay_header{}.magic];
    if (file.size() < sizeof(ntc_overlay_header)) return false;
    file.read_at(0, {reinterpret_cast<uint8_t*>(magic), sizeof magic});
    return std::memcmp(magic, NTC_OVERLAY_MAGIC, sizeof magic) == 0;
}

Overlay Overlay::open(const std::string& path, DiskFile::Mode mode) {
    DiskFile file(path, mode);
    ntc_overlay_header h{};
    if (file.size() >= sizeof h) file.read_at(0, {reinterpret_cast<uint8_t*>(&h), sizeof h});
    if (std::string fault = header_fault(h, file.size()); !fault.empty())
        throw Error("cannot use " + path + " as an overlay: " + fault);
    DiskFile base(h.base_path, DiskFile::Mode::read, std::string("its base disk ") + h.base_path);
    if (base.size() != h.disk_bytes || (!(h.flags & NTC_OVERLAY_FLAG_MERGING) && mtime_ns(base) != h.base_mtime_ns))
        throw Error("cannot use the overlay " + path + ": its base disk " + h.base_path +
                    " was changed after the overlay was made (written, or replaced by another file), so the "
                    "sectors the overlay leaves to it are not the ones its instance saw.\n"
                    "An overlay needs its base unchanged: resume further instances from a copy of the disk.");
    Overlay overlay(std::move(file), std::move(base), h);
    overlay.file_.read_at(h.bitmap_offset, overlay.durable_);
    // Bits past the last sector are not sectors.
    if (uint64_t tail = (h.disk_bytes / kSector) % 8) overlay.durable_.back() &= uint8_t((1u << tail) - 1);
    overlay.present_ = overlay.durable_;
    return overlay;
}

Overlay::Run Overlay::run(uint64_t first, uint64_t most) const {
    bool in = present(first);
    uint64_t end = std::min<uint64_t>(first + std::max<uint64_t>(most, 1), header_.disk_bytes / kSector);
    uint64_t sector = first + 1;
    uint8_t same = in ? 0xff : 0x00;
    while (sector < end) {
        if (sector % 8 == 0 && end - sector >= 8 && present_[sector / 8] == same) {
            sector += 8;
            continue;
        }
        if (present(sector) != in) break;
        sector++;
    }
    return {in, std::max<uint64_t>(sector - first, 1)};
}

void Overlay::mark(uint64_t first, uint64_t count) {
    if (count == 0) return;
    if (first + count > header_.disk_bytes / kSector)
        throw Error("overlay " + file_.path() + ": sectors " + std::to_string(first) + "+" + std::to_string(count) +
                    " lie past the end of the disk");
    for (uint64_t s = first; s < first + count; s++) present_[s / 8] |= uint8_t(1u << (s % 8));
    if (!marked_.empty() && marked_.back().first + marked_.back().count == first) marked_.back().count += count;
    else marked_.push_back({first, count});
}

std::vector<SectorRange> Overlay::take_marked() { return std::exchange(marked_, {}); }

void Overlay::defer(std::vector<SectorRange> ranges) {
    ranges.insert(ranges.end(), marked_.begin(), marked_.end());
    marked_ = std::move(ranges);
}

void Overlay::commit(const std::vector<SectorRange>& ranges) {
    uint64_t first_page = UINT64_MAX, last_page = 0;
    for (const auto& r : ranges) {
        for (uint64_t s = r.first; s < r.first + r.count; s++) durable_[s / 8] |= uint8_t(1u << (s % 8));
        if (r.count == 0) continue;
        first_page = std::min(first_page, r.first / 8 / NTC_PAGE_SIZE);
        last_page = std::max(last_page, (r.first + r.count - 1) / 8 / NTC_PAGE_SIZE);
    }
    if (first_page == UINT64_MAX) return;
    try {
        uint64_t from = first_page * NTC_PAGE_SIZE;
        uint64_t to = std::min<uint64_t>((last_page + 1) * NTC_PAGE_SIZE, durable_.size());
        file_.write_at(header_.bitmap_offset + from, {durable_.data() + from, to - from});
        file_.sync();
    } catch (const Error&) {
        // durable_ may now say more than the file: harmless, the bits are
        // written again with the next commit's page.
        defer(ranges);
        throw;
    }
}

void Overlay::sync() {
    std::vector<SectorRange> ranges = take_marked();
    try {
        file_.sync();
    } catch (const Error&) {
        defer(std::move(ranges));
        throw;
    }
    commit(ranges);
}

void Overlay::read_at(uint64_t offset, std::span<uint8_t> buffer) const {
    if (offset % kSector || buffer.size() % kSector || offset + buffer.size() > size())
        throw Error("overlay " + file_.path() + ": a read of " + std::to_string(buffer.size()) + " bytes at " +
                    std::to_string(offset) + " is not in whole sectors of the disk");
    uint64_t done = 0;
    while (done < buffer.size()) {
        Run r = run((offset + done) / kSector, (buffer.size() - done) / kSector);
        auto piece = buffer.subspan(done, r.sectors * kSector);
        if (r.in_overlay) file_.read_at(header_.data_offset + offset + done, piece);
        else base_.read_at(offset + done, piece);
        done += piece.size();
    }
}

void Overlay::write_at(uint64_t offset, std::span<const uint8_t> buffer) {
    if (offset % kSector || buffer.size() % kSector || offset + buffer.size() > size())
        throw Error("overlay " + file_.path() + ": a write of " + std::to_string(buffer.size()) + " bytes at " +
                    std::to_string(offset) + " is not in whole sectors of the disk");
    file_.write_at(header_.data_offset + offset, buffer);
    mark(offset / kSector, buffer.size() / kSector);
}

uint64_t Overlay::sectors_in_overlay() const {
    uint64_t n = 0;
    for (uint8_t byte : present_) n += uint64_t(__builtin_popcount(byte));
    return n;
}

void Overlay::begin_merge() {
    header_.flags |= NTC_OVERLAY_FLAG_MERGING;
    header_.header_crc32 = header_crc32(header_);
    file_.write_at(0, {reinterpret_cast<const uint8_t*>(&header_), sizeof header_});
    file_.sync();
}

void Overlay::copy_into(const DiskFile& target) const {
    constexpr uint64_t kChunk = 2048;  // sectors: 1 MiB
    std::vector<uint8_t> buffer;
    const uint64_t sectors = size() / kSector;
    for (uint64_t s = 0; s < sectors;) {
        Run r = run(s, std::min(kChunk, sectors - s));
        if (r.in_overlay) {
            buffer.resize(r.sectors * kSector);
            file_.read_at(header_.data_offset + s * kSector, buffer);
            target.write_at(s * kSector, buffer);
        }
        s += r.sectors;
    }
    target.sync();
}

std::string loading_overlay_path(const std::string& disk) { return disk + ".loading"; }

std::optional<std::string> unfinished_merge(const std::string& disk) {
    const std::string path = loading_overlay_path(disk);
    if (::access(path.c_str(), F_OK) != 0) return std::nullopt;
    std::string why;
    try {
        if (!Overlay::open(path, DiskFile::Mode::read).merging()) return std::nullopt;
        why = "an ntc-vmm stopped while writing " + path + " into it";
    } catch (const Error& e) {
        why = path + " is left beside it and cannot be read (" + e.what() + ")";
    }
    return disk + " is half written: " + why + "; any 'ntc-vmm resume' or 'ntc-vmm run' of " + disk +
           " finishes that first";
}

}  // namespace ntc

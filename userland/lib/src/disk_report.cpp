#include "ntc/disk_report.h"

#include "ntc/change_history.h"
#include "ntc/error.h"
#include "ntc/ext_fs.h"
#include "ntc/holdings.h"
#include "ntc/overlay.h"
#include "ntc/progress.h"
#include "ntc/redo_journal.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace ntc {

PartitionPageReader::PartitionPageReader(const DiskFile& disk, const Partition& part)
    : disk_(disk), offset_(part.offset), pages_(part.size / NTC_PAGE_SIZE) {}

void PartitionPageReader::read_page(uint64_t index, std::span<uint8_t, NTC_PAGE_SIZE> out) {
    if (index >= pages_) throw Error("page " + std::to_string(index) + " is outside the partition");
    if (index < window_first_ || index >= window_first_ + window_count_) {
        window_count_ = std::min(window_pages, pages_ - index);
        window_.resize(window_count_ * NTC_PAGE_SIZE);
        disk_.read_at(offset_ + index * NTC_PAGE_SIZE, window_);
        window_first_ = index;
    }
    std::memcpy(out.data(), window_.data() + (index - window_first_) * NTC_PAGE_SIZE, NTC_PAGE_SIZE);
}

std::string partition_type_name(const std::string& type) {
    static const std::pair<const char*, const char*> names[] = {
        {"0fc63daf-8483-4772-8e79-3d69d8477de4", "linux-data"},
        {"0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "linux-swap"},
        {"4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "linux-root-x86-64"},
        {"c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "efi-system"},
        {"21686148-6449-6e6f-744e-656564454649", "bios-boot"},
        {"0x83", "linux"},
        {"0x82", "linux-swap"},
        {"0xef", "efi-system"},
    };
    for (const auto& [key, name] : names)
        if (type == key) return name;
    return type;
}

namespace {

// The slots check_image reads are those the image uses: the first swap map
// page, each further one, and each page the map lists, each once.
class SlotRecorder : public PageReader {
public:
    SlotRecorder(PageReader& reader, std::vector<uint64_t>& slots) : reader_(reader), slots_(slots) {}
    uint64_t page_count() const override { return reader_.page_count(); }
    void read_page(uint64_t index, std::span<uint8_t, NTC_PAGE_SIZE> out) override {
        reader_.read_page(index, out);
        slots_.push_back(index);
    }

private:
    PageReader& reader_;
    std::vector<uint64_t>& slots_;
};

}  // namespace

DiskReport describe_disk(const std::string& path, bool check) {
    DiskReport report;
    report.path = path;
    DiskFile disk(path, DiskFile::Mode::read);
    if (Overlay::is_overlay(disk)) {
        Overlay overlay = Overlay::open(path, DiskFile::Mode::read);
        throw Error(path + " is an instance's overlay over " + overlay.base().path() + " (" +
                    std::to_string(overlay.sectors_in_overlay() * Overlay::kSector / 1024) +
                    " KiB written), not a disk; 'ntc-clone " + path + " new.img' makes the instance's disk");
    }
    report.unfinished_merge = unfinished_merge(path);
    report.table = read_partition_table(disk);
    for (const Partition& p : report.table.partitions) {
        PartitionReport pr;
        pr.part = p;
        if (p.is_ext()) {
            try {
                ExtFs fs(path, p.offset, p.size);
                pr.used_bytes = fs.used_blocks() * fs.block_size();
            } catch (const Error&) {
                // shown as filesystem without usage; ntc-clone reports damage
            }
        } else if (p.size >= 2 * NTC_PAGE_SIZE) {
            Page page;
            disk.read_at(p.offset, page);
            SwapArea area = inspect_swap_area(page);
            if (area.kind != AreaKind::not_swap) pr.area = area;
            else pr.unfinished_clone = is_unfinished_area_page(page);
            bool has_image = area.kind == AreaKind::ntc_checkpoint || area.kind == AreaKind::stock_image;
            std::vector<uint64_t> image_slots;  // those of a sound image
            if (check && has_image) {
                PartitionPageReader reader(disk, p);
                SlotRecorder recorder(reader, image_slots);
                try {
                    pr.check = check_image(recorder, area);
                    if (!pr.check->ok()) image_slots.clear();
                } catch (const Error& e) {
                    image_slots.clear();
                    ImageCheck failed;
                    failed.problems.push_back(e.what());
                    pr.check = failed;
                }
            }
            if (check && area.kind == AreaKind::ntc_checkpoint) {
                const SnapshotArea snapshot{p.offset, p.size / NTC_PAGE_SIZE, page, area};
                try {
                    check_redo_journal(disk, snapshot);
                } catch (const Error& e) {
                    pr.check->problems.push_back(e.what());
                }
                if (area.record->history_pages) {
                    try {
                        read_change_history(disk, snapshot);
                        pr.history_problem = "";
                    } catch (const Error& e) {
                        pr.history_problem = e.what();
                    }
                }
                if (names_holdings(*area.record)) {
                    try {
                        pr.slots_held = check_holdings(disk, snapshot, image_slots);
                    } catch (const Error& e) {
                        pr.holdings_problem = e.what();
                    }
                }
            }
        }
        report.parts.push_back(pr);
    }
    return report;
}

InfoExit info_exit_code(const DiskReport& report) {
    bool any_image = false, damaged = report.unfinished_merge.has_value();
    for (const PartitionReport& pr : report.parts) {
        if (!pr.area) continue;
        if (!pr.area->problem.empty()) damaged = true;
        if (pr.area->kind == AreaKind::ntc_checkpoint || pr.area->kind == AreaKind::stock_image) any_image = true;
        if (pr.check && !pr.check->ok()) damaged = true;
    }
    if (damaged) return info_damaged;
    return any_image ? info_checkpoint : info_no_checkpoint;
}

namespace {

std::string cstr(const char* field, size_t max) { return std::string(field, strnlen(field, max)); }

std::string area_summary(const SwapArea& area) {
    switch (area.kind) {
    case AreaKind::swap:
        if (area.record && area.record->sequence)
            return "swap (resumed from NTC checkpoint #" + std::to_string(area.record->sequence) + ")";
        return "swap";
    case AreaKind::ntc_area:
        if (area.record && area.record->state == NTC_STATE_WRITING)
            return "NTC snapshot area, interrupted checkpoint (nothing to resume)";
        return "NTC snapshot area, no checkpoint";
    case AreaKind::ntc_checkpoint:
        return "NTC checkpoint #" + std::to_string(area.record->sequence);
    case AreaKind::stock_image:
        return "hibernation image (stock kernel)";
    case AreaKind::not_swap:
        break;
    }
    return "";
}

// "00:03.0 1af4:1041 02:4e:54:12:34:56": a PCI function of the checkpointed
// machine, with its MAC when it is a network card.
std::string device_text(const ntc_machine_device& d) {
    char text[64];
    int n = std::snprintf(text, sizeof text, "00:%02x.%x %04x:%04x", d.devfn >> 3, d.devfn & 7, d.vendor, d.device);
    if (std::any_of(d.mac, d.mac + 6, [](uint8_t b) { return b != 0; }))
        std::snprintf(text + n, sizeof text - size_t(n), " %02x:%02x:%02x:%02x:%02x:%02x", d.mac[0], d.mac[1], d.mac[2],
                      d.mac[3], d.mac[4], d.mac[5]);
    return text;
}

bool has_clone_origin(const SwapArea& a) { return a.record && a.record->origin[0].partno; }

void print_checkpoint(std::ostringstream& o, const PartitionReport& pr) {
    const SwapArea& a = *pr.area;
    o << "partition " << pr.part.number << ": " << area_summary(a) << "\n";
    if (!a.problem.empty()) o << "  problem      " << a.problem << "\n";
    if (has_clone_origin(a)) {
        o << "  clone origin superblocks of disk 1's ext partitions";
        for (const ntc_origin_partition& p : a.record->origin)
            if (p.partno) o << " " << p.partno;
        o << ": the first checkpoint copies what disk 1 wrote since, if they still match\n";
    }
    if (a.kind == AreaKind::ntc_checkpoint) {
        const ntc_record& r = *a.record;
        char line[256];
        o << "  taken        " << utc_time(r.time_unix_ns) << "\n";
        std::snprintf(line, sizeof line, "  pause        %.1f ms (whole checkpoint %u ms)\n", r.pause_us / 1000.0,
                      r.total_ms);
        o << line;
        o << "  kernel       " << cstr(r.kernel_release, sizeof r.kernel_release) << " "
          << cstr(r.kernel_version, sizeof r.kernel_version) << "\n";
        o << "  machine      " << cstr(r.machine, sizeof r.machine) << ", " << human_bytes(r.ram_bytes) << " RAM, "
          << r.cpus << " CPUs\n";
        if (r.acpi_oem_id[0]) {
            std::snprintf(line, sizeof line, "  firmware     %s %s revision %u\n",
                          cstr(r.acpi_oem_id, sizeof r.acpi_oem_id).c_str(),
                          cstr(r.acpi_oem_table_id, sizeof r.acpi_oem_table_id).c_str(), r.acpi_oem_revision);
            o << line;
        }
        for (unsigned i = 0; i < std::min<unsigned>(r.device_count, NTC_MAX_DEVICES); i++)
            o << "  device       " << device_text(r.devices[i]) << "\n";
        o << "  image        " << r.image_pages << " pages (" << human_bytes(r.image_pages * NTC_PAGE_SIZE) << ")\n";
        o << "  disk delta   " << r.disk_blocks_precopy << " blocks before the freeze, " << r.disk_blocks_frozen
          << " while frozen, " << r.swap_slots_copied << " swap slots\n";
        if (r.generation) {
            o << "  generation   " << r.generation << " of area " << uuid_string(std::to_array(r.area_id));
            if (r.history_since < r.generation)
                o << "; a copy from generation " << r.history_since << " on can be sent the changes\n";
            else o << "; no change history: a copy needs a full send\n";
        }
        if (journal_pending(r))
            o << "  journal      " << r.journal_blocks << " blocks pending in " << r.journal_pages
              << " pages (the resumed kernel copies them into place before it runs)\n";
        if (names_holdings(r)) {
            o << "  holdings     " << r.holdings_pages << " pages from slot " << r.holdings_slot;
            if (pr.slots_held) o << ", " << *pr.slots_held << " slots held of " << pr.part.size / NTC_PAGE_SIZE;
            o << "\n";
            if (pr.holdings_problem) o << "  holdings     " << *pr.holdings_problem << "\n";
        }
    }
    if (pr.check) {
        const ImageCheck& c = *pr.check;
        if (c.info) {
            o << "  RAM pages    " << c.info->num_physpages << ", image pages " << c.info->pages << "\n";
        }
        if (c.ok()) {
            o << "  check        passed: " << c.pages_walked << " pages in " << c.map_pages << " map pages"
              << (a.kind == AreaKind::ntc_checkpoint ? ", CRC matches" : "")
              << (a.kind == AreaKind::ntc_checkpoint && journal_pending(*a.record) ? ", journal sound" : "") << "\n";
        } else {
            for (const std::string& p : c.problems) o << "  check        FAILED: " << p << "\n";
        }
    }
    if (pr.history_problem) {
        if (pr.history_problem->empty()) o << "  history      sound: " << pr.area->record->history_pages << " pages\n";
        else o << "  history      " << *pr.history_problem << "\n";
    }
}

}  // namespace

std::string render_text(const DiskReport& r) {
    std::ostringstream o;
    o << r.path << ": " << human_bytes(r.table.disk_size) << ", " << (r.table.scheme == "gpt" ? "GPT" : "MBR") << " "
      << r.table.disk_id << "\n";
    char line[512];
    std::snprintf(line, sizeof line, "  %-2s %-10s %-10s %-12s %-10s %-10s %s\n", "#", "start", "size", "type", "name",
                  "used", "content");
    o << line;
    for (const PartitionReport& pr : r.parts) {
        const Partition& p = pr.part;
        std::string content = p.fs_type;
        if (!p.fs_label.empty()) content += " \"" + p.fs_label + "\"";
        if (pr.area) content = area_summary(*pr.area);
        else if (pr.unfinished_clone)
            content = "unfinished ntc-clone (no snapshot area; ntc-clone --update finishes it)";
        std::snprintf(line, sizeof line, "  %-2d %-10s %-10s %-12s %-10s %-10s %s\n", p.number,
                      human_bytes(p.offset).c_str(), human_bytes(p.size).c_str(), partition_type_name(p.type).c_str(),
                      p.name.c_str(), pr.used_bytes ? human_bytes(*pr.used_bytes).c_str() : "-",
                      content.empty() ? "(unrecognised)" : content.c_str());
        o << line;
    }
    for (const PartitionReport& pr : r.parts)
        if (pr.area && (pr.area->kind == AreaKind::ntc_checkpoint || pr.area->kind == AreaKind::stock_image ||
                        !pr.area->problem.empty() || has_clone_origin(*pr.area)))
            print_checkpoint(o, pr);
    if (r.unfinished_merge) o << "problem: " << *r.unfinished_merge << "\n";
    return o.str();
}

nlohmann::json render_json(const DiskReport& r) {
    using nlohmann::json;
    json out = {{"path", r.path},
                {"size", r.table.disk_size},
                {"scheme", r.table.scheme},
                {"disk_id", r.table.disk_id},
                {"partitions", json::array()}};
    for (const PartitionReport& pr : r.parts) {
        const Partition& p = pr.part;
        json j = {{"number", p.number},     {"offset", p.offset},
                  {"size", p.size},         {"type", partition_type_name(p.type)},
                  {"type_id", p.type},      {"name", p.name},
                  {"uuid", p.part_uuid},    {"fs_type", p.fs_type},
                  {"fs_label", p.fs_label}, {"fs_uuid", p.fs_uuid}};
        if (pr.used_bytes) j["used_bytes"] = *pr.used_bytes;
        if (pr.unfinished_clone) j["unfinished_clone"] = true;
        if (pr.area) {
            const SwapArea& a = *pr.area;
            json area = {{"kind", area_kind_name(a.kind)}, {"swap_uuid", uuid_string(a.uuid)}, {"swap_label", a.label}};
            if (!a.problem.empty()) area["problem"] = a.problem;
            if (a.record) {
                const ntc_record& rec = *a.record;
                area["record"] = {
                    {"state", rec.state},
                    {"flags", rec.flags},
                    {"sequence", rec.sequence},
                    {"time_unix_ns", rec.time_unix_ns},
                    {"pause_us", rec.pause_us},
                    {"total_ms", rec.total_ms},
                    {"image_pages", rec.image_pages},
                    {"image_crc32", rec.image_crc32},
                    {"cpus", rec.cpus},
                    {"ram_bytes", rec.ram_bytes},
                    {"disk_blocks_precopy", rec.disk_blocks_precopy},
                    {"disk_blocks_frozen", rec.disk_blocks_frozen},
                    {"swap_slots_copied", rec.swap_slots_copied},
                    {"area_id", uuid_string(std::to_array(rec.area_id))},
                    {"generation", rec.generation},
                    {"history_since", rec.history_since},
                    {"history_pages", rec.history_pages},
                    {"journal_pending", journal_pending(rec)},
                    {"journal_blocks", rec.journal_blocks},
                    {"journal_pages", rec.journal_pages},
                    {"holdings_slot", rec.holdings_slot},
                    {"holdings_pages", rec.holdings_pages},
                    {"kernel_release", cstr(rec.kernel_release, sizeof rec.kernel_release)},
                    {"kernel_version", cstr(rec.kernel_version, sizeof rec.kernel_version)},
                    {"machine", cstr(rec.machine, sizeof rec.machine)},
                    {"source_disk_guid", uuid_string(std::to_array(rec.source_disk_guid))},
                    {"source_partno", rec.source_partno},
                    {"firmware",
                     {{"oem_id", cstr(rec.acpi_oem_id, sizeof rec.acpi_oem_id)},
                      {"oem_table_id", cstr(rec.acpi_oem_table_id, sizeof rec.acpi_oem_table_id)},
                      {"oem_revision", rec.acpi_oem_revision}}},
                };
                auto origin = nlohmann::json::array();
                for (const ntc_origin_partition& p : rec.origin)
                    if (p.partno)
                        origin.push_back({{"partno", p.partno},
                                          {"start_sector", p.start_sector},
                                          {"sectors", p.sectors},
                                          {"superblock_crc32", p.superblock_crc32}});
                area["record"]["origin"] = origin;
                auto devices = nlohmann::json::array();
                for (unsigned i = 0; i < std::min<unsigned>(rec.device_count, NTC_MAX_DEVICES); i++)
                    devices.push_back(device_text(rec.devices[i]));
                area["record"]["devices"] = devices;
            }
            if (pr.check) {
                area["check"] = {{"ok", pr.check->ok()},
                                 {"problems", pr.check->problems},
                                 {"pages_walked", pr.check->pages_walked},
                                 {"map_pages", pr.check->map_pages}};
                if (pr.check->info) area["check"]["num_physpages"] = pr.check->info->num_physpages;
                if (pr.history_problem) area["check"]["history_problem"] = *pr.history_problem;
                if (pr.slots_held) area["check"]["holdings_slots_held"] = *pr.slots_held;
                if (pr.holdings_problem) area["check"]["holdings_problem"] = *pr.holdings_problem;
            }
            j["area"] = area;
        }
        out["partitions"].push_back(j);
    }
    if (r.unfinished_merge) out["unfinished_merge"] = *r.unfinished_merge;
    out["exit_code"] = info_exit_code(r);
    return out;
}

}  // namespace ntc

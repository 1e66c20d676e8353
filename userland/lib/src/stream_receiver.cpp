#include "ntc/stream_receiver.h"

#include "ntc/block_copier.h"
#include "ntc/checkpoint_stream.h"
#include "ntc/disk_file.h"
#include "ntc/error.h"
#include "ntc/progress.h"
#include "ntc/redo_journal.h"
#include "ntc/snapshot_area.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace ntc {
namespace {

std::string journal_path(const std::string& copy) { return copy + ".receiving"; }
std::string partial_path(const std::string& copy) { return copy + ".partial"; }
std::string kept_path(const std::string& copy, uint64_t generation) {
    return copy + ".gen-" + std::to_string(generation);
}

bool exists(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) return true;
    if (errno != ENOENT) throw_errno("cannot look at " + path);
    return false;
}

void remove_file(const std::string& path) {
    if (::unlink(path.c_str()) < 0 && errno != ENOENT) throw_errno("cannot remove " + path);
}

// Makes renames, links and removals in the directory of `path` durable.
void sync_directory(const std::string& path) {
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw_errno("cannot open the directory " + dir);
    int rc = ::fsync(fd);
    ::close(fd);
    if (rc < 0) throw_errno("cannot flush the directory " + dir);
}

// Generations of COPY.gen-N next to the copy, oldest first.
std::vector<uint64_t> kept_generations(const std::string& copy) {
    std::filesystem::path path(copy);
    std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
    const std::string prefix = path.filename().string() + ".gen-";
    std::vector<uint64_t> generations;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
        std::string name = entry.path().filename().string();
        std::string number = name.substr(std::min(prefix.size(), name.size()));
        if (name.rfind(prefix, 0) != 0 || number.empty() ||
            !std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; }))
            continue;
        generations.push_back(std::stoull(number));
    }
    std::sort(generations.begin(), generations.end());
    return generations;
}

std::string area_text(const uint8_t (&id)[16]) { return uuid_string(std::to_array(id)); }

// What page 0 of a copy's snapshot area makes of the copy.
struct CopyState {
    enum class Kind {
        checkpoint,  // a complete checkpoint: resumable, and a base for streams
        marked,      // marked not resumable by a receive that was interrupted
        resumed,     // resumed in place: the checkpoint is used up, the disk changed since
        other,       // no NTC checkpoint
    };
    Kind kind = Kind::other;
    Page page0{};
    ntc_record record{};  // valid unless other

    bool same_area(const ntc_stream_header& h) const {
        return kind != Kind::other && std::memcmp(record.area_id, h.area_id, sizeof h.area_id) == 0;
    }
};

CopyState copy_state(const Page& page0) {
    CopyState state;
    state.page0 = page0;
    SwapArea area = inspect_swap_area(page0);
    if (!area.record) return state;
    state.record = *area.record;
    if (area.kind == AreaKind::ntc_checkpoint) state.kind = CopyState::Kind::checkpoint;
    else if (area.kind == AreaKind::ntc_area && state.record.state == NTC_STATE_WRITING)
        state.kind = CopyState::Kind::marked;
    else if (area.kind == AreaKind::swap && state.record.state == NTC_STATE_CHECKPOINT)
        state.kind = CopyState::Kind::resumed;
    return state;
}

CopyState copy_state(const DiskFile& copy, uint64_t area_offset) {
    if (area_offset + NTC_PAGE_SIZE > copy.size()) return {};
    Page page0;
    copy.read_at(area_offset, page0);
    return copy_state(page0);
}

// The header of a journal that holds a whole stream, all of it checked;
// nothing for one cut short or damaged.
std::optional<ntc_stream_header> complete_journal(const std::string& path) {
    try {
        DiskFile journal(path, DiskFile::Mode::read);
        std::optional<StreamReader> reader = StreamReader::open(journal.fd(), path);
        if (!reader) return std::nullopt;
        while (reader->next()) {}
        return reader->header();
    } catch (const Error&) {
        return std::nullopt;
    }
}

// Whether a journal's stream applies to the copy: its disk, starting at or
// before the copy's generation and ending after it.
bool journal_fits(const ntc_stream_header& h, const DiskFile& copy, const CopyState& state) {
    return copy.size() == h.disk_bytes && state.same_area(h) &&
           (state.kind == CopyState::Kind::checkpoint || state.kind == CopyState::Kind::marked) &&
           h.from_generation <= state.record.generation && state.record.generation < h.to_generation;
}

void write_chunk(const DiskFile& disk, const ntc_stream_header& h, const StreamChunk& chunk) {
    uint64_t offset = chunk.first_block * NTC_PAGE_SIZE;
    disk.write_at(offset, chunk.data.first(std::min<uint64_t>(chunk.data.size(), h.disk_bytes - offset)));
}

class Receiver {
public:
    Receiver(const std::string& copy_path, int in_fd, const ReceiveOptions& opts)
        : path_(copy_path), in_fd_(in_fd), opts_(opts) {}
    ReceiveResult run();

private:
    void open_copy();
    std::optional<ReceiveResult> finish_interrupted();
    ReceiveResult receive_changes(StreamReader& stream);
    ReceiveResult receive_full(StreamReader& stream);
    ReceiveResult nothing_to_do(const CopyState& state);
    void write_journal(StreamReader& stream);
    ReceiveResult apply_journal(const CopyState& state);
    void keep(uint64_t generation);
    void keep_by_link(uint64_t generation);
    void prune();
    void mark_not_resumable(const CopyState& state, uint64_t area_offset);
    DiskFile create_partial(uint64_t size);
    [[noreturn]] void refuse_unchanged(const Error& e) const;

    std::string path_;
    int in_fd_;
    const ReceiveOptions& opts_;
    std::optional<DiskFile> copy_;  // open and locked when it exists
    bool said_no_reflinks_ = false;
};

ReceiveResult Receiver::run() {
    open_copy();
    std::optional<ReceiveResult> finished;
    if (copy_) finished = finish_interrupted();
    else remove_file(journal_path(path_));  // of a copy that is gone
    std::optional<StreamReader> stream;
    try {
        stream = StreamReader::open(in_fd_, "the stream");
    } catch (const Error& e) {
        refuse_unchanged(e);
    }
    if (!stream) {
        if (finished) return *finished;
        throw Error("no stream came on standard input: pipe ntc-send's output into ntc-receive");
    }
    ReceiveResult result = stream->full() ? receive_full(*stream) : receive_changes(*stream);
    if (finished && result.nothing_to_do) return *finished;
    if (finished) {
        result.from_generation = finished->from_generation;
        result.blocks += finished->blocks;
        result.seconds += finished->seconds;
    }
    return result;
}

void Receiver::open_copy() {
    if (!exists(path_)) return;
    DiskFile copy(path_, DiskFile::Mode::read_write);
    if (!S_ISREG(copy.stat().st_mode))
        throw Error(path_ + " is not a regular file; ntc-receive keeps copies in files (it renames and clones them)");
    if (!copy.try_lock_exclusive()) {
        if (errno != EWOULDBLOCK) throw_errno("cannot lock " + path_);
        throw Error(path_ + " is in use (ntc-vmm running on it?); stop it, then receive again");
    }
    copy_ = std::move(copy);
}

std::optional<ReceiveResult> Receiver::finish_interrupted() {
    const std::string journal = journal_path(path_);
    if (!exists(journal)) return std::nullopt;
    std::optional<ntc_stream_header> header = complete_journal(journal);
    if (!header) {
        remove_file(journal);
        opts_.note("removed " + journal +
                   ", the incomplete journal of an interrupted receive (nothing of it was applied)");
        return std::nullopt;
    }
    CopyState state = copy_state(*copy_, header->area_offset);
    if (!journal_fits(*header, *copy_, state)) {
        remove_file(journal);
        opts_.note("removed " + journal + ", the journal of a receive of generation " +
                   std::to_string(header->to_generation) + ", which does not apply to " + path_);
        return std::nullopt;
    }
    opts_.note("finishing the interrupted receive of generation " + std::to_string(header->to_generation));
    return apply_journal(state);
}

[[noreturn]] void Receiver::refuse_unchanged(const Error& e) const {
    throw Error(std::string(e.what()) + "; nothing of it was applied to " + path_ + ": run ntc-send again");
}

ReceiveResult Receiver::nothing_to_do(const CopyState& state) {
    drain(in_fd_);
    ReceiveResult result;
    result.from_generation = result.to_generation = state.record.generation;
    result.nothing_to_do = true;
    return result;
}

ReceiveResult Receiver::receive_changes(StreamReader& stream) {
    const ntc_stream_header& h = stream.header();
    const std::string range = std::to_string(h.from_generation) + " -> " + std::to_string(h.to_generation);
    if (!copy_)
        throw Error(path_ + " does not exist, and the stream holds only the changes of generation " + range +
                    "; receive a full stream (ntc-send without --since) first");
    if (copy_->size() != h.disk_bytes)
        throw Error(path_ + " is " + std::to_string(copy_->size()) + " bytes, the stream's disk " +
                    std::to_string(h.disk_bytes) +
                    ": it is a copy of another disk; receive a full stream into a new file");
    CopyState state = copy_state(*copy_, h.area_offset);
    if (state.kind == CopyState::Kind::other)
        throw Error(path_ + " holds no NTC checkpoint where the stream's disk has its snapshot area, so it is not a "
                            "copy of it; receive a full stream into a new file");
    if (!state.same_area(h))
        throw Error(path_ + " is a copy of another disk (area " + area_text(state.record.area_id) +
                    "), the stream is for area " + area_text(h.area_id) + "; receive a full stream into a new file");
    if (state.kind == CopyState::Kind::resumed)
        throw Error(path_ + " was resumed in place: its checkpoint is used up and its disk changed since; move it "
                            "away and receive a full stream (ntc-send without --since)");
    if (state.kind == CopyState::Kind::marked)
        throw Error(path_ + " was left half-updated by an interrupted receive whose journal " + journal_path(path_) +
                    " is gone; receive a full stream (ntc-send without --since) to replace it");
    const uint64_t generation = state.record.generation;
    if (generation >= h.to_generation) return nothing_to_do(state);
    if (generation < h.from_generation)
        throw Error("gap: " + path_ + " is at generation " + std::to_string(generation) + ", the stream starts at " +
                    std::to_string(h.from_generation) + "; send with --since " + std::to_string(generation));
    write_journal(stream);
    opts_.after_step(ReceiveStep::journaled);
    return apply_journal(state);
}

void Receiver::write_journal(StreamReader& stream) {
    const std::string path = journal_path(path_);
    DiskFile journal = DiskFile::create_sparse(path, 0);
    try {
        Progress progress("ntc-receive", stream.header().blocks * NTC_PAGE_SIZE, opts_.progress);
        StreamWriter writer(journal.fd(), path, stream.header());
        while (std::optional<StreamChunk> chunk = stream.next()) {
            writer.write_chunk(chunk->first_block, chunk->data);
            progress.advance(chunk->data.size());
        }
        writer.finish();
        journal.sync();
        sync_directory(path);
        progress.finish();
    } catch (const Error& e) {
        ::unlink(path.c_str());
        refuse_unchanged(e);
    }
}

// From here on the journal is complete: whatever stops the apply, the next
// ntc-receive finishes it.
ReceiveResult Receiver::apply_journal(const CopyState& state) {
    const std::string path = journal_path(path_);
    DiskFile journal(path, DiskFile::Mode::read);
    std::optional<StreamReader> stream = StreamReader::open(journal.fd(), path);
    const ntc_stream_header& h = stream->header();
    if (state.kind == CopyState::Kind::checkpoint) {
        if (opts_.keep) keep(state.record.generation);
        mark_not_resumable(state, h.area_offset);
    }
    opts_.after_step(ReceiveStep::marked);
    Progress progress("ntc-receive: applying", h.blocks * NTC_PAGE_SIZE, opts_.progress);
    while (std::optional<StreamChunk> chunk = stream->next()) {
        write_chunk(*copy_, h, *chunk);
        progress.advance(chunk->data.size());
    }
    copy_->sync();
    remove_file(path);
    sync_directory(path);
    progress.finish();
    ReceiveResult result;
    result.from_generation = state.record.generation;
    result.to_generation = h.to_generation;
    result.blocks = h.blocks;
    result.seconds = progress.elapsed_seconds();
    return result;
}

// As ntc.ko invalidates the area before it writes a checkpoint: the area's
// signature, and a record that says a checkpoint is being written.
void Receiver::mark_not_resumable(const CopyState& state, uint64_t area_offset) {
    Page page0 = state.page0;
    ntc_record record = state.record;
    record.state = NTC_STATE_WRITING;
    seal_record(record);
    std::memcpy(page0.data() + NTC_OFF_RECORD, &record, sizeof record);
    std::memcpy(page0.data() + NTC_OFF_SIG, NTC_AREA_SIG, NTC_SIG_LEN);
    copy_->write_at(area_offset, page0);
    copy_->sync();
}

// COPY.gen-N as a reflink of the copy, or a full sparse copy where the
// filesystem has no reflinks; made under another name and renamed, so that
// a COPY.gen-N is always whole.
void Receiver::keep(uint64_t generation) {
    const std::string kept = kept_path(path_, generation), making = kept + ".partial";
    remove_file(making);
    DiskFile target = DiskFile::create_sparse(making, 0);
    try {
        if (::ioctl(target.fd(), FICLONE, copy_->fd()) != 0) {
            if (errno != EOPNOTSUPP && errno != EINVAL && errno != EXDEV && errno != ENOTTY)
                throw_errno("cannot keep " + path_ + " as " + kept);
            target.reset_sparse(copy_->size());
            BlockCopier copier(*copy_, target, BlockCopier::Target::fresh, true, [](uint64_t) {});
            copier.copy({0, copy_->size()});
            copier.finish();
            if (!said_no_reflinks_)
                opts_.note("no reflinks on this filesystem: kept a full copy of " + human_bytes(copy_->size()));
            said_no_reflinks_ = true;
        }
        target.sync();
        if (::rename(making.c_str(), kept.c_str()) < 0) throw_errno("cannot rename " + making + " to " + kept);
    } catch (...) {
        ::unlink(making.c_str());
        throw;
    }
    prune();
}

// A full stream replaces the copy by a rename: the old one stays as
// COPY.gen-N by a second name.
void Receiver::keep_by_link(uint64_t generation) {
    const std::string kept = kept_path(path_, generation);
    remove_file(kept);
    if (::link(path_.c_str(), kept.c_str()) < 0) throw_errno("cannot keep " + path_ + " as " + kept);
    prune();
}

void Receiver::prune() {
    std::vector<uint64_t> generations = kept_generations(path_);
    for (size_t i = 0; i + opts_.keep < generations.size(); i++) remove_file(kept_path(path_, generations[i]));
}

DiskFile Receiver::create_partial(uint64_t size) {
    const std::string path = partial_path(path_);
    if (exists(path)) {
        DiskFile stale(path, DiskFile::Mode::read);
        if (!stale.try_lock_exclusive())
            throw Error(path + " is in use: another ntc-receive is receiving into " + path_ + "; let it finish");
        remove_file(path);
    }
    DiskFile partial = DiskFile::create_sparse(path, size);
    partial.try_lock_exclusive();  // only tells a later run that this one is still at work
    return partial;
}

ReceiveResult Receiver::receive_full(StreamReader& stream) {
    const ntc_stream_header& h = stream.header();
    CopyState state;
    if (copy_) {
        state = copy_state(*copy_, h.area_offset);
        switch (state.kind) {
        case CopyState::Kind::checkpoint:
            if (!state.same_area(h))
                throw Error(path_ + " is a copy of another disk (area " + area_text(state.record.area_id) +
                            "), the stream is for area " + area_text(h.area_id) +
                            "; receive it into a new file, or remove " + path_ + " first");
            if (state.record.generation >= h.to_generation) return nothing_to_do(state);
            break;
        case CopyState::Kind::marked:
            break;  // half-updated, its journal gone: nothing worth keeping
        case CopyState::Kind::resumed:
            throw Error(path_ + " was resumed in place and may hold the work of the machine run on it; move it "
                                "away, then receive again");
        case CopyState::Kind::other:
            throw Error(path_ + " exists and is not a copy that ntc-receive made; name a new file, or remove it first");
        }
    }
    const std::string partial_name = partial_path(path_);
    DiskFile partial = create_partial(h.disk_bytes);
    Progress progress("ntc-receive", h.blocks * NTC_PAGE_SIZE, opts_.progress);
    try {
        while (std::optional<StreamChunk> chunk = stream.next()) {
            write_chunk(partial, h, *chunk);
            progress.advance(chunk->data.size());
        }
        partial.sync();
    } catch (const Error& e) {
        ::unlink(partial_name.c_str());
        refuse_unchanged(e);
    }
    if (opts_.keep && state.kind == CopyState::Kind::checkpoint) keep_by_link(state.record.generation);
    if (::rename(partial_name.c_str(), path_.c_str()) < 0)
        throw_errno("cannot rename " + partial_name + " to " + path_);
    sync_directory(path_);
    progress.finish();
    ReceiveResult result;
    result.from_generation = state.kind == CopyState::Kind::checkpoint ? state.record.generation : 0;
    result.to_generation = h.to_generation;
    result.full = true;
    result.blocks = h.blocks;
    result.seconds = progress.elapsed_seconds();
    return result;
}

}  // namespace

ReceiveResult receive_stream(const std::string& copy_path, int in_fd, const ReceiveOptions& opts) {
    return Receiver(copy_path, in_fd, opts).run();
}

CopyStatus copy_status(const std::string& copy_path) {
    CopyStatus status;
    status.path = copy_path;
    status.exists = exists(copy_path);
    if (!status.exists) return status;
    status.kept = kept_generations(copy_path);
    DiskFile copy(copy_path, DiskFile::Mode::read);
    std::optional<SnapshotArea> area;
    try {
        area = find_snapshot_area(copy);
    } catch (const Error& e) {
        status.why_not = e.what();
        return status;
    }
    CopyState state = area ? copy_state(area->page0) : CopyState{};
    if (state.kind != CopyState::Kind::other) {
        status.area_id = std::to_array(state.record.area_id);
        status.time_unix_ns = state.record.time_unix_ns;
        status.history_since = state.record.history_since;
    }
    const std::string journal = journal_path(copy_path);
    if (exists(journal)) {
        PendingReceive pending;
        if (std::optional<ntc_stream_header> header = complete_journal(journal))
            pending = {header->from_generation, header->to_generation, journal_fits(*header, copy, state)};
        status.pending = pending;
    }
    const bool finishes = status.pending && status.pending->applies;
    switch (state.kind) {
    case CopyState::Kind::checkpoint:
        status.resumable = true;
        status.generation = state.record.generation;
        status.journal_pending = journal_pending(state.record);
        break;
    case CopyState::Kind::marked:
        status.why_not = finishes ? "a receive into it was interrupted; the next ntc-receive finishes it"
                                  : "a receive into it was interrupted and its journal is gone or does "
                                    "not fit; receive a full stream to replace it";
        if (finishes) status.generation = state.record.generation;
        break;
    case CopyState::Kind::resumed:
        status.why_not = "it was resumed in place: its checkpoint is used up and its disk changed since";
        break;
    case CopyState::Kind::other:
        status.why_not = "it holds no NTC checkpoint";
        break;
    }
    return status;
}

std::string render_status_text(const CopyStatus& s) {
    if (!s.exists) return s.path + ": no copy yet (generation 0): receive a full stream (ntc-send without --since)\n";
    std::string text = s.path + ":\n";
    if (s.area_id) text += "  area         " + uuid_string(*s.area_id) + "\n";
    text += "  generation   " + std::to_string(s.generation) +
            (s.generation ? " (ntc-send --since " + std::to_string(s.generation) + ")" : " (needs a full stream)") +
            "\n";
    if (s.time_unix_ns) text += "  checkpoint   " + utc_time(s.time_unix_ns) + "\n";
    text += "  resumable    " + (s.resumable ? std::string("yes") : "no: " + s.why_not) + "\n";
    if (s.journal_pending)
        text += "  journal      its redo journal is not yet in place: ntc-send waits until its guest has put it "
                "there\n";
    if (s.pending)
        text += "  pending      " +
                (s.pending->applies
                     ? "the receive of generation " + std::to_string(s.pending->from_generation) + " -> " +
                           std::to_string(s.pending->to_generation) + ", interrupted: the next ntc-receive finishes it"
                     : std::string("a journal cut short or not for this copy: the next ntc-receive "
                                   "removes it")) +
                "\n";
    if (!s.kept.empty()) {
        text += "  kept         generations";
        for (uint64_t g : s.kept) text += " " + std::to_string(g);
        text += "\n";
    }
    return text;
}

nlohmann::json render_status_json(const CopyStatus& s) {
    nlohmann::json out = {{"path", s.path},
                          {"exists", s.exists},
                          {"generation", s.generation},
                          {"resumable", s.resumable},
                          {"kept", s.kept},
                          {"time_unix_ns", s.time_unix_ns},
                          {"area_id", nullptr},
                          {"pending", nullptr},
                          {"history_since", s.history_since},
                          {"journal_pending", s.journal_pending}};
    if (s.area_id) out["area_id"] = uuid_string(*s.area_id);
    if (!s.why_not.empty()) out["why_not"] = s.why_not;
    if (s.pending)
        out["pending"] = {{"from_generation", s.pending->from_generation},
                          {"to_generation", s.pending->to_generation},
                          {"applies", s.pending->applies}};
    return out;
}

}  // namespace ntc

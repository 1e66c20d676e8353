#include "ntc/ext_fs.h"

#include "ntc/error.h"

extern "C" {
#include <et/com_err.h>
}
#include <ext2fs/ext2fs.h>

#include <algorithm>
#include <memory>

namespace ntc {
namespace {

[[noreturn]] void fail(const std::string& what, errcode_t err) {
    static const bool table_registered = [] {
        initialize_ext2_error_table();
        return true;
    }();
    (void)table_registered;
    throw Error(what + ": " + error_message(err));
}

ext2_filsys open_fs(const std::string& image, uint64_t offset, int flags, const std::string& name) {
    std::string io_options = "offset=" + std::to_string(offset);
    ext2_filsys fs = nullptr;
    errcode_t err =
        ext2fs_open2(image.c_str(), io_options.c_str(), flags | EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
    if (err) fail("cannot open the ext filesystem in " + name, err);
    return fs;
}

}  // namespace

ExtFs::ExtFs(const std::string& image, uint64_t offset, uint64_t partition_size, Read read)
    : name_(image + " at byte " + std::to_string(offset)) {
    fs_ = open_fs(image, offset, 0, name_);
    if (blocks_count() * block_size() > partition_size) {
        ext2fs_close_free(&fs_);
        throw Error("the ext filesystem in " + name_ + " is larger than its partition");
    }
    // What e2fsck checks first: group descriptors pointing inside their
    // groups.  Bitmaps read through garbled descriptors would be garbage.
    errcode_t err = ext2fs_check_desc(fs_);
    if (err) {
        ext2fs_close_free(&fs_);
        fail("the ext filesystem in " + name_ + " has damaged group descriptors", err);
    }
    if (read == Read::files) return;
    err = ext2fs_read_bitmaps(fs_);
    if (err) {
        ext2fs_close_free(&fs_);
        fail("cannot read the bitmaps of the ext filesystem in " + name_, err);
    }
}

bool ExtFs::needs_recovery(const std::string& image, uint64_t offset) {
    ext2_filsys fs = open_fs(image, offset, 0, image + " at byte " + std::to_string(offset));
    bool dirty = ext2fs_has_feature_journal_needs_recovery(fs->super);
    ext2fs_close_free(&fs);
    return dirty;
}

ExtFs::~ExtFs() {
    if (fs_) ext2fs_close_free(&fs_);
}

uint32_t ExtFs::block_size() const { return fs_->blocksize; }
uint64_t ExtFs::blocks_count() const { return ext2fs_blocks_count(fs_->super); }
uint32_t ExtFs::inodes_count() const { return fs_->super->s_inodes_count; }

void ExtFs::require_bitmaps() const {
    if (!fs_->block_map || !fs_->inode_map)
        throw Error("internal: the ext filesystem in " + name_ + " was opened without its bitmaps");
}

uint64_t ExtFs::used_blocks() const {
    uint64_t used = 0;
    for_each_used_run([&](Extent e) { used += e.length / block_size(); });
    return used;
}

bool ExtFs::block_in_use(uint64_t block) const {
    require_bitmaps();
    if (block < fs_->super->s_first_data_block) return true;
    return ext2fs_test_block_bitmap2(fs_->block_map, block) != 0;
}

bool ExtFs::inode_in_use(uint32_t ino) const {
    require_bitmaps();
    return ext2fs_test_inode_bitmap2(fs_->inode_map, ino) != 0;
}

void ExtFs::for_each_used_run(const std::function<void(Extent)>& fn) const {
    require_bitmaps();
    const uint64_t bs = block_size();
    const uint64_t last = blocks_count() - 1;
    // The boot block before the first data block (1 KiB block filesystems)
    // is not in the bitmap but belongs to the filesystem's area.
    uint64_t pos = fs_->super->s_first_data_block;
    Extent pending{0, pos * bs};
    auto emit = [&](uint64_t start, uint64_t end) {
        if (pending.length && pending.end() == start * bs) {
            pending.length += (end - start) * bs;
            return;
        }
        if (pending.length) fn(pending);
        pending = {start * bs, (end - start) * bs};
    };
    while (pos <= last) {
        blk64_t start = 0, end = 0;
        if (ext2fs_find_first_set_block_bitmap2(fs_->block_map, pos, last, &start)) break;
        if (ext2fs_find_first_zero_block_bitmap2(fs_->block_map, start, last, &end)) end = last + 1;
        emit(start, end);
        pos = end + 1;
    }
    if (pending.length) fn(pending);
}

std::optional<std::vector<uint8_t>> ExtFs::read_file(const std::string& path, uint64_t max_bytes) const {
    ext2_ino_t ino = 0;
    if (ext2fs_namei_follow(fs_, EXT2_ROOT_INO, EXT2_ROOT_INO, path.c_str(), &ino) != 0) return std::nullopt;
    ext2_file_t file = nullptr;
    errcode_t err = ext2fs_file_open(fs_, ino, 0, &file);
    if (err) fail("cannot open " + path + " in " + name_, err);
    std::unique_ptr<std::remove_pointer_t<ext2_file_t>, errcode_t (*)(ext2_file_t)> closer(file, ext2fs_file_close);
    __u64 size = 0;
    ext2fs_file_get_lsize(file, &size);
    if (size > max_bytes)
        throw Error(path + " in " + name_ + " is larger than " + std::to_string(max_bytes) + " bytes");
    std::vector<uint8_t> data(size);
    uint64_t done = 0;
    while (done < size) {
        unsigned int want = static_cast<unsigned int>(std::min<uint64_t>(size - done, 1u << 20));
        unsigned int got = 0;
        err = ext2fs_file_read(file, data.data() + done, want, &got);
        if (err) fail("cannot read " + path + " in " + name_, err);
        if (got == 0) throw Error(path + " in " + name_ + " ends early");
        done += got;
    }
    return data;
}

std::vector<std::string> ExtFs::list_dir(const std::string& path) const {
    std::vector<std::string> names;
    ext2_ino_t ino = 0;
    if (ext2fs_namei_follow(fs_, EXT2_ROOT_INO, EXT2_ROOT_INO, path.c_str(), &ino) != 0) return names;
    auto collect = [](ext2_dir_entry* d, int, int, char*, void* priv) -> int {
        std::string name(d->name, ext2fs_dirent_name_len(d));
        if (name != "." && name != "..") static_cast<std::vector<std::string>*>(priv)->push_back(name);
        return 0;
    };
    ext2fs_dir_iterate(fs_, ino, 0, nullptr, collect, &names);
    return names;
}

std::string ExtFs::read_raw_inode(uint32_t ino) const {
    const int size = EXT2_INODE_SIZE(fs_->super);
    std::string raw(static_cast<size_t>(size), '\0');
    errcode_t err = ext2fs_read_inode2(fs_, ino, reinterpret_cast<ext2_inode*>(raw.data()), size, READ_INODE_NOCSUM);
    if (err) fail("cannot read inode " + std::to_string(ino) + " in " + name_, err);
    return raw;
}

}  // namespace ntc

#pragma once
#include "ntc/partition_table.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

struct struct_ext2_filsys;

namespace ntc {

// An ext2/3/4 filesystem inside a disk image, opened read-only with
// libext2fs at a byte offset (nothing is mounted).
class ExtFs {
public:
    // What is read at opening: the block and inode bitmaps take a read of
    // every block group, which reading a few files (ntc-vmm's boot files)
    // does not need.
    enum class Read { files, files_and_bitmaps };

    // Throws ntc::Error when the filesystem cannot be opened or its bitmaps
    // cannot be read (a damaged filesystem).  With Read::files the bitmap
    // queries below (used_blocks, block_in_use, inode_in_use,
    // for_each_used_run) throw.
    ExtFs(const std::string& image, uint64_t offset, uint64_t partition_size, Read read = Read::files_and_bitmaps);
    ExtFs(const ExtFs&) = delete;
    ExtFs& operator=(const ExtFs&) = delete;
    ~ExtFs();

    // The journal holds transactions not yet written home (the filesystem is
    // mounted, or was not unmounted cleanly): its bitmaps may lag behind.
    static bool needs_recovery(const std::string& image, uint64_t offset);

    uint32_t block_size() const;
    uint64_t blocks_count() const;
    uint64_t used_blocks() const;
    uint32_t inodes_count() const;

    // Calls fn with each run of blocks in use (by the block bitmap, plus the
    // boot blocks before the first data block), in byte offsets relative to
    // the partition start, in order.  Holds no list: memory stays bounded.
    void for_each_used_run(const std::function<void(Extent)>& fn) const;
    bool block_in_use(uint64_t block) const;
    bool inode_in_use(uint32_t ino) const;

    // A regular file's contents, following symbolic links; nothing when the
    // path does not exist.  Throws when it is larger than max_bytes.
    std::optional<std::vector<uint8_t>> read_file(const std::string& path, uint64_t max_bytes) const;
    // The names in a directory, without "." and ".."; empty when it is absent.
    std::vector<std::string> list_dir(const std::string& path) const;

    // Raw on-disk inode (the whole inode record, inode_size bytes).
    std::string read_raw_inode(uint32_t ino) const;

    struct_ext2_filsys* handle() const { return fs_; }

private:
    void require_bitmaps() const;

    struct_ext2_filsys* fs_ = nullptr;
    std::string name_;
};

}  // namespace ntc

#include "ntc/chunk_writer.h"
#include "ntc/error.h"
#include "support.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

using namespace ntc;
using namespace testsupport;

namespace {

constexpr size_t chunk_bytes = 64 * 1024;

void fill(ChunkWriter::Chunk& c, uint64_t offset, uint8_t value) {
    c.offset = offset;
    std::fill(c.data.begin(), c.data.end(), value);
}

}  // namespace

TEST_CASE("the chunk writer writes the runs of each chunk and nothing else") {
    TempDir dir;
    DiskFile dst = DiskFile::create_sparse(dir / "dst.img", 4 * MiB);
    ChunkWriter writer(dst, chunk_bytes, true, false);
    // More chunks than the pool holds: each comes back once it is written.
    for (uint64_t i = 0; i < 16; i++) {
        ChunkWriter::Chunk& c = writer.acquire();
        CHECK(c.runs.empty());
        fill(c, i * chunk_bytes, static_cast<uint8_t>(i + 1));
        c.runs = {{0, 4096}, {8192, 8192}};
        writer.submit(c);
    }
    ChunkWriter::Chunk& unused = writer.acquire();
    fill(unused, 2 * MiB, 0xff);
    writer.submit(unused);  // no runs: nothing written
    writer.drain();
    CHECK(writer.bytes_written() == 16 * (4096 + 8192));

    for (uint64_t i = 0; i < 16; i++) {
        std::vector<uint8_t> got = read_bytes(dst.path(), i * chunk_bytes, 16384);
        uint8_t v = static_cast<uint8_t>(i + 1);
        CHECK(std::vector<uint8_t>(got.begin(), got.begin() + 4096) == std::vector<uint8_t>(4096, v));
        CHECK(std::vector<uint8_t>(got.begin() + 4096, got.begin() + 8192) == std::vector<uint8_t>(4096, 0));
        CHECK(std::vector<uint8_t>(got.begin() + 8192, got.end()) == std::vector<uint8_t>(8192, v));
    }
    CHECK(read_bytes(dst.path(), 2 * MiB, 4096) == std::vector<uint8_t>(4096, 0));
    struct stat st;
    REQUIRE(stat(dst.path().c_str(), &st) == 0);
    // What was written, and at most an extent tree block or two beside it.
    uint64_t allocated = static_cast<uint64_t>(st.st_blocks) * 512;
    CHECK(allocated >= 16 * (4096 + 8192));
    CHECK(allocated <= 16 * (4096 + 8192) + 8192);
}

TEST_CASE("a write error reaches the reader, and later chunks are not written") {
    TempDir dir;
    DiskFile::create_sparse(dir / "dst.img", 4 * MiB);
    DiskFile readonly(dir / "dst.img", DiskFile::Mode::read);
    ChunkWriter writer(readonly, chunk_bytes, false, false);
    ChunkWriter::Chunk& c = writer.acquire();
    fill(c, 0, 1);
    c.runs = {{0, 4096}};
    writer.submit(c);
    std::string message;
    try {
        for (int i = 0; i < 8; i++) {  // fails once the first write has
            ChunkWriter::Chunk& next = writer.acquire();
            fill(next, (i + 1) * chunk_bytes, 2);
            next.runs = {{0, 4096}};
            writer.submit(next);
        }
        writer.drain();
    } catch (const Error& e) {
        message = e.what();
    }
    CHECK(message.find("write error on " + dir / "dst.img") == 0);
    CHECK_THROWS_AS(writer.drain(), Error);
    CHECK(writer.bytes_written() == 0);
}

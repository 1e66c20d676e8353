// The command lines, run as a user would: exit statuses and messages.
#include "support.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace testsupport;

namespace {

const std::string clone_bin = NTC_CLONE_BIN;
const std::string info_bin = NTC_INFO_BIN;

}  // namespace

TEST_CASE("ntc-clone: clone, summary line, verify, and refusals with plain messages") {
    TempDir dir;
    make_tree(dir / "tree", 5);
    TestDisk src = make_gpt_disk(dir, "src.img", dir / "tree");
    std::string dst = dir / "dst.img";

    CommandRun r = run_command(clone_bin + " --verify '" + src.path + "' '" + dst + "'");
    CHECK(r.status == 0);
    CHECK(r.output.find("wrote") != std::string::npos);
    CHECK(r.output.find("MB/s") != std::string::npos);
    CHECK(r.output.find("verified") != std::string::npos);

    r = run_command(clone_bin + " '" + src.path + "' '" + dst + "'");
    CHECK(r.status == 1);
    CHECK(r.output.find("use --force") != std::string::npos);

    r = run_command(clone_bin + " -q --force '" + src.path + "' '" + dst + "'");
    CHECK(r.status == 0);
    CHECK(r.output.empty());

    r = run_command(clone_bin + " --force --update '" + src.path + "' '" + dst + "'");
    CHECK(r.status == 1);

    write_bytes(dst, src.raw_offset + 5, {42});
    r = run_command(clone_bin + " --verify-only '" + src.path + "' '" + dst + "'");
    CHECK(r.status == 2);
    CHECK(r.output.find("partition 2") != std::string::npos);

    r = run_command(clone_bin + " '" + src.path + "'");
    CHECK(r.status == 1);
}

TEST_CASE("ntc-info: exit statuses and JSON") {
    TempDir dir;
    make_tree(dir / "tree", 6);
    TestDisk src = make_gpt_disk(dir, "src.img", dir / "tree");
    std::string dst = dir / "dst.img";
    must(clone_bin + " -q '" + src.path + "' '" + dst + "'");

    CHECK(run_command(info_bin + " '" + src.path + "'").status == 2);
    CommandRun r = run_command(info_bin + " --check --json '" + dst + "'");
    CHECK(r.status == 2);
    nlohmann::json j = nlohmann::json::parse(r.output);
    CHECK(j["partitions"][2]["area"]["kind"] == "ntc-area");
    CHECK(j["partitions"][0]["fs_type"] == "ext4");

    write_fake_checkpoint(dst, src.swap_offset, 50);
    CHECK(run_command(info_bin + " --check '" + dst + "'").status == 0);

    r = run_command(info_bin + " '" + (dir / "nope.img") + "'");
    CHECK(r.status == 1);
    CHECK(r.output.find("cannot open") != std::string::npos);
    CHECK(run_command(info_bin + " --bogus x").status == 1);
}

TEST_CASE("bad arguments exit 1 with CLI11's message on stderr, --help exits 0") {
    const std::string stderr_only = "2>&1 >/dev/null", stdout_only = "2>/dev/null";
    for (const std::string& bin : {clone_bin, info_bin}) {
        INFO("tool: " << bin);
        CommandRun r = run_command(bin + " --bogus a b", stderr_only);
        CHECK(r.status == 1);
        CHECK(r.output.find("--bogus") != std::string::npos);
        r = run_command(bin, stderr_only);
        CHECK(r.status == 1);
        CHECK(r.output.find("is required") != std::string::npos);
        r = run_command(bin + " --help", stdout_only);
        CHECK(r.status == 0);
        CHECK(r.output.find("Usage:") != std::string::npos);
    }
}

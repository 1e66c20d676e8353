// The command lines, run as a user would: exit statuses and messages.
#include "support.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace testsupport;

namespace {

struct Run {
    int status;
    std::string output;  // stdout and stderr, or what run()'s redirect leaves of them
};

Run run(const std::string& cmd, const std::string& redirect = "2>&1") {
    std::string out = sh_output(cmd + " " + redirect + "; echo \"@rc=$?\"");
    size_t at = out.rfind("@rc=");
    REQUIRE(at != std::string::npos);
    return {std::stoi(out.substr(at + 4)), out.substr(0, at)};
}

const std::string clone_bin = NTC_CLONE_BIN;
const std::string info_bin = NTC_INFO_BIN;

}  // namespace

TEST_CASE("ntc-clone: clone, summary line, verify, and refusals with plain messages") {
    TempDir dir;
    make_tree(dir / "tree", 5);
    TestDisk src = make_gpt_disk(dir, "src.img", dir / "tree");
    std::string dst = dir / "dst.img";

    Run r = run(clone_bin + " --verify '" + src.path + "' '" + dst + "'");
    CHECK(r.status == 0);
    CHECK(r.output.find("wrote") != std::string::npos);
    CHECK(r.output.find("MB/s") != std::string::npos);
    CHECK(r.output.find("verified") != std::string::npos);

    r = run(clone_bin + " '" + src.path + "' '" + dst + "'");
    CHECK(r.status == 1);
    CHECK(r.output.find("use --force") != std::string::npos);

    r = run(clone_bin + " -q --force '" + src.path + "' '" + dst + "'");
    CHECK(r.status == 0);
    CHECK(r.output.empty());

    r = run(clone_bin + " --force --update '" + src.path + "' '" + dst + "'");
    CHECK(r.status == 1);

    write_bytes(dst, src.raw_offset + 5, {42});
    r = run(clone_bin + " --verify-only '" + src.path + "' '" + dst + "'");
    CHECK(r.status == 2);
    CHECK(r.output.find("partition 2") != std::string::npos);

    r = run(clone_bin + " '" + src.path + "'");
    CHECK(r.status == 1);
}

TEST_CASE("ntc-info: exit statuses and JSON") {
    TempDir dir;
    make_tree(dir / "tree", 6);
    TestDisk src = make_gpt_disk(dir, "src.img", dir / "tree");
    std::string dst = dir / "dst.img";
    must(clone_bin + " -q '" + src.path + "' '" + dst + "'");

    CHECK(run(info_bin + " '" + src.path + "'").status == 2);
    Run r = run(info_bin + " --check --json '" + dst + "'");
    CHECK(r.status == 2);
    nlohmann::json j = nlohmann::json::parse(r.output);
    CHECK(j["partitions"][2]["area"]["kind"] == "ntc-area");
    CHECK(j["partitions"][0]["fs_type"] == "ext4");

    write_fake_checkpoint(dst, src.swap_offset, 50);
    CHECK(run(info_bin + " --check '" + dst + "'").status == 0);

    r = run(info_bin + " '" + (dir / "nope.img") + "'");
    CHECK(r.status == 1);
    CHECK(r.output.find("cannot open") != std::string::npos);
    CHECK(run(info_bin + " --bogus x").status == 1);
}

TEST_CASE("bad arguments exit 1 with CLI11's message on stderr, --help exits 0") {
    const std::string stderr_only = "2>&1 >/dev/null", stdout_only = "2>/dev/null";
    for (const std::string& bin : {clone_bin, info_bin}) {
        INFO("tool: " << bin);
        Run r = run(bin + " --bogus a b", stderr_only);
        CHECK(r.status == 1);
        CHECK(r.output.find("--bogus") != std::string::npos);
        r = run(bin, stderr_only);
        CHECK(r.status == 1);
        CHECK(r.output.find("is required") != std::string::npos);
        r = run(bin + " --help", stdout_only);
        CHECK(r.status == 0);
        CHECK(r.output.find("Usage:") != std::string::npos);
    }
}

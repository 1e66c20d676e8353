#include "ntc/clone.hpp"
#include "ntc/disk_report.hpp"
#include "support.hpp"

#include <doctest/doctest.h>

using namespace ntc;
using namespace testsupport;

namespace {

struct ClonedDisk {
	TempDir dir;
	TestDisk src;
	std::string dst = dir / "dst.img";
	ClonedDisk()
	{
		make_tree(dir / "tree", 11);
		src = make_gpt_disk(dir, "src.img", dir / "tree");
		clone_disk(src.path, dst, CloneOptions{});
	}
	const PartitionReport &swap(const DiskReport &r) { return r.parts.at(2); }
};

} // namespace

TEST_CASE("ntc-info on disk 1: ordinary swap, nothing to resume")
{
	ClonedDisk d;
	DiskReport r = describe_disk(d.src.path, true);
	REQUIRE(r.parts.size() == 3);
	REQUIRE(r.parts[0].used_bytes);
	CHECK(*r.parts[0].used_bytes > 600 * 1024);	// big.bin and metadata
	CHECK_FALSE(r.parts[1].area);
	REQUIRE(d.swap(r).area);
	CHECK(d.swap(r).area->kind == AreaKind::swap);
	CHECK(info_exit_code(r) == info_no_checkpoint);
	CHECK(render_text(r).find("swap") != std::string::npos);
}

TEST_CASE("ntc-info on a fresh clone: snapshot area without checkpoint")
{
	ClonedDisk d;
	DiskReport r = describe_disk(d.dst, true);
	CHECK(d.swap(r).area->kind == AreaKind::ntc_area);
	CHECK(info_exit_code(r) == info_no_checkpoint);
	CHECK(render_text(r).find("NTC snapshot area, no checkpoint") != std::string::npos);
}

TEST_CASE("ntc-info --check on a checkpoint: sound, then damaged")
{
	ClonedDisk d;
	write_fake_checkpoint(d.dst, d.src.swap_offset, 700, 3);
	DiskReport r = describe_disk(d.dst, true);
	REQUIRE(d.swap(r).area);
	CHECK(d.swap(r).area->kind == AreaKind::ntc_checkpoint);
	REQUIRE(d.swap(r).check);
	CHECK(d.swap(r).check->ok());
	CHECK(info_exit_code(r) == info_checkpoint);
	std::string text = render_text(r);
	CHECK(text.find("NTC checkpoint #3") != std::string::npos);
	CHECK(text.find("6.1.0-test-amd64") != std::string::npos);
	CHECK(text.find("check        passed: 701 pages") != std::string::npos);
	nlohmann::json j = render_json(r);
	CHECK(j["partitions"][2]["area"]["record"]["sequence"] == 3);
	CHECK(j["partitions"][2]["area"]["check"]["ok"] == true);
	CHECK(j["exit_code"] == 0);

	SUBCASE("a damaged data page fails --check but not the quick look")
	{
		auto b = read_bytes(d.dst, d.src.swap_offset + 300 * NTC_PAGE_SIZE, 1);
		b[0] ^= 0xff;
		write_bytes(d.dst, d.src.swap_offset + 300 * NTC_PAGE_SIZE, b);
		CHECK(info_exit_code(describe_disk(d.dst, false)) == info_checkpoint);
		DiskReport bad = describe_disk(d.dst, true);
		CHECK(info_exit_code(bad) == info_damaged);
		CHECK(render_text(bad).find("FAILED") != std::string::npos);
	}
	SUBCASE("a damaged NTC record is damage even without --check")
	{
		write_bytes(d.dst, d.src.swap_offset + 200, {1, 2, 3});
		DiskReport bad = describe_disk(d.dst, false);
		CHECK(info_exit_code(bad) == info_damaged);
	}
}

TEST_CASE("partition type names")
{
	CHECK(partition_type_name("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f") == "linux-swap");
	CHECK(partition_type_name("0x83") == "linux");
	CHECK(partition_type_name("something") == "something");
}

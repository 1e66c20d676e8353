// ntc-info DISK: what a disk holds, and whether its checkpoint can be resumed.
#include "ntc/disk_report.h"
#include "ntc/error.h"

#include <CLI/CLI.hpp>
#include <cstdio>

int main(int argc, char** argv) {
    CLI::App app{"Show the partitions of an NTC disk and the checkpoint it holds.\n"
                 "Exit status: 0 checkpoint present (and sound, with --check), 1 error, "
                 "2 no checkpoint, 3 damaged."};
    std::string path;
    bool check = false, json = false;
    app.add_option("DISK", path, "disk image or block device")->required();
    app.add_flag("--check", check, "walk the image's swap map and verify its CRC");
    app.add_flag("--json", json, "print JSON for scripts");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : ntc::info_error;
    }
    try {
        ntc::DiskReport report = ntc::describe_disk(path, check);
        if (json) std::printf("%s\n", ntc::render_json(report).dump(2).c_str());
        else std::fputs(ntc::render_text(report).c_str(), stdout);
        return ntc::info_exit_code(report);
    } catch (const ntc::Error& e) {
        std::fprintf(stderr, "ntc-info: %s\n", e.what());
        return ntc::info_error;
    }
}

// ntc-clone SRC DST: make disk 2, an inode-identical clone of disk 1 whose
// swap partitions are NTC snapshot areas; or, from an instance's overlay, a
// plain disk.  Logic lives in libntcdisk.
#include "ntc/clone.h"
#include "ntc/error.h"
#include "ntc/progress.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <unistd.h>

namespace {

int report_verify(const ntc::VerifyResult& v, bool quiet) {
    if (v.ok()) {
        if (!quiet)
            std::printf("ntc-clone: verified: %s compared, %llu inodes agree\n",
                        ntc::human_bytes(v.bytes_compared).c_str(), static_cast<unsigned long long>(v.inodes_compared));
        return 0;
    }
    std::fprintf(stderr, "ntc-clone: verification FAILED, first differences:\n");
    for (const std::string& d : v.differences) std::fprintf(stderr, "  %s\n", d.c_str());
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Clone an NTC disk: identical partitions and inodes, swap prepared as the "
                 "snapshot area; or turn an instance's overlay (ntc-vmm resume --overlay) into a plain disk."
                 "\nExit status: 0 done, 1 refused or failed, 2 verification "
                 "found differences."};
    std::string src, dst;
    bool verify = false, verify_only = false, quiet = false;
    ntc::CloneOptions opts;
    app.add_option("SRC", src, "source disk image or block device (disk 1), or an instance's overlay")->required();
    app.add_option("DST", dst, "target: a new file, an existing file with --force, or a block device")->required();
    app.add_flag("-f,--force", opts.force, "replace an existing DST file");
    app.add_flag("-u,--update", opts.update, "DST is an earlier clone: write only what differs");
    app.add_flag("--strict", opts.strict, "refuse a damaged ext filesystem instead of copying it raw");
    app.add_flag("--verify", verify, "after copying, prove that DST is a clone of SRC");
    app.add_flag("--verify-only", verify_only, "only prove that DST is a clone of SRC");
    app.add_flag("-q,--quiet", quiet, "print errors only");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 1;  // --help: 0; bad arguments: 1, not CLI11's code
    }
    if (opts.force && opts.update) {
        std::fprintf(stderr, "ntc-clone: --force and --update exclude each other\n");
        return 1;
    }

    opts.progress = !quiet && isatty(STDERR_FILENO);
    opts.warn = [](const std::string& w) { std::fprintf(stderr, "ntc-clone: warning: %s\n", w.c_str()); };
    try {
        if (!verify_only) {
            ntc::CloneResult r = ntc::clone_disk(src, dst, opts);
            if (!quiet)
                std::printf("ntc-clone: %s -> %s: wrote %s, skipped %s in %.2f s (%.1f MB/s)\n", src.c_str(),
                            dst.c_str(), ntc::human_bytes(r.bytes_written).c_str(),
                            ntc::human_bytes(r.bytes_skipped).c_str(), r.seconds,
                            r.seconds > 0 ? r.bytes_written / r.seconds / 1e6 : 0.0);
        }
        if (verify || verify_only) return report_verify(ntc::verify_clone(src, dst), quiet);
    } catch (const ntc::Error& e) {
        std::fprintf(stderr, "ntc-clone: %s\n", e.what());
        return 1;
    }
    return 0;
}

// ntc-send DISK2: the checkpoint on disk 2 as a stream on standard output,
// whole or the changes since a copy's generation, for ntc-receive.  Logic
// lives in libntcdisk.
#include "ntc/checkpoint_sender.h"
#include "ntc/progress.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <ntc_format.h>
#include <unistd.h>

namespace {

constexpr int exit_try_again = 75;  // EX_TEMPFAIL

void print_summary(const std::string& disk, const ntc::SendResult& r, bool json) {
    if (json) {
        nlohmann::json out = {{"disk", disk},
                              {"from_generation", r.from_generation},
                              {"to_generation", r.to_generation},
                              {"full", r.full},
                              {"blocks", r.blocks},
                              {"bytes", r.blocks * NTC_PAGE_SIZE},
                              {"chunks", r.chunks},
                              {"seconds", r.seconds}};
        std::fprintf(stderr, "%s\n", out.dump().c_str());
    } else if (r.from_generation == r.to_generation) {
        std::fprintf(stderr, "ntc-send: %s is at generation %llu, as the copy: nothing new to send\n", disk.c_str(),
                     static_cast<unsigned long long>(r.to_generation));
    } else {
        std::string which =
            r.full ? "generation " + std::to_string(r.to_generation) + " (full)"
                   : "generation " + std::to_string(r.from_generation) + " -> " + std::to_string(r.to_generation);
        std::fprintf(stderr, "ntc-send: %s of %s: %llu blocks (%s) in %.1f s\n", which.c_str(), disk.c_str(),
                     static_cast<unsigned long long>(r.blocks), ntc::human_bytes(r.blocks * NTC_PAGE_SIZE).c_str(),
                     r.seconds);
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Write the checkpoint on disk 2 of an NTC machine to standard output, whole or the changes since a "
                 "copy's generation, for ntc-receive.\n"
                 "Exit status: 0 sent, 1 refused or failed, 2 usage, 75 a checkpoint is being written: run again."};
    std::string disk;
    uint64_t since = 0;
    bool quiet = false, json = false;
    ntc::SendOptions opts;
    app.add_option("DISK2", disk, "disk 2: image file or block device")->required();
    app.add_option("--since", since, "the copy's generation (ntc-receive --status): send only what it lacks");
    app.add_flag("-q,--quiet", quiet, "print errors only");
    app.add_flag("--json", json, "print the summary as JSON on standard error");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    if (isatty(STDOUT_FILENO)) {
        std::fprintf(stderr, "ntc-send: standard output is a terminal; pipe the stream into ntc-receive "
                             "(ntc-send disk2.img | ssh HOST ntc-receive /srv/disk2.img)\n");
        return 1;
    }
    if (app.count("--since")) opts.since = since;
    opts.progress = !quiet && !json && isatty(STDERR_FILENO);
    std::signal(SIGPIPE, SIG_IGN);  // a receiver that stops is an error to report, not a silent death
    try {
        ntc::SendResult result = ntc::send_checkpoint(disk, STDOUT_FILENO, opts);
        if (!quiet || json) print_summary(disk, result, json);
    } catch (const ntc::CheckpointInProgress& e) {
        std::fprintf(stderr, "ntc-send: %s\n", e.what());
        return exit_try_again;
    } catch (const ntc::Error& e) {
        std::fprintf(stderr, "ntc-send: %s\n", e.what());
        return 1;
    }
    return 0;
}

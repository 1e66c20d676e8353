// ntc-receive COPY: applies a stream of ntc-send from standard input to a
// copy of disk 2; --status reports on the copy.  Logic lives in libntcdisk.
#include "ntc/error.h"
#include "ntc/progress.h"
#include "ntc/stream_receiver.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ntc_format.h>
#include <unistd.h>

namespace {

void print_summary(const std::string& copy, const ntc::ReceiveResult& r, bool json) {
    if (json) {
        nlohmann::json out = {{"copy", copy},
                              {"generation", r.to_generation},
                              {"from_generation", r.from_generation},
                              {"full", r.full},
                              {"nothing_to_do", r.nothing_to_do},
                              {"blocks", r.blocks},
                              {"bytes", r.blocks * NTC_PAGE_SIZE},
                              {"seconds", r.seconds}};
        std::printf("%s\n", out.dump().c_str());
    } else if (r.nothing_to_do) {
        std::printf("ntc-receive: %s is at generation %llu already: nothing to do\n", copy.c_str(),
                    static_cast<unsigned long long>(r.to_generation));
    } else {
        std::string from = r.from_generation ? "from " + std::to_string(r.from_generation) : "new";
        std::printf("ntc-receive: %s is at generation %llu (%s%s): %llu blocks, %s\n", copy.c_str(),
                    static_cast<unsigned long long>(r.to_generation), from.c_str(), r.full ? ", full" : "",
                    static_cast<unsigned long long>(r.blocks), ntc::human_bytes(r.blocks * NTC_PAGE_SIZE).c_str());
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Apply a checkpoint stream of ntc-send, read from standard input, to COPY, a copy of disk 2; or "
                 "report on COPY.\n"
                 "Exit status: 0 done or nothing to do, 1 refused or failed (COPY as it was), 2 usage."};
    std::string copy;
    bool status = false, quiet = false, json = false;
    ntc::ReceiveOptions opts;
    app.add_option("COPY", copy, "the copy of disk 2: a file, made by the first (full) stream")->required();
    app.add_flag("--status", status, "report the copy's generation, checkpoint, pending receive and kept copies");
    app.add_option("--keep", opts.keep, "keep the copy's K previous generations as COPY.gen-N")->excludes("--status");
    app.add_flag("-q,--quiet", quiet, "print errors only");
    app.add_flag("--json", json, "print JSON for scripts");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    try {
        if (status) {
            ntc::CopyStatus s = ntc::copy_status(copy);
            if (json) std::printf("%s\n", ntc::render_status_json(s).dump(2).c_str());
            else std::fputs(ntc::render_status_text(s).c_str(), stdout);
            return 0;
        }
        opts.progress = !quiet && isatty(STDERR_FILENO);
        opts.note = [quiet](const std::string& note) {
            if (!quiet) std::fprintf(stderr, "ntc-receive: %s\n", note.c_str());
        };
        ntc::ReceiveResult result = ntc::receive_stream(copy, STDIN_FILENO, opts);
        if (!quiet || json) print_summary(copy, result, json);
    } catch (const ntc::Error& e) {
        std::fprintf(stderr, "ntc-receive: %s\n", e.what());
        return 1;
    }
    return 0;
}

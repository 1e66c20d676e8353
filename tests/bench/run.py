"""make bench: runs every tests/bench/*_bench.py in turn (each prints its
figures and writes build/bench/<name>.md) and gathers the reports into
build/bench/results.md.  A benchmark that fails is reported, and the others
still run."""
import glob
import os
import subprocess
import sys

from bench_report import OUT

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    os.makedirs(OUT, exist_ok=True)
    only = sys.argv[1:]
    failed = []
    for script in sorted(glob.glob(os.path.join(HERE, "*_bench.py"))):
        name = os.path.basename(script)[:-len("_bench.py")]
        if only and name not in only:
            continue
        print(f"=== benchmark: {name}", flush=True)
        if subprocess.run([sys.executable, script]).returncode != 0:
            failed.append(name)
    with open(os.path.join(OUT, "results.md"), "w") as out:
        out.write("# NTC benchmark results\n\nMade by `make bench`; each section is one benchmark.\n")
        for md in sorted(glob.glob(os.path.join(OUT, "*.md"))):
            if os.path.basename(md) != "results.md":
                with open(md) as f:
                    out.write("\n" + f.read())
        for name in failed:
            out.write(f"\n## {name}\n\nFAILED: see the output of `make bench`.\n")
    print(f"results: {os.path.join(OUT, 'results.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

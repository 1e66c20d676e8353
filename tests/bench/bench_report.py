"""Where each benchmark leaves its report: build/bench/<name>.md, which
run.py gathers into build/bench/results.md (the README links it)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
import ntclab  # noqa: E402

OUT = os.path.join(ntclab.BUILD, "bench")


def write(name, text):
    """Writes the report of benchmark `name` (Markdown, its own ## heading)."""
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.md"), "w") as f:
        f.write(text)


def publish(name, title, setting, table, started):
    """Prints a benchmark's table and writes its report: "## name: title",
    the setting it was measured in, the table, and the run time since
    `started` (time.monotonic())."""
    import time
    print("\n" + table)
    write(name, f"## {name}: {title}\n\n{setting}\n\n{table}\n\nRun time {time.monotonic() - started:.0f} s.\n")

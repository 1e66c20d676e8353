"""ntc-clone of a real guest disk, checked only with e2fsprogs and util-linux
tools (never with ntc-clone itself): e2fsck clean on every ext partition of
the clone, the same inode numbers, modes, sizes and file contents, the same
partition table, and a swap partition that blkid no longer calls swap."""
import filecmp
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lab"))
import ntclab  # noqa: E402

BIN = os.path.join(os.environ.get("NTC_BUILD", ntclab.BUILD), "bin")


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def listing(image, offset):
    """{path: (inode, mode, size)} for every entry, from debugfs 'ls -p'."""
    spec = f"{image}?offset={offset}"
    out, todo = {}, ["/"]
    while todo:
        d = todo.pop()
        for line in run("debugfs", "-R", f"ls -p {d}", spec).splitlines():
            f = line.strip()[1:].split("/")
            if len(f) < 6 or f[4] in (".", ".."):
                continue
            ino, mode, name, size = f[0], f[1], f[4], f[5]
            path = d.rstrip("/") + "/" + name
            out[path] = (ino, mode, size)
            if mode.startswith("04"):
                todo.append(path)
    return out


def same_tree(a, b):
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(os.path.join(a, d), os.path.join(b, d)) for d in cmp.common_dirs)


def main():
    with tempfile.TemporaryDirectory(dir=ntclab.BUILD) as tmp:
        src, dst = os.path.join(tmp, "disk1.img"), os.path.join(tmp, "disk2.img")
        subprocess.run([os.path.join(ntclab.ROOT, "scripts", "build-guest-disk.sh"), src,
                        "--swap-mib", "128"], check=True)
        subprocess.run([os.path.join(BIN, "ntc-clone"), src, dst], check=True)

        assert os.path.getsize(src) == os.path.getsize(dst)
        table = lambda disk: run("sfdisk", "--dump", disk).replace(disk, "DISK")  # noqa: E731
        assert table(src) == table(dst), "partition tables differ"
        parts = ntclab.partitions(src)
        ext = [p for p in parts if p.fstype == "ext4"]
        assert len(ext) == 2, [p.fstype for p in parts]
        entries = 0
        for p in ext:
            spec = f"{dst}?offset={p.offset}"
            r = subprocess.run(["e2fsck", "-fn", spec], capture_output=True, text=True)
            assert r.returncode == 0, f"e2fsck on the clone's partition {p.number}:\n{r.stdout}{r.stderr}"
            a, b = listing(src, p.offset), listing(dst, p.offset)
            assert a and a == b, f"partition {p.number}: inode listings differ"
            entries += len(a)
            da, db = os.path.join(tmp, f"a{p.number}"), os.path.join(tmp, f"b{p.number}")
            os.mkdir(da)
            os.mkdir(db)
            run("debugfs", "-R", f"rdump / {da}", f"{src}?offset={p.offset}")
            run("debugfs", "-R", f"rdump / {db}", f"{dst}?offset={p.offset}")
            assert same_tree(da, db), f"partition {p.number}: file contents differ"

        assert entries > 100, f"only {entries} entries compared"
        swap = next(p for p in parts if p.fstype == "swap")
        r = subprocess.run(["blkid", "-p", "-O", str(swap.offset), "-S", str(swap.size), dst],
                           capture_output=True, text=True)
        assert "swap" not in r.stdout, f"blkid still sees swap on the clone: {r.stdout}"
        # The kernel's swapon refuses it for the same reason: no SWAPSPACE2 signature.
        with open(dst, "rb") as f:
            f.seek(swap.offset + 4096 - 10)
            assert f.read(10) == b"NTCAREA001"
        # The clone is sparse: unused blocks and the swap area were not written.
        assert os.stat(dst).st_blocks * 512 < os.path.getsize(src) // 4
    print("host clone of a guest disk: passed")


if __name__ == "__main__":
    main()

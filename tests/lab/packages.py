"""`make deb` once per tree: the ntc-dkms and ntc-tools packages built from
the tracked files as they are now, kept under the build tree by a digest of
those files.  host.deb checks them and the Debian guest's disk installs
ntc-dkms from them, so that one `make test` builds them once (a package
build compiles every host tool again: minutes on CI's two cores).
"""
import glob
import hashlib
import os
import shutil
import subprocess

import ntclab


class BuildFailed(Exception):
    pass


def tracked_digest(paths=()):
    """A digest of the names and contents of the tracked files under
    `paths` (all of them without), as they are in the working tree: what
    `make deb` copies."""
    files = subprocess.run(["git", "ls-files", "-z", "--", *paths], cwd=ntclab.ROOT, capture_output=True,
                           check=True).stdout.split(b"\0")
    digest = hashlib.sha256()
    for name in sorted(f for f in files if f):
        digest.update(name + b"\0")
        with open(os.path.join(ntclab.ROOT, name.decode()), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def built_packages():
    """The directory holding this tree's .deb, .changes and .buildinfo
    files, running `make deb` (lintian's errors fail it) when no earlier
    build of the same tracked files is kept.  Raises BuildFailed with the
    build's last lines."""
    cache = os.path.join(os.path.abspath(ntclab.BUILD), "packages")
    kept = os.path.join(cache, tracked_digest())
    if os.path.isdir(kept):
        return kept
    scratch = os.path.join(cache, "build")
    shutil.rmtree(scratch, ignore_errors=True)
    jobs = os.environ.get("JOBS", str(os.cpu_count()))
    r = subprocess.run(["make", "-C", ntclab.ROOT, "deb", f"BUILD={scratch}", f"JOBS={jobs}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
    if r.returncode != 0:
        tail = "\n".join(r.stdout.splitlines()[-40:])
        raise BuildFailed(f"make deb failed (exit {r.returncode}); its last lines:\n{tail}")
    # Only a finished build is kept under the digest: a build stopped
    # half-way leaves nothing that a later call would take as done.
    for old in os.listdir(cache):
        if old != "build":
            shutil.rmtree(os.path.join(cache, old))
    staged = kept + ".new"
    os.makedirs(staged)
    for made in glob.glob(os.path.join(scratch, "deb", "*.*")):
        if os.path.isfile(made):
            shutil.move(made, staged)
    os.rename(staged, kept)
    shutil.rmtree(scratch)
    return kept

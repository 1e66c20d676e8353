"""make deb: both Debian packages build, lintian finds no error, and each
package holds what it must.

ntc-dkms: dkms.conf, the module sources with the disk-layout header they
include, the modules-load.d file, the checkpoint service and timer, the
udev rule and initramfs script that keep the office VM off disk 2.  The
timer is not enabled by a fresh install (the postinst's systemd part is run
with stand-ins for deb-systemd-helper, deb-systemd-invoke and systemctl that
record what they are asked), systemd-analyze accepts both units, and it
accepts the timer with the drop-in that README.Debian gives for changing
the interval.  DKMS builds ntc.ko from the packaged source for the guest
kernel, in a DKMS tree of the test's own: nothing is installed on this
machine.  ntc-tools: the three tools, which answer --help, and their man
pages.

Builds into $NTC_BUILD/deb-test (JOBS=N from the environment, as make's).
Run alone: NTC_BUILD=build python3 tests/host/test_deb.py (about 4 min on
2 cores).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
import ntclab  # noqa: E402

SCRATCH = os.path.join(os.path.abspath(os.environ.get("NTC_BUILD", ntclab.BUILD)), "deb-test")
TIMER = "ntc-checkpoint.timer"
SERVICE = "ntc-checkpoint.service"
UNIT_DIR = "lib/systemd/system"


class Failure(Exception):
    pass


def run(*cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise Failure(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def make_deb():
    """Runs make deb; returns the directory holding the .debs."""
    jobs = os.environ.get("JOBS", str(os.cpu_count()))
    r = subprocess.run(["make", "-C", ntclab.ROOT, "deb", f"BUILD={SCRATCH}", f"JOBS={jobs}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        tail = "\n".join(r.stdout.splitlines()[-40:])
        raise Failure(f"make deb failed (exit {r.returncode}); its last lines:\n{tail}")
    return os.path.join(SCRATCH, "deb")


def the_file(directory, pattern):
    found = [f for f in os.listdir(directory) if re.fullmatch(pattern, f)]
    if len(found) != 1:
        raise Failure(f"{directory}: want one file matching {pattern}, found {found}")
    return os.path.join(directory, found[0])


def check_lintian(changes):
    r = run("lintian", "--display-info", changes, check=False)
    tags = [line for line in r.stdout.splitlines() if re.match(r"[EWIPXO]: ", line)]
    errors = [t for t in tags if t.startswith("E: ")]
    if errors or r.returncode != 0:
        raise Failure(f"lintian {changes}: exit {r.returncode}, errors:\n" + "\n".join(errors or [r.stderr]))
    return tags


def contents(deb):
    """The paths in a .deb's data, without the leading ./"""
    out = run("dpkg-deb", "-c", deb).stdout
    return {line.split()[5][2:] for line in out.splitlines() if len(line.split()) >= 6}


def field(deb, name):
    return run("dpkg-deb", "-f", deb, name).stdout.strip()


def missing(paths, want):
    return [w for w in want if w not in paths]


def systemd_snippet(postinst):
    """The postinst's part written by dh_installsystemd."""
    m = re.search(r"# Automatically added by dh_installsystemd.*?\n(.*?)# End automatically added section",
                  postinst, re.S)
    if not m:
        raise Failure("ntc-dkms's postinst has no dh_installsystemd part: are the units installed?\n" + postinst)
    return m.group(1)


def fresh_install_systemd_calls(snippet, tmp):
    """Runs the postinst's systemd part as on a fresh install ('configure', no
    previous version), with stand-ins that log their arguments and answer
    as deb-systemd-helper does for a unit it has never seen."""
    fake = os.path.join(tmp, "fakebin")
    os.makedirs(fake)
    log = os.path.join(tmp, "calls.log")
    script = f"""#!/bin/sh
echo "$(basename "$0") $*" >> {log}
case "$1" in
debian-installed) exit 1 ;;
was-enabled) exit 0 ;;
esac
exit 0
"""
    for name in ("deb-systemd-helper", "deb-systemd-invoke", "systemctl"):
        path = os.path.join(fake, name)
        with open(path, "w") as f:
            f.write(script)
        os.chmod(path, 0o755)
    open(log, "w").close()
    env = dict(os.environ, PATH=f"{fake}:/usr/bin:/bin", DPKG_MAINTSCRIPT_PACKAGE="ntc-dkms")
    run("sh", "-c", "set -e\n" + snippet, "postinst", "configure", "", env=env)
    with open(log) as f:
        return [line.strip() for line in f]


def readme_drop_in(readme):
    """The [Timer] drop-in that README.Debian gives for changing the interval."""
    m = re.search(r"\n( +\[Timer\]\n(?: +\S.*\n)+)", readme)
    if not m:
        raise Failure("README.Debian shows no [Timer] drop-in for changing the interval")
    return "".join(line.strip() + "\n" for line in m.group(1).splitlines())


def verify_timer(unit_dir, drop_in):
    """systemd-analyze verify of the timer, with drop_in (or none) beside it."""
    d = os.path.join(unit_dir, TIMER + ".d")
    shutil.rmtree(d, ignore_errors=True)
    if drop_in is not None:
        os.makedirs(d)
        with open(os.path.join(d, "interval.conf"), "w") as f:
            f.write(drop_in)
    return run("systemd-analyze", "verify", os.path.join(unit_dir, TIMER), check=False)


def check_units(root, tmp, problems):
    with open(os.path.join(root, UNIT_DIR, SERVICE)) as f:
        service = f.read()
    with open(os.path.join(root, UNIT_DIR, TIMER)) as f:
        timer = f.read()
    if "Type=oneshot" not in service:
        problems.append(f"{SERVICE} is not Type=oneshot")
    m = re.search(r"^ExecStart=(\S+)", service, re.M)
    exec_path = m and os.path.join(root, m.group(1).lstrip("/"))
    if not exec_path or not os.access(exec_path, os.X_OK):
        problems.append(f"{SERVICE}: ExecStart names no executable file of the package")
    if not re.search(r"^\[Install\]\nWantedBy=timers.target$", timer, re.M):
        problems.append(f"{TIMER} has no [Install] WantedBy=timers.target: 'systemctl enable' would not start it at boot")

    units = os.path.join(tmp, "units")
    os.makedirs(units)
    shutil.copy(os.path.join(root, UNIT_DIR, TIMER), units)
    # The command must exist for verify; it is the packaged script.
    with open(os.path.join(units, SERVICE), "w") as f:
        f.write(service.replace(f"ExecStart={m.group(1)}", f"ExecStart={exec_path}") if exec_path else service)
    r = run("systemd-analyze", "verify", os.path.join(units, SERVICE), check=False)
    if r.returncode != 0:
        problems.append(f"systemd-analyze verify {SERVICE}: {r.stdout}{r.stderr}")
    r = verify_timer(units, None)
    if r.returncode != 0:
        problems.append(f"systemd-analyze verify {TIMER}: {r.stdout}{r.stderr}")
    with open(os.path.join(root, "usr/share/doc/ntc-dkms/README.Debian")) as f:
        drop_in = readme_drop_in(f.read())
    r = verify_timer(units, drop_in)
    if r.returncode != 0:
        problems.append(f"systemd-analyze verify {TIMER} with README.Debian's drop-in:\n"
                        f"{drop_in}{r.stdout}{r.stderr}")
    # Proof that verify reads the drop-in: clearing the triggers alone
    # leaves a timer that systemd refuses.
    r = verify_timer(units, "[Timer]\nOnUnitActiveSec=\n")
    if "lacks value setting" not in r.stdout + r.stderr:
        problems.append(f"systemd-analyze verify did not read a drop-in beside {TIMER} "
                        f"(exit {r.returncode}): the drop-in check above proves nothing\n{r.stdout}{r.stderr}")


def check_dkms_build(root, version, tmp, problems):
    krel = ntclab.guest_kernel_release()
    if not os.path.isfile(f"/usr/lib/modules/{krel}/build/Makefile"):
        problems.append(f"no headers for the guest kernel {krel} (/usr/lib/modules/{krel}/build): "
                        "make deps installs linux-headers-amd64")
        return
    tree = os.path.join(tmp, "dkms")
    os.makedirs(tree)
    trees = ["--sourcetree", os.path.join(root, "usr/src"), "--dkmstree", tree]
    # No signing: dkms would otherwise make a key in /var/lib/dkms.
    env = dict(os.environ, sign_file="/nonexistent")
    jobs = os.environ.get("JOBS", str(os.cpu_count()))
    for cmd in (["add", "-m", "ntc", "-v", version],
                ["build", "-m", "ntc", "-v", version, "-k", krel, "-j", jobs]):
        r = run("dkms", *cmd, *trees, env=env, check=False)
        if r.returncode != 0:
            problems.append(f"dkms {' '.join(cmd)} of the packaged source: exit {r.returncode}\n{r.stdout}{r.stderr}")
            return
    ko = os.path.join(tree, "ntc", version, krel, "x86_64", "module", "ntc.ko")
    if not os.path.isfile(ko):
        problems.append(f"dkms build reported success but left no {ko}")
        return
    vermagic = run("modinfo", "-F", "vermagic", ko).stdout.split()
    if not vermagic or vermagic[0] != krel:
        problems.append(f"the ntc.ko DKMS built is for {vermagic[:1]}, not the guest kernel {krel}")


def main():
    t0 = time.monotonic()
    debs = make_deb()
    t_make = time.monotonic() - t0
    version = run("dpkg-parsechangelog", "-S", "Version", cwd=ntclab.ROOT).stdout.strip()
    dkms_deb = the_file(debs, rf"ntc-dkms_{re.escape(version)}_all\.deb")
    tools_deb = the_file(debs, rf"ntc-tools_{re.escape(version)}_[a-z0-9]+\.deb")
    tags = check_lintian(the_file(debs, rf"ntc_{re.escape(version)}_[a-z0-9]+\.changes"))

    problems = []
    src = f"usr/src/ntc-{version}/"
    dkms_files = contents(dkms_deb)
    # The tracked ones: a built tree also holds Kbuild's generated ntc.mod.c.
    tracked = run("git", "ls-files", "kmod", cwd=ntclab.ROOT).stdout.split()
    module_sources = [f for f in tracked
                      if os.path.basename(f) in ("Kbuild", "Makefile") or re.fullmatch(r".*\.[ch]", f)]
    problems += [f"ntc-dkms lacks {p}" for p in missing(dkms_files, [
        src + "dkms.conf", src + "disk-layout/ntc_format.h",
        *(src + m for m in module_sources),
        "usr/lib/modules-load.d/ntc.conf", f"{UNIT_DIR}/{SERVICE}", f"{UNIT_DIR}/{TIMER}",
        "lib/udev/rules.d/60-ntc-snapshot-disk.rules", "lib/udev/ntc-snapshot-disk",
        "usr/share/initramfs-tools/hooks/ntc-snapshot-disk",
        "usr/share/initramfs-tools/scripts/local-top/ntc-snapshot-disk"])]
    problems += [f"ntc-dkms enables a unit by a symlink: {p}" for p in dkms_files if ".wants/" in p]
    if field(dkms_deb, "Architecture") != "all":
        problems.append("ntc-dkms is not Architecture: all")
    if "dkms" not in field(dkms_deb, "Depends"):
        problems.append("ntc-dkms does not depend on dkms")

    tools_files = contents(tools_deb)
    problems += [f"ntc-tools lacks {p}" for p in missing(tools_files, [
        *(f"usr/bin/{t}" for t in ("ntc-clone", "ntc-info", "ntc-vmm")),
        *(f"usr/share/man/man1/{t}.1.gz" for t in ("ntc-clone", "ntc-info", "ntc-vmm"))])]

    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        root = os.path.join(tmp, "root")
        run("dpkg-deb", "-x", dkms_deb, root)
        run("dpkg-deb", "-x", tools_deb, root)
        with open(os.path.join(root, src, "dkms.conf")) as f:
            conf = f.read()
        for want in (f'PACKAGE_VERSION="{version}"', 'AUTOINSTALL="yes"', 'BUILT_MODULE_NAME[0]="ntc"'):
            if want not in conf:
                problems.append(f"dkms.conf lacks {want}:\n{conf}")
        with open(os.path.join(root, "usr/lib/modules-load.d/ntc.conf")) as f:
            if "ntc" not in [line.strip() for line in f]:
                problems.append("usr/lib/modules-load.d/ntc.conf does not name the ntc module")

        postinst = run("dpkg-deb", "-I", dkms_deb, "postinst").stdout
        calls = fresh_install_systemd_calls(systemd_snippet(postinst), tmp)
        acting = [c for c in calls if re.search(r"\b(enable|start|restart)\b", c)]
        if acting:
            problems.append("a fresh install of ntc-dkms enables or starts units: " + "; ".join(acting))
        if not any(TIMER in c for c in calls):
            problems.append(f"the postinst's systemd part never mentions {TIMER}: {calls}")
        check_units(root, tmp, problems)

        for tool in ("ntc-clone", "ntc-info", "ntc-vmm"):
            r = run(os.path.join(root, "usr/bin", tool), "--help", check=False)
            if r.returncode != 0 or "Usage:" not in r.stdout:
                problems.append(f"packaged {tool} --help: exit {r.returncode}\n{r.stdout}{r.stderr}")
        t_dkms = time.monotonic()
        check_dkms_build(root, version, tmp, problems)
        t_dkms = time.monotonic() - t_dkms

    print("lintian:", *(tags or ["(nothing)"]), sep="\n  ")
    print(f"make deb {t_make:.0f} s, dkms build {t_dkms:.0f} s, total {time.monotonic() - t0:.0f} s")
    ntclab.report(problems, "make deb: both packages built, lintian clean of errors, contents as they must be: passed")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)

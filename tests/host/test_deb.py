"""make deb: both Debian packages build, lintian finds no error, and each
package holds what it must.

ntc-dkms: dkms.conf, the module sources with the disk-layout header they
include, the modules-load.d file, the checkpoint service and timer, the
udev rule and initramfs script that keep the office VM off disk 2, and the
resume hooks: the udev rule that starts ntc-resumed.service, the service,
its script and the empty /etc/ntc/resume.d.  A fresh install enables
nothing, and neither it nor an upgrade starts ntc-resumed.service (the
postinst's systemd part is run, as on a machine systemd runs, with
stand-ins for deb-systemd-helper, deb-systemd-invoke and systemctl that
record what they are asked).  systemd-analyze accepts the three units,
and the timer with the drop-in that README.Debian gives for changing the
interval; the udev rule matches
the module's resume uevent and starts the service without blocking udev
(`udevadm verify` checks it too where udev has it, from systemd 254; Debian
12 has 252).  The packaged ntc-resumed, run here with a stand-in /proc/ntc
and hook directory (NTC_PROC, NTC_RESUME_HOOKS), runs the hooks in the
order of their names with NTC_INSTANCE and NTC_CHECKPOINT, passes over
(and names) a file run-parts skips, runs the later hooks after a failing
one and then fails, succeeds with no hook directory, and fails with a
clear message without /proc/ntc or a resume.  README.Debian's example
hooks are valid sh.  DKMS builds ntc.ko from the packaged source for the
guest kernel, in a DKMS tree of the test's own: nothing is installed on
this machine.  ntc-tools: the five tools, which answer --help, and their
man pages.

The packages come from tests/lab/packages.py: make deb once per tree
(JOBS=N from the environment, as make's), kept under $NTC_BUILD/packages
for the Debian guest's disk too; scratch files go to $NTC_BUILD/deb-test.
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
import packages  # noqa: E402

SCRATCH = os.path.join(os.path.abspath(os.environ.get("NTC_BUILD", ntclab.BUILD)), "deb-test")
TIMER = "ntc-checkpoint.timer"
SERVICE = "ntc-checkpoint.service"
RESUMED = "ntc-resumed.service"
HOST_TOOLS = ("ntc-clone", "ntc-info", "ntc-send", "ntc-receive", "ntc-vmm")
UNIT_DIR = "lib/systemd/system"
RESUMED_RULE = "lib/udev/rules.d/61-ntc-resumed.rules"
RESUMED_SCRIPT = "usr/libexec/ntc/ntc-resumed"
HOOK_DIR = "etc/ntc/resume.d/"


class Failure(Exception):
    pass


def run(*cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise Failure(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


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
    """The postinst's parts written by dh_installsystemd (one per call that
    has something to do)."""
    parts = re.findall(r"# Automatically added by dh_installsystemd.*?\n(.*?)# End automatically added section",
                       postinst, re.S)
    if not parts:
        raise Failure("ntc-dkms's postinst has no dh_installsystemd part: are the units installed?\n" + postinst)
    return "".join(parts)


def postinst_systemd_calls(snippet, tmp, previous=""):
    """Runs the postinst's systemd part as on a fresh install ('configure',
    no previous version) or an upgrade from `previous`, with stand-ins that
    log their arguments and answer as deb-systemd-helper does for a unit it
    has never seen, or (upgrade) one it installed and was enabled."""
    fake = os.path.join(tmp, "fakebin")
    shutil.rmtree(fake, ignore_errors=True)
    os.makedirs(fake)
    log = os.path.join(tmp, "calls.log")
    installed = 0 if previous else 1
    # Starts are guarded by [ -d /run/systemd/system ]: as in the guest,
    # whether or not systemd runs this machine.
    running = os.path.join(tmp, "run-systemd-system")
    os.makedirs(running, exist_ok=True)
    snippet = snippet.replace("/run/systemd/system", running)
    script = f"""#!/bin/sh
echo "$(basename "$0") $*" >> {log}
case "$1" in
debian-installed) exit {installed} ;;
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
    run("sh", "-c", "set -e\n" + snippet, "postinst", "configure", previous, env=env)
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


def verify_service(root, units, name, problems):
    """The packaged oneshot service `name` checked, and copied into `units`
    for systemd-analyze verify; returns its text."""
    with open(os.path.join(root, UNIT_DIR, name)) as f:
        service = f.read()
    if "Type=oneshot" not in service:
        problems.append(f"{name} is not Type=oneshot")
    doc = "/usr/share/doc/ntc-dkms/README.Debian"
    if f"Documentation=file:{doc}" not in service:
        problems.append(f"{name} does not name README.Debian as its Documentation=")
    elif not os.path.isfile(os.path.join(root, doc.lstrip("/"))):
        problems.append(f"{name}'s Documentation= names {doc}, which the package does not hold "
                        "(gzipped by dh_compress? debian/rules excludes it)")
    m = re.search(r"^ExecStart=(\S+)", service, re.M)
    exec_path = m and os.path.join(root, m.group(1).lstrip("/"))
    if not exec_path or not os.access(exec_path, os.X_OK):
        problems.append(f"{name}: ExecStart names no executable file of the package")
    # The command must exist for verify; it is the packaged script.
    with open(os.path.join(units, name), "w") as f:
        f.write(service.replace(f"ExecStart={m.group(1)}", f"ExecStart={exec_path}") if exec_path else service)
    r = run("systemd-analyze", "verify", os.path.join(units, name), check=False)
    if r.returncode != 0:
        problems.append(f"systemd-analyze verify {name}: {r.stdout}{r.stderr}")
    return service


def check_units(root, tmp, problems):
    with open(os.path.join(root, UNIT_DIR, TIMER)) as f:
        timer = f.read()
    if not re.search(r"^\[Install\]\nWantedBy=timers.target$", timer, re.M):
        problems.append(f"{TIMER} has no [Install] WantedBy=timers.target: 'systemctl enable' would not start it at boot")

    units = os.path.join(tmp, "units")
    os.makedirs(units)
    shutil.copy(os.path.join(root, UNIT_DIR, TIMER), units)
    verify_service(root, units, SERVICE, problems)
    resumed = verify_service(root, units, RESUMED, problems)
    # udev starts it after each resume: an [Install] section would let
    # 'systemctl enable' run the hooks at boot, and RemainAfterExit=yes
    # would keep it active, so that the next resume's start did nothing.
    if re.search(r"^\[Install\]", resumed, re.M):
        problems.append(f"{RESUMED} has an [Install] section: only udev starts it, after a resume")
    if re.search(r"^RemainAfterExit=(yes|true|on|1)\s*$", resumed, re.M):
        problems.append(f"{RESUMED} has RemainAfterExit=: a later resume would find it active and run no hook")
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


def rule_lines(text):
    """A udev rules file's rules, continuation lines joined, comments and
    blank lines dropped."""
    text = re.sub(r"\\\n\s*", "", text)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def check_resumed_rule(root, problems):
    """The rule starts ntc-resumed.service, without waiting for it, on the
    module's resume uevent (kmod/ntc_main.c, ntc_announce_resume) and on
    nothing else."""
    path = os.path.join(root, RESUMED_RULE)
    with open(path) as f:
        rules = rule_lines(f.read())
    want = ['ACTION=="change"', 'SUBSYSTEM=="module"', 'KERNEL=="ntc"', 'ENV{NTC_EVENT}=="resumed"']
    run_keys = [r for r in rules if "RUN" in r]
    if len(run_keys) != 1 or missing(run_keys[0], want):
        problems.append(f"{RESUMED_RULE}: want one rule with RUN, matching {' '.join(want)}; found {rules}")
    else:
        m = re.search(r'RUN\+="(\S+) --no-block start (\S+)"', run_keys[0])
        if not m:
            problems.append(f"{RESUMED_RULE}: its RUN is not 'SYSTEMCTL --no-block start UNIT' "
                            f"(udev waits for RUN programs, and kills them after its timeout): {run_keys[0]}")
        else:
            # This host is Debian 12 (merged /usr), as the guest is.
            if not (os.path.isabs(m.group(1)) and os.access(m.group(1), os.X_OK)):
                problems.append(f"{RESUMED_RULE}: RUN's program {m.group(1)} is not an absolute path to an "
                                "executable on this Debian machine")
            if m.group(2) != RESUMED:
                problems.append(f"{RESUMED_RULE} starts {m.group(2)}, not {RESUMED}")
    r = run("udevadm", "verify", "--help", check=False)
    if r.returncode != 0:
        return "udevadm verify: not in this udev (from systemd 254): skipped"
    r = run("udevadm", "verify", "--resolve-names=never", path, check=False)
    if r.returncode != 0:
        problems.append(f"udevadm verify {RESUMED_RULE}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return "udevadm verify: accepted the rule"


def write_file(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def run_resumed(script, tmp, proc, hooks):
    """The packaged ntc-resumed run with `proc` (text, or None for none) as
    /proc/ntc and `hooks` (name: exit status, or None for no directory) as
    /etc/ntc/resume.d, each hook logging its name and environment.  Returns
    (the run, the hooks' log lines)."""
    case = tempfile.mkdtemp(dir=tmp)
    proc_path, hook_dir, log = (os.path.join(case, n) for n in ("ntc", "resume.d", "hooks.log"))
    if proc is not None:
        write_file(proc_path, proc)
    if hooks is not None:
        os.makedirs(hook_dir)
        # Made in reverse order: the order they run in must be their names'.
        for name, status in reversed(list(hooks.items())):
            write_file(os.path.join(hook_dir, name),
                       '#!/bin/sh\necho "${0##*/} [${NTC_INSTANCE-unset}] [${NTC_CHECKPOINT-unset}]" >>"$HOOK_LOG"\n'
                       f'exit {status}\n', 0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NTC_")}
    env.update(NTC_PROC=proc_path, NTC_RESUME_HOOKS=hook_dir, HOOK_LOG=log)
    r = run(script, env=env, check=False)
    try:
        with open(log) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    return r, lines


def check_resumed_script(root, tmp, problems):
    """ntc-resumed as ntc-resumed.service runs it, with a stand-in /proc/ntc
    and hook directory."""
    script = os.path.join(root, RESUMED_SCRIPT)
    # A checkpoint taken since the resume: sequence 3, resumed from 2.
    resumed = "state: idle\nsequence: 3\nresult: 0\nresumed_from: 2\ninstance: debian-b\n"

    def out(r):
        return f"exit {r.returncode}, stdout:\n{r.stdout}stderr:\n{r.stderr}"

    r, log = run_resumed(script, tmp, resumed, {"10-first": 0, "20-second": 0, "30-skipped.sh": 0})
    if r.returncode != 0 or log != ["10-first [debian-b] [2]", "20-second [debian-b] [2]"]:
        problems.append(f"ntc-resumed with two hooks: hooks ran {log}, want 10-first then 20-second with "
                        f"[debian-b] [2]; {out(r)}")
    if "30-skipped.sh" not in r.stderr:
        problems.append(f"ntc-resumed does not name 30-skipped.sh, which run-parts passes over: {out(r)}")

    r, log = run_resumed(script, tmp, resumed, {"10-first": 0, "15-fails": 3, "20-second": 0})
    if r.returncode == 0 or log != ["10-first [debian-b] [2]", "15-fails [debian-b] [2]", "20-second [debian-b] [2]"]:
        problems.append(f"ntc-resumed with a failing hook: want all three run and a non-zero exit; "
                        f"hooks ran {log}; {out(r)}")
    if not re.search(r"15-fails exited with return code 3", r.stderr):
        problems.append(f"ntc-resumed does not say which hook failed: {out(r)}")

    # No name: ntc.ko writes "instance: " (and a stripped line must do too).
    for line in ("instance: ", "instance:"):
        r, log = run_resumed(script, tmp, resumed.replace("instance: debian-b", line), {"10-first": 0})
        if r.returncode != 0 or log != ["10-first [] [2]"]:
            problems.append(f"ntc-resumed with '{line}': hooks ran {log}, want an empty NTC_INSTANCE; {out(r)}")

    for hooks, what in ((None, "no hook directory"), ({}, "an empty hook directory")):
        r, log = run_resumed(script, tmp, resumed, hooks)
        if r.returncode != 0:
            problems.append(f"ntc-resumed with {what}: {out(r)}")

    r, log = run_resumed(script, tmp, None, {"10-first": 0})
    if r.returncode == 0 or log or "does not exist" not in r.stderr or "modprobe ntc" not in r.stderr:
        problems.append(f"ntc-resumed without /proc/ntc: want a failure saying it is missing, no hook run; "
                        f"hooks ran {log}; {out(r)}")
    r, log = run_resumed(script, tmp, resumed.replace("resumed_from: 2", "resumed_from: 0"), {"10-first": 0})
    if r.returncode == 0 or log or "not been resumed" not in r.stderr:
        problems.append(f"ntc-resumed on a machine never resumed: want a failure saying so, no hook run; "
                        f"hooks ran {log}; {out(r)}")


def check_readme_hooks(readme, problems):
    """README.Debian's two example hooks: valid sh."""
    hooks = re.findall(r"\n( +#!/bin/sh\n(?: +\S.*\n)+)", readme)
    if "After a resume\n---" not in readme or len(hooks) != 2:
        problems.append(f"README.Debian: want a section 'After a resume' with two example hooks; "
                        f"found {len(hooks)} hooks")
    for hook in hooks:
        text = "".join(line.strip() + "\n" for line in hook.splitlines())
        r = run("sh", "-n", "-c", text, check=False)
        if r.returncode != 0:
            problems.append(f"README.Debian's example hook is not valid sh:\n{text}{r.stderr}")


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
    try:
        debs = packages.built_packages()
    except packages.BuildFailed as e:
        raise Failure(str(e))
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
        "usr/share/initramfs-tools/scripts/local-top/ntc-snapshot-disk",
        f"{UNIT_DIR}/{RESUMED}", RESUMED_RULE, RESUMED_SCRIPT, HOOK_DIR])]
    problems += [f"ntc-dkms enables a unit by a symlink: {p}" for p in dkms_files if ".wants/" in p]
    problems += [f"ntc-dkms ships a resume hook, which would run after every resume: {p}"
                 for p in dkms_files if p.startswith(HOOK_DIR) and p != HOOK_DIR]
    if field(dkms_deb, "Architecture") != "all":
        problems.append("ntc-dkms is not Architecture: all")
    if "dkms" not in field(dkms_deb, "Depends"):
        problems.append("ntc-dkms does not depend on dkms")

    tools_files = contents(tools_deb)
    problems += [f"ntc-tools lacks {p}" for p in missing(tools_files, [
        *(f"usr/bin/{t}" for t in HOST_TOOLS),
        *(f"usr/share/man/man1/{t}.1.gz" for t in HOST_TOOLS)])]

    os.makedirs(SCRATCH, exist_ok=True)
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
        snippet = systemd_snippet(postinst)
        calls = postinst_systemd_calls(snippet, tmp)
        acting = [c for c in calls if re.search(r"\b(enable|start|restart)\b", c)]
        if acting:
            problems.append("a fresh install of ntc-dkms enables or starts units: " + "; ".join(acting))
        if not any(TIMER in c for c in calls):
            problems.append(f"the postinst's systemd part never mentions {TIMER}: {calls}")
        # An upgrade re-enables a timer the administrator enabled, but must
        # not run the resume hooks.
        calls = postinst_systemd_calls(snippet, tmp, previous="0.0.1")
        acting = [c for c in calls if "ntc-resumed" in c and re.search(r"\b(enable|start|restart)\b", c)]
        if acting:
            problems.append(f"an upgrade of ntc-dkms enables or starts {RESUMED}: " + "; ".join(acting))
        check_units(root, tmp, problems)
        udevadm_verify = check_resumed_rule(root, problems)
        check_resumed_script(root, tmp, problems)
        with open(os.path.join(root, "usr/share/doc/ntc-dkms/README.Debian")) as f:
            check_readme_hooks(f.read(), problems)

        for tool in HOST_TOOLS:
            r = run(os.path.join(root, "usr/bin", tool), "--help", check=False)
            if r.returncode != 0 or "Usage:" not in r.stdout:
                problems.append(f"packaged {tool} --help: exit {r.returncode}\n{r.stdout}{r.stderr}")
        t_dkms = time.monotonic()
        check_dkms_build(root, version, tmp, problems)
        t_dkms = time.monotonic() - t_dkms

    print("lintian:", *(tags or ["(nothing)"]), sep="\n  ")
    print(udevadm_verify)
    print(f"make deb {t_make:.0f} s (its packages in {debs}), dkms build {t_dkms:.0f} s, "
          f"total {time.monotonic() - t0:.0f} s")
    ntclab.report(problems, "make deb: both packages built, lintian clean of errors, contents as they must be: passed")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)

"""A TCP exchange with a guest, to see what a checkpoint does to a live
connection: an echo client in the nested host VM's network namespace sends
numbered messages to the guest's `ntc-echo` server one at a time and logs
each round trip.  The records show whether the connection survived, whether
a message was lost or reordered, and how long replies stood still.

Run as `echo_exchange.py HOST PORT OUT STOP` it is the client itself: one
line per echoed message to OUT, "i t_sent t_received", until the file STOP
exists, then "END ok" or "END <error>".
"""
import os
import socket
import sys
import time

INTERVAL = 0.02  # between messages, seconds


def client(host, port, out, stop):
    """The echo client: ping-pong of numbered messages, each checked."""
    with open(out, "w", buffering=1) as log:
        try:
            s = socket.create_connection((host, port), timeout=60)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            replies = s.makefile("rb")
            i = 0
            while not os.path.exists(stop):
                i += 1
                msg = f"{i:09d} ntc-journey\n".encode()
                t_sent = time.time()
                s.sendall(msg)
                reply = replies.readline()
                t_received = time.time()
                if reply != msg:
                    raise RuntimeError(f"message {i}: sent {msg!r}, got back {reply!r}")
                log.write(f"{i} {t_sent:.6f} {t_received:.6f}\n")
                time.sleep(INTERVAL)
            s.close()
            log.write("END ok\n")
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
            log.write(f"END {e!r}\n")


def add_tap(host, netns, tap, host_addr):
    """In the host VM: the network namespace (made if missing) with a TAP
    device `tap` holding host_addr/24, the host's side of the guest's link."""
    host.sh(f"modprobe tun && {{ ip netns list | grep -qw {netns} || ip netns add {netns}; }} && "
            f"ip -n {netns} link set lo up && ip -n {netns} tuntap add dev {tap} mode tap && "
            f"ip -n {netns} addr add {host_addr}/24 dev {tap} && ip -n {netns} link set {tap} up")


class Exchange:
    """The echo client running inside the host VM's namespace `netns`,
    talking to guest_addr:port; its files live in the shared directory tmp."""

    def __init__(self, host, netns, tmp, name, guest_addr, port):
        self.host, self.netns, self.guest_addr, self.port = host, netns, guest_addr, port
        self.out = os.path.join(tmp, name + ".exchange")
        self.stop_file = os.path.join(tmp, name + ".stop")
        self.log = os.path.join(tmp, name + ".client.log")

    def start(self):
        h = self.host
        h.sh(f"ip netns exec {self.netns} /usr/bin/python3 {os.path.abspath(__file__)} {self.guest_addr} "
             f"{self.port} {h.inside(self.out)} {h.inside(self.stop_file)} >{h.inside(self.log)} 2>&1 & :")
        return self

    def lines(self):
        try:
            with open(self.out) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def wait_messages(self, n, timeout, vm):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if lines and lines[-1].startswith("END"):
                vm.fail(f"echo client ended early: {lines[-1]}")
            if len(lines) >= n:
                return
            time.sleep(0.5)
        vm.fail(f"echo client exchanged {len(self.lines())} of {n} messages in {timeout}s", hung=True)

    def finish(self, timeout, vm):
        """Stops the client; returns [(i, t_sent, t_received)], checked complete and in order."""
        import ntclab
        open(self.stop_file, "w").close()
        deadline = time.monotonic() + timeout
        while not (self.lines() and self.lines()[-1].startswith("END")):
            if time.monotonic() > deadline:
                vm.fail("echo client did not finish")
            time.sleep(0.5)
        lines = self.lines()
        ntclab.check(lines[-1] == "END ok", f"TCP exchange failed: {lines[-1]}", vm)
        records = [(int(i), float(a), float(b)) for i, a, b in (line.split() for line in lines[:-1])]
        ntclab.check([r[0] for r in records] == list(range(1, len(records) + 1)),
                     "messages lost or reordered", vm)
        return records


def stalls(records):
    """Times without a reply (between successive replies, less the client's
    own pause between messages): (stall, the message after it, its start)."""
    return [(b[2] - a[2] - INTERVAL, b[0], a[2]) for a, b in zip(records, records[1:])]


def freeze_stall(gaps, answered, pause):
    """The stall across the freeze: the last one of at least half the pause
    among the messages answered by the time the checkpoint command returned
    (after the thaw the guest only writes the image out)."""
    big = [g for g in gaps if g[1] <= answered and g[0] >= 0.5 * pause]
    return big[-1] if big else None


if __name__ == "__main__":
    client(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])

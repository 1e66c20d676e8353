#!/usr/bin/env python3
"""Seeds for virtio_pci_fuzz.  Default: bring the block device up with a
ring of 8 at 0x1000/0x2000/0x3000, offer a read, a write and an indirect
flush, notify; with "overlay", the same on an instance's overlay (the
length's top bit).  With "net": bring the network device up (receive ring at
0x1000/0x2000/0x3000, transmit ring at 0x4000/0x5000/0x6000), post a
receive buffer, let a frame arrive, transmit one."""
import struct
import sys

ops = bytearray()
ram = bytearray(0x4000)


def desc(table, i, addr, length, flags, nxt):
    struct.pack_into("<QIHH", ram, table + 16 * i, addr, length, flags, nxt)


if sys.argv[1:] == ["net"]:
    ram = bytearray(0xa000)
    ops += bytes([7]) + struct.pack("<HHHH", 8, 0x1000, 0x2000, 0x3000) + struct.pack("<HHHH", 8, 0x4000, 0x5000, 0x6000)
    ops += bytes([9]) + struct.pack("<H", 60) + bytes(range(60))  # a frame from the wire
    ops += bytes([8, 0, 8, 1])  # notify receive, then transmit
    desc(0x1000, 0, 0x8000, 1526, 2, 0)  # receive buffer
    struct.pack_into("<HHH", ram, 0x2000, 0, 1, 0)
    desc(0x4000, 0, 0x9000, 12 + 60, 0, 0)  # header and frame to send
    struct.pack_into("<HHH", ram, 0x5000, 0, 1, 0)
    sys.stdout.buffer.write(struct.pack("<H", len(ops)) + ops + ram)
    sys.exit(0)

ops += bytes([6]) + struct.pack("<HHHH", 8, 0x1000, 0x2000, 0x3000)
ops += bytes([4])

# read: header 0x3800 (IN, sector 1), data 0x3900 writable, status 0x3b00
struct.pack_into("<IIQ", ram, 0x3800, 0, 0, 1)
desc(0x1000, 0, 0x3800, 16, 1, 1)
desc(0x1000, 1, 0x3900, 512, 3, 2)
desc(0x1000, 2, 0x3b00, 1, 2, 0)
# write through an indirect table at 0x3c00
struct.pack_into("<IIQ", ram, 0x3810, 1, 0, 2)
desc(0x3c00, 0, 0x3810, 16, 1, 1)
desc(0x3c00, 1, 0x3900, 512, 1, 2)
desc(0x3c00, 2, 0x3b01, 1, 2, 0)
desc(0x1000, 3, 0x3c00, 48, 4, 0)
struct.pack_into("<HHHH", ram, 0x2000, 0, 2, 0, 3)
on_overlay = 0x8000 if sys.argv[1:] == ["overlay"] else 0
sys.stdout.buffer.write(struct.pack("<H", len(ops) | on_overlay) + ops + ram)

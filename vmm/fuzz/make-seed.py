#!/usr/bin/env python3
"""A seed for virtio_pci_fuzz: bring the device up with a ring of 8 at
0x1000/0x2000/0x3000, offer a read, a write and an indirect flush, notify."""
import struct
import sys

ops = bytearray()
ops += bytes([6]) + struct.pack("<HHHH", 8, 0x1000, 0x2000, 0x3000)
ops += bytes([4])
ram = bytearray(0x4000)


def desc(table, i, addr, length, flags, nxt):
    struct.pack_into("<QIHH", ram, table + 16 * i, addr, length, flags, nxt)


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
sys.stdout.buffer.write(struct.pack("<H", len(ops)) + ops + ram)

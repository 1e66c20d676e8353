"""Writes a seed for the swap-area fuzzer: an 8-page swap partition holding a
valid 3-page NTC checkpoint (header page, two data pages) and its swap map."""
import struct
import sys
import zlib

PAGE = 4096
pages = [bytearray(PAGE) for _ in range(8)]
image = [3, 4, 5]                       # image pages; the map is page 2
info = bytearray(PAGE)
struct.pack_into("<5Q", info, 0, 0, 0, 0, 0x23456789ABCDEF02, 0)
struct.pack_into("<QI4xQQQ", info, 400, 1000, 0, 2, 3, 3 * PAGE)
pages[3] = info
pages[4] = bytearray(b"\xab" * PAGE)
pages[5] = bytearray(b"\xcd" * PAGE)
struct.pack_into("<3Q", pages[2], 0, *image)
crc = 0
for p in image:
    crc = zlib.crc32(pages[p], crc)

p0 = pages[0]
struct.pack_into("<II", p0, 1024, 1, 7)             # swap version, last_page
rec = bytearray(1024)
rec[0:8] = b"NTC-REC1"
struct.pack_into("<III", rec, 8, 1, 0, 2)           # version, crc (later), state
struct.pack_into("<Q", rec, 64, 1)                  # sequence
struct.pack_into("<Q", rec, 104, 3)                 # image_pages
struct.pack_into("<I", rec, 112, crc)               # image_crc32
struct.pack_into("<I", rec, 12, zlib.crc32(rec))
p0[0:1024] = rec
struct.pack_into("<QI", p0, 4064, 2, 2)             # image = map page, NOCOMPRESS
p0[4076:4086] = b"SWAPSPACE2"
p0[4086:4096] = b"S1SUSPEND\0"
with open(sys.argv[1], "wb") as f:
    for p in pages:
        f.write(p)

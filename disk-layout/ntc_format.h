/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * NTC on-disk format: the one definition shared by ntc.ko (guest kernel) and
 * the host tools (ntc-clone, ntc-info, ntc-vmm).
 *
 * Disk 2's swap partition is the snapshot area.  Its page 0 is a Linux swap
 * header (union swap_header) whose last ten bytes say what the area is:
 *
 *   "SWAPSPACE2"  ordinary swap (also: a resumed NTC area, see below)
 *   NTC_AREA_SIG  NTC snapshot area without a checkpoint; swapon and blkid do
 *                 not recognise it, so the running guest never swaps onto it
 *   "S1SUSPEND"   a hibernation image (stock, or an NTC checkpoint when the
 *                 NTC record below is present and says so)
 *
 * An NTC checkpoint uses the stock kernel's swap image format unchanged
 * (kernel/power/swap.c, 6.1) so that the stock resume= path restores it; its
 * orig_sig is "SWAPSPACE2", so the resuming kernel turns the area into
 * ordinary swap when it takes the image.
 *
 * NTC's own record (struct ntc_record) lives in the first KiB of page 0
 * ("bootbits"), which neither swap nor the resume code uses.
 *
 * All integers are little-endian, x86-64 sizes, every field naturally aligned
 * (so no packing is needed; the asserts below pin the layout).  Plain C: this file is
 * included by kernel code and by C++.
 */
#ifndef NTC_FORMAT_H
#define NTC_FORMAT_H

#include <linux/types.h>
#ifdef __KERNEL__
#include <linux/build_bug.h>
#include <linux/stddef.h>
#define NTC_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#include <stddef.h>
#ifdef __cplusplus
#define NTC_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define NTC_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
#endif

#define NTC_PAGE_SIZE 4096u
#define NTC_SECTOR_SIZE 512u

/* ---- Stock structures (kernel 6.1, x86-64) ------------------------------ */

#define NTC_SWAP_SIG "SWAPSPACE2"		/* mm/swapfile.c, v1 swap */
#define NTC_SWAP_SIG_OLD "SWAP-SPACE"		/* v0 swap, refused by 6.1 */
#define NTC_HIBERNATE_SIG "S1SUSPEND"		/* kernel/power/swap.c */
#define NTC_SIG_LEN 10u

/* union swap_header, "info" view (include/linux/swap.h) */
struct ntc_swap_header_info {
	char bootbits[1024];
	__u32 version;
	__u32 last_page;
	__u32 nr_badpages;
	__u8 sws_uuid[16];
	char sws_volume[16];
	__u32 padding[117];
	__u32 badpages[1];
};

/* struct swsusp_header (kernel/power/swap.c): the end of swap page 0 */
#define NTC_SF_PLATFORM_MODE 1u
#define NTC_SF_NOCOMPRESS_MODE 2u
#define NTC_SF_CRC32_MODE 4u
#define NTC_SF_HW_SIG 8u

struct ntc_swsusp_header {
	char reserved[NTC_PAGE_SIZE - 20 - 8 - 4 - 4 - 4];
	__u32 hw_sig;
	__u32 crc32;
	__u64 image;		/* page offset of the first swap map page */
	__u32 flags;		/* NTC_SF_* */
	char orig_sig[10];
	char sig[10];
};

/* struct swap_map_page: page offsets (in the partition) of image pages */
#define NTC_MAP_PAGE_ENTRIES (NTC_PAGE_SIZE / 8u - 1u)
struct ntc_swap_map_page {
	__u64 entries[NTC_MAP_PAGE_ENTRIES];
	__u64 next_swap;	/* page offset of the next map page, 0 = last */
};

/*
 * First image page: struct swsusp_info (kernel/power/power.h).  x86 has
 * CONFIG_ARCH_HIBERNATION_HEADER, so arch_hibernation_header_save() puts
 * struct restore_data_record where uts and version_code would be: the stock
 * image does not record the kernel release, NTC's record does.
 */
#define NTC_X86_RESTORE_MAGIC 0x23456789ABCDEF02ull
struct ntc_swsusp_info {
	__u64 jump_address;		/* restore_data_record */
	__u64 jump_address_phys;
	__u64 cr3;
	__u64 magic;			/* NTC_X86_RESTORE_MAGIC */
	__u64 e820_checksum;
	__u8 unused[400 - 40];		/* uts + version_code, unset on x86 */
	__u64 num_physpages;
	__u32 cpus;			/* not set by 6.1 */
	__u32 pad;
	__u64 image_pages;		/* data pages (copies of RAM pages) */
	__u64 pages;			/* all pages: 1 header + meta + data */
	__u64 size;			/* pages * PAGE_SIZE */
};

/* ---- NTC snapshot area ----------------------------------------------- */

/*
 * Written by ntc-clone (and by ntc.ko before a new image, to invalidate the
 * old one) in place of "SWAPSPACE2".  Ten bytes, no NUL: nothing that
 * probes for swap or hibernation signatures matches it.
 */
#define NTC_AREA_SIG "NTCAREA001"

#define NTC_RECORD_MAGIC "NTC-REC1"		/* 8 bytes, no NUL */
#define NTC_RECORD_VERSION 1u

/* ntc_record.state */
#define NTC_STATE_EMPTY 0u	/* snapshot area, never held a checkpoint */
#define NTC_STATE_WRITING 1u	/* a checkpoint is being written (not valid) */
#define NTC_STATE_CHECKPOINT 2u	/* complete checkpoint: sig is S1SUSPEND */

/* ntc_record.flags */
#define NTC_RECORD_JOURNAL 1u	/* the redo journal it names is not yet applied */

/*
 * One PCI function on bus 0 of the checkpointed machine, in devfn order.
 * NTC_MAX_DEVICES is more than ntc-vmm has slots for disks and a card.
 */
#define NTC_MAX_DEVICES 24u
struct ntc_machine_device {
	__u8 devfn;			/* slot << 3 | function */
	__u8 pad;			/* zero */
	__u16 vendor;
	__u16 device;
	__u8 mac[6];			/* a network card's permanent MAC, else zero */
};

/*
 * One ext2/3/4 partition of disk 1 at the clone: where it lies and the
 * CRC-32 of its superblock (bytes 1024..2047 of the partition), which every
 * mount that may write and every e2fsprogs tool that writes the filesystem
 * changes (mount count and time, write time, free counts).  If disk 1's and
 * disk 2's superblocks both still match it when ntc.ko starts tracking disk
 * 1, and disk 1 had completed no write before that, the partition is the
 * same on both disks in every block the filesystem uses (ntc-clone copies
 * those), and the first checkpoint copies only what was written since.
 * Blocks outside such partitions are compared as before.
 */
#define NTC_ORIGIN_PARTITIONS 8u
struct ntc_origin_partition {
	__u64 start_sector;		/* 512-byte sectors from the disk's start */
	__u64 sectors;
	__u32 partno;			/* 0: entry unused */
	__u32 superblock_crc32;
};

/*
 * NTC's record in bootbits[0..1023] of swap page 0.  Written whole, with
 * record_crc32 = CRC-32 (IEEE 802.3, as zlib's crc32()) of the 1024 bytes with
 * the record_crc32 field taken as zero.
 */
struct ntc_record {
	char magic[8];			/* NTC_RECORD_MAGIC */
	__u32 version;			/* NTC_RECORD_VERSION */
	__u32 record_crc32;
	__u32 state;			/* NTC_STATE_* */
	__u32 flags;			/* NTC_RECORD_* */

	/* Identity of the source disk, set by ntc-clone. */
	__u8 source_disk_guid[16];	/* GPT disk GUID, zero for MBR */
	__u32 source_mbr_id;		/* MBR disk signature, 0 for GPT */
	__u32 source_partno;		/* partition number of this swap */
	__u64 source_disk_bytes;
	__u64 area_created_unix;	/* when ntc-clone prepared the area */

	/* The checkpoint (valid when state == NTC_STATE_CHECKPOINT). */
	__u64 sequence;			/* 1, 2, ... per module load */
	__u64 time_unix_ns;		/* CLOCK_REALTIME at the snapshot */
	__u64 boot_id_lo;		/* identifies the checkpointing boot */
	__u64 boot_id_hi;
	__u32 pause_us;			/* time user space was frozen */
	__u32 total_ms;			/* whole checkpoint, request to durable */
	__u64 image_pages;		/* pages in the image stream (= swsusp_info.pages) */
	__u32 image_crc32;		/* CRC-32 of all image pages in map order */
	__u32 cpus;			/* CPUs the machine has (present), online or not */
	__u64 ram_bytes;		/* RAM pages the kernel saw, in bytes */
	__u64 disk_blocks_precopy;	/* 4 KiB blocks copied before the freeze */
	__u64 disk_blocks_frozen;	/* 4 KiB blocks copied while frozen */
	__u64 swap_slots_copied;	/* disk 1 swap slots copied */
	char kernel_release[65];	/* utsname()->release */
	char kernel_version[65];	/* utsname()->version */
	char machine[65];		/* utsname()->machine */
	__u8 pad;			/* zero */

	/*
	 * The virtual machine the checkpoint was taken on, which the machine
	 * that resumes it must equal (its devices where the restored drivers
	 * left them).  All zero in a record written before these fields.
	 */
	char acpi_oem_id[6];		/* FADT OEM ID: "NTCVMM" on ntc-vmm */
	char acpi_oem_table_id[8];	/* FADT OEM table ID */
	__u16 device_count;		/* entries used in devices[] */
	__u32 acpi_oem_revision;	/* FADT OEM revision: ntc-vmm's machine model */
	struct ntc_machine_device devices[NTC_MAX_DEVICES];

	/*
	 * The area's change history, for ntc-send: which blocks of disk 2 the
	 * recent checkpoints wrote (struct ntc_history_page).  All zero in a
	 * record written before these fields, and in a new area.
	 */
	__u8 area_id[16];		/* random, given by ntc.ko at the first checkpoint */
	__u64 generation;		/* checkpoints committed on this area: 1, 2, ... */
	__u64 history_since;		/* blocks written after this generation are listed */
	__u64 history_slot;		/* area slot of the first history page, 0 = none */
	__u32 history_pages;		/* pages in the chain */
	__u32 history_crc32;		/* CRC-32 of those pages in chain order */

	/*
	 * Disk 1 as ntc-clone copied it (struct ntc_origin_partition), so that
	 * the first checkpoint onto the clone need not compare the disks.  Set
	 * in a new area only; ntc.ko clears it when it first writes disk 2.
	 * All zero in a record written before these fields.
	 */
	struct ntc_origin_partition origin[NTC_ORIGIN_PARTITIONS];

	/*
	 * The redo journal (struct ntc_journal_page) of a checkpoint that kept
	 * the previous one resumable while it was written: the blocks of disk
	 * 2 that belonged to the previous checkpoint went to free slots of the
	 * area instead, and are copied to their places after the commit.
	 * While flags has NTC_RECORD_JOURNAL, disk 2 is this checkpoint only
	 * once they are: the restored kernel copies them before it thaws.  All
	 * zero in a record written before these fields and without a journal.
	 */
	__u64 journal_slot;		/* area slot of the first journal page */
	__u64 journal_blocks;		/* blocks the journal moves */
	__u32 journal_pages;		/* pages in the chain */
	__u32 journal_crc32;		/* CRC-32 of those pages in chain order */

	/*
	 * The area slots this checkpoint holds (struct ntc_chain_page, its
	 * holdings), so that the next checkpoint knows which ones it may write
	 * without touching this one, even in another boot or module load.
	 * All zero in a record written before these fields, and when it
	 * could not be written (the next checkpoint then writes in place).
	 */
	__u64 holdings_slot;		/* area slot of the first holdings page, 0 = none */
	__u32 holdings_pages;		/* pages in the chain */
	__u32 holdings_crc32;		/* CRC-32 of those pages in chain order */
	__u8 reserved[88];		/* zero */
};

NTC_STATIC_ASSERT(offsetof(struct ntc_swap_header_info, sws_uuid) == 1036,
		  "swap header uuid offset");
NTC_STATIC_ASSERT(sizeof(struct ntc_swsusp_header) == NTC_PAGE_SIZE,
		  "swsusp header is one page");
NTC_STATIC_ASSERT(sizeof(struct ntc_swap_map_page) == NTC_PAGE_SIZE,
		  "swap map page is one page");
NTC_STATIC_ASSERT(sizeof(struct ntc_swsusp_info) == 440,
		  "swsusp_info fields end at 440");
NTC_STATIC_ASSERT(sizeof(struct ntc_machine_device) == 12,
		  "machine device entry is 12 bytes");
NTC_STATIC_ASSERT(offsetof(struct ntc_record, acpi_oem_id) == 348,
		  "machine fields follow the utsname strings");
NTC_STATIC_ASSERT(offsetof(struct ntc_record, devices) == 368,
		  "machine devices are 4-byte aligned");
NTC_STATIC_ASSERT(offsetof(struct ntc_record, area_id) == 656,
		  "history fields follow the machine devices");
NTC_STATIC_ASSERT(sizeof(struct ntc_origin_partition) == 24, "origin partition is 24 bytes");
NTC_STATIC_ASSERT(offsetof(struct ntc_record, origin) == 704,
		  "clone origin follows the history fields");
NTC_STATIC_ASSERT(offsetof(struct ntc_record, journal_slot) == 896,
		  "journal fields follow the clone origin");
NTC_STATIC_ASSERT(offsetof(struct ntc_record, holdings_slot) == 920,
		  "holdings fields follow the journal's");
NTC_STATIC_ASSERT(sizeof(struct ntc_record) == 1024,
		  "NTC record fills bootbits exactly");

/*
 * The change history: a chain of pages in free slots of the area, written by
 * ntc.ko before page 0 and named by the record.  It lists, as extents of 4 KiB
 * blocks of the whole disk 2, every block a checkpoint of a generation after
 * history_since wrote: disk delta, image and map pages, and the previous
 * generation's history pages.  Page 0 and the chain itself are not listed:
 * every checkpoint writes them.  So a copy of disk 2 taken at generation G
 * (history_since <= G < generation) becomes a copy at `generation` by
 * copying page 0, the chain and the listed blocks of generations after G.
 *
 * Extents may overlap and are in no particular order.  A checkpoint that
 * did not commit left its writes unlisted, so the checkpoint after it starts
 * the history afresh: history_since = generation, nothing listed, as in a
 * new area.  So does a snapshot area that does not start at a multiple of
 * 4 KiB on disk 2 (its slots would not be blocks).
 */
#define NTC_HISTORY_MAGIC "NTC-HST1"		/* 8 bytes, no NUL */
#define NTC_HISTORY_GENERATIONS 16u	/* generations kept at most */
#define NTC_HISTORY_MAX_PAGES 1024u	/* beyond, the oldest are dropped */

struct ntc_history_extent {
	__u64 first_block;		/* 4 KiB block of the whole disk 2 */
	__u64 generation;		/* the checkpoint that wrote it */
	__u32 blocks;			/* at least 1 */
	__u32 pad;			/* zero */
};

NTC_STATIC_ASSERT(sizeof(struct ntc_history_extent) == 24, "history extent is 24 bytes");

/*
 * The redo journal: a chain of pages in free slots of the area, written by
 * ntc.ko before page 0 and named by the record (struct ntc_chain_page,
 * its moves).  Each extent says that `blocks` blocks of disk 2 from first_block
 * on are to be overwritten by area slots slot, slot + 1, ...  Extents do not
 * overlap; applying them twice gives the same disk.
 */
#define NTC_JOURNAL_MAGIC "NTC-JRN1"		/* 8 bytes, no NUL */

struct ntc_journal_extent {
	__u64 first_block;		/* 4 KiB block of the whole disk 2: the destination */
	__u64 slot;			/* area slot holding the first block's content */
	__u32 blocks;			/* at least 1 */
	__u32 pad;			/* zero */
};

NTC_STATIC_ASSERT(sizeof(struct ntc_journal_extent) == 24, "journal extent is 24 bytes");

/*
 * The holdings: a chain of pages in free slots of the area, written by
 * ntc.ko before the history and named by the record (struct
 * ntc_chain_page, its holdings).  Its extents are the area slots the
 * checkpoint holds besides page 0, the history's pages (which may be listed
 * too) and its own (which are not): the slots disk 1's swap used at the
 * snapshot (their content is the swapped-out memory the restored kernel
 * reads), the image's data and map pages, and every slot the checkpoint
 * wrote (its journal's too).  Every other slot is free to the next
 * checkpoint while it keeps this one resumable.  Extents are sorted and
 * neither overlap nor touch (runs are merged).  ntc.ko ignores holdings
 * that break any of this, and those of a checkpoint whose history does not
 * check (it could not tell where the history's pages are): the next
 * checkpoint is then written in place.
 */
#define NTC_HOLDINGS_MAGIC "NTC-HLD1"		/* 8 bytes, no NUL */

struct ntc_holding_extent {
	__u64 first_slot;		/* at least 1 */
	__u64 slots;			/* at least 1 */
	__u64 pad;			/* zero */
};

NTC_STATIC_ASSERT(sizeof(struct ntc_holding_extent) == 24, "holding extent is 24 bytes");

/* A page of a chain in free slots of the area: the history's, the journal's or the holdings'. */
#define NTC_CHAIN_PAGE_ENTRIES ((NTC_PAGE_SIZE - 24u) / 24u)
struct ntc_chain_page {
	char magic[8];			/* NTC_HISTORY_MAGIC, NTC_JOURNAL_MAGIC or NTC_HOLDINGS_MAGIC */
	__u64 next_slot;		/* area slot of the next page, 0 = last */
	__u32 count;			/* entries used */
	__u32 pad;			/* zero */
	union {
		struct ntc_history_extent extents[NTC_CHAIN_PAGE_ENTRIES];	/* the history's */
		struct ntc_journal_extent moves[NTC_CHAIN_PAGE_ENTRIES];	/* the journal's */
		struct ntc_holding_extent holdings[NTC_CHAIN_PAGE_ENTRIES];	/* the holdings' */
	};
	__u8 tail[(NTC_PAGE_SIZE - 24u) % 24u];	/* zero */
};

NTC_STATIC_ASSERT(sizeof(struct ntc_chain_page) == NTC_PAGE_SIZE, "chain page is one page");

/* Byte offsets inside swap page 0. */
#define NTC_OFF_RECORD 0u
#define NTC_OFF_SWAP_UUID 1036u
#define NTC_OFF_SWAP_LABEL 1052u
#define NTC_OFF_SIG (NTC_PAGE_SIZE - NTC_SIG_LEN)
#define NTC_OFF_ORIG_SIG (NTC_PAGE_SIZE - 2 * NTC_SIG_LEN)

/* ---- Instance overlay (host only: ntc-vmm, ntc-clone) -------------------- */

/*
 * A copy-on-write overlay of a disk image: one instance's writes over a disk
 * 2 that stays read-only and shared (ntc-vmm resume --overlay).  The file is
 *
 *   [0, 4096)                 struct ntc_overlay_header
 *   [bitmap_offset, +bitmap_bytes)
 *                             one bit per 512-byte sector of the disk (bit i
 *                             of byte n: sector 8n + i), set when the sector
 *                             lives in the overlay; clear: read the base
 *   [data_offset, +disk_bytes) sector s at data_offset + 512 s, a hole until
 *                             written (the file is sparse)
 *
 * Crash safety: the header is written once, when the overlay is made.  A
 * bit is set on disk only after its sector's data is durable (a guest flush
 * syncs the data, then writes the bits of the writes completed before the
 * flush, then syncs again).  Bits only ever go from 0 to 1, so a torn
 * bitmap write leaves each bit either durable data or the base's older
 * sector, as an unflushed write may on a real disk.
 *
 * The base is named by its absolute path, and held to its size and
 * modification time at the overlay's creation: a base written since then
 * (resumed in place, say) no longer matches the sectors the overlay left to
 * it, and is refused.
 *
 * An overlay is also how ntc-vmm resume keeps disk 2 unchanged
 * while the image loads (DISK2.loading), and then writes the overlay's
 * sectors into disk 2.  Before the first of those writes (and before the
 * image is retired) the header is rewritten with NTC_OVERLAY_FLAG_MERGING
 * and synced.  An overlay found with the flag was being written into its
 * base when its writer stopped: the base's new modification time is
 * expected, and the overlay is to be written into it again to the end,
 * never dropped.
 */
#define NTC_OVERLAY_MAGIC "NTC-COW1"		/* 8 bytes, no NUL */
#define NTC_OVERLAY_VERSION 1u
#define NTC_OVERLAY_DATA_ALIGN (1u << 20)
#define NTC_OVERLAY_FLAG_MERGING 1u	/* being written into its base */

struct ntc_overlay_header {
	char magic[8];			/* NTC_OVERLAY_MAGIC */
	__u32 version;			/* NTC_OVERLAY_VERSION */
	__u32 header_crc32;		/* as ntc_record's, over these 4096 bytes */
	__u32 sector_bytes;		/* NTC_SECTOR_SIZE */
	__u32 flags;			/* NTC_OVERLAY_FLAG_*, 0 at creation */
	__u64 disk_bytes;		/* the disk presented = the base's size */
	__u64 bitmap_offset;		/* NTC_PAGE_SIZE */
	__u64 bitmap_bytes;		/* (disk_bytes / 512 + 7) / 8 */
	__u64 data_offset;		/* NTC_OVERLAY_DATA_ALIGN after the bitmap */
	__s64 base_mtime_ns;		/* the base's st_mtime at creation */
	__u64 created_unix;
	char base_path[4096 - 72];	/* absolute, NUL-terminated */
};

NTC_STATIC_ASSERT(sizeof(struct ntc_overlay_header) == NTC_PAGE_SIZE,
		  "overlay header is one page");

/* ---- Checkpoint stream (host only: ntc-send -> ntc-receive) ------------- */

/*
 * What ntc-send writes and ntc-receive applies: the blocks of disk 2 that
 * make a copy at from_generation (or, with NTC_STREAM_FULL, an empty file)
 * into disk 2 at to_generation.
 *
 *   struct ntc_stream_header
 *   chunks: struct ntc_stream_chunk, then blocks * 4096 bytes of data (the
 *           disk's last block padded with zeros if the disk ends inside it)
 *   struct ntc_stream_chunk with blocks == 0: the end of the chunks
 *   struct ntc_stream_end
 *
 * The snapshot area's page 0 comes in the last chunk, alone.  Each chunk's
 * data has its CRC-32; the end's CRC-32 covers every chunk header and the
 * data in order, so that a truncated, reordered or damaged stream is
 * refused whole.  A stream whose disk changed while it was read (a new
 * checkpoint began) has no end: ntc-send stops without writing one.
 */
#define NTC_STREAM_MAGIC "NTC-STR1"		/* 8 bytes, no NUL */
#define NTC_STREAM_END_MAGIC "NTC-END1"
#define NTC_STREAM_VERSION 1u
#define NTC_STREAM_FULL 1u		/* every block; the rest of the disk is zero */
#define NTC_STREAM_MAX_CHUNK_BLOCKS 256u

struct ntc_stream_header {
	char magic[8];			/* NTC_STREAM_MAGIC */
	__u32 version;			/* NTC_STREAM_VERSION */
	__u32 header_crc32;		/* of these 128 bytes with this field zero */
	__u8 area_id[16];		/* the record's */
	__u64 disk_bytes;		/* disk 2's size */
	__u64 area_offset;		/* byte offset of the snapshot area in disk 2 */
	__u64 from_generation;		/* 0 with NTC_STREAM_FULL */
	__u64 to_generation;
	__u64 time_unix_ns;		/* the checkpoint's, from the record */
	__u64 blocks;			/* data blocks in the chunks */
	__u64 created_unix;		/* when ntc-send wrote it */
	__u32 flags;			/* NTC_STREAM_* */
	__u32 pad;			/* zero */
	__u8 reserved[32];		/* zero */
};

struct ntc_stream_chunk {
	__u64 first_block;		/* 4 KiB block of the whole disk */
	__u32 blocks;			/* 1..NTC_STREAM_MAX_CHUNK_BLOCKS, 0 = end */
	__u32 data_crc32;		/* of the data that follows */
};

struct ntc_stream_end {
	char magic[8];			/* NTC_STREAM_END_MAGIC */
	__u64 chunks;
	__u64 blocks;			/* = the header's */
	__u32 stream_crc32;		/* every chunk header (the terminating one
					 * too) and all data, in order */
	__u32 end_crc32;		/* of these 32 bytes with this field zero */
};

NTC_STATIC_ASSERT(sizeof(struct ntc_stream_header) == 128, "stream header is 128 bytes");
NTC_STATIC_ASSERT(sizeof(struct ntc_stream_chunk) == 16, "stream chunk header is 16 bytes");
NTC_STATIC_ASSERT(sizeof(struct ntc_stream_end) == 32, "stream end is 32 bytes");

/* ---- Instance record (ntc-vmm -> the guest's ntc.ko) ------------------- */

/*
 * Not on disk: what ntc-vmm tells the machine about itself, in reserved
 * memory that the DSDT's \NTCI names (a package of address and size),
 * rewritten at every boot and resume, so that a resumed kernel learns what
 * it runs as now.  ntc.ko reports the name and gives each network card the
 * MAC listed for its PCI function (an instance of a checkpoint has a MAC of
 * its own; the restored driver still holds the checkpointed one).
 */
#define NTC_INSTANCE_NAME_BYTES 64u
#define NTC_INSTANCE_MAX_CARDS 4u
struct ntc_instance_card {
	__u8 devfn;			/* on bus 0 */
	__u8 mac[6];
	__u8 pad;			/* zero */
};

struct ntc_instance_record {
	char name[NTC_INSTANCE_NAME_BYTES];	/* --name, NUL-terminated */
	__u32 card_count;		/* entries used in cards[] */
	__u32 pad;			/* zero */
	struct ntc_instance_card cards[NTC_INSTANCE_MAX_CARDS];
};

NTC_STATIC_ASSERT(sizeof(struct ntc_instance_record) == 104,
		  "instance record is 104 bytes");

#endif /* NTC_FORMAT_H */

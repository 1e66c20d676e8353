/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ntc.ko internals shared by its files.
 *
 * ntc_syms.c    non-exported kernel functions, looked up once at load
 * ntc_disk.c    disk 1 / disk 2: finding the target, tracking writes to
 *               disk 1, copying blocks, synchronous and batched bio I/O
 * ntc_image.c   writing the snapshot in the stock swap image format
 * ntc_reuse.c   the incremental image: pages the previous image holds
 * ntc_holdings.c  the slots a checkpoint holds, recorded with it
 * ntc_history.c  the area's change history: what each checkpoint wrote
 * ntc_journal.c  the redo journal: the previous checkpoint kept until the commit
 * ntc_chain.c   chains of pages in the area (the history's, the journal's, the holdings')
 * ntc_copypages.c  the snapshot's copy pages, allocated before the freeze
 * ntc_cpus.c    the non-boot CPUs, away from before the freeze to after the thaw
 * ntc_checkpoint.c  the checkpoint sequence (freeze, snapshot, thaw, write)
 * ntc_main.c    /proc/ntc, module parameters, load and unload
 */
#ifndef NTC_H
#define NTC_H

#include <linux/types.h>
#include <linux/stddef.h>
#include <linux/blkdev.h>
#include <linux/mutex.h>
#include <linux/time64.h>
#include <linux/xarray.h>
#include "ntc_format.h"

#define NTC_BLK_SHIFT 12		/* tracking and copy unit: 4 KiB */
#define NTC_SECT_PER_BLK 8
#define NTC_COPY_CHUNK_PAGES 256	/* 1 MiB bios */

/* ---- kernel/power and mm internals (ntc_syms.c) ------------------------ */

#define NTC_PAGES_FOR_IO 1024	/* kernel/power/power.h: PAGES_FOR_IO */

/* kernel/power/power.h, 6.1: not in the headers package */
struct ntc_snapshot_handle {
	unsigned int cur;
	void *buffer;
	int sync_read;
};

struct ntc_kfuncs {
	int (*freeze_processes)(void);
	void (*thaw_processes)(void);
	int (*create_basic_memory_bitmaps)(void);
	void (*free_basic_memory_bitmaps)(void);
	int (*hibernation_snapshot)(int platform_mode);
	void (*swsusp_free)(void);
	void (*pm_restore_gfp_mask)(void);
	unsigned long (*snapshot_get_image_size)(void);
	int (*snapshot_read_next)(struct ntc_snapshot_handle *handle);
	int (*pm_notifier_call_chain_robust)(unsigned long val_up, unsigned long val_down);
	int (*pm_notifier_call_chain)(unsigned long val);
	bool (*hibernate_acquire)(void);
	void (*hibernate_release)(void);
	void (*lock_device_hotplug)(void);
	void (*unlock_device_hotplug)(void);
	int *in_suspend;
	struct swap_info_struct **swap_info;	/* swap_info[MAX_SWAPFILES] */
	unsigned int *nr_swapfiles;
	spinlock_t *swap_lock;			/* guards swap_info[] */
	struct class *block_class;
	u32 *swsusp_hardware_signature;		/* optional */
	unsigned long (*shrink_all_memory)(unsigned long nr_to_reclaim);
	unsigned long *image_size;		/* /sys/power/image_size */
	unsigned long *reserved_size;		/* /sys/power/reserved_size */
	void (*read_persistent_clock64)(struct timespec64 *ts);
	int *persistent_clock_is_local;
	/* kernel/power/snapshot.c's own, for ntc_copypages.c; optional */
	int (*hibernate_preallocate_memory)(void);
	int (*memory_bm_create)(void *bm, gfp_t gfp_mask, int safe_needed);
	void (*memory_bm_set_bit)(void *bm, unsigned long pfn);
	unsigned int (*snapshot_additional_pages)(struct zone *zone);
	void (*swsusp_set_page_free)(struct page *page);
	void *copy_bm;				/* struct memory_bitmap */
	void *orig_bm;
	unsigned int *alloc_normal;
	void **forbidden_pages_map;
	unsigned long *totalreserve_pages;
	/* drivers/base/core.c, for ntc_cpus.c; optional */
	int (*device_offline)(struct device *dev);
	int (*device_online)(struct device *dev);
};

extern struct ntc_kfuncs ntc_k;
int ntc_syms_init(void);

/* ---- the snapshot's copy pages (ntc_copypages.c) ------------------------ */

void ntc_copy_pages_init(void);
void ntc_copy_pages_exit(void);
void ntc_copy_pages_reserve(void);
void ntc_copy_pages_disarm(void);

/* ---- the non-boot CPUs (ntc_cpus.c) -------------------------------------- */

void ntc_cpus_take_down(void);
void ntc_cpus_bring_up(void);

/* ---- disks (ntc_disk.c) ------------------------------------------------- */

struct ntc_journal;

struct ntc_target {
	struct block_device *src;	/* disk 1, whole disk, read only */
	struct block_device *dst;	/* disk 2, whole disk, exclusive */
	struct block_device *area;	/* disk 2's snapshot area partition, open */
	sector_t area_start;		/* in 512-byte sectors, on disk 2 */
	unsigned long area_pages;	/* 4 KiB pages in the area */
	int area_partno;
	sector_t src_swap_start;	/* disk 1's partition with that number */
	struct swap_info_struct *src_swap;	/* its active swap, held, or NULL */
	void *page0;			/* area page 0 as on disk */
	struct page **buf;		/* NTC_COPY_CHUNK_PAGES x 2 */
	unsigned long *written;		/* one bit per 4 KiB block of disk 2 written */
	unsigned long dst_blocks;
	struct ntc_journal *journal;	/* set: the previous checkpoint is kept */
	/* a fresh clone's record: disk 1 as ntc-clone copied it; else zero */
	struct ntc_origin_partition origin[NTC_ORIGIN_PARTITIONS];
};

extern struct gendisk *ntc_src_disk;
extern char *ntc_target_param;

int ntc_track_start(struct gendisk *disk);
void ntc_track_stop(void);
void ntc_track_mark(unsigned long block);
void ntc_track_compare_all(const char *why);
int ntc_target_open(struct ntc_target *t);
void ntc_target_close(struct ntc_target *t);
int ntc_target_borrow_swap(struct ntc_target *t, char *dev, size_t len);
void ntc_give_back_swap(char *dev);
int ntc_io_page(struct block_device *bdev, sector_t sector, void *buf,
		blk_opf_t opf);
int ntc_io_pages(struct block_device *bdev, sector_t sector, struct page **pages, unsigned int n,
		 blk_opf_t opf);
int ntc_flush(struct block_device *bdev);
long ntc_copy_delta(struct ntc_target *t, bool frozen, unsigned long *swap_slots);
unsigned long ntc_dirty_count(void);
bool ntc_swap_slot_used(struct swap_info_struct *si, unsigned long off);
void ntc_mark_written(struct ntc_target *t, sector_t sector, unsigned int sectors);

/* Where area slot slot lies on disk 2. */
static inline sector_t ntc_slot_sector(const struct ntc_target *t, unsigned long slot)
{
	return t->area_start + ((sector_t)slot << 3);
}

/* Batched asynchronous writes of scattered pages to consecutive sectors. */
struct ntc_batch {
	atomic_t pending;
	wait_queue_head_t wait;
	int error;
	struct bio *bio;		/* being filled */
	sector_t next;			/* sector the next page must land on */
	struct block_device *bdev;
};

void ntc_batch_init(struct ntc_batch *b, struct block_device *bdev);
int ntc_batch_add(struct ntc_batch *b, struct page *page, sector_t sector);
int ntc_batch_wait(struct ntc_batch *b);

/* ---- record and image (ntc_image.c) ------------------------------------ */

u32 ntc_record_crc(const struct ntc_record *rec);
bool ntc_record_sealed(const struct ntc_record *rec);
bool ntc_area_committed(const struct ntc_target *t);
void ntc_record_seal(struct ntc_record *rec);
int ntc_area_invalidate(struct ntc_target *t);
int ntc_area_rewrite_record(struct ntc_target *t, struct ntc_record *rec);
int ntc_write_page0(struct block_device *bdev, sector_t area_start, void *page0);
void ntc_record_clear_journal(struct ntc_record *rec);
struct ntc_image_stats {
	unsigned long pages;		/* image stream pages */
	u64 first_map;		/* page offset of the first swap map page */
	unsigned long last_slot;	/* the highest slot the image took */
	unsigned long reused;		/* data pages left in the previous image's slots */
	u32 crc32;
	u64 write_us;
	u64 plan_us;		/* of it, hashing every page to find the unchanged ones */
};

/* ---- incremental image (ntc_reuse.c) ------------------------------------ */

/* One data page of an image. */
struct ntc_page_ref {
	unsigned long pfn;
	u64 slot;			/* area slot holding it, 0 = not yet */
	u64 hash[2];			/* keyed SipHash-2-4-128 of its content */
	u32 crc;			/* crc32_le(0, content): the image CRC of a page left in place */
};

struct ntc_image_plan {
	struct ntc_page_ref *refs;	/* the data pages, in stream order */
	unsigned long count;
	unsigned long reused;		/* pages left in the previous image's slots */
	unsigned long *slots;		/* area slots the pages written may take */
};

int ntc_image_plan(struct ntc_image_plan *plan, const struct ntc_target *t, const unsigned long *free_map,
		   const unsigned long *avail, unsigned long pages, unsigned long nmap);
void ntc_image_plan_free(struct ntc_image_plan *plan);
void ntc_reuse_check(const struct ntc_target *t);
const unsigned long *ntc_reuse_spare(const struct ntc_target *t);
void ntc_reuse_commit(struct ntc_image_plan *plan, const struct ntc_record *rec, const struct ntc_target *t,
		      const unsigned long *free_map, const u64 *history_slots, unsigned long nhistory);
void ntc_reuse_forget(void);
int ntc_reuse_selftest(void);
void ntc_reuse_unheld(unsigned long *spare, const struct ntc_target *t, const unsigned long *free_map,
		      const struct ntc_image_plan *plan);

/* ---- what a checkpoint holds in the area (ntc_holdings.c) ---------------- */

int ntc_holdings_write(struct ntc_target *t, const unsigned long *free_map, const struct ntc_image_plan *plan,
		       const unsigned long *map, unsigned long *last, struct ntc_record *rec);
unsigned long *ntc_holdings_spare(const struct ntc_target *t);

int ntc_image_init(void);
int ntc_image_write(struct ntc_target *t, const unsigned long *free_map, const unsigned long *avail,
		    struct ntc_image_plan *plan, struct ntc_image_stats *st);
int ntc_area_commit(struct ntc_target *t, struct ntc_record *rec, u64 first_map);

/* ---- chains of pages in the area (ntc_chain.c) --------------------------- */

#define NTC_CHAIN_ENTRY_BYTES 24

struct ntc_chain_writer {
	struct block_device *bdev;
	sector_t area_start;
	const char *magic;
	void *page;			/* being filled */
	u64 *slots;			/* the chain's pages, reserved */
	unsigned long npages, index;
	u32 crc;
	int err;
};

int ntc_chain_writer_start(struct ntc_chain_writer *w, struct block_device *bdev, sector_t area_start,
			   const char *magic, const unsigned long *map, unsigned long map_bits,
			   unsigned long after, unsigned long entries);
void ntc_chain_add(struct ntc_chain_writer *w, const void *entry);
int ntc_chain_writer_finish(struct ntc_chain_writer *w);
void ntc_chain_writer_free(struct ntc_chain_writer *w);

struct ntc_chain {
	void *entries;			/* count entries of NTC_CHAIN_ENTRY_BYTES */
	unsigned long count;
	u64 *page_slots;		/* the chain's own pages */
	u32 pages;
};

bool ntc_chain_read(struct ntc_chain *c, struct block_device *bdev, sector_t area_start,
		    unsigned long area_pages, const char *magic, u64 first, u32 pages, u32 crc);
void ntc_chain_free(struct ntc_chain *c);

/* ---- change history (ntc_history.c) ------------------------------------- */

struct ntc_history {
	u8 area_id[16];
	u64 generation;			/* of the checkpoint being taken */
	u64 since;			/* the history read continues from here */
	struct ntc_history_extent *ext;	/* what it lists, and its own pages */
	unsigned long count;
	struct ntc_chain_writer chain;	/* the new history's pages */
};

int ntc_history_load(struct ntc_history *h, struct ntc_target *t);
int ntc_history_write(struct ntc_history *h, struct ntc_target *t, const unsigned long *map,
		      unsigned long last_slot, struct ntc_record *rec);
void ntc_history_free(struct ntc_history *h);

/* ---- redo journal (ntc_journal.c) ---------------------------------------- */

struct ntc_journal {
	unsigned long *spare;		/* area slots the previous checkpoint does not use */
	unsigned long *avail;		/* of them, not yet taken by this one */
	unsigned long cursor;		/* where take_slot() looks next */
	struct xarray by_dest;		/* disk 2 block -> area slot holding its content */
	struct xarray by_slot;		/* the reverse */
	unsigned long blocks;		/* in the journal */
	struct ntc_journal_extent *ext;	/* the index, built at the commit */
	unsigned long count;
	struct ntc_chain_writer chain;	/* the index's pages */
	void *scratch;			/* a page for moving a journal block */
};

int ntc_journal_begin(struct ntc_journal *j, struct ntc_target *t);
void ntc_journal_end(struct ntc_journal *j);
int ntc_journal_put(struct ntc_target *t, unsigned long block, struct page **pages, unsigned int n);
int ntc_journal_give_up(struct ntc_target *t);
void ntc_journal_cancel(struct ntc_journal *j);
int ntc_journal_write_index(struct ntc_journal *j, struct ntc_target *t, const unsigned long *map,
			    unsigned long *last, struct ntc_record *rec);
int ntc_journal_apply(struct ntc_journal *j, struct ntc_target *t, struct ntc_record *rec);
long ntc_journal_finish_restored(const struct ntc_target *t, const struct ntc_history *h);

/* ---- checkpoint (ntc_checkpoint.c) --------------------------------------- */

enum ntc_state { NTC_IDLE, NTC_RUNNING, NTC_RESUMED };

/* How a checkpoint brought disk 2 up to date with disk 1. */
enum ntc_disk_copy {
	NTC_COPY_DELTA,		/* the writes since the last checkpoint onto it */
	NTC_COPY_SINCE_CLONE,	/* onto a fresh clone: the writes since boot, the rest compared */
	NTC_COPY_FULL_COMPARE,	/* every block compared */
};

struct ntc_status {
	enum ntc_state state;
	char target[64];
	u64 sequence;
	u64 time_unix_ns;
	int result;
	u64 image_pages;
	u64 image_pages_reused;	/* of them, left in the previous image's slots */
	u64 pause_us;
	u64 thawed_boottime_ns;	/* when the pause ended, on /proc/uptime's clock */
	u64 total_ms;
	u64 write_ms;
	u64 image_hash_ms;	/* of write_ms, the walk that hashes every image page */
	u64 precopy_blocks;
	u64 precopy_rounds;
	u64 frozen_blocks;
	u64 swap_slots;
	u64 snapshot_us;	/* inside hibernation_snapshot() */
	u64 shrink_us;		/* reclaim before the freeze */
	u64 shrunk_pages;
	u64 frozen_reclaimed_pages;	/* reclaim while user space was frozen */
	u64 copy_pages_early;	/* the snapshot's copy pages allocated before the freeze */
	u64 copy_pages_frozen;	/* and inside it, by ntc_copypages.c's hook */
	u32 cpus_taken_early;	/* non-boot CPUs taken down before the freeze, 0: by the hibernation core */
	u64 cpus_back_ms;	/* bringing them back after the thaw */
	u32 core_free_deferred;	/* the core's swsusp_free() left to the ladder, in a restored kernel */
	u64 snapshot_free_ms;	/* the ladder's swsusp_free() */
	s64 clock_offset_ns;	/* persistent clock - system clock, at the snapshot */
	s64 clock_lost_us;	/* how far the system clock fell behind the TSC across the snapshot */
	u64 generation;		/* the area's checkpoint count, this one included */
	u64 history_since;	/* a copy from this generation on can be sent the change */
	u64 blocks_written;	/* 4 KiB blocks of disk 2 written, page 0 and history aside */
	enum ntc_disk_copy disk_copy;
	char disk_copy_note[160];	/* what was proven, or why everything was compared */
	u64 disk_blocks_read;	/* 4 KiB blocks read from disk 1 and disk 2 to copy */
	u64 disk_copy_us;	/* in the copy passes, before the freeze and inside it */
	bool kept_previous;	/* the previous checkpoint stayed resumable until the commit */
	u64 journal_blocks;	/* blocks of disk 2 that went through the journal */
	u64 journal_moves;	/* journal blocks moved because disk 1's swap took their slot */
	bool swap_borrowed;	/* disk 1 had no swap: its swap partition was made swap for this one */
	/* From here on, kept across checkpoints (not cleared by a new one). */
	u64 resumed_from;	/* sequence resumed from, 0 = none */
	u64 resumed_time_ns;
	s64 resumed_clock_step_ns;	/* how far the resume set the clock forward */
	s64 resumed_journal_blocks;	/* journal blocks the resume put in place, or -errno */
	char instance[64];	/* the machine's instance name (ntc_machine.c) */
};

extern struct ntc_status ntc_status;
extern struct mutex ntc_lock;
extern u64 ntc_boot_id[2];
int ntc_checkpoint(void);
unsigned long ntc_pages_in_use(void);
void ntc_test_point(const char *name);
void ntc_machine_describe(struct ntc_record *rec);
void ntc_machine_instance(char *name, size_t size);
void ntc_machine_adopt_macs(void);
void ntc_announce_resume(void);

#endif

// SPDX-License-Identifier: GPL-2.0
/*
 * Disk 1 and disk 2.
 *
 * The restored kernel's page cache, inode cache and journal position describe
 * disk 1 at the snapshot instant, so disk 2 must hold exactly those blocks.
 * We therefore track every write that completes on disk 1 from module load
 * on (tracepoint block_rq_complete: a block marked at completion cannot be
 * lost to a copy that read it while the write was still in flight, since the
 * mark comes after the data is on the device), and copy the marked blocks to
 * the same sectors on disk 2: before the freeze repeatedly (pre-copy), and a
 * last time while user space and freezable kernel threads are still frozen
 * after the snapshot.  Until something has been tracked into an existing
 * disk 2 (first checkpoint, or a new target) everything is compared, except
 * on a fresh clone: what ntc-clone recorded of disk 1 may prove a partition
 * the same on both disks before tracking began (see since_clone()).
 *
 * Disk 1's swap partition is special: its page 0 must not be copied (disk 2
 * has its own header there), only slots in use at the snapshot are copied;
 * the free ones receive the image.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/blk-mq.h>
#include <linux/swap.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/tracepoint.h>
#include <linux/device.h>
#include <linux/string.h>
#include <linux/part_stat.h>
#include <linux/crc32.h>
#include <linux/ktime.h>
#include <linux/umh.h>
#include "ntc.h"

struct gendisk *ntc_src_disk;
static unsigned long *dirty;		/* one bit per 4 KiB block of disk 1 */
static unsigned long nr_blocks;
static struct tracepoint *tp_complete;
static dev_t last_target;		/* the area tracked into, 0 = none yet */
static const char *compare_all_why;	/* set: the next checkpoint compares everything */

/*
 * Disk 1 as tracking found it, if it had completed no write before: its
 * ext partitions' superblocks (struct ntc_origin_partition).  Otherwise
 * untracked_why says why the first checkpoint cannot use a clone's record.
 */
static struct ntc_origin_partition at_load[NTC_ORIGIN_PARTITIONS];
static const char *untracked_why;

/* ---- write tracking ---------------------------------------------------- */

static void ntc_rq_complete(void *data, struct request *rq, blk_status_t error,
			    unsigned int nr_bytes)
{
	sector_t pos;
	unsigned long b, e;

	if (!rq->q || rq->q->disk != ntc_src_disk || !nr_bytes)
		return;
	switch (req_op(rq)) {
	case REQ_OP_WRITE:
	case REQ_OP_WRITE_ZEROES:
	case REQ_OP_DISCARD:
	case REQ_OP_SECURE_ERASE:
		break;
	default:
		return;
	}
	pos = blk_rq_pos(rq);
	b = pos >> 3;
	e = (pos + (nr_bytes >> 9) + NTC_SECT_PER_BLK - 1) >> 3;
	for (; b < e && b < nr_blocks; b++)
		set_bit(b, dirty);
}

static void find_tp(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "block_rq_complete"))
		tp_complete = tp;
}

static unsigned long disk_writes(struct gendisk *disk)
{
	return part_stat_read(disk->part0, ios[STAT_WRITE]) +
	       part_stat_read(disk->part0, ios[STAT_DISCARD]);
}

/*
 * CRC-32 (as zlib's) of the ext2/3/4 superblock of the partition starting
 * at start, as ntc-clone computes it; false if there is none.
 */
static bool ext_superblock_crc(struct block_device *bdev, sector_t start, void *page, u32 *crc)
{
	const u8 *sb = (const u8 *)page + 1024;

	if (ntc_io_page(bdev, start, page, REQ_OP_READ) || sb[56] != 0x53 || sb[57] != 0xef)
		return false;
	*crc = ~crc32_le(~0U, sb, 1024);
	return true;
}

/* Called with the probe registered: from here on every write is seen. */
static void note_disk_at_load(struct gendisk *disk)
{
	struct block_device *whole, *part;
	unsigned long idx;
	unsigned int n = 0;
	void *page;

	memset(at_load, 0, sizeof(at_load));
	if (!blk_queue_io_stat(disk->queue)) {
		untracked_why = "disk 1's I/O statistics are off (queue/iostats), so its writes before ntc.ko was loaded are unknown";
		return;
	}
	untracked_why = "disk 1 had been written before ntc.ko was loaded (load it from the initramfs, before the root is mounted)";
	if (disk_writes(disk))
		return;
	/* A write that completed as the probe went in is counted once the queue drains. */
	blk_mq_freeze_queue(disk->queue);
	blk_mq_unfreeze_queue(disk->queue);
	if (disk_writes(disk))
		return;
	untracked_why = "disk 1's superblocks could not be read when ntc.ko was loaded";
	page = (void *)__get_free_page(GFP_KERNEL);
	if (!page)
		return;
	whole = blkdev_get_by_dev(disk_devt(disk), FMODE_READ, NULL);
	if (!IS_ERR(whole)) {
		xa_for_each(&disk->part_tbl, idx, part) {
			struct ntc_origin_partition *o = &at_load[n];

			if (!part->bd_partno || n == NTC_ORIGIN_PARTITIONS ||
			    !ext_superblock_crc(whole, part->bd_start_sect, page, &o->superblock_crc32))
				continue;
			o->partno = part->bd_partno;
			o->start_sector = part->bd_start_sect;
			o->sectors = bdev_nr_sectors(part);
			n++;
		}
		blkdev_put(whole, FMODE_READ);
		untracked_why = NULL;
	}
	free_page((unsigned long)page);
}

/*
 * Starts tracking the writes to disk.  On success ntc_src_disk holds a
 * reference of its own to disk, which ntc_track_stop() drops; the caller
 * keeps (and puts) its own reference either way.
 */
int ntc_track_start(struct gendisk *disk)
{
	int err;

	nr_blocks = (get_capacity(disk) + NTC_SECT_PER_BLK - 1) >> 3;
	dirty = vzalloc(BITS_TO_LONGS(nr_blocks) * sizeof(long));
	if (!dirty)
		return -ENOMEM;
	for_each_kernel_tracepoint(find_tp, NULL);
	if (!tp_complete) {
		pr_err("tracepoint block_rq_complete not found\n");
		err = -ENOENT;
		goto err_free;
	}
	/* the probe compares against ntc_src_disk, so set it first */
	get_device(disk_to_dev(disk));
	ntc_src_disk = disk;
	err = tracepoint_probe_register(tp_complete, ntc_rq_complete, NULL);
	if (err)
		goto err_put;
	note_disk_at_load(disk);
	return 0;

err_put:
	ntc_src_disk = NULL;
	put_disk(disk);
err_free:
	vfree(dirty);
	dirty = NULL;
	return err;
}

/* Undoes a successful ntc_track_start(), including its disk reference. */
void ntc_track_stop(void)
{
	tracepoint_probe_unregister(tp_complete, ntc_rq_complete, NULL);
	tracepoint_synchronize_unregister();
	vfree(dirty);
	dirty = NULL;
	put_disk(ntc_src_disk);
	ntc_src_disk = NULL;
}

/* The next checkpoint compares every block, for this reason. */
void ntc_track_compare_all(const char *why)
{
	compare_all_why = why;
}

/* Block is to be copied again. */
void ntc_track_mark(unsigned long block)
{
	if (block < nr_blocks)
		set_bit(block, dirty);
}

unsigned long ntc_dirty_count(void)
{
	return bitmap_weight(dirty, nr_blocks);
}

bool ntc_swap_slot_used(struct swap_info_struct *si, unsigned long off)
{
	unsigned char c;

	if (!si || off >= si->max)
		return false;
	c = READ_ONCE(si->swap_map[off]);
	return c && c != SWAP_MAP_BAD;
}

/* Every block of disk 2 a checkpoint writes goes into its change history. */
void ntc_mark_written(struct ntc_target *t, sector_t sector, unsigned int sectors)
{
	unsigned long b = sector >> 3;
	unsigned long e = min_t(unsigned long, (sector + sectors + NTC_SECT_PER_BLK - 1) >> 3,
				t->dst_blocks);

	if (b < e)
		bitmap_set(t->written, b, e - b);
}

/* ---- bio helpers ---------------------------------------------------------- */

int ntc_io_pages(struct block_device *bdev, sector_t sector, struct page **pages, unsigned int n,
		 blk_opf_t opf)
{
	struct bio *bio = bio_alloc(bdev, n, opf, GFP_NOIO);
	unsigned int i;
	int err;

	bio->bi_iter.bi_sector = sector;
	for (i = 0; i < n; i++)
		__bio_add_page(bio, pages[i], PAGE_SIZE, 0);
	err = submit_bio_wait(bio);
	bio_put(bio);
	return err;
}

int ntc_io_page(struct block_device *bdev, sector_t sector, void *buf,
		blk_opf_t opf)
{
	struct page *p = virt_to_page(buf);

	return ntc_io_pages(bdev, sector, &p, 1, opf);
}

int ntc_flush(struct block_device *bdev)
{
	return blkdev_issue_flush(bdev);
}

static void ntc_batch_end_io(struct bio *bio)
{
	struct ntc_batch *b = bio->bi_private;

	if (bio->bi_status)
		b->error = blk_status_to_errno(bio->bi_status);
	bio_put(bio);
	if (atomic_dec_and_test(&b->pending))
		wake_up(&b->wait);
}

void ntc_batch_init(struct ntc_batch *b, struct block_device *bdev)
{
	atomic_set(&b->pending, 1);
	init_waitqueue_head(&b->wait);
	b->error = 0;
	b->bio = NULL;
	b->bdev = bdev;
}

static void ntc_batch_submit(struct ntc_batch *b)
{
	if (!b->bio)
		return;
	atomic_inc(&b->pending);
	submit_bio(b->bio);
	b->bio = NULL;
}

int ntc_batch_add(struct ntc_batch *b, struct page *page, sector_t sector)
{
	if (b->bio && (sector != b->next ||
		       bio_add_page(b->bio, page, PAGE_SIZE, 0) != PAGE_SIZE))
		ntc_batch_submit(b);
	else if (b->bio)
		goto added;
	b->bio = bio_alloc(b->bdev, BIO_MAX_VECS, REQ_OP_WRITE, GFP_NOIO);
	b->bio->bi_iter.bi_sector = sector;
	b->bio->bi_private = b;
	b->bio->bi_end_io = ntc_batch_end_io;
	__bio_add_page(b->bio, page, PAGE_SIZE, 0);
added:
	b->next = sector + NTC_SECT_PER_BLK;
	return b->error;
}

int ntc_batch_wait(struct ntc_batch *b)
{
	ntc_batch_submit(b);
	if (!atomic_dec_and_test(&b->pending))
		wait_event(b->wait, atomic_read(&b->pending) == 0);
	return b->error;
}

/* ---- copying disk 1 to disk 2 ------------------------------------------- */

/*
 * Writes n blocks of disk 2 at sector s from pages: through the journal
 * while the previous checkpoint is kept (until it runs out of room), else
 * in place.
 */
static int write_blocks(struct ntc_target *t, sector_t s, struct page **pages, unsigned int n)
{
	if (t->journal) {
		int err = ntc_journal_put(t, s >> 3, pages, n);

		if (err != -ENOSPC)
			return err;
		err = ntc_journal_give_up(t);
		if (err)
			return err;
	}
	ntc_mark_written(t, s, n << 3);
	return ntc_io_pages(t->dst, s, pages, n, REQ_OP_WRITE);
}

/*
 * Copies n blocks from block blk of disk 1 to disk 2.  With compare, reads
 * disk 2 too and writes only the blocks that differ.  Returns blocks written.
 */
static long copy_run(struct ntc_target *t, unsigned long blk, unsigned int n,
		     bool compare)
{
	sector_t s = (sector_t)blk << 3;
	unsigned int i, j;
	long written = 0;
	int err;

	err = ntc_io_pages(t->src, s, t->buf, n, REQ_OP_READ);
	if (err)
		return err;
	ntc_status.disk_blocks_read += compare ? 2 * n : n;
	if (!compare) {
		err = write_blocks(t, s, t->buf, n);
		return err ? err : n;
	}
	err = ntc_io_pages(t->dst, s, t->buf + NTC_COPY_CHUNK_PAGES, n, REQ_OP_READ);
	if (err)
		return err;
	for (i = 0; i < n; i = j) {
		if (!memcmp(page_address(t->buf[i]),
			    page_address(t->buf[NTC_COPY_CHUNK_PAGES + i]), PAGE_SIZE)) {
			j = i + 1;
			continue;
		}
		for (j = i + 1; j < n; j++)
			if (!memcmp(page_address(t->buf[j]),
				    page_address(t->buf[NTC_COPY_CHUNK_PAGES + j]), PAGE_SIZE))
				break;
		err = write_blocks(t, s + ((sector_t)i << 3), t->buf + i, j - i);
		if (err)
			return err;
		written += j - i;
	}
	return written;
}

/*
 * The first checkpoint onto a fresh clone.  A partition is the same on both
 * disks in every block its filesystem uses, and so needs only the writes
 * tracked since load, if its superblock on disk 1 at load and on disk 2 now
 * are both the one ntc-clone copied (ntc_format.h, struct
 * ntc_origin_partition) and disk 1 had completed no write before tracking.
 * Marks everything else of disk 1 for comparison; says in the status what
 * was proven.  False, with *why set, if nothing was.
 */
static bool since_clone(struct ntc_target *t, const char **why)
{
	const struct ntc_origin_partition *o, *l;
	unsigned long *outside = NULL;
	char *note = ntc_status.disk_copy_note;
	size_t len = sizeof(ntc_status.disk_copy_note);
	unsigned int proven = 0;
	int at = 0;
	void *page = NULL;
	u32 crc;

	if (untracked_why) {
		*why = untracked_why;
		return false;
	}
	if (!t->origin[0].partno) {
		*why = "disk 2 is not a fresh clone carrying ntc-clone's record of disk 1";
		return false;
	}
	*why = "no partition is unchanged on both disks since the clone (each superblock differs from ntc-clone's record)";
	outside = vmalloc(BITS_TO_LONGS(nr_blocks) * sizeof(long));
	page = (void *)__get_free_page(GFP_KERNEL);
	if (!outside || !page) {
		*why = "out of memory";
		goto out;
	}
	bitmap_fill(outside, nr_blocks);
	at = scnprintf(note, len, "unchanged since the clone, writes since boot copied: partition");
	for (o = t->origin; o < t->origin + NTC_ORIGIN_PARTITIONS && o->partno; o++) {
		unsigned long b = DIV_ROUND_UP(o->start_sector, NTC_SECT_PER_BLK);
		unsigned long e = min_t(unsigned long, (o->start_sector + o->sectors) >> 3, nr_blocks);

		for (l = at_load; l < at_load + NTC_ORIGIN_PARTITIONS && l->partno; l++)
			if (!memcmp(l, o, sizeof(*o)))
				break;
		if (l == at_load + NTC_ORIGIN_PARTITIONS || !l->partno ||
		    !ext_superblock_crc(t->dst, o->start_sector, page, &crc) ||
		    crc != o->superblock_crc32 || b >= e)
			continue;
		bitmap_clear(outside, b, e - b);
		at += scnprintf(note + at, len - at, " %u", o->partno);
		proven++;
	}
	if (proven) {
		unsigned long k;

		scnprintf(note + at, len - at, "; the rest compared");
		/* The probe sets bits meanwhile: merge word by word, atomically. */
		for (k = 0; k < BITS_TO_LONGS(nr_blocks); k++)
			if (outside[k])
				atomic_long_or(outside[k], (atomic_long_t *)&dirty[k]);
	}
out:
	free_page((unsigned long)page);
	vfree(outside);
	return proven;
}

/*
 * Whether this pass compares disk 1 with disk 2: on the first pass onto a
 * target that nothing was tracked into, after marking what is compared.
 */
static bool start_pass(struct ntc_target *t)
{
	const char *why = compare_all_why;

	if (!why && last_target == t->area->bd_dev)
		return false;
	if (!why && last_target)
		why = "the last checkpoint went to another disk 2";
	compare_all_why = NULL;
	last_target = t->area->bd_dev;
	if (!why && since_clone(t, &why)) {
		ntc_status.disk_copy = NTC_COPY_SINCE_CLONE;
	} else {
		ntc_status.disk_copy = NTC_COPY_FULL_COMPARE;
		strscpy(ntc_status.disk_copy_note, why, sizeof(ntc_status.disk_copy_note));
		bitmap_fill(dirty, nr_blocks);
	}
	pr_info("first checkpoint onto %pg: %s: %s\n", t->area,
		ntc_status.disk_copy == NTC_COPY_SINCE_CLONE ? "copying what disk 1 wrote since boot" :
		"comparing every block", ntc_status.disk_copy_note);
	return true;
}

/*
 * One pass over the dirty map (or, the first time, over everything).
 * Returns the number of blocks written to disk 2 or -errno; counts the swap
 * slots among them in *swap_slots.
 */
long ntc_copy_delta(struct ntc_target *t, bool frozen, unsigned long *swap_slots)
{
	unsigned long swap_b = t->src_swap_start >> 3;
	unsigned long swap_e = swap_b + t->area_pages;
	unsigned long b = 0, run_start = 0;
	unsigned int run = 0;
	long total = 0, r = 0;
	bool compare = start_pass(t);
	ktime_t start = ktime_get();

	for (;;) {
		b = find_next_bit(dirty, nr_blocks, b);
		if (b < nr_blocks && b >= swap_b && b < swap_e) {
			unsigned long slot = b - swap_b;

			/* Disk 2's area header is its own; free slots take the image. */
			if (slot == 0 || !t->src_swap) {
				clear_bit(b, dirty);
				b++;
				continue;
			}
			if (!ntc_swap_slot_used(t->src_swap, slot)) {
				b++;
				continue;
			}
		}
		if (run && (b >= nr_blocks || b != run_start + run ||
			    run == NTC_COPY_CHUNK_PAGES)) {
			r = copy_run(t, run_start, run, compare);
			if (r < 0) {
				compare_all_why = "an earlier checkpoint failed while copying to disk 2";
				break;
			}
			total += r;
			run = 0;
		}
		if (b >= nr_blocks)
			break;
		clear_bit(b, dirty);
		if (b >= swap_b && b < swap_e)
			(*swap_slots)++;
		if (!run)
			run_start = b;
		run++;
		b++;
		if (!frozen)
			cond_resched();
	}
	ntc_status.disk_copy_us += ktime_us_delta(ktime_get(), start);
	return r < 0 ? r : total;
}

/* ---- the target ----------------------------------------------------------- */

static int ntc_holder;

static bool area_marker(const void *page0)
{
	const char *sig = (const char *)page0 + NTC_OFF_SIG;
	const struct ntc_record *rec = page0;

	if (!memcmp(sig, NTC_AREA_SIG, NTC_SIG_LEN))
		return true;
	return !memcmp(sig, NTC_HIBERNATE_SIG, sizeof(NTC_HIBERNATE_SIG)) &&
	       !memcmp(rec->magic, NTC_RECORD_MAGIC, 8);
}

/* Reads page 0 of a partition; true if it carries the NTC marker. */
static bool probe_area(dev_t dev, void *page0)
{
	struct block_device *bdev = blkdev_get_by_dev(dev, FMODE_READ, NULL);
	bool ok;

	if (IS_ERR(bdev))
		return false;
	ok = bdev_nr_sectors(bdev) >= 2 * NTC_SECT_PER_BLK &&
	     !ntc_io_page(bdev, 0, page0, REQ_OP_READ) && area_marker(page0);
	blkdev_put(bdev, FMODE_READ);
	return ok;
}

static int find_area(void *page0, dev_t *found)
{
	struct class_dev_iter iter;
	struct device *dev;
	dev_t cand[64];
	int n = 0, i;

	char buf[128], *path = buf;

	/* written through sysfs, the parameter ends with a newline */
	strscpy(buf, ntc_target_param ? ntc_target_param : "", sizeof(buf));
	path = strim(buf);
	if (path[0] && strcmp(path, "auto")) {
		if (lookup_bdev(path, found)) {
			pr_err("target %s: no such block device\n", path);
			return -ENODEV;
		}
		if (!probe_area(*found, page0)) {
			pr_err("target %s has no NTC snapshot-area marker\n", path);
			return -EINVAL;
		}
		return 0;
	}
	class_dev_iter_init(&iter, ntc_k.block_class, NULL, NULL);
	while ((dev = class_dev_iter_next(&iter)) && n < ARRAY_SIZE(cand)) {
		struct block_device *bdev = dev_to_bdev(dev);

		if (bdev_is_partition(bdev) && bdev->bd_disk != ntc_src_disk)
			cand[n++] = dev->devt;
	}
	class_dev_iter_exit(&iter);
	for (i = 0; i < n; i++)
		if (probe_area(cand[i], page0)) {
			*found = cand[i];
			return 0;
		}
	pr_err("no disk with an NTC snapshot area (made by ntc-clone) found\n");
	return -ENODEV;
}

static struct block_device *disk_part(struct gendisk *disk, int partno)
{
	struct block_device *part;
	unsigned long idx;

	xa_for_each(&disk->part_tbl, idx, part)
		if (part->bd_partno == partno)
			return part;
	return NULL;
}

/* Same partitions at the same offsets, disk 2 at least as large. */
static int check_layout(struct gendisk *src, struct gendisk *dst)
{
	struct block_device *p, *q;
	unsigned long idx;

	if (get_capacity(dst) < get_capacity(src)) {
		pr_err("%s is smaller than %s\n", dst->disk_name, src->disk_name);
		return -EINVAL;
	}
	xa_for_each(&src->part_tbl, idx, p) {
		if (!p->bd_partno)
			continue;
		q = disk_part(dst, p->bd_partno);
		if (!q || q->bd_start_sect != p->bd_start_sect ||
		    bdev_nr_sectors(q) != bdev_nr_sectors(p)) {
			pr_err("partition %d of %s does not match %s\n",
			       p->bd_partno, dst->disk_name, src->disk_name);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Swap on disk, on partition partno (any if partno < 0): active swap on a
 * partition, or with active false, any swap there being turned on or off
 * (swapon has not finished, or swapoff stopped writing to it but has not
 * read it all back, so pages of processes are still out there though it
 * is not active swap).
 */
static struct swap_info_struct *disk_swap(struct gendisk *disk, int partno, bool active)
{
	struct swap_info_struct *si, *found = NULL;
	unsigned int i;

	spin_lock(ntc_k.swap_lock);
	for (i = 0; i < READ_ONCE(*ntc_k.nr_swapfiles); i++) {
		si = ntc_k.swap_info[i];
		if (!si || !(si->flags & SWP_USED) || !si->bdev || si->bdev->bd_disk != disk)
			continue;
		if (active ? !(si->flags & SWP_WRITEOK) || !(si->flags & SWP_BLKDEV) :
			     !!(si->flags & SWP_WRITEOK))
			continue;
		if (partno < 0 || si->bdev->bd_partno == partno) {
			found = si;
			break;
		}
	}
	spin_unlock(ntc_k.swap_lock);
	return found;
}

static struct swap_info_struct *active_swap(struct gendisk *disk, int partno)
{
	return disk_swap(disk, partno, true);
}

static int run_swap_tool(char *tool, char *dev)
{
	static char *envp[] = { "HOME=/", "PATH=/sbin:/usr/sbin:/bin:/usr/bin", NULL };
	char *argv[] = { tool, dev, NULL };

	return call_usermodehelper(tool, argv, envp, UMH_WAIT_PROC);
}

/*
 * Makes disk 1's swap partition, the snapshot area's twin, active swap as
 * swapon(8) does, and takes the checkpoint's reference on it, as
 * ntc_target_open() does for swap that was active.  dev gets its path, for
 * the swapoff afterwards.
 */
int ntc_target_borrow_swap(struct ntc_target *t, char *dev, size_t len)
{
	int err;

	snprintf(dev, len, "/dev/%pg", disk_part(ntc_src_disk, t->area_partno));
	err = run_swap_tool("/sbin/swapon", dev);
	if (err) {
		pr_err("/sbin/swapon %s failed (%d): disk 1 stays without swap\n", dev, err);
		dev[0] = 0;
		return -ENOMEM;
	}
	t->src_swap = active_swap(ntc_src_disk, t->area_partno);
	if (!t->src_swap || !percpu_ref_tryget_live(&t->src_swap->users)) {
		pr_err("%s is not active swap right after swapon\n", dev);
		t->src_swap = NULL;
		return -EBUSY;
	}
	return 0;
}

/* swapoff(8) of what ntc_target_borrow_swap() made swap, once the checkpoint has let go of it. */
void ntc_give_back_swap(char *dev)
{
	int err = run_swap_tool("/sbin/swapoff", dev);

	if (err)
		pr_err("/sbin/swapoff %s failed (%d): it stays swap\n", dev, err);
}

void ntc_target_close(struct ntc_target *t)
{
	int i;

	if (t->src_swap)
		percpu_ref_put(&t->src_swap->users);
	if (t->dst)
		blkdev_put(t->dst, FMODE_READ | FMODE_WRITE | FMODE_EXCL);
	if (t->area)
		blkdev_put(t->area, FMODE_READ);
	if (t->src)
		blkdev_put(t->src, FMODE_READ);
	if (t->buf) {
		for (i = 0; i < 2 * NTC_COPY_CHUNK_PAGES; i++)
			if (t->buf[i])
				__free_page(t->buf[i]);
		kfree(t->buf);
	}
	if (t->page0)
		free_page((unsigned long)t->page0);
	vfree(t->written);
	memset(t, 0, sizeof(*t));
}

int ntc_target_open(struct ntc_target *t)
{
	struct block_device *srcpart;
	dev_t area_dev;
	int err, i;

	memset(t, 0, sizeof(*t));
	t->page0 = (void *)get_zeroed_page(GFP_KERNEL);
	if (!t->page0)
		return -ENOMEM;
	err = find_area(t->page0, &area_dev);
	if (err)
		goto fail;
	t->src = blkdev_get_by_dev(disk_devt(ntc_src_disk), FMODE_READ, NULL);
	if (IS_ERR(t->src)) {
		err = PTR_ERR(t->src);
		t->src = NULL;
		goto fail;
	}
	/*
	 * The area stays open until ntc_target_close(): an open partition
	 * cannot be deleted (BLKPG) under a running checkpoint.
	 */
	t->area = blkdev_get_by_dev(area_dev, FMODE_READ, NULL);
	if (IS_ERR(t->area)) {
		pr_err("cannot open the snapshot area: %ld\n", PTR_ERR(t->area));
		err = PTR_ERR(t->area);
		t->area = NULL;
		goto fail;
	}
	/*
	 * An exclusive open of the whole disk fails while any partition of it
	 * is mounted or used as swap: that is the "not in use" check.
	 */
	t->dst = blkdev_get_by_dev(disk_devt(t->area->bd_disk),
				   FMODE_READ | FMODE_WRITE | FMODE_EXCL,
				   &ntc_holder);
	if (IS_ERR(t->dst)) {
		pr_err("target disk busy (mounted or swap on it?): %ld\n",
		       PTR_ERR(t->dst));
		t->dst = NULL;
		err = -EINVAL;
		goto fail;
	}
	if (t->dst->bd_disk == ntc_src_disk) {
		err = -EINVAL;
		goto fail;
	}
	if (active_swap(t->dst->bd_disk, -1)) {
		pr_err("swap is active on the target disk\n");
		err = -EINVAL;
		goto fail;
	}
	err = check_layout(ntc_src_disk, t->dst->bd_disk);
	if (err)
		goto fail;
	/*
	 * Its number as the partition says, not from minor arithmetic:
	 * partitions past a disk's first minors (16 and up on virtio-blk) get
	 * numbers from the extended range.
	 */
	t->area_partno = t->area->bd_partno;
	if (!t->area_partno) {	/* the marker seen on a whole disk */
		pr_err("%pg is a whole disk, not a partition: it cannot be a snapshot area\n",
		       t->area);
		err = -EINVAL;
		goto fail;
	}
	t->area_start = t->area->bd_start_sect;
	t->area_pages = bdev_nr_sectors(t->area) >> 3;
	/*
	 * check_layout() only showed that disk 1's partitions are on disk 2;
	 * disk 2 may have more.  The area must mirror disk 1's partition with
	 * its number (disk 1's swap partition).  disk_part() takes no
	 * reference, so there is nothing to put on the way out.
	 */
	srcpart = disk_part(ntc_src_disk, t->area_partno);
	if (!srcpart) {
		pr_err("snapshot area %pg is partition %d of %s, but %s has no partition %d\n",
		       t->area, t->area_partno, t->dst->bd_disk->disk_name,
		       ntc_src_disk->disk_name, t->area_partno);
		err = -EINVAL;
		goto fail;
	}
	if (srcpart->bd_start_sect != t->area_start ||
	    bdev_nr_sectors(srcpart) != bdev_nr_sectors(t->area)) {
		pr_err("snapshot area %pg (start %llu, %llu sectors) does not match partition %d of %s (start %llu, %llu sectors)\n",
		       t->area, t->area_start, bdev_nr_sectors(t->area),
		       t->area_partno, ntc_src_disk->disk_name,
		       srcpart->bd_start_sect, bdev_nr_sectors(srcpart));
		err = -EINVAL;
		goto fail;
	}
	t->src_swap_start = srcpart->bd_start_sect;
	t->src_swap = active_swap(ntc_src_disk, t->area_partno);
	if (!t->src_swap && disk_swap(ntc_src_disk, -1, false)) {
		pr_err("disk 1's swap is being turned on or off: try again once swapon or swapoff has ended\n");
		err = -EBUSY;
		goto fail;
	}
	if (active_swap(ntc_src_disk, -1) && !t->src_swap) {
		pr_err("disk 1's active swap is not the partition matching the snapshot area\n");
		err = -EINVAL;
		goto fail;
	}
	/*
	 * The checkpoint reads the swap map until ntc_target_close(); a
	 * swapoff meanwhile waits for this reference before it frees the map.
	 */
	if (t->src_swap && !percpu_ref_tryget_live(&t->src_swap->users)) {
		pr_err("disk 1's swap is being turned off\n");
		t->src_swap = NULL;
		err = -EBUSY;
		goto fail;
	}
	/* the swap header must describe the area we are about to fill */
	{
		struct ntc_swap_header_info *h = t->page0;
		const struct ntc_record *rec = t->page0;

		if (h->last_page && h->last_page < t->area_pages)
			t->area_pages = (unsigned long)h->last_page + 1;
		if (ntc_record_sealed(rec) && rec->state == NTC_STATE_EMPTY &&
		    !memcmp((char *)t->page0 + NTC_OFF_SIG, NTC_AREA_SIG, NTC_SIG_LEN))
			memcpy(t->origin, rec->origin, sizeof(t->origin));
	}
	t->dst_blocks = (bdev_nr_sectors(t->dst) + NTC_SECT_PER_BLK - 1) >> 3;
	t->written = vzalloc(BITS_TO_LONGS(t->dst_blocks) * sizeof(long));
	if (!t->written) {
		err = -ENOMEM;
		goto fail;
	}
	t->buf = kcalloc(2 * NTC_COPY_CHUNK_PAGES, sizeof(*t->buf), GFP_KERNEL);
	if (!t->buf) {
		err = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < 2 * NTC_COPY_CHUNK_PAGES; i++) {
		t->buf[i] = alloc_page(GFP_KERNEL);
		if (!t->buf[i]) {
			err = -ENOMEM;
			goto fail;
		}
	}
	snprintf(ntc_status.target, sizeof(ntc_status.target), "%pg", t->area);
	return 0;
fail:
	ntc_target_close(t);
	return err;
}

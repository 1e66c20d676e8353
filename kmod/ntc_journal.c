// SPDX-License-Identifier: GPL-2.0
/*
 * The redo journal: the previous checkpoint stays resumable while the next
 * one is written.
 *
 * Disk 2's blocks that the previous checkpoint holds are its filesystems,
 * the area slots disk 1's swap used at its snapshot, its image and its
 * history; the rest of the area was spare (ntc_reuse_spare()).  Until the
 * commit, a block of disk 2 that the disk delta must change goes straight
 * to its place only if it is a spare slot; any other goes to a spare slot
 * of its own, the journal.  The image and the history take spare slots
 * too, and page 0 keeps naming the previous checkpoint.  The commit writes
 * the journal's index (ntc_format.h, struct ntc_chain_page) and page 0
 * with NTC_RECORD_JOURNAL; then each journal block is copied to its place
 * and page 0 is rewritten without the flag.  A machine that stops between
 * the two leaves a committed checkpoint whose blocks are not all in place:
 * the kernel restored from it copies them before it thaws
 * (ntc_journal_finish_restored()).
 *
 * Disk 1 may start using a journal slot as swap while the guest runs: the
 * disk delta then copies that slot in place, so the journal block moves to
 * another slot first.  When the spare slots run out, the checkpoint gives
 * the previous one up: page 0 is invalidated, the journal copied into
 * place, and the rest written in place as without a previous checkpoint.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/bitmap.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/xarray.h>
#include "ntc.h"

/* Off: every checkpoint writes in place, and one cut short leaves none. */
static bool keep_previous = true;
module_param(keep_previous, bool, 0644);
MODULE_PARM_DESC(keep_previous, "keep the previous checkpoint resumable until the next one commits (default on)");

/* Starts keeping the previous checkpoint if this boot committed it on t's area. */
int ntc_journal_begin(struct ntc_journal *j, struct ntc_target *t)
{
	const unsigned long *spare = ntc_reuse_spare(t);

	memset(j, 0, sizeof(*j));
	xa_init(&j->by_dest);
	xa_init(&j->by_slot);
	if (!keep_previous || !spare || t->area_start % NTC_SECT_PER_BLK)	/* slots must be blocks */
		return 0;
	j->avail = bitmap_alloc(t->area_pages, GFP_KERNEL);
	j->spare = bitmap_alloc(t->area_pages, GFP_KERNEL);
	j->scratch = (void *)__get_free_page(GFP_KERNEL);
	if (!j->avail || !j->spare || !j->scratch)
		return -ENOMEM;
	bitmap_copy(j->avail, spare, t->area_pages);
	bitmap_copy(j->spare, spare, t->area_pages);
	t->journal = j;
	return 0;
}

void ntc_journal_end(struct ntc_journal *j)
{
	xa_destroy(&j->by_dest);
	xa_destroy(&j->by_slot);
	bitmap_free(j->avail);
	bitmap_free(j->spare);
	free_page((unsigned long)j->scratch);
	kvfree(j->ext);
	ntc_chain_writer_free(&j->chain);
	memset(j, 0, sizeof(*j));
}

/* A spare slot that disk 1's swap does not use now; 0 if none is left. */
static unsigned long take_slot(struct ntc_target *t)
{
	struct ntc_journal *j = t->journal;
	unsigned long s = j->cursor, pass;

	for (pass = 0; pass < 2; pass++, s = 0) {
		for (s = find_next_bit(j->avail, t->area_pages, s); s < t->area_pages;
		     s = find_next_bit(j->avail, t->area_pages, s + 1)) {
			if (ntc_swap_slot_used(t->src_swap, s))
				continue;
			clear_bit(s, j->avail);
			j->cursor = s + 1;
			return s;
		}
	}
	return 0;
}

static int remember(struct ntc_journal *j, unsigned long block, unsigned long slot)
{
	int err = xa_err(xa_store(&j->by_dest, block, xa_mk_value(slot), GFP_NOIO));

	return err ?: xa_err(xa_store(&j->by_slot, slot, xa_mk_value(block), GFP_NOIO));
}

/* Disk 1's swap now uses journal slot: its block moves to another slot. */
static int move_out(struct ntc_target *t, unsigned long slot)
{
	struct ntc_journal *j = t->journal;
	unsigned long block = xa_to_value(xa_load(&j->by_slot, slot)), to;
	int err;

	to = take_slot(t);
	if (!to)
		return -ENOSPC;
	err = ntc_io_page(t->dst, ntc_slot_sector(t, slot), j->scratch, REQ_OP_READ);
	if (!err)
		err = ntc_io_page(t->dst, ntc_slot_sector(t, to), j->scratch, REQ_OP_WRITE);
	if (err)
		return err;
	ntc_mark_written(t, ntc_slot_sector(t, to), NTC_SECT_PER_BLK);
	xa_erase(&j->by_slot, slot);
	ntc_status.journal_moves++;
	return remember(j, block, to);
}

/*
 * Writes n blocks of disk 2 from block on, from pages: in place where the
 * previous checkpoint has nothing, else into the journal.  -ENOSPC when
 * the spare slots are all taken.
 */
int ntc_journal_put(struct ntc_target *t, unsigned long block, struct page **pages, unsigned int n)
{
	struct ntc_journal *j = t->journal;
	unsigned long area = t->area_start >> 3, b, slot;
	struct ntc_batch batch;
	unsigned int i;
	int err = 0, ret;
	void *e;

	ntc_batch_init(&batch, t->dst);
	for (i = 0; i < n && !err; i++) {
		b = block + i;
		if (b > area && b < area + t->area_pages && test_bit(b - area, j->spare)) {
			slot = b - area;
			if (xa_load(&j->by_slot, slot)) {
				/* its journal block may still be in flight */
				err = ntc_batch_wait(&batch);
				ntc_batch_init(&batch, t->dst);
				if (!err)
					err = move_out(t, slot);
				if (err)
					break;
			}
			clear_bit(slot, j->avail);
		} else {
			e = xa_load(&j->by_dest, b);
			slot = e ? xa_to_value(e) : take_slot(t);
			if (!slot) {
				err = -ENOSPC;
				break;
			}
			if (!e) {
				err = remember(j, b, slot);
				if (err)
					break;
				j->blocks++;
			}
			/* written at the apply; listed now, for the history */
			ntc_mark_written(t, (sector_t)b << 3, NTC_SECT_PER_BLK);
		}
		ntc_mark_written(t, ntc_slot_sector(t, slot), NTC_SECT_PER_BLK);
		err = ntc_batch_add(&batch, pages[i], ntc_slot_sector(t, slot));
	}
	ret = ntc_batch_wait(&batch);
	return err ?: ret;
}

/* The journal as extents in destination order, merged where both run on. */
static int build_extents(struct ntc_journal *j)
{
	struct ntc_journal_extent *x = NULL;
	unsigned long block;
	void *e;

	kvfree(j->ext);
	j->count = 0;
	j->ext = kvmalloc_array(max(j->blocks, 1UL), sizeof(*j->ext), GFP_KERNEL);
	if (!j->ext)
		return -ENOMEM;
	xa_for_each(&j->by_dest, block, e) {
		unsigned long slot = xa_to_value(e);

		if (x && x->first_block + x->blocks == block && x->slot + x->blocks == slot &&
		    x->blocks < U32_MAX) {
			x->blocks++;
			continue;
		}
		x = &j->ext[j->count++];
		*x = (struct ntc_journal_extent) { .first_block = block, .slot = slot, .blocks = 1 };
	}
	return 0;
}

/* Copies each extent's slots to its place on bdev, through chunk pages of buf, then flushes. */
static int apply(struct block_device *bdev, sector_t area_start, const struct ntc_journal_extent *ext,
		 unsigned long count, struct page **buf, unsigned int chunk)
{
	unsigned long i;
	u64 done, n;
	int err = 0;

	for (i = 0; i < count && !err; i++)
		for (done = 0; done < ext[i].blocks && !err; done += n) {
			n = min_t(u64, ext[i].blocks - done, chunk);
			err = ntc_io_pages(bdev, area_start + ((ext[i].slot + done) << 3), buf, n,
					   REQ_OP_READ);
			if (!err)
				err = ntc_io_pages(bdev, (ext[i].first_block + done) << 3, buf, n,
						   REQ_OP_WRITE);
		}
	return err ?: ntc_flush(bdev);
}

/*
 * The spare slots ran out: page 0 stops naming the previous checkpoint,
 * what the journal holds goes into place, and the rest of this checkpoint
 * is written as without a previous one.
 */
int ntc_journal_give_up(struct ntc_target *t)
{
	struct ntc_journal *j = t->journal;
	struct page *scratch = virt_to_page(j->scratch);	/* t->buf holds what is being copied */
	int err;

	pr_info("the snapshot area has no room to keep the previous checkpoint while this one is written: it is overwritten\n");
	t->journal = NULL;
	err = ntc_area_invalidate(t);
	if (!err)
		err = build_extents(j);
	if (!err)
		err = apply(t->dst, t->area_start, j->ext, j->count, &scratch, 1);
	ntc_status.kept_previous = false;
	return err;
}

/*
 * A checkpoint that kept the previous one failed before its commit: the
 * journal's blocks never reached their places, so they are copied again
 * next time.
 */
void ntc_journal_cancel(struct ntc_journal *j)
{
	unsigned long block;
	void *e;

	xa_for_each(&j->by_dest, block, e)
		ntc_track_mark(block);
}

/*
 * The journal's index, into slots of map after *last, which it advances;
 * rec names it.  Its pages are listed in the history like the blocks.
 */
int ntc_journal_write_index(struct ntc_journal *j, struct ntc_target *t, const unsigned long *map,
			    unsigned long *last, struct ntc_record *rec)
{
	struct ntc_chain_writer *w = &j->chain;
	unsigned long i;
	int err;

	ntc_record_clear_journal(rec);
	ntc_status.journal_blocks = j->blocks;
	if (!j->blocks)
		return 0;
	err = build_extents(j);
	if (!err)
		err = ntc_chain_writer_start(w, t->dst, t->area_start, NTC_JOURNAL_MAGIC, map,
					     t->area_pages, *last, j->count);
	if (err == -ENOSPC)
		pr_err("no room after the image for the journal's index\n");
	if (err)
		return err;
	for (i = 0; i < j->count; i++)
		ntc_chain_add(w, &j->ext[i]);
	err = ntc_chain_writer_finish(w);
	if (err)
		return err;
	for (i = 0; i < w->npages; i++)
		ntc_mark_written(t, ntc_slot_sector(t, w->slots[i]), NTC_SECT_PER_BLK);
	*last = w->slots[w->npages - 1];
	rec->flags |= NTC_RECORD_JOURNAL;
	rec->journal_slot = w->slots[0];
	rec->journal_pages = w->npages;
	rec->journal_crc32 = ~w->crc;
	rec->journal_blocks = j->blocks;
	return 0;
}

/* After the commit: the journal into place, then page 0 without it. */
int ntc_journal_apply(struct ntc_journal *j, struct ntc_target *t, struct ntc_record *rec)
{
	int err;

	if (!(rec->flags & NTC_RECORD_JOURNAL))
		return 0;
	err = apply(t->dst, t->area_start, j->ext, j->count, t->buf, NTC_COPY_CHUNK_PAGES);
	if (err)
		return err;
	ntc_record_clear_journal(rec);
	return ntc_area_rewrite_record(t, rec);
}

/*
 * In the kernel restored from a checkpoint, before it thaws: if the
 * machine that took it stopped before its journal was in place, copy it
 * now.  Disk 2 is our disk 1 here, the area our swap partition.  Returns
 * the blocks copied or -errno.
 */
long ntc_journal_finish_restored(const struct ntc_target *t, const struct ntc_history *h)
{
	struct block_device *disk;
	struct ntc_record *rec;
	struct ntc_chain c = { 0 };
	const struct ntc_journal_extent *ext;
	unsigned long i;
	long ret = 0, blocks;

	disk = blkdev_get_by_dev(disk_devt(ntc_src_disk), FMODE_READ | FMODE_WRITE, NULL);
	if (IS_ERR(disk))
		return PTR_ERR(disk);
	rec = (void *)__get_free_page(GFP_KERNEL);
	if (!rec) {
		ret = -ENOMEM;
		goto out;
	}
	ret = ntc_io_page(disk, t->area_start, rec, REQ_OP_READ);
	if (ret || !ntc_record_sealed(rec) || !(rec->flags & NTC_RECORD_JOURNAL) ||
	    rec->generation != h->generation || memcmp(rec->area_id, h->area_id, sizeof(h->area_id)))
		goto out;
	ret = -EIO;
	if (!ntc_chain_read(&c, disk, t->area_start, t->area_pages, NTC_JOURNAL_MAGIC, rec->journal_slot,
			    rec->journal_pages, rec->journal_crc32))
		goto out;
	ext = c.entries;
	for (i = 0; i < c.count; i++)
		if (!ext[i].slot || ext[i].slot >= t->area_pages ||
		    ext[i].blocks > t->area_pages - ext[i].slot)
			goto out;
	ret = apply(disk, t->area_start, ext, c.count, t->buf, NTC_COPY_CHUNK_PAGES);
	if (ret)
		goto out;
	blocks = rec->journal_blocks;
	ntc_record_clear_journal(rec);
	ntc_record_seal(rec);
	/* resumed: as the stock resume does, the area is swap again */
	memcpy((char *)rec + NTC_OFF_SIG, (char *)rec + NTC_OFF_ORIG_SIG, NTC_SIG_LEN);
	ret = ntc_write_page0(disk, t->area_start, rec);
	if (!ret)
		ret = blocks;
out:
	ntc_chain_free(&c);
	free_page((unsigned long)rec);
	blkdev_put(disk, FMODE_READ | FMODE_WRITE);
	return ret;
}

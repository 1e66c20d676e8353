// SPDX-License-Identifier: GPL-2.0
/*
 * Writing the image into disk 2's snapshot area, after the thaw.
 *
 * The layout is the stock one of kernel/power/swap.c (swsusp_write() with
 * SF_NOCOMPRESS_MODE): a chain of swap_map_pages listing, in stream order,
 * the page offsets of the pages snapshot_read_next() yields, and page 0's
 * swsusp_header pointing at the first map page.  The stock writer takes its
 * slots from an active swap device; ours is inactive, so the slots are the
 * ones that were free in disk 1's swap at the snapshot (the others hold
 * disk 1's swapped-out pages, which the restored kernel will read back).
 *
 * Order of durability, so that a crash or error at any point leaves no
 * resume signature pointing at a half-written image:
 *   1. page 0 := NTC_AREA_SIG, record state WRITING        (flush + FUA)
 *   2. disk delta, image pages, map pages, the change history
 *      (ntc_history.c); wait for all of them
 *   3. page 0 := S1SUSPEND header + record state CHECKPOINT (flush + FUA)
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/crc32.h>
#include <linux/mm.h>
#include <linux/bitmap.h>
#include <linux/list.h>
#include <linux/ktime.h>
#include "ntc.h"

/* CRC-32 of the record with its own CRC field read as zero (on-disk-format.md). */
u32 ntc_record_crc(const struct ntc_record *rec)
{
	static const u8 zero[sizeof(rec->record_crc32)];
	const size_t off = offsetof(struct ntc_record, record_crc32), end = off + sizeof(zero);
	u32 crc;

	crc = crc32_le(~0U, (const u8 *)rec, off);
	crc = crc32_le(crc, zero, sizeof(zero));
	crc = crc32_le(crc, (const u8 *)rec + end, sizeof(*rec) - end);
	return ~crc;
}

void ntc_record_seal(struct ntc_record *rec)
{
	rec->record_crc32 = ntc_record_crc(rec);
}

bool ntc_record_sealed(const struct ntc_record *rec)
{
	return !memcmp(rec->magic, NTC_RECORD_MAGIC, 8) && rec->version == NTC_RECORD_VERSION &&
	       ntc_record_crc(rec) == rec->record_crc32;
}

/* Page 0 holds a committed checkpoint of a generation of an identified area. */
bool ntc_area_committed(const struct ntc_target *t)
{
	const struct ntc_record *rec = t->page0;
	const char *sig = (const char *)t->page0 + NTC_OFF_SIG;

	return ntc_record_sealed(rec) && rec->state == NTC_STATE_CHECKPOINT && rec->generation &&
	       !memcmp(sig, NTC_HIBERNATE_SIG, sizeof(NTC_HIBERNATE_SIG)) &&
	       memchr_inv(rec->area_id, 0, sizeof(rec->area_id));
}

/* Page 0 last: everything written before it is durable first, and it is too. */
int ntc_write_page0(struct block_device *bdev, sector_t area_start, void *page0)
{
	return ntc_io_page(bdev, area_start, page0, REQ_OP_WRITE | REQ_SYNC | REQ_PREFLUSH | REQ_FUA);
}

static int write_page0(struct ntc_target *t)
{
	return ntc_write_page0(t->dst, t->area_start, t->page0);
}

void ntc_record_clear_journal(struct ntc_record *rec)
{
	rec->flags &= ~NTC_RECORD_JOURNAL;
	rec->journal_slot = 0;
	rec->journal_blocks = 0;
	rec->journal_pages = 0;
	rec->journal_crc32 = 0;
}

int ntc_area_invalidate(struct ntc_target *t)
{
	struct ntc_record *rec = t->page0;

	if (memcmp(rec->magic, NTC_RECORD_MAGIC, 8)) {
		memset(rec, 0, sizeof(*rec));
		memcpy(rec->magic, NTC_RECORD_MAGIC, 8);
		rec->version = NTC_RECORD_VERSION;
	}
	rec->state = NTC_STATE_WRITING;
	/* disk 2 is no longer the clone the origin describes */
	memset(rec->origin, 0, sizeof(rec->origin));
	ntc_record_clear_journal(rec);
	ntc_record_seal(rec);
	memcpy((char *)t->page0 + NTC_OFF_SIG, NTC_AREA_SIG, NTC_SIG_LEN);
	return write_page0(t);
}

/* Page 0 as it is, with rec sealed as its record. */
int ntc_area_rewrite_record(struct ntc_target *t, struct ntc_record *rec)
{
	ntc_record_seal(rec);
	memcpy(t->page0, rec, sizeof(*rec));
	return write_page0(t);
}

int ntc_area_commit(struct ntc_target *t, struct ntc_record *rec, u64 first_map)
{
	struct ntc_swsusp_header *h = t->page0;
	u32 hw = ntc_k.swsusp_hardware_signature ? *ntc_k.swsusp_hardware_signature : 0;

	rec->state = NTC_STATE_CHECKPOINT;
	ntc_record_seal(rec);
	memcpy(t->page0, rec, sizeof(*rec));
	h->image = first_map;
	h->flags = NTC_SF_NOCOMPRESS_MODE;
	h->crc32 = 0;
	h->hw_sig = 0;
	if (hw) {		/* as mark_swapfiles() does */
		h->hw_sig = hw;
		h->flags |= NTC_SF_HW_SIG;
	}
	memcpy(h->orig_sig, NTC_SWAP_SIG, NTC_SIG_LEN);
	memset(h->sig, 0, NTC_SIG_LEN);
	memcpy(h->sig, NTC_HIBERNATE_SIG, sizeof(NTC_HIBERNATE_SIG) - 1);
	return write_page0(t);
}

/*
 * The writer: kernel/power/swap.c's swap_map_handle with get_swap_writer(),
 * swap_write_page(), flush_swap_writer() and swap_writer_finish(), for a
 * partition that is not active swap.  Its slots are the bits of free_map,
 * and unlike swap.c's the map pages take the first free slots (as many as
 * the image needs), the stream pages the ones after them in order.  Nor does
 * the last map page get an empty successor when the stream fills it.
 */
struct ntc_swap_writer {
	struct ntc_target *t;
	const unsigned long *free_map;	/* the slots pages written may take */
	struct ntc_image_plan *plan;
	struct ntc_swap_map_page *cur;	/* the map page being filled */
	unsigned long cur_swap;		/* its slot */
	unsigned long first_map;	/* slot of the first map page */
	unsigned long map_slot;		/* last slot taken by a map page */
	unsigned long data_slot;	/* last slot taken by a stream page (or map) */
	unsigned int k;			/* entries in cur */
	unsigned long pages;		/* stream pages */
	unsigned long written;		/* stream pages queued or left in place */
	unsigned long last_slot;	/* the highest slot the image uses */
	u32 crc;			/* over the stream pages, in map order */
	struct ntc_batch batch;
	struct list_head copies;	/* pages written from a copy */
};

/*
 * Appending a page's own CRC to the image's (crc32_le_combine()) multiplies
 * the running CRC by x^(8 * PAGE_SIZE) modulo the polynomial: linear in the
 * CRC, so four tables of its 256 values per byte give it in four lookups.
 * The kernel's crc32_le_shift() squares its way there on every call, 1 µs
 * under TCG, and the writer appends once per data page.
 */
static u32 crc_page_shift[4][256];

static u32 combine_page(u32 crc, u32 page_crc)
{
	return crc_page_shift[0][crc & 0xff] ^ crc_page_shift[1][(crc >> 8) & 0xff] ^
	       crc_page_shift[2][(crc >> 16) & 0xff] ^ crc_page_shift[3][crc >> 24] ^ page_crc;
}

/* Fills the tables; refuses the load if they disagree with the kernel's combine. */
int ntc_image_init(void)
{
	u32 crc = 0;
	int i, b;

	for (i = 0; i < 4; i++)
		for (b = 0; b < 256; b++)
			crc_page_shift[i][b] = crc32_le_shift((u32)b << (8 * i), PAGE_SIZE);
	for (i = 0; i < 16; i++) {
		crc = crc * 0x9e3779b9 + i;
		if (combine_page(crc, i) != crc32_le_combine(crc, i, PAGE_SIZE)) {
			pr_err("the table-driven CRC-32 combine disagrees with crc32_le_combine() for %08x: this ntc.ko is miscompiled and does not load\n",
			       crc);
			return -EINVAL;
		}
	}
	return 0;
}

/* alloc_swapdev_block(): the next free slot after *cursor */
static unsigned long alloc_slot(struct ntc_swap_writer *w, unsigned long *cursor)
{
	*cursor = find_next_bit(w->free_map, w->t->area_pages, *cursor + 1);
	return *cursor;
}

/*
 * Queues buf for slot.  The batch writes asynchronously, so a buffer that
 * changes before the batch is waited for (the snapshot's reused one, the map
 * page being filled) is written from a copy, as swap.c's write_page() does.
 */
static int write_page(struct ntc_swap_writer *w, void *buf, unsigned long slot,
		      bool copy)
{
	struct page *page;

	if (copy) {
		page = alloc_page(GFP_KERNEL);
		if (!page)
			return -ENOMEM;
		copy_page(page_address(page), buf);
		list_add(&page->lru, &w->copies);
	} else {
		page = virt_to_page(buf);
	}
	ntc_mark_written(w->t, ntc_slot_sector(w->t, slot), NTC_SECT_PER_BLK);
	return ntc_batch_add(&w->batch, page, ntc_slot_sector(w->t, slot));
}

static void release_swap_writer(struct ntc_swap_writer *w)
{
	struct page *page, *tmp;

	list_for_each_entry_safe(page, tmp, &w->copies, lru) {
		list_del(&page->lru);
		__free_page(page);
	}
	free_page((unsigned long)w->cur);
	w->cur = NULL;
}

/*
 * Reserves the slots for an image of pages stream pages (plan->reused of
 * them left where the previous image has them) and the map pages listing
 * them, and takes the first map page.  plan->slots has a bit set for every
 * slot of the area new pages may take: free in disk 1's swap at the
 * snapshot (slot 0 never), and not the previous image's if pages are left
 * there.
 */
static int get_swap_writer(struct ntc_swap_writer *w, struct ntc_target *t,
			   struct ntc_image_plan *plan, unsigned long pages, unsigned long nmap)
{
	unsigned long nfree = bitmap_weight(plan->slots, t->area_pages);
	unsigned long i;

	if (pages - plan->reused + nmap > nfree) {
		pr_err("image needs %lu pages, snapshot area has %lu free\n",
		       pages - plan->reused + nmap, nfree);
		return -ENOSPC;
	}
	memset(w, 0, sizeof(*w));
	w->cur = (void *)get_zeroed_page(GFP_KERNEL);
	if (!w->cur)
		return -ENOMEM;
	w->t = t;
	w->free_map = plan->slots;
	w->plan = plan;
	w->pages = pages;
	w->cur_swap = alloc_slot(w, &w->map_slot);
	w->first_map = w->cur_swap;
	/* the stream starts after the last slot reserved for a map page */
	w->data_slot = w->map_slot;
	for (i = 1; i < nmap; i++)
		alloc_slot(w, &w->data_slot);
	w->crc = ~0U;
	INIT_LIST_HEAD(&w->copies);
	ntc_batch_init(&w->batch, t->dst);
	return 0;
}

/*
 * Queues one stream page; copy: buf changes before the batch is waited for.
 * A data page (ref) the plan left in the previous image's slot is listed
 * there, not written; any other gets a new slot, which ref records.
 */
static int swap_write_page(struct ntc_swap_writer *w, void *buf, bool copy,
			   struct ntc_page_ref *ref)
{
	unsigned long offset;
	int err;

	if (w->written >= w->pages)	/* more than snapshot_get_image_size() */
		return -EIO;
	/* a data page left in place has the content, so the CRC, it had */
	if (ref && !ref->slot)
		ref->crc = crc32_le(0, buf, PAGE_SIZE);
	w->crc = ref ? combine_page(w->crc, ref->crc) : crc32_le(w->crc, buf, PAGE_SIZE);
	if (ref && ref->slot) {
		offset = ref->slot;
	} else {
		offset = alloc_slot(w, &w->data_slot);
		err = write_page(w, buf, offset, copy);
		if (err)
			return err;
		if (ref)
			ref->slot = offset;
	}
	w->last_slot = max(w->last_slot, offset);
	w->cur->entries[w->k++] = offset;
	w->written++;
	if (w->k >= NTC_MAP_PAGE_ENTRIES && w->written < w->pages) {
		offset = alloc_slot(w, &w->map_slot);
		w->cur->next_swap = offset;
		err = write_page(w, w->cur, w->cur_swap, true);
		if (err)
			return err;
		clear_page(w->cur);
		w->cur_swap = offset;
		w->k = 0;
	}
	return 0;
}

/* The last map page; it stays allocated until the batch is waited for. */
static int flush_swap_writer(struct ntc_swap_writer *w)
{
	return write_page(w, w->cur, w->cur_swap, false);
}

/* Waits for every page queued; then no page of the image is in flight. */
static int swap_writer_finish(struct ntc_swap_writer *w, int err)
{
	int ret;

	if (!err)
		err = flush_swap_writer(w);
	ret = ntc_batch_wait(&w->batch);
	if (!err)
		err = ret;
	if (!err && w->written != w->pages)
		err = -EIO;
	release_swap_writer(w);
	return err;
}

/*
 * swap.c's save_image(): the snapshot's pages in stream order, the header
 * first.  Data pages are written straight from the snapshot's copy, which
 * stays allocated until swsusp_free(); the header and the pfn lists come in
 * one reused buffer.
 */
static int save_image(struct ntc_swap_writer *w)
{
	struct ntc_snapshot_handle snapshot = { 0 };
	unsigned long head = w->pages - w->plan->count;	/* header and pfn pages */
	struct ntc_page_ref *ref;
	void *buf0 = NULL;
	int ret;

	for (;;) {
		ret = ntc_k.snapshot_read_next(&snapshot);
		if (ret <= 0)
			return ret;
		if (!buf0)
			buf0 = snapshot.buffer;
		ref = w->written >= head && w->written < w->pages ?
		      &w->plan->refs[w->written - head] : NULL;
		ret = swap_write_page(w, snapshot.buffer, snapshot.buffer == buf0, ref);
		if (ret)
			return ret;
		cond_resched();	/* the guest runs: the CRC of every page must not hold a CPU */
		if (w->written == w->pages / 2)
			ntc_test_point("writing");
	}
}

/*
 * New pages take slots of free_map, and of avail too if it is given.
 * On success st->pages, st->reused, st->crc32, st->first_map and
 * st->last_slot are set, and plan lists every data page's slot (for the
 * next checkpoint, ntc_reuse_commit()).
 */
int ntc_image_write(struct ntc_target *t, const unsigned long *free_map, const unsigned long *avail,
		    struct ntc_image_plan *plan, struct ntc_image_stats *st)
{
	unsigned long pages = ntc_k.snapshot_get_image_size();
	unsigned long nmap = DIV_ROUND_UP(pages, NTC_MAP_PAGE_ENTRIES);
	struct ntc_swap_writer w;
	ktime_t start = ktime_get();
	int err;

	err = ntc_image_plan(plan, t, free_map, avail, pages, nmap);
	st->plan_us = ktime_us_delta(ktime_get(), start);
	if (err)
		return err;
	err = get_swap_writer(&w, t, plan, pages, nmap);
	if (err)
		return err;
	err = save_image(&w);
	err = swap_writer_finish(&w, err);
	st->pages = w.written;
	st->reused = plan->reused;
	st->first_map = w.first_map;
	st->last_slot = max3(w.map_slot, w.data_slot, w.last_slot);
	st->crc32 = ~w.crc;
	st->write_us = ktime_us_delta(ktime_get(), start);
	return err;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The holdings (ntc_format.h): which area slots a committed checkpoint
 * holds, written with it, so that the next checkpoint can keep it
 * resumable even when nothing in memory says which slots those are: the
 * first checkpoint after a boot or a module load, onto a disk 2 whose page
 * 0 names an earlier one.
 *
 * They are written at the commit after the image and the journal's index,
 * into the free slots after those, and before the history, which lists
 * their pages among the blocks this checkpoint wrote.  Like the history,
 * holdings that cannot be written or read never fail a checkpoint: the
 * next one writes in place.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/bitmap.h>
#include "ntc.h"

/* Runs of clear bits of spare from slot 1 on; with w, added as extents. */
static unsigned long held_runs(const unsigned long *spare, unsigned long bits, struct ntc_chain_writer *w)
{
	unsigned long s = 1, e, runs = 0;

	for (;;) {
		s = find_next_zero_bit(spare, bits, s);
		if (s >= bits)
			return runs;
		e = find_next_bit(spare, bits, s);
		if (w) {
			struct ntc_holding_extent x = { .first_slot = s, .slots = e - s };

			ntc_chain_add(w, &x);
		}
		runs++;
		s = e;
	}
}

/*
 * Writes the holdings of the checkpoint being committed into slots of map
 * past *last, and names them in rec; *last becomes their last slot.  Only
 * an I/O error fails.
 */
int ntc_holdings_write(struct ntc_target *t, const unsigned long *free_map, const struct ntc_image_plan *plan,
		       const unsigned long *map, unsigned long *last, struct ntc_record *rec)
{
	struct ntc_chain_writer w = { 0 };
	unsigned long *spare, *room = NULL, i;
	int err = -ENOMEM;

	rec->holdings_slot = 0;
	rec->holdings_pages = 0;
	rec->holdings_crc32 = 0;
	spare = bitmap_alloc(t->area_pages, GFP_KERNEL);
	if (spare)
		room = bitmap_alloc(t->area_pages, GFP_KERNEL);
	if (room) {
		ntc_reuse_unheld(spare, t, free_map, plan);
		/* map may have slots the delta wrote, which are held: not for the chain itself */
		bitmap_and(room, map, spare, t->area_pages);
		err = ntc_chain_writer_start(&w, t->dst, t->area_start, NTC_HOLDINGS_MAGIC, room, t->area_pages,
					     *last, held_runs(spare, t->area_pages, NULL));
	}
	if (err || !w.npages) {
		pr_warn("no %s to record the slots this checkpoint holds: the next one is written in place\n",
			err == -ENOSPC ? "room after the image" : "memory");
		err = 0;
		goto out;
	}
	held_runs(spare, t->area_pages, &w);
	err = ntc_chain_writer_finish(&w);
	if (err)
		goto out;
	for (i = 0; i < w.npages; i++)
		ntc_mark_written(t, ntc_slot_sector(t, w.slots[i]), NTC_SECT_PER_BLK);
	*last = w.slots[w.npages - 1];
	rec->holdings_slot = w.slots[0];
	rec->holdings_pages = w.npages;
	rec->holdings_crc32 = ~w.crc;
out:
	ntc_chain_writer_free(&w);
	bitmap_free(room);
	bitmap_free(spare);
	return err;
}

/*
 * The area slots the checkpoint page 0 names does not hold, from its
 * holdings: all but page 0, the holdings' extents and pages and the
 * history's pages.  NULL if it has none, or they do not check (as
 * ntc-info --check checks them, but for the CRC being read first).
 */
unsigned long *ntc_holdings_spare(const struct ntc_target *t)
{
	const struct ntc_record *rec = t->page0;
	struct ntc_chain held = { 0 }, history = { 0 };
	unsigned long *spare, i;
	u64 end = 0;		/* of the last extent; slot 0 is page 0 */
	bool ok = false;

	if (!rec->holdings_pages)
		return NULL;
	spare = bitmap_alloc(t->area_pages, GFP_KERNEL);
	if (!spare)
		return NULL;
	bitmap_fill(spare, t->area_pages);
	clear_bit(0, spare);
	if (!ntc_chain_read(&held, t->dst, t->area_start, t->area_pages, NTC_HOLDINGS_MAGIC, rec->holdings_slot,
			    rec->holdings_pages, rec->holdings_crc32) ||
	    !ntc_chain_read(&history, t->dst, t->area_start, t->area_pages, NTC_HISTORY_MAGIC, rec->history_slot,
			    rec->history_pages, rec->history_crc32))
		goto out;
	for (i = 0; i < held.count; i++) {
		const struct ntc_holding_extent *e = (const struct ntc_holding_extent *)held.entries + i;

		if (e->first_slot <= end || e->first_slot >= t->area_pages || !e->slots ||
		    e->slots > t->area_pages - e->first_slot || e->pad)
			goto out;	/* from slot 1 on, inside the area, sorted, apart */
		bitmap_clear(spare, e->first_slot, e->slots);
		end = e->first_slot + e->slots;
	}
	for (i = 0; i < held.pages; i++)
		if (!test_and_clear_bit(held.page_slots[i], spare))
			goto out;	/* inside an extent, or listed twice */
	for (i = 0; i < history.pages; i++)
		clear_bit(history.page_slots[i], spare);
	ok = true;
out:
	ntc_chain_free(&held);
	ntc_chain_free(&history);
	if (ok)
		return spare;
	pr_warn("the holdings or the history of checkpoint %llu on %pg do not check, so which slots it holds is not known: this checkpoint is written in place\n",
		rec->sequence, t->area);
	bitmap_free(spare);
	return NULL;
}

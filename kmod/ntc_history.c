// SPDX-License-Identifier: GPL-2.0
/*
 * The snapshot area's change history (ntc_format.h): which blocks of disk 2
 * the recent checkpoints wrote, so that the host's ntc-send ships a
 * checkpoint by reading only what changed.
 *
 * The history that page 0 names lies in slots that were free in disk 1's
 * swap, which this checkpoint may overwrite, so it is read before anything
 * is written.  After the image, the new one goes into free slots past the
 * image's last: the old extents of the generations still kept, the old
 * chain's own pages (the previous generation wrote them), and every block
 * this checkpoint wrote.  Page 0, written last, names it.
 *
 * A history that cannot be read or written costs only the ability to ship
 * incrementally (the next send is a full one); it never fails a checkpoint.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/bitmap.h>
#include <linux/string.h>
#include "ntc.h"

#define HISTORY_CAPACITY ((unsigned long)NTC_HISTORY_MAX_PAGES * NTC_CHAIN_PAGE_ENTRIES)

/* Appends the chain's extents and its own pages to h->ext; false if damaged. */
static bool read_chain(struct ntc_history *h, struct ntc_target *t, const struct ntc_record *rec)
{
	u64 disk_blocks = t->dst_blocks;
	struct ntc_chain c;
	bool ok = false;
	unsigned long i;

	if (!ntc_chain_read(&c, t->dst, t->area_start, t->area_pages, NTC_HISTORY_MAGIC,
			    rec->history_slot, rec->history_pages, rec->history_crc32))
		goto out;
	h->ext = kvmalloc_array(c.count + c.pages, sizeof(*h->ext), GFP_KERNEL);
	if (!h->ext)
		goto out;
	for (i = 0; i < c.count; i++) {
		const struct ntc_history_extent *e = (const struct ntc_history_extent *)c.entries + i;

		if (e->generation <= rec->history_since ||
		    e->generation > rec->generation || !e->blocks ||
		    e->first_block >= disk_blocks ||
		    e->blocks > disk_blocks - e->first_block)
			goto out;
		h->ext[h->count++] = *e;
	}
	for (i = 0; i < c.pages; i++)
		h->ext[h->count++] = (struct ntc_history_extent) {
			.first_block = (t->area_start >> 3) + c.page_slots[i],
			.generation = rec->generation,
			.blocks = 1,
		};
	ok = true;
out:
	ntc_chain_free(&c);
	return ok;
}

/*
 * Reads the history page 0 names, before the checkpoint writes anything.
 * After a checkpoint that did not commit, or without one, the history
 * starts afresh with this checkpoint.
 */
int ntc_history_load(struct ntc_history *h, struct ntc_target *t)
{
	const struct ntc_record *rec = t->page0;

	memset(h, 0, sizeof(*h));
	if (ntc_record_sealed(rec) && memchr_inv(rec->area_id, 0, sizeof(rec->area_id))) {
		memcpy(h->area_id, rec->area_id, sizeof(h->area_id));
		h->generation = rec->generation + 1;
	} else {
		get_random_bytes(h->area_id, sizeof(h->area_id));
		h->generation = 1;
	}
	h->since = h->generation;
	if (!ntc_area_committed(t) || t->area_start % NTC_SECT_PER_BLK ||
	    rec->history_since > rec->generation || rec->history_pages > NTC_HISTORY_MAX_PAGES)
		return 0;
	if (!rec->history_pages) {
		h->since = rec->history_since;
		return 0;
	}
	if (read_chain(h, t, rec)) {
		h->since = rec->history_since;
	} else {
		pr_warn("the change history on %pg is damaged: it starts afresh with this checkpoint\n",
			t->area);
		h->count = 0;
	}
	return 0;
}

void ntc_history_free(struct ntc_history *h)
{
	kvfree(h->ext);
	h->ext = NULL;
	ntc_chain_writer_free(&h->chain);
}

static void emit(struct ntc_chain_writer *w, u64 first_block, u64 blocks, u64 generation)
{
	while (blocks) {
		u32 n = min_t(u64, blocks, U32_MAX);
		struct ntc_history_extent e = { .first_block = first_block, .generation = generation, .blocks = n };

		ntc_chain_add(w, &e);
		first_block += n;
		blocks -= n;
	}
}

/* Runs of blocks this checkpoint wrote; with w, emitted as extents. */
static unsigned long written_runs(struct ntc_target *t, struct ntc_chain_writer *w, u64 generation)
{
	unsigned long b = 0, e, runs = 0;

	for (;;) {
		b = find_next_bit(t->written, t->dst_blocks, b);
		if (b >= t->dst_blocks)
			return runs;
		e = find_next_zero_bit(t->written, t->dst_blocks, b);
		runs += DIV_ROUND_UP(e - b, (u64)U32_MAX);
		if (w)
			emit(w, b, e - b, generation);
		b = e;
	}
}

/*
 * The oldest generation that must go so that what is kept fits: no more
 * than NTC_HISTORY_GENERATIONS, no more than the chain's capacity.
 */
static u64 choose_since(const struct ntc_history *h, unsigned long new_runs)
{
	unsigned long per_gen[NTC_HISTORY_GENERATIONS + 1] = { 0 };
	unsigned long i, total;
	u64 since = max_t(s64, h->since, (s64)h->generation - NTC_HISTORY_GENERATIONS);

	for (i = 0; i < h->count; i++)
		if (h->ext[i].generation > since)
			per_gen[h->generation - h->ext[i].generation]++;
	total = new_runs;
	for (i = 0; i < h->generation - since; i++)
		total += per_gen[i];
	while (since < h->generation && total > HISTORY_CAPACITY)
		total -= per_gen[h->generation - ++since];
	return since;
}

/*
 * Writes the new history into slots of map past last_slot and puts it into
 * rec.  Called after the image is written and before page 0; the slots it
 * took stay in h->chain.
 */
int ntc_history_write(struct ntc_history *h, struct ntc_target *t, const unsigned long *map,
		      unsigned long last_slot, struct ntc_record *rec)
{
	unsigned long runs = written_runs(t, NULL, 0), kept = runs, i;
	u64 since = h->since < h->generation ? choose_since(h, runs) : h->generation;
	struct ntc_chain_writer *w = &h->chain;
	int err;

	memcpy(rec->area_id, h->area_id, sizeof(rec->area_id));
	rec->generation = h->generation;
	rec->history_since = h->generation;
	rec->history_slot = 0;
	rec->history_pages = 0;
	rec->history_crc32 = 0;
	ntc_status.generation = h->generation;
	ntc_status.history_since = h->generation;
	ntc_status.blocks_written = bitmap_weight(t->written, t->dst_blocks);
	if (since == h->generation)
		return 0;
	for (i = 0; i < h->count; i++)
		kept += h->ext[i].generation > since;
	if (!kept) {
		rec->history_since = since;
		ntc_status.history_since = since;
		return 0;
	}
	err = ntc_chain_writer_start(w, t->dst, t->area_start, NTC_HISTORY_MAGIC, map, t->area_pages,
				     last_slot, kept);
	if (err) {
		pr_warn("no %s for the change history: it starts afresh\n",
			err == -ENOSPC ? "room after the image" : "memory");
		ntc_chain_writer_free(w);
		return 0;
	}
	for (i = 0; i < h->count; i++)
		if (h->ext[i].generation > since)
			emit(w, h->ext[i].first_block, h->ext[i].blocks, h->ext[i].generation);
	written_runs(t, w, h->generation);
	err = ntc_chain_writer_finish(w);
	if (err)
		return err;
	rec->history_since = since;
	rec->history_slot = w->slots[0];
	rec->history_pages = w->npages;
	rec->history_crc32 = ~w->crc;
	ntc_status.history_since = since;
	return 0;
}

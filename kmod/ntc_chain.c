// SPDX-License-Identifier: GPL-2.0
/*
 * Chains of pages in the snapshot area's free slots (ntc_format.h): the
 * change history, the redo journal and the holdings share the layout, a
 * magic, the next page's slot, a count and 24-byte entries, with a CRC-32
 * over the pages in chain order kept in the record.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/crc32.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include "ntc.h"

static_assert(sizeof(struct ntc_history_extent) == NTC_CHAIN_ENTRY_BYTES &&
	      sizeof(struct ntc_journal_extent) == NTC_CHAIN_ENTRY_BYTES &&
	      sizeof(struct ntc_holding_extent) == NTC_CHAIN_ENTRY_BYTES,
	      "a chain page's entries are of one size");

/*
 * Reserves the pages for entries entries in slots of map after slot after;
 * -ENOSPC if the area has not that many.  With no entries, no pages.
 */
int ntc_chain_writer_start(struct ntc_chain_writer *w, struct block_device *bdev, sector_t area_start,
			   const char *magic, const unsigned long *map, unsigned long map_bits,
			   unsigned long after, unsigned long entries)
{
	unsigned long i, s = after;

	memset(w, 0, sizeof(*w));
	w->bdev = bdev;
	w->area_start = area_start;
	w->magic = magic;
	w->crc = ~0U;
	w->npages = DIV_ROUND_UP(entries, NTC_CHAIN_PAGE_ENTRIES);
	if (!w->npages)
		return 0;
	w->slots = kmalloc_array(w->npages, sizeof(*w->slots), GFP_KERNEL);
	w->page = (void *)get_zeroed_page(GFP_KERNEL);
	if (!w->slots || !w->page)
		return -ENOMEM;
	for (i = 0; i < w->npages; i++) {
		s = find_next_bit(map, map_bits, s + 1);
		if (s >= map_bits)
			return -ENOSPC;
		w->slots[i] = s;
	}
	return 0;
}

static void write_chain_page(struct ntc_chain_writer *w)
{
	struct ntc_chain_page *p = w->page;

	memcpy(p->magic, w->magic, 8);
	p->next_slot = w->index + 1 < w->npages ? w->slots[w->index + 1] : 0;
	w->crc = crc32_le(w->crc, (const u8 *)p, PAGE_SIZE);
	if (!w->err)
		w->err = ntc_io_page(w->bdev, w->area_start + (w->slots[w->index] << 3), p,
				     REQ_OP_WRITE);
	w->index++;
	clear_page(p);
}

void ntc_chain_add(struct ntc_chain_writer *w, const void *entry)
{
	struct ntc_chain_page *p = w->page;

	if (w->index >= w->npages) {	/* more entries than reserved for */
		w->err = -EIO;
		return;
	}
	memcpy(&p->extents[p->count++], entry, NTC_CHAIN_ENTRY_BYTES);
	if (p->count == NTC_CHAIN_PAGE_ENTRIES)
		write_chain_page(w);
}

/* Writes the last page; then slots[0], npages and ~crc describe the chain. */
int ntc_chain_writer_finish(struct ntc_chain_writer *w)
{
	struct ntc_chain_page *p = w->page;

	if (p && p->count)
		write_chain_page(w);
	if (!w->err && w->index != w->npages)
		w->err = -EIO;
	return w->err;
}

void ntc_chain_writer_free(struct ntc_chain_writer *w)
{
	free_page((unsigned long)w->page);
	kfree(w->slots);
	memset(w, 0, sizeof(*w));
}

/*
 * Reads the chain of pages pages from slot first, whose pages have magic
 * and whose CRC is crc: its entries and its pages' slots.  False if it
 * cannot be read or does not check.
 */
bool ntc_chain_read(struct ntc_chain *c, struct block_device *bdev, sector_t area_start,
		    unsigned long area_pages, const char *magic, u64 first, u32 pages, u32 crc)
{
	struct ntc_chain_page *page;
	u64 slot = first;
	u32 n, sum = ~0U;
	bool ok = false;

	memset(c, 0, sizeof(*c));
	c->entries = kvmalloc_array((unsigned long)pages * NTC_CHAIN_PAGE_ENTRIES, NTC_CHAIN_ENTRY_BYTES,
				    GFP_KERNEL);
	c->page_slots = kvmalloc_array(pages, sizeof(*c->page_slots), GFP_KERNEL);
	page = (void *)__get_free_page(GFP_KERNEL);
	if (!c->entries || !c->page_slots || !page)
		goto out;
	for (n = 0; n < pages; n++) {
		if (!slot || slot >= area_pages ||
		    ntc_io_page(bdev, area_start + (slot << 3), page, REQ_OP_READ) ||
		    memcmp(page->magic, magic, 8) || page->count > NTC_CHAIN_PAGE_ENTRIES)
			goto out;
		sum = crc32_le(sum, (const u8 *)page, PAGE_SIZE);
		memcpy((u8 *)c->entries + c->count * NTC_CHAIN_ENTRY_BYTES, page->extents,
		       page->count * NTC_CHAIN_ENTRY_BYTES);
		c->count += page->count;
		c->page_slots[c->pages++] = slot;
		slot = page->next_slot;
	}
	ok = !slot && ~sum == crc;
out:
	free_page((unsigned long)page);
	return ok;
}

void ntc_chain_free(struct ntc_chain *c)
{
	kvfree(c->entries);
	kvfree(c->page_slots);
	memset(c, 0, sizeof(*c));
}

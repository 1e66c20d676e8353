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
 *   2. disk delta, image pages, map pages; wait for all of them
 *   3. page 0 := S1SUSPEND header + record state CHECKPOINT (flush + FUA)
 */
#include <linux/kernel.h>
#include <linux/crc32.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/ktime.h>
#include "ntc.h"

void ntc_record_seal(struct ntc_record *rec)
{
	rec->record_crc32 = 0;
	rec->record_crc32 = ~crc32_le(~0U, (const u8 *)rec, sizeof(*rec));
}

static int write_page0(struct ntc_target *t)
{
	return ntc_io_page(t->dst, t->area_start, t->page0,
			   REQ_OP_WRITE | REQ_SYNC | REQ_PREFLUSH | REQ_FUA);
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
	ntc_record_seal(rec);
	memcpy((char *)t->page0 + NTC_OFF_SIG, NTC_AREA_SIG, NTC_SIG_LEN);
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
 * free_map has a bit set for every slot of the area that was free in disk 1's
 * swap at the snapshot (slot 0 never).  On success st->pages, st->crc32 and
 * st->first_map are set.
 */
int ntc_image_write(struct ntc_target *t, const unsigned long *free_map,
		    struct ntc_image_stats *st)
{
	unsigned long pages = ntc_k.snapshot_get_image_size();
	unsigned long nmap = DIV_ROUND_UP(pages, NTC_MAP_PAGE_ENTRIES);
	unsigned long nfree = bitmap_weight(free_map, t->area_pages);
	unsigned long *map_off = NULL, slot = 0, k = 0;
	struct ntc_swap_map_page **map = NULL;
	struct ntc_snapshot_handle h = { 0 };
	struct ntc_batch batch;
	LIST_HEAD(copies);
	struct page *p, *tmp;
	void *buf0 = NULL;
	u32 crc = ~0U;
	ktime_t start = ktime_get();
	int err = 0, ret;
	unsigned long i;

	if (pages + nmap > nfree) {
		pr_err("ntc: image needs %lu pages, snapshot area has %lu free\n",
		       pages + nmap, nfree);
		return -ENOSPC;
	}
	map = kvcalloc(nmap, sizeof(*map), GFP_KERNEL);
	map_off = kvcalloc(nmap, sizeof(*map_off), GFP_KERNEL);
	if (!map || !map_off) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < nmap; i++) {
		map[i] = (void *)get_zeroed_page(GFP_KERNEL);
		if (!map[i]) {
			err = -ENOMEM;
			goto out;
		}
		slot = find_next_bit(free_map, t->area_pages, slot + 1);
		map_off[i] = slot;
		if (i)
			map[i - 1]->next_swap = slot;
	}
	ntc_batch_init(&batch, t->dst);
	for (;;) {
		void *data;

		ret = ntc_k.snapshot_read_next(&h);
		if (ret <= 0) {
			err = ret;
			break;
		}
		if (k >= pages) {
			err = -EIO;
			break;
		}
		data = h.buffer;
		if (!buf0)
			buf0 = data;
		if (data == buf0) {
			/* header and pfn lists come in one reused buffer */
			p = alloc_page(GFP_KERNEL);
			if (!p) {
				err = -ENOMEM;
				break;
			}
			copy_page(page_address(p), data);
			list_add(&p->lru, &copies);
		} else {
			p = virt_to_page(data);
		}
		crc = crc32_le(crc, page_address(p), PAGE_SIZE);
		slot = find_next_bit(free_map, t->area_pages, slot + 1);
		map[k / NTC_MAP_PAGE_ENTRIES]->entries[k % NTC_MAP_PAGE_ENTRIES] = slot;
		err = ntc_batch_add(&batch, p, t->area_start + ((sector_t)slot << 3));
		if (err)
			break;
		if (++k == pages / 2)
			ntc_test_point("writing");
	}
	for (i = 0; !err && i < nmap; i++)
		err = ntc_batch_add(&batch, virt_to_page(map[i]),
				    t->area_start + ((sector_t)map_off[i] << 3));
	ret = ntc_batch_wait(&batch);
	if (!err)
		err = ret;
	if (!err && k != pages)
		err = -EIO;
	list_for_each_entry_safe(p, tmp, &copies, lru) {
		list_del(&p->lru);
		__free_page(p);
	}
	st->pages = k;
	st->first_map = map_off[0];
	st->crc32 = ~crc;
	st->write_us = ktime_us_delta(ktime_get(), start);
out:
	if (map)
		for (i = 0; i < nmap; i++)
			if (map[i])
				free_page((unsigned long)map[i]);
	kvfree(map);
	kvfree(map_off);
	return err;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The incremental image: pages the previous image already holds.
 *
 * A checkpoint onto the area that holds this boot's last committed one
 * (same area_id and generation) need not write an image page whose content
 * the previous image stored in a slot that nothing has written since: its
 * swap map names that slot, so the image stays in the stock format.  Pages
 * are equal when their 128-bit hashes are: SipHash-2-4 under two keys drawn
 * at the first checkpoint after load, a pseudorandom function whose outputs
 * no program in the guest sees, so none can make two pages collide.  Not
 * BLAKE2s: under TCG its SSSE3 code costs 121 us a page, two SipHash 6.6 us
 * (Documentation/kmod.md).  The previous image's data pages are kept as
 * (pfn, slot, hash, CRC) in stream order, 40 bytes per image page.
 *
 * New pages go only to slots the previous image does not use.  If they do
 * not fit beside it, the image is written whole into any free slot, as
 * without a previous image.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/siphash.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include "ntc.h"

static siphash_key_t hash_key;
static bool hash_key_set;

/* The last committed checkpoint of this boot, or none (generation 0). */
static struct {
	u8 area_id[16];
	u64 generation;
	struct ntc_page_ref *refs;	/* its image's data pages */
	unsigned long count;
	unsigned long *spare;		/* area slots it does not use */
	unsigned long spare_bits;
} prev;

/*
 * SipHash-2-4 with its 128-bit output (its authors' variant: 0xee and 0xdd
 * mixed into the state), over a message of whole 64-bit words: one pass
 * over a page where two 64-bit SipHashes under two keys took two.  The
 * kernel's lib/siphash.c gives only the 64-bit output; the rounds and
 * constants are its own (linux/siphash.h).
 */
static void siphash128(const void *data, size_t len, const siphash_key_t *key, u64 *out)
{
	u64 v0 = SIPHASH_CONST_0 ^ key->key[0];
	u64 v1 = SIPHASH_CONST_1 ^ key->key[1] ^ 0xee;
	u64 v2 = SIPHASH_CONST_2 ^ key->key[0];
	u64 v3 = SIPHASH_CONST_3 ^ key->key[1];
	const __le64 *m = data, *end = m + len / sizeof(u64);
	u64 last = (u64)len << 56, w;
	int i;

	for (; m < end; m++) {
		w = le64_to_cpu(*m);
		v3 ^= w;
		SIPHASH_PERMUTATION(v0, v1, v2, v3);
		SIPHASH_PERMUTATION(v0, v1, v2, v3);
		v0 ^= w;
	}
	v3 ^= last;
	SIPHASH_PERMUTATION(v0, v1, v2, v3);
	SIPHASH_PERMUTATION(v0, v1, v2, v3);
	v0 ^= last;
	v2 ^= 0xee;
	for (i = 0; i < 4; i++)
		SIPHASH_PERMUTATION(v0, v1, v2, v3);
	out[0] = v0 ^ v1 ^ v2 ^ v3;
	v1 ^= 0xdd;
	for (i = 0; i < 4; i++)
		SIPHASH_PERMUTATION(v0, v1, v2, v3);
	out[1] = v0 ^ v1 ^ v2 ^ v3;
}

/*
 * The reference vectors (SipHash's vectors.h, vectors_sip128) for the key
 * 00 01 .. 0f and the messages 00 .. 07 and 00 .. 0f, as little-endian words.
 */
int ntc_reuse_selftest(void)
{
	static const u64 expect[2][2] = {
		{ 0x61f55862baa9623bULL, 0xb49714f364e2830fULL },
		{ 0xbb54b067caa4e26eULL, 0x77052385bf1533fdULL },
	};
	const siphash_key_t key = { { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL } };
	u8 msg[16];
	u64 out[2];
	int i;

	for (i = 0; i < sizeof(msg); i++)
		msg[i] = i;
	for (i = 0; i < 2; i++) {
		siphash128(msg, 8 * (i + 1), &key, out);
		if (out[0] != expect[i][0] || out[1] != expect[i][1]) {
			pr_err("SipHash-2-4-128 of the %d-byte reference message is %016llx%016llx, not the reference's: this ntc.ko is miscompiled and does not load\n",
			       8 * (i + 1), out[1], out[0]);
			return -EINVAL;
		}
	}
	return 0;
}

static void hash_page(const void *page, u64 *out)
{
	if (!hash_key_set) {
		get_random_bytes(&hash_key, sizeof(hash_key));
		hash_key_set = true;
	}
	siphash128(page, PAGE_SIZE, &hash_key, out);
}

void ntc_reuse_forget(void)
{
	vfree(prev.refs);
	bitmap_free(prev.spare);
	memset(&prev, 0, sizeof(prev));
}

/*
 * Keeps the previous checkpoint only if the area still holds it, whole:
 * committed, and its journal (if it had one) in place.  If this boot did
 * not commit the one page 0 names, its holdings say which slots it holds
 * (but not its pages' hashes: its image is not reused).
 */
void ntc_reuse_check(const struct ntc_target *t)
{
	const struct ntc_record *rec = t->page0;
	bool whole = ntc_area_committed(t) && !(rec->flags & NTC_RECORD_JOURNAL);

	if (whole && prev.generation && rec->generation == prev.generation &&
	    !memcmp(rec->area_id, prev.area_id, sizeof(prev.area_id)) && prev.spare_bits == t->area_pages)
		return;
	ntc_reuse_forget();
	if (!whole)
		return;
	prev.spare = ntc_holdings_spare(t);
	if (!prev.spare)
		return;
	prev.spare_bits = t->area_pages;
	memcpy(prev.area_id, rec->area_id, sizeof(prev.area_id));
	prev.generation = rec->generation;
	pr_info("checkpoint %llu on %pg stays resumable until the next one commits: its holdings say which slots it uses\n",
		rec->sequence, t->area);
}

/* The area slots the previous checkpoint does not use, if it is known and checked. */
const unsigned long *ntc_reuse_spare(const struct ntc_target *t)
{
	return prev.generation && prev.spare_bits == t->area_pages ? prev.spare : NULL;
}

/*
 * Sets in spare the area slots the checkpoint being committed does not
 * hold.  It holds the slots disk 1's swap used at the snapshot (not in
 * free_map), every slot it wrote and the slots its image leaves in place.
 */
void ntc_reuse_unheld(unsigned long *spare, const struct ntc_target *t, const unsigned long *free_map,
		      const struct ntc_image_plan *plan)
{
	unsigned long area = t->area_start >> 3, b, i;

	bitmap_copy(spare, free_map, t->area_pages);
	for (b = find_next_bit(t->written, t->dst_blocks, area);
	     b < min_t(unsigned long, area + t->area_pages, t->dst_blocks);
	     b = find_next_bit(t->written, t->dst_blocks, b + 1))
		clear_bit(b - area, spare);
	for (i = 0; i < plan->count; i++)
		if (plan->refs[i].slot < t->area_pages)
			clear_bit(plan->refs[i].slot, spare);
}

/* After the commit: this checkpoint becomes the previous one.  Its history's slots are held too. */
void ntc_reuse_commit(struct ntc_image_plan *plan, const struct ntc_record *rec, const struct ntc_target *t,
		      const unsigned long *free_map, const u64 *history_slots, unsigned long nhistory)
{
	unsigned long i;

	ntc_reuse_forget();
	prev.spare = bitmap_alloc(t->area_pages, GFP_KERNEL);
	if (!prev.spare)
		return;	/* the next checkpoint starts afresh */
	ntc_reuse_unheld(prev.spare, t, free_map, plan);
	for (i = 0; i < nhistory; i++)
		if (history_slots[i] < t->area_pages)
			clear_bit(history_slots[i], prev.spare);
	prev.spare_bits = t->area_pages;
	memcpy(prev.area_id, rec->area_id, sizeof(prev.area_id));
	prev.generation = rec->generation;
	prev.refs = plan->refs;
	prev.count = plan->count;
	plan->refs = NULL;
}

void ntc_image_plan_free(struct ntc_image_plan *plan)
{
	vfree(plan->refs);
	bitmap_free(plan->slots);
	memset(plan, 0, sizeof(*plan));
}

/* Whether this checkpoint wrote the disk 2 block(s) of area slot. */
static bool slot_written(const struct ntc_target *t, unsigned long slot)
{
	sector_t s = ntc_slot_sector(t, slot);

	return test_bit(s >> 3, t->written) || test_bit((s + NTC_SECT_PER_BLK - 1) >> 3, t->written);
}

/*
 * Walks the snapshot once: each data page's pfn (from the pfn pages) and
 * hash, and the previous image's slot for it if that slot still holds the
 * same content.  Then the slots new pages may take: free_map (and avail, if
 * given: the previous checkpoint is kept) without the previous image's, if
 * the new pages fit there, else without reuse.
 */
int ntc_image_plan(struct ntc_image_plan *plan, const struct ntc_target *t, const unsigned long *free_map,
		   const unsigned long *avail, unsigned long pages, unsigned long nmap)
{
	struct ntc_snapshot_handle snapshot = { 0 };
	unsigned long meta = 0, j = 0, p = 0, i, data;
	const struct ntc_swsusp_info *head;
	int ret;

	memset(plan, 0, sizeof(*plan));
	plan->slots = bitmap_alloc(t->area_pages, GFP_KERNEL);
	if (!plan->slots)
		return -ENOMEM;
	bitmap_copy(plan->slots, free_map, t->area_pages);
	if (avail)
		bitmap_and(plan->slots, plan->slots, avail, t->area_pages);
	if (pages < 1)
		return 0;
	data = pages - 1;	/* refined by the header */
	plan->refs = vzalloc(array_size(data, sizeof(*plan->refs)));
	if (!plan->refs)
		return -ENOMEM;

	for (i = 0;; i++) {
		ret = ntc_k.snapshot_read_next(&snapshot);
		if (ret < 0)
			return ret;
		if (!ret)
			break;
		if (i == 0) {
			head = snapshot.buffer;
			if (head->image_pages > data || head->pages != pages)
				return -EIO;
			data = head->image_pages;
			meta = pages - 1 - data;
		} else if (i <= meta) {
			const unsigned long *pfn = snapshot.buffer;
			unsigned int k;

			for (k = 0; k < PAGE_SIZE / sizeof(long) && j < data; k++)
				plan->refs[j++].pfn = pfn[k];
		} else {
			struct ntc_page_ref *r;

			if (i - 1 - meta >= j)
				return -EIO;
			r = &plan->refs[i - 1 - meta];
			hash_page(snapshot.buffer, r->hash);
			/* The guest runs again: hashing every page must not hold a CPU. */
			cond_resched();
			/* both lists are in ascending pfn order */
			while (p < prev.count && prev.refs[p].pfn < r->pfn)
				p++;
			if (p < prev.count && prev.refs[p].pfn == r->pfn &&
			    prev.refs[p].hash[0] == r->hash[0] && prev.refs[p].hash[1] == r->hash[1] &&
			    prev.refs[p].slot < t->area_pages && test_bit(prev.refs[p].slot, free_map) &&
			    !slot_written(t, prev.refs[p].slot)) {
				r->slot = prev.refs[p].slot;
				r->crc = prev.refs[p].crc;
				plan->reused++;
			}
		}
	}
	if (i != pages)
		return -EIO;
	plan->count = data;
	for (p = 0; p < prev.count; p++)
		if (prev.refs[p].slot < t->area_pages)
			clear_bit(prev.refs[p].slot, plan->slots);
	if (plan->reused && pages - plan->reused + nmap > bitmap_weight(plan->slots, t->area_pages)) {
		pr_info("the image's new pages do not fit beside the previous image: writing it whole\n");
		for (j = 0; j < data; j++)
			plan->refs[j].slot = 0;
		plan->reused = 0;
	}
	if (!plan->reused) {
		bitmap_copy(plan->slots, free_map, t->area_pages);
		if (avail)
			bitmap_and(plan->slots, plan->slots, avail, t->area_pages);
	}
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The snapshot's copy pages, allocated before the freeze.
 *
 * hibernation_snapshot() allocates one free page for every page that the
 * atomic copy will copy (hibernate_preallocate_memory()), with user space
 * frozen: in a 1 GiB guest under nested KVM, 73 thousand pages took 0.6 s
 * of a 1.4 s pause.  Here they are allocated while the guest still runs,
 * right before the freeze, and marked as the hibernation core marks its own:
 * forbidden and free, which keeps them out of the image and lets
 * swsusp_free() release them, in this kernel and in a kernel restored from
 * the image; the snapshot's two bitmaps are made then too.  An ftrace hook
 * on hibernate_preallocate_memory() then only allocates what the guest
 * took in between.  Where that function would reclaim first (the image
 * larger than its limit), the hook gives the pages back and lets it run.
 * A second hook, on swsusp_free(), leaves a restored kernel's free of them
 * until after its thaw.
 *
 * The hooks reach functions and variables private to kernel/power/
 * snapshot.c through kallsyms, with their 6.1 signatures.  A kernel that
 * lacks one of them, or cannot be hooked, keeps the stock preallocation;
 * the second hook needs only swsusp_free() and in_suspend, which the
 * module cannot do without.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ftrace.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/syscore_ops.h>
#include <linux/vmstat.h>
#include "ntc.h"

#define NTC_GFP_IMAGE	(GFP_KERNEL | __GFP_NOWARN)	/* snapshot.c: GFP_IMAGE */
#define NTC_PG_ANY	0				/* snapshot.c: PG_ANY */

/* Set while pages wait for the next hibernate_preallocate_memory(). */
static bool reserved;
/* From ntc_copy_pages_reserve() to ntc_copy_pages_disarm(). */
static bool in_checkpoint;
/*
 * Set by the syscore suspend of a checkpoint, right before the atomic copy:
 * the image has it set, so a kernel restored from it does.
 */
static bool image_copied;
static bool hooked, free_hooked;

static void take_page(struct page *page)
{
	unsigned long pfn = page_to_pfn(page);

	ntc_k.memory_bm_set_bit(*ntc_k.forbidden_pages_map, pfn);
	ntc_k.swsusp_set_page_free(page);
	ntc_k.memory_bm_set_bit(ntc_k.copy_bm, pfn);
	(*ntc_k.alloc_normal)++;
}

/*
 * hibernate_preallocate_memory()'s test for its fast path, "the image as
 * it is fits": at most half of what would be free with the copy pages
 * given back, less metadata, I/O pages and the drivers' reserve.
 */
static bool image_fits_as_is(unsigned long saveable)
{
	unsigned long meta = 0, size;
	long count, max_size;
	int nid, z;

	for_each_online_node(nid) {
		for (z = 0; z < MAX_NR_ZONES; z++) {
			struct zone *zone = &NODE_DATA(nid)->node_zones[z];

			if (populated_zone(zone))
				meta += ntc_k.snapshot_additional_pages(zone);
		}
	}
	count = saveable + global_zone_page_state(NR_FREE_PAGES) + *ntc_k.alloc_normal -
		*ntc_k.totalreserve_pages;
	max_size = (count - (long)(meta + NTC_PAGES_FOR_IO)) / 2 -
		   2 * DIV_ROUND_UP(*ntc_k.reserved_size, PAGE_SIZE);
	size = DIV_ROUND_UP(*ntc_k.image_size, PAGE_SIZE);
	return max_size > 0 && min(size, (unsigned long)max_size) >= saveable;
}

/*
 * What the image will hold, from above: the pages in use less the copy
 * pages, where count_data_pages() also leaves out the bitmaps and the
 * nosave regions.  Counting took 0.07 s of the freeze (1 GiB, nested
 * KVM), and swsusp_save() counts again anyway before it copies.
 */
static unsigned long saveable_at_most(void)
{
	unsigned long in_use = ntc_pages_in_use();

	return in_use > *ntc_k.alloc_normal ? in_use - *ntc_k.alloc_normal : 0;
}

/* Runs instead of hibernate_preallocate_memory() when pages are reserved. */
static int preallocate_with_reserve(void)
{
	unsigned long saveable = saveable_at_most();
	struct page *page;

	WRITE_ONCE(reserved, false);
	if (!image_fits_as_is(saveable)) {
		ntc_k.swsusp_free();
		ntc_status.copy_pages_early = 0;
		return ntc_k.hibernate_preallocate_memory();
	}
	while (*ntc_k.alloc_normal < saveable) {
		page = alloc_page(NTC_GFP_IMAGE);
		if (!page)
			break;	/* as the kernel: the atomic copy tries once more */
		take_page(page);
		ntc_status.copy_pages_frozen++;
	}
	return 0;
}

static void redirect_preallocation(unsigned long ip, unsigned long parent_ip,
				   struct ftrace_ops *ops, struct ftrace_regs *fregs)
{
	if (READ_ONCE(reserved))
		ftrace_instruction_pointer_set(fregs, (unsigned long)preallocate_with_reserve);
}

static void swsusp_free_later(void)
{
}

/*
 * A kernel restored from the image has hibernation_snapshot() free the
 * snapshot's pages right after its early device resume, one at a time,
 * before the other devices resume and user space runs: 72 thousand pages
 * took 0.45 s of a 2.5 s resume under nested KVM.  ntc_checkpoint() frees
 * them after the thaw anyway, so that call is skipped.  in_suspend is 0
 * there (it is not saved), and 1 in the kernel that made the copy; the
 * core's error paths before its syscore suspend still free at once (a
 * failed preallocation may hold most of RAM).
 */
static int note_image_copied(void)
{
	if (READ_ONCE(in_checkpoint))
		WRITE_ONCE(image_copied, true);
	return 0;
}

static struct syscore_ops copy_notice = {
	.suspend = note_image_copied,
};

static void defer_swsusp_free(unsigned long ip, unsigned long parent_ip,
			      struct ftrace_ops *ops, struct ftrace_regs *fregs)
{
	if (READ_ONCE(image_copied) && !*ntc_k.in_suspend) {
		ntc_status.core_free_deferred++;
		ftrace_instruction_pointer_set(fregs, (unsigned long)swsusp_free_later);
	}
}

/*
 * Permanent, as livepatch's: with ftrace turned off (kernel.ftrace_enabled)
 * the hook would not run while pages wait for it, and the kernel would
 * allocate a second set beside them.  So registering fails while ftrace is
 * off, and ftrace cannot be turned off while the hook is in place.
 */
#ifdef CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS
#define HOOK_FLAGS (FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_RECURSION | FTRACE_OPS_FL_PERMANENT)
#else
#define HOOK_FLAGS (FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_SAVE_REGS | \
		    FTRACE_OPS_FL_RECURSION | FTRACE_OPS_FL_PERMANENT)
#endif

static struct ftrace_ops preallocation_hook = {
	.func = redirect_preallocation,
	.flags = HOOK_FLAGS,
};

static struct ftrace_ops swsusp_free_hook = {
	.func = defer_swsusp_free,
	.flags = HOOK_FLAGS,
};

/*
 * With the basic memory bitmaps in place and user space still running: the
 * snapshot's two bitmaps, and about as many copy pages as pages are in
 * use, taken only from memory that is free, never by reclaim, and leaving
 * the kernel's reserve and a cushion free for what runs until the freeze.
 * Whatever is short is allocated inside the freeze, as before.
 */
void ntc_copy_pages_reserve(void)
{
	unsigned long in_use = ntc_pages_in_use();
	unsigned long want = in_use + in_use / 32;
	unsigned long floor = *ntc_k.totalreserve_pages + NTC_PAGES_FOR_IO +
			      2 * DIV_ROUND_UP(*ntc_k.reserved_size, PAGE_SIZE) +
			      totalram_pages() / 64;
	gfp_t gfp = (NTC_GFP_IMAGE | __GFP_NOMEMALLOC) & ~__GFP_RECLAIM;
	struct page *page;

	WRITE_ONCE(in_checkpoint, true);
	if (!hooked || IS_ENABLED(CONFIG_HIGHMEM))
		return;
	*ntc_k.alloc_normal = 0;
	if (ntc_k.memory_bm_create(ntc_k.orig_bm, NTC_GFP_IMAGE, NTC_PG_ANY) ||
	    ntc_k.memory_bm_create(ntc_k.copy_bm, NTC_GFP_IMAGE, NTC_PG_ANY)) {
		ntc_k.swsusp_free();
		return;
	}
	while (*ntc_k.alloc_normal < want && global_zone_page_state(NR_FREE_PAGES) > floor) {
		page = alloc_page(gfp);
		if (!page)
			break;
		take_page(page);
		cond_resched();
	}
	ntc_status.copy_pages_early = *ntc_k.alloc_normal;
	WRITE_ONCE(reserved, true);
}

/*
 * After the snapshot, or instead of it: the hook is disarmed; the pages
 * themselves go with the snapshot's, in swsusp_free().
 */
void ntc_copy_pages_disarm(void)
{
	WRITE_ONCE(reserved, false);
	WRITE_ONCE(in_checkpoint, false);
	WRITE_ONCE(image_copied, false);
}

static int hook(struct ftrace_ops *ops, unsigned long ip)
{
	int err = ftrace_set_filter_ip(ops, ip, 0, 0);

	if (err)
		return err;
	err = register_ftrace_function(ops);
	if (err)
		ftrace_set_filter_ip(ops, ip, 1, 0);
	return err;
}

static void unhook(struct ftrace_ops *ops, unsigned long ip)
{
	unregister_ftrace_function(ops);
	ftrace_set_filter_ip(ops, ip, 1, 0);
}

static void hook_preallocation(void)
{
	unsigned long ip = (unsigned long)ntc_k.hibernate_preallocate_memory;
	int err;

	if (!ip || !ntc_k.memory_bm_create || !ntc_k.memory_bm_set_bit ||
	    !ntc_k.snapshot_additional_pages ||
	    !ntc_k.swsusp_set_page_free || !ntc_k.copy_bm || !ntc_k.orig_bm ||
	    !ntc_k.alloc_normal || !ntc_k.forbidden_pages_map || !ntc_k.totalreserve_pages) {
		pr_info("this kernel lacks what allocating copy pages before the freeze needs; they are allocated inside it\n");
		return;
	}
	err = hook(&preallocation_hook, ip);
	if (err) {
		pr_info("cannot hook hibernate_preallocate_memory() (%d); copy pages are allocated inside the freeze\n",
			err);
		return;
	}
	hooked = true;
}

/* Whether or not the copy pages come early, the snapshot's are freed late. */
static void hook_swsusp_free(void)
{
	int err = hook(&swsusp_free_hook, (unsigned long)ntc_k.swsusp_free);

	if (err) {
		pr_info("cannot hook swsusp_free() (%d); a restored kernel frees the snapshot before its devices resume\n",
			err);
		return;
	}
	register_syscore_ops(&copy_notice);
	free_hooked = true;
}

void ntc_copy_pages_init(void)
{
	hook_preallocation();
	hook_swsusp_free();
}

void ntc_copy_pages_exit(void)
{
	if (free_hooked) {
		unregister_syscore_ops(&copy_notice);
		unhook(&swsusp_free_hook, (unsigned long)ntc_k.swsusp_free);
		free_hooked = false;
	}
	if (!hooked)
		return;
	unhook(&preallocation_hook, (unsigned long)ntc_k.hibernate_preallocate_memory);
	hooked = false;
}

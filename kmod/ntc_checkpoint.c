// SPDX-License-Identifier: GPL-2.0
/*
 * The checkpoint: hibernate() from kernel/power/hibernate.c, except that
 *  - disk 2 is brought up to date with disk 1 before the freeze (pre-copy)
 *    and, for the last delta, while tasks are still frozen after the
 *    snapshot, so that disk 2 = disk 1 at the snapshot instant;
 *  - memory is reclaimed for the image before the freeze, not during it;
 *  - the system is thawed right after that, and the image is written from
 *    the snapshot's in-memory copy while everything runs again;
 *  - there is no power_down(): the guest goes on.
 *
 * hibernation_snapshot() returns twice, as in hibernate(): once in this
 * kernel after the atomic copy (in_suspend == 1), and once more in a kernel
 * restored from the image (in_suspend == 0), which only thaws and reports.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/suspend.h>
#include <linux/ktime.h>
#include <linux/time.h>
#include <linux/timekeeping.h>
#include <linux/utsname.h>
#include <linux/cpumask.h>
#include <linux/mm.h>
#include <linux/vmstat.h>
#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/slab.h>
#include <linux/bitmap.h>
#include <linux/swap.h>
#include <linux/math64.h>
#include <asm/msr.h>
#include <asm/tsc.h>
#include "ntc.h"

struct ntc_status ntc_status;
DEFINE_MUTEX(ntc_lock);		/* held by the running checkpoint; rmmod waits for it */
u64 ntc_boot_id[2];
static u64 ntc_sequence;

/* Off only to measure what pre-copy saves (tests/bench/kmod_bench.py). */
static bool precopy_enabled = true;
module_param_named(precopy, precopy_enabled, bool, 0644);
MODULE_PARM_DESC(precopy, "copy the disk delta before freezing (default on)");

/*
 * For tests only (guest.checkpoint_kill, guest.checkpoint_errors, make
 * stress): the checkpoint stops at the named point for a while and says so
 * on the console, so that the test can cut the machine's power exactly
 * there, or do something while it is held there and then let it go on by
 * clearing stall_at.
 */
static char *stall_at = "";
module_param(stall_at, charp, 0644);
MODULE_PARM_DESC(stall_at, "test only: stop the checkpoint at this point for a minute, or until stall_at changes (Documentation/kmod.md)");

#define NTC_STALL_SECONDS 60

static bool stall_at_is(const char *name)
{
	bool is;

	kernel_param_lock(THIS_MODULE);
	is = sysfs_streq(stall_at, name);
	kernel_param_unlock(THIS_MODULE);
	return is;
}

void ntc_test_point(const char *name)
{
	int i;

	if (!stall_at_is(name))
		return;
	pr_err("stalled at %s\n", name);
	for (i = 0; i < NTC_STALL_SECONDS * 10 && stall_at_is(name); i++)
		msleep(100);
}

#define NTC_PRECOPY_MAX_ROUNDS 6
#define NTC_PRECOPY_GOOD_ENOUGH 64	/* blocks: not worth another round */
#define NTC_WRITEBACK_WAIT (30 * HZ)	/* longest wait for the reclaim's swap-outs */
#define NTC_SHRINK_MAX_ROUNDS 32

/* Copies the changed blocks while the guest runs, while the delta shrinks. */
static int precopy(struct ntc_target *t, unsigned long *swap_slots)
{
	long n, prev = LONG_MAX;
	int round;

	if (!precopy_enabled) {
		ksys_sync_helper();
		return 0;
	}
	for (round = 0; round < NTC_PRECOPY_MAX_ROUNDS; round++) {
		if (round == 0 || round == NTC_PRECOPY_MAX_ROUNDS - 1)
			ksys_sync_helper();
		n = ntc_copy_delta(t, false, swap_slots);
		if (n < 0)
			return n;
		ntc_status.precopy_blocks += n;
		ntc_status.precopy_rounds++;
		if (round > 0 && (n <= NTC_PRECOPY_GOOD_ENOUGH || n >= prev))
			break;
		prev = n;
	}
	return 0;
}

/*
 * Most of the time hibernation_snapshot() keeps the system frozen goes into
 * hibernate_preallocate_memory() reclaiming memory until the image fits in
 * image_size (shrink_all_memory(saveable - size), then allocating).  When
 * the saveable pages already fit, it only allocates the copy pages.  So we
 * do the reclaim here, while the guest still runs, with the same target.
 * What tasks take again in between is reclaimed inside the freeze.
 */
static bool shrink_early = true;
module_param_named(shrink_early, shrink_early, bool, 0644);
MODULE_PARM_DESC(shrink_early, "reclaim memory for the image before freezing (default on)");

/*
 * Reclaim returns as soon as it has queued anonymous pages for swap; their
 * writes to disk 1 complete later.  Pre-copy only sees completed writes, so
 * without this wait it would leave them to the frozen delta.
 */
static void wait_for_writeback(void)
{
	unsigned long deadline = jiffies + NTC_WRITEBACK_WAIT;

	while (global_node_page_state(NR_WRITEBACK) > NTC_PRECOPY_GOOD_ENOUGH &&
	       time_before(jiffies, deadline))
		usleep_range(10 * USEC_PER_MSEC, 20 * USEC_PER_MSEC);
}

/*
 * What the snapshot would have to save, roughly: every page not free,
 * including those reserved at boot (kernel image, struct pages), which
 * totalram_pages() leaves out but the image holds.
 */
unsigned long ntc_pages_in_use(void)
{
	unsigned long present = get_num_physpages();
	unsigned long free = global_zone_page_state(NR_FREE_PAGES);

	return present > free ? present - free : 0;
}

static void shrink_before_freeze(void)
{
	unsigned long total = totalram_pages();
	unsigned long size = DIV_ROUND_UP(*ntc_k.image_size, PAGE_SIZE);
	unsigned long max_size = total / 2 - 1024 -
		2 * DIV_ROUND_UP(*ntc_k.reserved_size, PAGE_SIZE);
	unsigned long n;
	ktime_t t = ktime_get();
	int round;

	if (!shrink_early)
		return;
	size = min(size, max_size);
	size -= size / 16;	/* headroom for what runs meanwhile */
	/*
	 * One call frees only part of what it is asked: the pages it sends to
	 * swap are freed once their writes are done, by a later call.
	 */
	for (round = 0; round < NTC_SHRINK_MAX_ROUNDS && ntc_pages_in_use() > size; round++) {
		n = ntc_k.shrink_all_memory(ntc_pages_in_use() - size);
		wait_for_writeback();
		if (!n)
			break;
		ntc_status.shrunk_pages += n;
	}
	ntc_status.shrink_us = ktime_us_delta(ktime_get(), t);
}

/*
 * The early reclaim aims at image_size; inside the freeze, image_size is
 * raised to all of RAM, so that hibernate_preallocate_memory() takes its
 * fast path whenever the image fits: it allocates the copy pages and
 * reclaims nothing.  Left as it was, on a guest where what reclaim cannot
 * free exceeds image_size (2/5 of RAM by default: a 256 MiB guest) it
 * squeezed memory down to the smallest image, with the OOM killer disabled
 * and kernel threads still running; a __GFP_NOFAIL allocation (the ext4
 * journal makes them) then found nothing, warned, and lived on the
 * reserves.  User space is frozen meanwhile, so nobody reads or writes
 * /sys/power/image_size in between.
 */
static unsigned long raise_image_size(void)
{
	unsigned long saved = *ntc_k.image_size;

	*ntc_k.image_size = totalram_pages() << PAGE_SHIFT;
	return saved;
}

/* The machine's persistent clock (kvmclock's wall clock, the RTC) in UTC ns, 0 if it has none. */
static s64 persistent_clock_ns(void)
{
	struct timespec64 ts = { 0 };

	ntc_k.read_persistent_clock64(&ts);
	if (!ts.tv_sec && !ts.tv_nsec)
		return 0;
	if (*ntc_k.persistent_clock_is_local)
		ts.tv_sec += sys_tz.tz_minuteswest * 60;
	return timespec64_to_ns(&ts);
}

/*
 * The resume (timekeeping_resume()) set the system clock to its time at the
 * snapshot plus how far the persistent clock moved since: right only if the
 * two clocks kept their distance in the office machine until the snapshot.
 * Under nested KVM they have drifted 24 s apart (Documentation/testing.md,
 * failure mode 12), and on another machine the office's distance means
 * nothing anyway: the machine that runs the checkpoint now knows the time.
 * So the restored kernel takes it from the persistent clock, before user
 * space runs, when the two differ by more than the RTC's 1 s resolution.
 * Returns the step, 0 if the clock was left as it was.
 */
static s64 set_clock_from_machine(void)
{
	s64 machine = persistent_clock_ns(), step;
	struct timespec64 ts;

	if (!machine)
		return 0;
	step = machine - ktime_get_real_ns();
	if (abs(step) <= NSEC_PER_SEC)
		return 0;
	ts = ns_to_timespec64(machine);
	if (do_settimeofday64(&ts))
		return 0;
	pr_info("clock set from the machine's: %+lld ms\n", step / NSEC_PER_MSEC);
	return step;
}

/*
 * The checkpoint's times, in ns of the TSC.  timekeeping_suspend() stops
 * the kernel's clocks for the atomic copy: CLOCK_MONOTONIC leaves the copy
 * out (a pause of 1.1 s was 1.4 s, 1 GiB under nested KVM), and boottime
 * adds it back only where the clocksource runs on in suspend (kvm-clock);
 * elsewhere (TSC under QEMU TCG) it adds the RTC's whole seconds.
 */
static ktime_t tsc_now(void)
{
	/* A kernel whose TSC calibration failed has none: boottime then. */
	if (!tsc_khz)
		return ktime_get_boottime();
	return mul_u64_u32_div(rdtsc_ordered(), USEC_PER_SEC, tsc_khz);
}

/* Pages reclaimed since boot, by anyone: /proc/vmstat's pgsteal_anon + _file. */
static u64 pages_reclaimed(unsigned long *events)
{
	all_vm_events(events);
	return events[PGSTEAL_ANON] + events[PGSTEAL_FILE];
}

/*
 * Whether the atomic copy can fit at all: every page in use that reclaim
 * cannot free (anonymous memory beyond the free swap, unreclaimable slab,
 * the kernel) needs a free page for its copy, and only what is free now or
 * reclaimable can provide it.  When it cannot fit, the snapshot's
 * preallocation fails anyway, but only after its reclaim has evicted every
 * file page; on a guest that was already short of memory the OOM killer
 * then ran right after the thaw and killed the largest process.  So the
 * hopeless case is refused before anything is reclaimed or written.
 */
static bool image_can_fit(unsigned long more_swap)
{
	unsigned long file = global_node_page_state(NR_ACTIVE_FILE) +
			     global_node_page_state(NR_INACTIVE_FILE);
	unsigned long anon = global_node_page_state(NR_ACTIVE_ANON) +
			     global_node_page_state(NR_INACTIVE_ANON);
	unsigned long slab = global_node_page_state_pages(NR_SLAB_RECLAIMABLE_B);
	long swap = get_nr_swap_pages() + more_swap;
	unsigned long reclaimable = file + slab + min_t(unsigned long, anon, max(swap, 0L));
	unsigned long in_use = ntc_pages_in_use();
	unsigned long must_copy = in_use > reclaimable ? in_use - reclaimable : 0;
	unsigned long margin = NTC_PAGES_FOR_IO +
			       2 * DIV_ROUND_UP(*ntc_k.reserved_size, PAGE_SIZE);

	return must_copy + margin <= global_zone_page_state(NR_FREE_PAGES) + reclaimable;
}

/*
 * The image takes the area's slots that disk 1's swap leaves free, so swap
 * that is nearly full leaves no room for it.  Found only after the
 * snapshot, that cost a pause and, with disk 2 invalidated or the previous
 * checkpoint given up for room, the checkpoint disk 2 held.  The image is
 * about the pages in use, which count up to a tenth more; only one clearly
 * too large (by 1/8) is refused here, the rest is for the writer to find.
 */
static int image_fits_area(const struct ntc_target *t)
{
	unsigned long image = ntc_pages_in_use();
	unsigned long used = t->src_swap ? READ_ONCE(t->src_swap->inuse_pages) : 0;
	unsigned long room = t->area_pages - 1 > used ? t->area_pages - 1 - used : 0;

	if (image - image / 8 <= room)
		return 0;
	pr_err("the image, about %lu MiB, does not fit in the %lu MiB that disk 1's swap leaves free in the snapshot area; nothing on disk 2 was changed (free swap on disk 1, or make its swap partition larger)\n",
	       image >> (20 - PAGE_SHIFT), room >> (20 - PAGE_SHIFT));
	return -ENOSPC;
}

/*
 * A guest that runs without swap can hold more than fits beside the
 * snapshot's copy, and no reclaim can make room.  Its snapshot area is the
 * twin of disk 1's swap partition all the same, so for the checkpoint that
 * partition becomes swap and the reclaim before the freeze pushes pages
 * out to it; the pages pushed out are copied to disk 2 with the rest of
 * the swap.  When the checkpoint ends, here and in every kernel resumed
 * from it (the path is in the image), swapoff reads them back in and
 * disk 1 is without swap again.
 */
static bool borrow_swap = true;
module_param(borrow_swap, bool, 0644);
MODULE_PARM_DESC(borrow_swap, "without swap, make disk 1's swap partition swap for a checkpoint that does not fit otherwise (default on)");

static char borrowed_swap[BDEVNAME_SIZE + 8];

/*
 * Turns the borrowed swap off again.  swapoff reads every page back; the
 * next checkpoint waits for it (ntc_lock), since one taken meanwhile would
 * see processes' pages in swap that is no longer active.
 */
static void give_back_swap(void)
{
	if (!borrowed_swap[0])
		return;
	ntc_give_back_swap(borrowed_swap);
	borrowed_swap[0] = 0;
}

/* Slots of the snapshot area that may take the image: free in disk 1's swap. */
static void fill_free_map(struct ntc_target *t, unsigned long *free_map)
{
	unsigned long s;

	for (s = 1; s < t->area_pages; s++)
		if (!ntc_swap_slot_used(t->src_swap, s))
			set_bit(s, free_map);
	if (t->src_swap)	/* beyond disk 1's swap_map: nothing to keep */
		for (s = t->src_swap->max; s < t->area_pages; s++)
			set_bit(s, free_map);
}

/* One checkpoint's state across its phases. */
struct ntc_ckpt {
	struct ntc_target t;
	unsigned long *free_map;	/* area slots free in disk 1's swap */
	struct ntc_record *rec;		/* page 0's record, to commit */
	unsigned long swap_slots;	/* disk 1 swap slots copied */
	unsigned long *vm_events;	/* for pages_reclaimed() */
	struct ntc_image_stats st;
	struct ntc_image_plan plan;	/* which image pages are written, which left in place */
	struct ntc_history hist;	/* the area's, read before disk 2 changes */
	struct ntc_journal journal;	/* while the previous checkpoint is kept */
	bool committed;			/* page 0 names this checkpoint */
};

/*
 * In the restored kernel, before anything runs: the machine that took the
 * checkpoint may have stopped before its journal was in place.
 */
static void finish_restored_journal(struct ntc_ckpt *c)
{
	long n = ntc_journal_finish_restored(&c->t, &c->hist);

	ntc_status.resumed_journal_blocks = n;
	if (n > 0)
		pr_info("put the %ld blocks of checkpoint %llu's journal in place\n", n, ntc_status.sequence);
	else if (n < 0)
		pr_err("could not put checkpoint %llu's journal in place (%ld): disk 1 does not match memory\n",
		       ntc_status.sequence, n);
}

static void fill_record(struct ntc_record *rec, const struct ntc_image_stats *st)
{
	struct new_utsname *u = utsname();

	rec->sequence = ntc_status.sequence;
	rec->time_unix_ns = ntc_status.time_unix_ns;
	rec->boot_id_lo = ntc_boot_id[0];
	rec->boot_id_hi = ntc_boot_id[1];
	rec->pause_us = min_t(u64, ntc_status.pause_us, U32_MAX);
	rec->total_ms = ntc_status.total_ms;
	rec->image_pages = st->pages;
	rec->image_crc32 = st->crc32;
	rec->cpus = num_present_cpus();
	rec->ram_bytes = (u64)get_num_physpages() << PAGE_SHIFT;
	rec->disk_blocks_precopy = ntc_status.precopy_blocks;
	rec->disk_blocks_frozen = ntc_status.frozen_blocks;
	rec->swap_slots_copied = ntc_status.swap_slots;
	strscpy(rec->kernel_release, u->release, sizeof(rec->kernel_release));
	strscpy(rec->kernel_version, u->version, sizeof(rec->kernel_version));
	strscpy(rec->machine, u->machine, sizeof(rec->machine));
	ntc_machine_describe(rec);
}

/*
 * Before the freeze, while the guest runs: the target, then the check that
 * the snapshot can fit, memory reclaimed and the check again, then the
 * previous checkpoint kept (or, if this boot did not commit it, disk 2 made
 * unresumable) and disk 2 brought nearly up to date.  A failure here leaves
 * every process alone; c->t is closed by the caller either way.
 */
static int prepare(struct ntc_ckpt *c)
{
	int err;

	err = ntc_target_open(&c->t);
	if (err)
		return err;
	c->free_map = bitmap_zalloc(c->t.area_pages, GFP_KERNEL);
	c->rec = kmalloc(sizeof(*c->rec), GFP_KERNEL);
	c->vm_events = kcalloc(NR_VM_EVENT_ITEMS, sizeof(*c->vm_events), GFP_KERNEL);
	if (!c->free_map || !c->rec || !c->vm_events)
		return -ENOMEM;
	if (!image_can_fit(0) && !c->t.src_swap && borrow_swap && image_can_fit(c->t.area_pages - 1)) {
		err = ntc_target_borrow_swap(&c->t, borrowed_swap, sizeof(borrowed_swap));
		if (err)
			return err;
		ntc_status.swap_borrowed = true;
		pr_info("disk 1 has no swap and the snapshot's copy does not fit beside what is in use: %s is swap until the checkpoint ends\n",
			borrowed_swap);
	}
	if (!image_can_fit(0)) {
		pr_err("not enough memory for the snapshot's copy, even after reclaim; nothing was changed\n");
		return -ENOMEM;
	}
	/* swap-outs of the reclaim are disk 1 writes: pre-copy copies them too */
	shrink_before_freeze();
	ntc_test_point("reclaimed");
	/*
	 * The reclaim may have filled the swap without making room (swap too
	 * small for what it had to push out), or tasks took memory meanwhile;
	 * the snapshot would then reclaim inside the freeze and fail after a
	 * pause of seconds.
	 */
	if (!image_can_fit(0)) {
		pr_err("not enough memory for the snapshot's copy after the reclaim (swap full, or memory taken meanwhile); nothing on disk 2 was changed (free memory or add swap)\n");
		return -ENOMEM;
	}
	err = image_fits_area(&c->t);
	if (err)
		return err;
	err = ntc_history_load(&c->hist, &c->t);
	if (err)
		return err;
	ntc_reuse_check(&c->t);
	err = ntc_journal_begin(&c->journal, &c->t);
	if (err)
		return err;
	ntc_status.kept_previous = c->t.journal;
	ntc_test_point("start");
	if (!c->t.journal) {
		/* From here on disk 2 changes: first make sure it cannot be resumed. */
		err = ntc_area_invalidate(&c->t);
		if (err)
			return err;
		ntc_test_point("invalidated");
	}
	memcpy(c->rec, c->t.page0, sizeof(*c->rec));
	err = precopy(&c->t, &c->swap_slots);
	if (err)
		return err;
	ntc_test_point("precopied");
	return 0;
}

/*
 * Back from the snapshot in this kernel, still frozen, devices up: the last
 * delta, and which slots disk 1's swap leaves free for the image now.
 */
static int finish_frozen(struct ntc_ckpt *c)
{
	long n;
	int err = 0;

	n = ntc_copy_delta(&c->t, true, &c->swap_slots);
	if (n < 0)
		err = n;
	else
		ntc_status.frozen_blocks = n;
	fill_free_map(&c->t, c->free_map);
	ntc_status.swap_slots = c->swap_slots;
	ntc_test_point("frozen");
	return err;
}

/*
 * After the thaw: the image, into slots the previous checkpoint (if kept)
 * does not use; if they are too few, the previous one is given up.
 */
static int write_image(struct ntc_ckpt *c)
{
	struct ntc_journal *j = c->t.journal;
	int err;

	err = ntc_image_write(&c->t, c->free_map, j ? j->avail : NULL, &c->plan, &c->st);
	if (err != -ENOSPC || !j)
		return err;
	err = ntc_journal_give_up(&c->t);
	if (err)
		return err;
	ntc_image_plan_free(&c->plan);
	return ntc_image_write(&c->t, c->free_map, NULL, &c->plan, &c->st);
}

/*
 * The journal's index, the holdings and the change history, then page 0 last: the
 * record and the swsusp header that make disk 2 resumable; then the
 * journal into place.
 */
static int commit(struct ntc_ckpt *c, ktime_t start)
{
	unsigned long last = c->st.last_slot;
	int err = 0;

	if (c->t.journal)
		err = ntc_journal_write_index(c->t.journal, &c->t, c->plan.slots, &last, c->rec);
	if (!err)
		err = ntc_holdings_write(&c->t, c->free_map, &c->plan, c->plan.slots, &last, c->rec);
	if (!err)
		err = ntc_history_write(&c->hist, &c->t, c->plan.slots, last, c->rec);
	if (err)
		return err;
	ntc_test_point("written");
	ntc_status.total_ms = ktime_ms_delta(tsc_now(), start);
	fill_record(c->rec, &c->st);
	err = ntc_area_commit(&c->t, c->rec, c->st.first_map);
	if (err)
		return err;
	c->committed = true;
	ntc_reuse_commit(&c->plan, c->rec, &c->t, c->free_map, c->hist.chain.slots, c->hist.chain.npages);
	if (c->t.journal) {
		ntc_test_point("applying");
		err = ntc_journal_apply(c->t.journal, &c->t, c->rec);
		if (err) {
			pr_err("checkpoint %llu is committed, but its journal could not be put in place (%d); a kernel restored from it puts it in place before it runs\n",
			       ntc_status.sequence, err);
			ntc_reuse_forget();
			ntc_track_compare_all("the last checkpoint's journal could not be put in place");
			return err;
		}
	}
	ntc_test_point("committed");
	return 0;
}

/*
 * hibernate()'s shape: prepare, freeze and snapshot, then one unwind ladder
 * in hibernate()'s order, except that the bitmaps, made before the freeze,
 * go after the thaw.  The image write and the commit fit into it: the write
 * after the thaw, but before swsusp_free() and the bitmaps go (the
 * snapshot's pages are the image), the commit once the hibernation core is
 * released and before the target is.  In a kernel resumed from
 * the image, the TSC is another machine's: the times are moved by what the
 * TSC gained on CLOCK_MONOTONIC across the snapshot, which leaves them as
 * that kernel ran them.
 */
int ntc_checkpoint(void)
{
	struct ntc_ckpt c = { 0 };
	unsigned int sleep_flags;
	ktime_t start = tsc_now(), frozen = 0, snap, lead, real_lead, off, free_start;
	bool restored = false, have_image = false;
	unsigned long image_size;
	u64 reclaimed;
	s64 machine_ns;
	int err;

	if (!mutex_trylock(&ntc_lock))
		return -EBUSY;
	memset(&ntc_status, 0, offsetof(struct ntc_status, resumed_from));
	ntc_status.state = NTC_RUNNING;
	ntc_status.sequence = ++ntc_sequence;

	err = prepare(&c);
	if (err)
		goto close;

	sleep_flags = lock_system_sleep();
	if (!ntc_k.hibernate_acquire()) {
		err = -EBUSY;
		goto unlock;
	}
	/*
	 * As hibernate() does.  Among the listeners, the CPU hotplug one keeps
	 * hotplug disabled across the snapshot, which the restored kernel's
	 * arch_resume_nosmt() expects (else "Unbalanced cpu hotplug enable").
	 */
	err = ntc_k.pm_notifier_call_chain_robust(PM_HIBERNATION_PREPARE, PM_POST_HIBERNATION);
	if (err)
		goto release;
	/*
	 * Unlike hibernate(), the bitmaps come before the freeze (as in
	 * /dev/snapshot's open for a restore), so that the copy pages are
	 * allocated and marked in them while the guest still runs.
	 */
	ntc_k.lock_device_hotplug();
	err = ntc_k.create_basic_memory_bitmaps();
	if (err) {
		ntc_k.unlock_device_hotplug();
		goto notify_post;
	}
	ntc_copy_pages_reserve();
	ntc_cpus_take_down();
	frozen = tsc_now();
	reclaimed = pages_reclaimed(c.vm_events);
	err = ntc_k.freeze_processes();
	if (err)
		goto unlock_hotplug;
	ntc_status.time_unix_ns = ktime_get_real_ns();
	machine_ns = persistent_clock_ns();
	ntc_status.clock_offset_ns = machine_ns ? machine_ns - ntc_status.time_unix_ns : 0;
	snap = tsc_now();
	lead = snap - ktime_get();
	real_lead = snap - ktime_get_real();
	image_size = raise_image_size();
	err = ntc_k.hibernation_snapshot(0);
	*ntc_k.image_size = image_size;
	if (!err && !*ntc_k.in_suspend) {
		off = tsc_now() - ktime_get() - lead;
		start += off;
		frozen += off;
		snap += off;
	}
	ntc_status.snapshot_us = ktime_us_delta(tsc_now(), snap);
	if (err)
		goto thaw;
	if (!*ntc_k.in_suspend) {
		/* We are the restored kernel; the snapshot goes after the thaw. */
		restored = true;
		finish_restored_journal(&c);
		ntc_status.resumed_clock_step_ns = set_clock_from_machine();
		ntc_machine_instance(ntc_status.instance, sizeof(ntc_status.instance));
		goto thaw;
	}
	ntc_status.clock_lost_us = ktime_to_us(tsc_now() - ktime_get_real() - real_lead);
	ntc_status.frozen_reclaimed_pages = pages_reclaimed(c.vm_events) - reclaimed;
	err = finish_frozen(&c);
	ntc_k.pm_restore_gfp_mask();
	/* The image is in memory: the bitmaps stay until it is written. */
	have_image = true;

thaw:
	ntc_k.thaw_processes();
	ntc_status.pause_us = ktime_us_delta(tsc_now(), frozen);
	ntc_status.thawed_boottime_ns = ktime_get_boottime_ns();
unlock_hotplug:
	ntc_cpus_bring_up();
	ntc_k.unlock_device_hotplug();
	/*
	 * The guest runs again; the image is in memory until swsusp_free()
	 * (in a restored kernel, the copy pages: ntc_copypages.c).
	 */
	if (have_image && !err)
		err = write_image(&c);
	/* The image, or copy pages reserved for a snapshot that did not happen */
	ntc_copy_pages_disarm();
	free_start = ktime_get();
	ntc_k.swsusp_free();
	ntc_status.snapshot_free_ms = ktime_ms_delta(ktime_get(), free_start);
	*ntc_k.in_suspend = 0;
	ntc_k.free_basic_memory_bitmaps();
notify_post:
	ntc_k.pm_notifier_call_chain(PM_POST_HIBERNATION);
release:
	ntc_k.hibernate_release();
unlock:
	unlock_system_sleep(sleep_flags);
	if (have_image) {
		ntc_status.write_ms = c.st.write_us / 1000;
		ntc_status.image_hash_ms = c.st.plan_us / 1000;
		ntc_status.image_pages = c.st.pages;
		ntc_status.image_pages_reused = c.st.reused;
		if (!err)
			err = commit(&c, start);
	}
close:
	if (restored) {
		/*
		 * Disk 2 is our disk 1 now and the old disk 2 is gone: drop the
		 * handles without I/O, and compare everything next time.
		 */
		ntc_status.resumed_from = ntc_status.sequence;
		ntc_status.resumed_time_ns = ntc_status.time_unix_ns;
		ntc_track_compare_all("resumed from a checkpoint: disk 1 is the disk 2 it was taken onto");
		ntc_reuse_forget();
		pr_info("resumed from checkpoint %llu as instance '%s'\n", ntc_status.sequence,
			ntc_status.instance);
	}
	if (err && c.t.journal && !c.committed)
		ntc_journal_cancel(&c.journal);
	ntc_target_close(&c.t);
	give_back_swap();
	ntc_journal_end(&c.journal);
	ntc_history_free(&c.hist);
	ntc_image_plan_free(&c.plan);
	bitmap_free(c.free_map);
	kfree(c.rec);
	kfree(c.vm_events);
	ntc_status.total_ms = ktime_ms_delta(tsc_now(), start);
	ntc_status.result = err;
	ntc_status.state = restored ? NTC_RESUMED : NTC_IDLE;
	if (!restored)
		pr_info("checkpoint %llu: %s%d, image %llu pages, pause %llu ms, total %llu ms\n",
			ntc_status.sequence, err ? "error " : "ok ", err,
			ntc_status.image_pages, ntc_status.pause_us / 1000,
			ntc_status.total_ms);
	mutex_unlock(&ntc_lock);
	if (restored) {
		ntc_machine_adopt_macs();
		ntc_announce_resume();
	}
	return err;
}

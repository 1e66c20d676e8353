// SPDX-License-Identifier: GPL-2.0
/*
 * The hibernation core (kernel/power) and the swap tables (mm/swapfile.c) are
 * not exported to modules.  ntc.ko needs them because a checkpoint *is* a
 * hibernation snapshot that the stock resume path must be able to restore.
 * kallsyms_lookup_name() itself is not exported since 5.7, but a kprobe on it
 * tells us its address.  Everything is looked up once at load; a kernel that
 * lacks one of them makes the load fail with the missing name, rather than a
 * crash in the middle of a checkpoint.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/kprobes.h>
#include "ntc.h"

struct ntc_kfuncs ntc_k;

typedef unsigned long (*kallsyms_lookup_name_t)(const char *name);

static kallsyms_lookup_name_t find_kallsyms_lookup_name(void)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	kallsyms_lookup_name_t fn;

	if (register_kprobe(&kp) < 0)
		return NULL;
	fn = (kallsyms_lookup_name_t)kp.addr;
	unregister_kprobe(&kp);
	return fn;
}

#define NTC_SYM(field) { #field, (void **)&ntc_k.field, true }
#define NTC_SYM_OPT(field) { #field, (void **)&ntc_k.field, false }

static const struct {
	const char *name;
	void **slot;
	bool required;
} ntc_syms[] = {
	NTC_SYM(freeze_processes),
	NTC_SYM(thaw_processes),
	NTC_SYM(create_basic_memory_bitmaps),
	NTC_SYM(free_basic_memory_bitmaps),
	NTC_SYM(hibernation_snapshot),
	NTC_SYM(swsusp_free),
	NTC_SYM(pm_restore_gfp_mask),
	NTC_SYM(snapshot_get_image_size),
	NTC_SYM(snapshot_read_next),
	NTC_SYM(pm_notifier_call_chain_robust),
	NTC_SYM(pm_notifier_call_chain),
	NTC_SYM(hibernate_acquire),
	NTC_SYM(hibernate_release),
	NTC_SYM(lock_device_hotplug),
	NTC_SYM(unlock_device_hotplug),
	NTC_SYM(in_suspend),
	NTC_SYM(swap_info),
	NTC_SYM(nr_swapfiles),
	NTC_SYM(swap_lock),
	NTC_SYM(block_class),
	NTC_SYM_OPT(swsusp_hardware_signature),
	NTC_SYM(shrink_all_memory),
	NTC_SYM(image_size),
	NTC_SYM(reserved_size),
	NTC_SYM(read_persistent_clock64),
	NTC_SYM(persistent_clock_is_local),
	NTC_SYM_OPT(hibernate_preallocate_memory),
	NTC_SYM_OPT(memory_bm_create),
	NTC_SYM_OPT(memory_bm_set_bit),
	NTC_SYM_OPT(snapshot_additional_pages),
	NTC_SYM_OPT(swsusp_set_page_free),
	NTC_SYM_OPT(copy_bm),
	NTC_SYM_OPT(orig_bm),
	NTC_SYM_OPT(alloc_normal),
	NTC_SYM_OPT(forbidden_pages_map),
	NTC_SYM_OPT(totalreserve_pages),
	NTC_SYM_OPT(device_offline),
	NTC_SYM_OPT(device_online),
};

int ntc_syms_init(void)
{
	kallsyms_lookup_name_t lookup = find_kallsyms_lookup_name();
	int i, missing = 0;

	if (!lookup) {
		pr_err("cannot find kallsyms_lookup_name (kprobes?)\n");
		return -ENOENT;
	}
	for (i = 0; i < ARRAY_SIZE(ntc_syms); i++) {
		unsigned long addr = lookup(ntc_syms[i].name);

		*ntc_syms[i].slot = (void *)addr;
		if (!addr && ntc_syms[i].required) {
			pr_err("kernel symbol %s not found; this kernel cannot be checkpointed by ntc.ko\n",
			       ntc_syms[i].name);
			missing++;
		}
	}
	return missing ? -ENOENT : 0;
}

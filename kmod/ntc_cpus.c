// SPDX-License-Identifier: GPL-2.0
/*
 * The non-boot CPUs leave before the freeze and come back after the thaw.
 *
 * hibernation_snapshot() takes them down inside the pause and brings them
 * back before the devices resume.  Under nested KVM that was 0.05 s each
 * way in the guest that checkpoints, and 0.4-0.6 s in a guest resumed from
 * the image, before its user space ran again.  Taken down here instead, by
 * the ordinary CPU hotplug (as writing 0 to cpuN/online does), they are not
 * among the CPUs the image's kernel brings back itself, and this module
 * brings them up once user space runs: in the guest that checkpoints, and
 * in a guest resumed from the image (the same code returns there).
 *
 * A task that may run only on those CPUs would lose its affinity if it ran
 * without them (the scheduler widens it for good: "no longer affine to
 * cpuN").  While any user task is so confined, the CPUs are left to the
 * hibernation core, which takes them down with that task frozen.
 *
 * device_offline() and device_online() are not exported: kallsyms, with
 * their 6.1 signatures; without them the hibernation core does it all.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/sched/signal.h>
#include "ntc.h"

/* Taken down by ntc_cpus_take_down(); ntc_lock serializes both calls. */
static struct cpumask away;

/* The CPU that freeze_secondary_cpus(0) keeps. */
static unsigned int staying_cpu(void)
{
	return cpu_online(0) ? 0 : cpumask_first(cpu_online_mask);
}

static bool user_task_confined_away_from(unsigned int staying)
{
	struct task_struct *g, *p;
	bool confined = false;

	rcu_read_lock();
	for_each_process_thread(g, p) {
		if (!(p->flags & PF_KTHREAD) && !cpumask_test_cpu(staying, p->cpus_ptr)) {
			confined = true;
			break;
		}
	}
	rcu_read_unlock();
	return confined;
}

/*
 * Call with the device hotplug lock held, after the PM_HIBERNATION_PREPARE
 * notifiers: their CPU hotplug listener disabled hotplug, which is enabled
 * around each use here and stays disabled otherwise.
 */
void ntc_cpus_take_down(void)
{
	unsigned int cpu, staying = staying_cpu();
	struct device *dev;

	cpumask_clear(&away);
	if (!ntc_k.device_offline || !ntc_k.device_online || user_task_confined_away_from(staying))
		return;
	cpu_hotplug_enable();
	for_each_online_cpu(cpu) {
		dev = get_cpu_device(cpu);
		if (cpu != staying && dev && ntc_k.device_offline(dev) == 0)
			cpumask_set_cpu(cpu, &away);
	}
	cpu_hotplug_disable();
	ntc_status.cpus_taken_early = cpumask_weight(&away);
}

/* Call with the device hotplug lock held, once user space runs again. */
void ntc_cpus_bring_up(void)
{
	ktime_t start = ktime_get();
	unsigned int cpu;
	int err;

	if (cpumask_empty(&away))
		return;
	cpu_hotplug_enable();
	for_each_cpu(cpu, &away) {
		err = ntc_k.device_online(get_cpu_device(cpu));
		if (err < 0)
			pr_err("CPU%u, taken down for the checkpoint, did not come back (%d); try: echo 1 > /sys/devices/system/cpu/cpu%u/online\n",
			       cpu, err, cpu);
	}
	cpu_hotplug_disable();
	cpumask_clear(&away);
	ntc_status.cpus_back_ms = ktime_ms_delta(ktime_get(), start);
}

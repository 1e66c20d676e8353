// SPDX-License-Identifier: GPL-2.0
/*
 * ntc.ko: live checkpoint of a running guest onto disk 2.
 *
 *   echo checkpoint > /proc/ntc   take one; returns when it is durable
 *   cat /proc/ntc                 state and figures of the last one
 *
 * Disk 1 is the disk holding the root filesystem when the module is loaded;
 * writes to it are tracked from then on (ntc_disk.c).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blk-mq.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <linux/fs_struct.h>
#include <linux/mount.h>
#include <linux/path.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/string.h>
#include "ntc.h"

char *ntc_target_param = "auto";
module_param_named(target, ntc_target_param, charp, 0644);
MODULE_PARM_DESC(target, "snapshot area partition (e.g. /dev/vdb3), or \"auto\": the partition carrying the NTC marker");

static char *source_param = "";
module_param_named(source, source_param, charp, 0444);
MODULE_PARM_DESC(source, "disk 1 (a whole disk, e.g. /dev/vda); default: the disk of the root filesystem");

static const char *const state_names[] = {
	[NTC_IDLE] = "idle", [NTC_RUNNING] = "checkpointing", [NTC_RESUMED] = "resumed",
};

static const char *const disk_copy_names[] = {
	[NTC_COPY_DELTA] = "delta", [NTC_COPY_SINCE_CLONE] = "since_clone",
	[NTC_COPY_FULL_COMPARE] = "full_compare",
};

static int ntc_show(struct seq_file *m, void *v)
{
	struct ntc_status *s = &ntc_status;

	seq_printf(m, "state: %s\n", state_names[s->state]);
	seq_printf(m, "source: %s\n", ntc_src_disk->disk_name);
	if (s->target[0])
		seq_printf(m, "target: %s\n", s->target);
	else	/* the parameter as given, up to a newline */
		seq_printf(m, "target: %.*s\n", (int)strcspn(ntc_target_param, "\n"),
			   ntc_target_param);
	seq_printf(m, "sequence: %llu\n", s->sequence);
	seq_printf(m, "time_unix_ns: %llu\n", s->time_unix_ns);
	seq_printf(m, "result: %d\n", s->result);
	seq_printf(m, "image_pages: %llu\n", s->image_pages);
	seq_printf(m, "image_bytes: %llu\n", s->image_pages * PAGE_SIZE);
	seq_printf(m, "image_pages_written: %llu\n", s->image_pages - s->image_pages_reused);
	seq_printf(m, "image_pages_reused: %llu\n", s->image_pages_reused);
	seq_printf(m, "pause_ms: %llu.%03llu\n", s->pause_us / 1000, s->pause_us % 1000);
	seq_printf(m, "thawed_uptime_ms: %llu\n", s->thawed_boottime_ns / NSEC_PER_MSEC);
	seq_printf(m, "shrink_ms: %llu\n", s->shrink_us / 1000);
	seq_printf(m, "shrunk_pages: %llu\n", s->shrunk_pages);
	seq_printf(m, "frozen_reclaimed_pages: %llu\n", s->frozen_reclaimed_pages);
	seq_printf(m, "copy_pages_early: %llu\n", s->copy_pages_early);
	seq_printf(m, "copy_pages_frozen: %llu\n", s->copy_pages_frozen);
	seq_printf(m, "cpus_taken_early: %u\n", s->cpus_taken_early);
	seq_printf(m, "cpus_back_ms: %llu\n", s->cpus_back_ms);
	seq_printf(m, "core_free_deferred: %u\n", s->core_free_deferred);
	seq_printf(m, "snapshot_free_ms: %llu\n", s->snapshot_free_ms);
	seq_printf(m, "clock_offset_ns: %lld\n", s->clock_offset_ns);
	seq_printf(m, "clock_lost_us: %lld\n", s->clock_lost_us);
	seq_printf(m, "snapshot_ms: %llu\n", s->snapshot_us / 1000);
	seq_printf(m, "write_ms: %llu\n", s->write_ms);
	seq_printf(m, "image_hash_ms: %llu\n", s->image_hash_ms);
	seq_printf(m, "total_ms: %llu\n", s->total_ms);
	seq_printf(m, "disk_blocks_precopy: %llu\n", s->precopy_blocks);
	seq_printf(m, "precopy_rounds: %llu\n", s->precopy_rounds);
	seq_printf(m, "disk_blocks_frozen: %llu\n", s->frozen_blocks);
	seq_printf(m, "swap_slots_copied: %llu\n", s->swap_slots);
	seq_printf(m, "generation: %llu\n", s->generation);
	seq_printf(m, "history_since: %llu\n", s->history_since);
	seq_printf(m, "disk2_blocks_written: %llu\n", s->blocks_written);
	seq_printf(m, "disk_copy: %s\n", disk_copy_names[s->disk_copy]);
	seq_printf(m, "disk_copy_note: %s\n", s->disk_copy_note);
	seq_printf(m, "disk_blocks_read: %llu\n", s->disk_blocks_read);
	seq_printf(m, "disk_copy_ms: %llu\n", s->disk_copy_us / 1000);
	seq_printf(m, "kept_previous: %d\n", s->kept_previous);
	seq_printf(m, "journal_blocks: %llu\n", s->journal_blocks);
	seq_printf(m, "journal_moves: %llu\n", s->journal_moves);
	seq_printf(m, "swap_borrowed: %d\n", s->swap_borrowed);
	seq_printf(m, "resumed_from: %llu\n", s->resumed_from);
	seq_printf(m, "resumed_from_time_unix_ns: %llu\n", s->resumed_time_ns);
	seq_printf(m, "resumed_clock_step_ns: %lld\n", s->resumed_clock_step_ns);
	seq_printf(m, "resumed_journal_blocks: %lld\n", s->resumed_journal_blocks);
	seq_printf(m, "instance: %s\n", s->instance);
	return 0;
}

/*
 * After a resume, user space learns of it without polling: a "change"
 * uevent of the module (SUBSYSTEM=module, DEVPATH=/module/ntc) with the
 * checkpoint resumed and the instance name, for udev rules to act on.
 */
void ntc_announce_resume(void)
{
	char event[] = "NTC_EVENT=resumed";
	char checkpoint[40], instance[sizeof(ntc_status.instance) + 16];
	char *envp[4];

	snprintf(checkpoint, sizeof(checkpoint), "NTC_CHECKPOINT=%llu", ntc_status.sequence);
	snprintf(instance, sizeof(instance), "NTC_INSTANCE=%s", ntc_status.instance);
	envp[0] = event;
	envp[1] = checkpoint;
	envp[2] = instance;
	envp[3] = NULL;
	kobject_uevent_env(&THIS_MODULE->mkobj.kobj, KOBJ_CHANGE, envp);
}

static int ntc_open(struct inode *inode, struct file *file)
{
	return single_open(file, ntc_show, NULL);
}

static ssize_t ntc_write(struct file *file, const char __user *ubuf,
			 size_t count, loff_t *ppos)
{
	char buf[32];
	int err;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = 0;
	if (strcmp(strim(buf), "checkpoint"))
		return -EINVAL;
	err = ntc_checkpoint();
	return err ? err : count;
}

static const struct proc_ops ntc_proc_ops = {
	.proc_open = ntc_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = ntc_write,
};

/*
 * Disk 1, with a reference the caller drops with put_disk(), or an ERR_PTR
 * after saying why.  The reference is taken while the bdev (or the mounted
 * root) still pins the disk.
 */
static struct gendisk *find_source_disk(void)
{
	struct block_device *bdev;
	struct gendisk *disk = NULL;
	struct path root;
	dev_t dev;
	int err;

	if (source_param[0]) {
		err = lookup_bdev(source_param, &dev);
		if (err) {
			pr_err("source=%s is not a block device (%d)\n", source_param, err);
			return ERR_PTR(err);
		}
		bdev = blkdev_get_by_dev(dev, FMODE_READ, NULL);
		if (IS_ERR(bdev)) {
			pr_err("cannot open source=%s (%ld)\n", source_param, PTR_ERR(bdev));
			return ERR_CAST(bdev);
		}
		disk = bdev->bd_disk;
		get_device(disk_to_dev(disk));
		blkdev_put(bdev, FMODE_READ);
		return disk;
	}
	get_fs_root(current->fs, &root);
	bdev = root.mnt->mnt_sb->s_bdev;
	if (bdev) {
		disk = bdev->bd_disk;
		get_device(disk_to_dev(disk));
	}
	path_put(&root);
	if (!disk) {
		pr_err("the root filesystem is not on a block device; name disk 1 with source=\n");
		return ERR_PTR(-ENODEV);
	}
	return disk;
}

static int __init ntc_init(void)
{
	struct gendisk *disk;
	int err;

	err = ntc_reuse_selftest() ?: ntc_image_init();
	if (err)
		return err;
	err = ntc_syms_init();
	if (err)
		return err;
	disk = find_source_disk();
	if (IS_ERR(disk))
		return PTR_ERR(disk);
	/* Writes are seen at request completion, which bio-based disks skip. */
	if (!queue_is_mq(disk->queue)) {
		pr_err("disk 1 %s is not request-based (device-mapper or md?), so its writes cannot be tracked; name the physical disk with source=\n",
		       disk->disk_name);
		err = -EINVAL;
		goto out;
	}
	get_random_bytes(ntc_boot_id, sizeof(ntc_boot_id));
	ntc_machine_instance(ntc_status.instance, sizeof(ntc_status.instance));
	err = ntc_track_start(disk);
	if (err)
		goto out;
	ntc_copy_pages_init();
	if (!proc_create("ntc", 0600, NULL, &ntc_proc_ops)) {
		ntc_copy_pages_exit();
		ntc_track_stop();
		err = -ENOMEM;
		goto out;
	}
	pr_info("loaded, disk 1 is %s, tracking its writes\n", disk->disk_name);
out:
	put_disk(disk);		/* tracking holds its own reference */
	return err;
}

static void __exit ntc_exit(void)
{
	/* /proc/ntc goes first, so no checkpoint can start; wait for one running */
	remove_proc_entry("ntc", NULL);
	mutex_lock(&ntc_lock);
	ntc_track_stop();
	ntc_reuse_forget();
	mutex_unlock(&ntc_lock);
	ntc_copy_pages_exit();
}

module_init(ntc_init);
module_exit(ntc_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("NTC: live checkpoint of a running guest onto a second disk");

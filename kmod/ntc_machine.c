// SPDX-License-Identifier: GPL-2.0
/*
 * The machine a checkpoint is taken on, for its record: the firmware's
 * identity (the FADT's OEM fields; ntc-vmm puts its machine model version
 * in the OEM revision) and the PCI functions on bus 0 with the MAC of each
 * network card.  The restored drivers expect exactly these devices where
 * they left them, so the VMM that resumes the checkpoint compares its own
 * machine with this and refuses a different one; only a card's MAC may
 * differ, and the machine's instance record says which to take.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/acpi.h>
#include <linux/ctype.h>
#include <linux/etherdevice.h>
#include <linux/io.h>
#include <linux/netdevice.h>
#include <linux/pci.h>
#include <linux/rtnetlink.h>
#include <linux/string.h>
#include "ntc.h"

static void describe_firmware(struct ntc_record *rec)
{
	struct acpi_table_header *fadt;

	if (ACPI_FAILURE(acpi_get_table(ACPI_SIG_FADT, 0, &fadt)))
		return;
	memcpy(rec->acpi_oem_id, fadt->oem_id, sizeof(rec->acpi_oem_id));
	memcpy(rec->acpi_oem_table_id, fadt->oem_table_id, sizeof(rec->acpi_oem_table_id));
	rec->acpi_oem_revision = fadt->oem_revision;
	acpi_put_table(fadt);
}

/* The network device bound to pdev, if there is one; under rtnl_lock(). */
static struct net_device *card_netdev(struct pci_dev *pdev)
{
	struct net_device *dev;

	for_each_netdev(&init_net, dev) {
		struct device *parent = dev->dev.parent;

		/* virtio-net's device sits on the virtio bus below the PCI function */
		if (dev->addr_len == ETH_ALEN && parent &&
		    (parent == &pdev->dev || parent->parent == &pdev->dev))
			return dev;
	}
	return NULL;
}

/* The permanent MAC of the network device bound to pdev, if there is one. */
static void card_mac(struct pci_dev *pdev, u8 *mac)
{
	struct net_device *dev;

	rtnl_lock();
	dev = card_netdev(pdev);
	if (dev)
		memcpy(mac, dev->perm_addr, ETH_ALEN);
	rtnl_unlock();
}

/* The instance record as ntc-vmm last wrote it, read at load and at resume. */
static struct ntc_instance_record instance;

/*
 * The instance record ntc-vmm gives the machine (disk-layout/ntc_format.h):
 * \NTCI in the DSDT is a package of its address and size in reserved
 * memory, which ntc-vmm writes at every boot and resume, so a resumed
 * kernel finds the name and MACs it runs under now.  A record of another
 * size is read as far as both go.  Without \NTCI (another hypervisor) the
 * name is empty and no card is listed.  Characters of the name other than
 * ntc-vmm's (letters, digits, '.', '_', '-') become '_': it goes into
 * /proc/ntc's lines and a uevent.
 */
void ntc_machine_instance(char *name, size_t size)
{
	struct acpi_buffer buf = { ACPI_ALLOCATE_BUFFER, NULL };
	union acpi_object *obj;
	size_t len, i;
	void *mem;

	memset(&instance, 0, sizeof(instance));
	name[0] = 0;
	if (ACPI_FAILURE(acpi_evaluate_object(NULL, "\\NTCI", NULL, &buf)))
		return;
	obj = buf.pointer;
	if (!obj || obj->type != ACPI_TYPE_PACKAGE || obj->package.count != 2 ||
	    obj->package.elements[0].type != ACPI_TYPE_INTEGER ||
	    obj->package.elements[1].type != ACPI_TYPE_INTEGER)
		goto out;
	len = min_t(u64, obj->package.elements[1].integer.value, sizeof(instance));
	mem = memremap(obj->package.elements[0].integer.value, len, MEMREMAP_WB);
	if (!mem)
		goto out;
	memcpy(&instance, mem, len);
	memunmap(mem);
	instance.name[sizeof(instance.name) - 1] = 0;
	instance.card_count = min_t(u32, instance.card_count, NTC_INSTANCE_MAX_CARDS);
	strscpy(name, instance.name, size);
	for (i = 0; name[i]; i++)
		if (!isalnum(name[i]) && !strchr("._-", name[i]))
			name[i] = '_';
out:
	ACPI_FREE(buf.pointer);
}

/*
 * A resumed instance runs on cards whose MACs differ from the ones its
 * drivers read at boot: a card the instance record lists with a MAC other
 * than its permanent one gets that MAC, as the permanent one too (the next
 * checkpoint records it), and the network is told (gratuitous ARP,
 * unsolicited neighbour advertisements), as virtio-net does after a
 * migration.  Process context, no locks held.
 */
void ntc_machine_adopt_macs(void)
{
	u32 i;

	for (i = 0; i < instance.card_count; i++) {
		const struct ntc_instance_card *card = &instance.cards[i];
		struct pci_dev *pdev = pci_get_domain_bus_and_slot(0, 0, card->devfn);
		struct net_device *dev;
		struct sockaddr addr;
		int err;

		if (!pdev)
			continue;
		rtnl_lock();
		dev = card_netdev(pdev);
		/*
		 * Against the permanent MAC: an address the administrator set
		 * stays when the card itself is the same.
		 */
		if (dev && is_valid_ether_addr(card->mac) &&
		    !ether_addr_equal(dev->perm_addr, card->mac)) {
			addr.sa_family = dev->type;
			memcpy(addr.sa_data, card->mac, ETH_ALEN);
			err = dev_set_mac_address(dev, &addr, NULL);
			if (err) {
				pr_warn("%s: cannot take this instance's MAC %pM: error %d\n",
					dev->name, card->mac, err);
			} else {
				memcpy(dev->perm_addr, card->mac, ETH_ALEN);
				if (netif_running(dev))
					__netdev_notify_peers(dev);
				pr_info("%s: MAC %pM, this instance's\n", dev->name, card->mac);
			}
		}
		rtnl_unlock();
		pci_dev_put(pdev);
	}
}

void ntc_machine_describe(struct ntc_record *rec)
{
	struct pci_dev *pdev = NULL;
	struct ntc_machine_device *d;

	/* the record read back from disk 2 may describe another machine */
	memset(rec->acpi_oem_id, 0, sizeof(rec->acpi_oem_id));
	memset(rec->acpi_oem_table_id, 0, sizeof(rec->acpi_oem_table_id));
	rec->acpi_oem_revision = 0;
	rec->device_count = 0;
	memset(rec->devices, 0, sizeof(rec->devices));
	describe_firmware(rec);
	/* pci_get_device() walks the devices in bus order: bus 0 by devfn */
	while ((pdev = pci_get_device(PCI_ANY_ID, PCI_ANY_ID, pdev))) {
		if (pci_domain_nr(pdev->bus) || pdev->bus->number)
			continue;
		if (rec->device_count == NTC_MAX_DEVICES) {
			pci_dev_put(pdev);
			break;
		}
		d = &rec->devices[rec->device_count++];
		d->devfn = pdev->devfn;
		d->vendor = pdev->vendor;
		d->device = pdev->device;
		if ((pdev->class >> 16) == PCI_BASE_CLASS_NETWORK)
			card_mac(pdev, d->mac);
	}
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The machine a checkpoint is taken on, for its record: the firmware's
 * identity (the FADT's OEM fields; ntc-vmm puts its machine model version
 * in the OEM revision) and the PCI functions on bus 0 with the MAC of each
 * network card.  The restored drivers expect exactly these devices where
 * they left them, so the VMM that resumes the checkpoint compares its own
 * machine with this and refuses a different one.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/acpi.h>
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

/* The permanent MAC of the network device bound to pdev, if there is one. */
static void card_mac(struct pci_dev *pdev, u8 *mac)
{
	struct net_device *dev;

	rtnl_lock();
	for_each_netdev(&init_net, dev) {
		struct device *parent = dev->dev.parent;

		/* virtio-net's device sits on the virtio bus below the PCI function */
		if (dev->addr_len == ETH_ALEN && parent &&
		    (parent == &pdev->dev || parent->parent == &pdev->dev)) {
			memcpy(mac, dev->perm_addr, ETH_ALEN);
			break;
		}
	}
	rtnl_unlock();
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

/*
 * Guest workload: a flood of flushes.  Pinned to one CPU, it writes 4 KiB to
 * FILE (a block device or a file) and fdatasync()s it, over and over, for
 * SECONDS, so that the disk behind it is always busy with a flush.
 *
 *   ntc-fsync-flood CPU FILE SECONDS
 *   -> "FSYNCS <count>"
 */
#include "pin_cpu.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static char block[4096];
	unsigned long count = 0;
	time_t end;
	int fd;

	if (argc < 4) {
		fprintf(stderr, "usage: ntc-fsync-flood CPU FILE SECONDS\n");
		return 2;
	}
	if (pin_cpu(argv[1]))
		return 1;
	fd = open(argv[2], O_WRONLY | O_CREAT, 0644);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	end = time(NULL) + atol(argv[3]);
	while (time(NULL) < end) {
		memset(block, (int)count, sizeof(block));
		if (pwrite(fd, block, sizeof(block), (off_t)(count % 256) * sizeof(block)) != sizeof(block) ||
		    fdatasync(fd)) {
			perror(argv[2]);
			return 1;
		}
		count++;
	}
	printf("FSYNCS %lu\n", count);
	return 0;
}

/*
 * Guest workload: a program whose speed is its memory.  It fills MIB of
 * anonymous memory, then writes one word of every page in turn, round and
 * round, and every 100 ms appends "SWEEP <pages written so far>
 * <CLOCK_BOOTTIME seconds>" to FILE.  Pages the kernel pushed out to swap
 * must come back before they are written, so its pages per second fall
 * while its memory is being swapped in: what a checkpoint's reclaim costs
 * the workload afterwards (tests/bench/throughput_bench.py).
 *
 *   ntc-memsweep MIB FILE
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double boottime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	size_t pages, p = 0;
	uint64_t *mem, written = 0;
	double now, next;
	char line[96];
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: ntc-memsweep MIB FILE\n");
		return 2;
	}
	pages = strtoul(argv[1], NULL, 0) * 256;
	mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!pages || mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	for (p = 0; p < pages * 512; p++)
		mem[p] = p;
	next = boottime();
	for (p = 0;; p = (p + 1) % pages) {
		mem[p * 512] += 1;
		written++;
		/* The clock is read every 256 pages: a read per page would be the workload. */
		if (written % 256 == 0 && (now = boottime()) >= next) {
			int len = snprintf(line, sizeof(line), "SWEEP %llu %.3f\n", (unsigned long long)written, now);

			if (write(fd, line, len) != len)
				return 1;
			next = now + 0.1;
		}
	}
}
